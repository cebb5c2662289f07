//! The gateway: knows each user's open WebSocket connections and which session actor serves
//! which session; routes a client's request to a session only after checking that the session
//! is the client's; sends each event only to its owner's connections.
//!
//! It must not wait: store look-ups and calls into sessions run in spawned tasks that answer
//! the requesting connection with `DeliverTo`. Each connection has a bounded outbound queue;
//! a connection whose queue is full is dropped, so nobody else waits for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use crate::auth::Identity;
use crate::config::Config;
use crate::ids::{SessionId, UserId};
use crate::protocol::{ClientFrame, ErrorCode, Request, ServerEvent, ServerFrame};
use crate::session::actor::{SessionError, SessionMsg, StopMode};
use crate::store::{NewAccount, Store, StoreError};
use crate::supervisor::SupervisorMsg;

/// Outbound queue length of one connection.
pub const OUTBOUND_QUEUE: usize = 256;

pub type ConnId = u64;

/// What a connection task is told to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Text(String),
}

pub enum GatewayMsg {
    Connect {
        conn: ConnId,
        user: UserId,
        outbound: mpsc::Sender<Outbound>,
    },
    Disconnect {
        conn: ConnId,
    },
    Client {
        conn: ConnId,
        identity: Identity,
        frame: ClientFrame,
    },
    /// An event for every connection of `user`.
    Deliver {
        user: UserId,
        frame: ServerFrame,
    },
    /// A reply for one connection.
    DeliverTo {
        conn: ConnId,
        frame: ServerFrame,
    },
    /// A session actor (re)started: route this session to it.
    SessionUp {
        session_id: SessionId,
        user: UserId,
        actor: ActorRef<SessionMsg>,
    },
    SessionDown {
        session_id: SessionId,
        actor: ractor::ActorId,
    },
    /// The session actor serving `session_id`, if it belongs to `user`.
    Lookup {
        session_id: SessionId,
        user: UserId,
        reply: ractor::RpcReplyPort<Option<ActorRef<SessionMsg>>>,
    },
    /// Set once the supervisor exists (it spawns the gateway).
    Supervisor(ActorRef<SupervisorMsg>),
}

pub struct GatewayArgs {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// Profiles and their backups, for destroying a session that is not running.
    pub backups: Option<Arc<crate::backup::Backups>>,
}

pub struct GatewayState {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    backups: Option<Arc<crate::backup::Backups>>,
    supervisor: Option<ActorRef<SupervisorMsg>>,
    connections: HashMap<ConnId, (UserId, mpsc::Sender<Outbound>)>,
    by_user: HashMap<UserId, HashSet<ConnId>>,
    sessions: HashMap<SessionId, (UserId, ActorRef<SessionMsg>)>,
}

pub struct Gateway;

impl Actor for Gateway {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayState, ActorProcessingErr> {
        Ok(GatewayState {
            config: args.config,
            store: args.store,
            backups: args.backups,
            supervisor: None,
            connections: HashMap::new(),
            by_user: HashMap::new(),
            sessions: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<GatewayMsg>,
        message: GatewayMsg,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            GatewayMsg::Connect {
                conn,
                user,
                outbound,
            } => {
                state.by_user.entry(user.clone()).or_default().insert(conn);
                state.connections.insert(conn, (user, outbound));
            }
            GatewayMsg::Disconnect { conn } => state.drop_connection(conn),
            GatewayMsg::Client {
                conn,
                identity,
                frame,
            } => state.client(&myself, conn, identity, frame),
            GatewayMsg::Deliver { user, frame } => state.deliver(&user, &frame),
            GatewayMsg::DeliverTo { conn, frame } => state.deliver_to(conn, &frame),
            GatewayMsg::SessionUp {
                session_id,
                user,
                actor,
            } => {
                state.sessions.insert(session_id, (user, actor));
            }
            GatewayMsg::SessionDown { session_id, actor } => {
                if state
                    .sessions
                    .get(&session_id)
                    .is_some_and(|(_, a)| a.get_id() == actor)
                {
                    state.sessions.remove(&session_id);
                }
            }
            GatewayMsg::Lookup {
                session_id,
                user,
                reply,
            } => {
                let _ = reply.send(state.session_of(&session_id, &user));
            }
            GatewayMsg::Supervisor(supervisor) => state.supervisor = Some(supervisor),
        }
        Ok(())
    }
}

impl GatewayState {
    fn drop_connection(&mut self, conn: ConnId) {
        if let Some((user, _)) = self.connections.remove(&conn)
            && let Some(conns) = self.by_user.get_mut(&user)
        {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }

    fn push(&mut self, conn: ConnId, text: String) {
        let Some((_, outbound)) = self.connections.get(&conn) else {
            return;
        };
        if outbound.try_send(Outbound::Text(text)).is_err() {
            // Full (a slow client) or closed: this connection goes, nobody else waits for it.
            tracing::warn!(conn, "dropping a connection whose outbound queue is full");
            self.drop_connection(conn);
        }
    }

    fn deliver(&mut self, user: &UserId, frame: &ServerFrame) {
        let text = frame.to_json();
        let conns: Vec<ConnId> = self
            .by_user
            .get(user)
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default();
        for conn in conns {
            self.push(conn, text.clone());
        }
    }

    fn deliver_to(&mut self, conn: ConnId, frame: &ServerFrame) {
        self.push(conn, frame.to_json());
    }

    fn session_of(&self, session_id: &SessionId, user: &UserId) -> Option<ActorRef<SessionMsg>> {
        self.sessions
            .get(session_id)
            .filter(|(owner, _)| owner == user)
            .map(|(_, actor)| actor.clone())
    }

    fn client(
        &mut self,
        myself: &ActorRef<GatewayMsg>,
        conn: ConnId,
        identity: Identity,
        frame: ClientFrame,
    ) {
        let reference = frame.reference.clone();
        let reply = Replier {
            gateway: myself.clone(),
            conn,
            reference,
        };
        let user = identity.user_id.clone();
        match frame.request {
            Request::Ping => reply.send(ServerEvent::Pong {}),
            Request::Status => {
                let store = self.store.clone();
                tokio::spawn(async move {
                    match store.by_user(&user).await {
                        Ok(accounts) => reply.send(ServerEvent::Status {
                            accounts: serde_json::to_value(accounts).unwrap_or_default(),
                        }),
                        Err(error) => {
                            tracing::warn!(%error, "account store failed a status request");
                            reply.error(None, ErrorCode::Internal, crate::store::UNAVAILABLE)
                        }
                    }
                });
            }
            Request::Create {
                name,
                account_id,
                session_id,
            } => {
                let Some(supervisor) = self.supervisor.clone() else {
                    return reply.error(None, ErrorCode::Internal, "the supervisor is starting");
                };
                let running = session_id
                    .as_ref()
                    .is_some_and(|s| self.sessions.contains_key(s));
                let store = self.store.clone();
                let max = self.config.sessions.max_per_user as usize;
                tokio::spawn(create(
                    store, supervisor, reply, identity, name, account_id, session_id, running, max,
                ));
            }
            Request::Send {
                session_id,
                to,
                body,
            } => match self.session_of(&session_id, &user) {
                Some(session) => {
                    let recipient = to.clone();
                    tokio::spawn(async move {
                        let result = session
                            .call(
                                |reply| SessionMsg::Send { to, body, reply },
                                Some(Duration::from_secs(30)),
                            )
                            .await;
                        match flatten(result) {
                            Ok(sent) => reply.send(ServerEvent::Sent {
                                session_id,
                                id: sent.id,
                                to: recipient,
                                timestamp: sent.timestamp,
                            }),
                            Err(error) => {
                                reply.error(Some(session_id), error.code(), &error.to_string())
                            }
                        }
                    });
                }
                None => self.absent(reply, user, session_id, false),
            },
            Request::PairingCode {
                session_id,
                phone_number,
            } => match self.session_of(&session_id, &user) {
                Some(session) => {
                    tokio::spawn(async move {
                        let result = session
                            .call(
                                |reply| SessionMsg::PairingCode {
                                    phone: phone_number,
                                    reply,
                                },
                                Some(Duration::from_secs(30)),
                            )
                            .await;
                        match flatten(result) {
                            Ok(code) => reply.send(ServerEvent::PairingCode { session_id, code }),
                            Err(error) => {
                                reply.error(Some(session_id), error.code(), &error.to_string())
                            }
                        }
                    });
                }
                None => self.absent(reply, user, session_id, false),
            },
            Request::Destroy { session_id } => match self.session_of(&session_id, &user) {
                Some(session) => {
                    // The session itself tells every owner connection `disconnected (manual)`;
                    // one that has just stopped (its `SessionDown` not here yet) is absent.
                    let sent = session.cast(SessionMsg::Stop {
                        mode: StopMode::Destroy,
                        reply: None,
                    });
                    if sent.is_err() {
                        self.absent(reply, user, session_id, true);
                    }
                }
                None => self.absent(reply, user, session_id, true),
            },
        }
    }

    /// A request for a session with no running actor: `NOT_FOUND` unless the user owns the
    /// account; then `destroy` marks it stopped and deletes its profile and backups (no browser
    /// runs to log out with), and the rest answer `NOT_READY`.
    fn absent(&self, reply: Replier, user: UserId, session_id: SessionId, destroy: bool) {
        let store = self.store.clone();
        let backups = self.backups.clone();
        tokio::spawn(async move {
            match store.by_session(&session_id).await {
                Ok(Some(account)) if account.user_id == user => {
                    if destroy {
                        let update = crate::store::StatusUpdate {
                            at: crate::store::now(),
                            status: crate::session::policy::Status::Stopped,
                            error_message: None,
                            identity: None,
                        };
                        if let Err(error) = store.update_status(&session_id, update).await {
                            tracing::warn!(%error, "account store failed a destroy");
                            return reply.error(
                                Some(session_id),
                                ErrorCode::Internal,
                                crate::store::UNAVAILABLE,
                            );
                        }
                        if let Some(backups) = backups {
                            let id = session_id.clone();
                            let _ = tokio::task::spawn_blocking(move || backups.erase(&id)).await;
                        }
                        reply.send(ServerEvent::Disconnected {
                            session_id,
                            reason: "manual".into(),
                            requires_reconnect: true,
                        });
                    } else {
                        reply.error(
                            Some(session_id),
                            ErrorCode::NotReady,
                            "the session is not running",
                        );
                    }
                }
                Ok(_) => reply.error(None, ErrorCode::NotFound, "no such session"),
                Err(error) => {
                    tracing::warn!(%error, "account store failed a lookup");
                    reply.error(None, ErrorCode::Internal, crate::store::UNAVAILABLE)
                }
            }
        });
    }
}

/// `whatsapp:create`: checks the limit and ownership, writes the row, starts the session.
#[allow(clippy::too_many_arguments)]
async fn create(
    store: Arc<dyn Store>,
    supervisor: ActorRef<SupervisorMsg>,
    reply: Replier,
    identity: Identity,
    name: Option<String>,
    account_id: Option<String>,
    session_id: Option<SessionId>,
    running: bool,
    max_per_user: usize,
) {
    match create_account(
        &*store,
        &identity,
        name,
        account_id,
        session_id,
        running,
        max_per_user,
    )
    .await
    {
        Ok(account) => {
            // `created` first: the session's own events follow it.
            reply.send(ServerEvent::Created {
                account_id: account.id.clone(),
                session_id: account.session_id.clone(),
            });
            let _ = supervisor.cast(SupervisorMsg::Start {
                account: Box::new(account),
                settled: None,
            });
        }
        Err((code, message)) => reply.error(None, code, &message),
    }
}

/// The account to start for a create request: a new row, or (seed compatibility, with both ids)
/// an existing row of this user. Does not start anything.
pub async fn create_account(
    store: &dyn Store,
    identity: &Identity,
    name: Option<String>,
    account_id: Option<String>,
    session_id: Option<SessionId>,
    running: bool,
    max_per_user: usize,
) -> Result<crate::store::Account, (ErrorCode, String)> {
    let user = &identity.user_id;
    let internal = |e: StoreError| {
        tracing::warn!(error = %e, "account store failed a create");
        (ErrorCode::Internal, crate::store::UNAVAILABLE.to_owned())
    };
    match (account_id, session_id) {
        (Some(account_id), Some(session_id)) => {
            match store.get(&account_id).await.map_err(internal)? {
                Some(a) if &a.user_id == user && a.session_id == session_id => {
                    if running {
                        Err((
                            ErrorCode::AlreadyExists,
                            "that session is already running".into(),
                        ))
                    } else {
                        Ok(a)
                    }
                }
                _ => Err((ErrorCode::NotFound, "no such account".into())),
            }
        }
        (Some(_), None) => Err((
            ErrorCode::BadRequest,
            "accountId needs its sessionId".into(),
        )),
        (None, session_id) => {
            let owned = store.by_user(user).await.map_err(internal)?;
            if owned.len() >= max_per_user {
                return Err((
                    ErrorCode::LimitReached,
                    format!("at most {max_per_user} sessions per user"),
                ));
            }
            let session_id = session_id.unwrap_or_else(|| {
                SessionId::new(&uuid::Uuid::new_v4().simple().to_string())
                    .expect("uuid is a valid id")
            });
            let new = NewAccount {
                user_id: user.clone(),
                session_id,
                name,
                notify_email: identity.email.clone(),
            };
            match store.create(new).await {
                Ok(account) => Ok(account),
                Err(StoreError::AlreadyExists) => {
                    Err((ErrorCode::AlreadyExists, "that session id is taken".into()))
                }
                Err(error) => Err(internal(error)),
            }
        }
    }
}

/// Answers one client frame, echoing its `ref`.
struct Replier {
    gateway: ActorRef<GatewayMsg>,
    conn: ConnId,
    reference: Option<String>,
}

impl Replier {
    fn send(&self, event: ServerEvent) {
        let _ = self.gateway.cast(GatewayMsg::DeliverTo {
            conn: self.conn,
            frame: ServerFrame {
                event,
                reference: self.reference.clone(),
            },
        });
    }

    fn error(&self, session_id: Option<SessionId>, code: ErrorCode, message: &str) {
        self.send(ServerEvent::Error {
            session_id,
            error: code,
            message: message.to_owned(),
        });
    }
}

fn flatten<T>(
    result: Result<
        ractor::rpc::CallResult<Result<T, SessionError>>,
        ractor::MessagingErr<SessionMsg>,
    >,
) -> Result<T, SessionError> {
    match result {
        Ok(ractor::rpc::CallResult::Success(inner)) => inner,
        Ok(_) => Err(SessionError::Browser(
            "the session did not answer in time".into(),
        )),
        Err(_) => Err(SessionError::NotReady),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    async fn gateway() -> (ActorRef<GatewayMsg>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).await.unwrap();
        let (gateway, _) = Actor::spawn(
            None,
            Gateway,
            GatewayArgs {
                config: Arc::new(Config::default()),
                store: Arc::new(store),
                backups: None,
            },
        )
        .await
        .unwrap();
        (gateway, dir)
    }

    fn frame(n: u32) -> ServerFrame {
        ServerFrame {
            event: ServerEvent::Loading {
                session_id: SessionId::new("s1").unwrap(),
                percent: (n % 100) as u8,
            },
            reference: None,
        }
    }

    #[tokio::test]
    async fn a_slow_connection_is_dropped_and_the_others_keep_receiving() {
        let (gateway, _dir) = gateway().await;
        let user = UserId::new("u").unwrap();
        let (slow_tx, mut slow) = mpsc::channel(OUTBOUND_QUEUE);
        let (fast_tx, mut fast) = mpsc::channel(OUTBOUND_QUEUE);
        gateway
            .cast(GatewayMsg::Connect {
                conn: 1,
                user: user.clone(),
                outbound: slow_tx,
            })
            .unwrap();
        gateway
            .cast(GatewayMsg::Connect {
                conn: 2,
                user: user.clone(),
                outbound: fast_tx,
            })
            .unwrap();
        let reader = tokio::spawn(async move {
            let mut got = 0;
            while fast.recv().await.is_some() {
                got += 1;
                if got == OUTBOUND_QUEUE + 50 {
                    break;
                }
            }
            got
        });
        for n in 0..(OUTBOUND_QUEUE as u32 + 50) {
            gateway
                .cast(GatewayMsg::Deliver {
                    user: user.clone(),
                    frame: frame(n),
                })
                .unwrap();
        }
        assert_eq!(
            reader.await.unwrap(),
            OUTBOUND_QUEUE + 50,
            "the reading connection got everything"
        );
        // The slow one got what fit, then its queue was dropped: the connection task closes it.
        let mut buffered = 0;
        while slow.recv().await.is_some() {
            buffered += 1;
        }
        assert_eq!(buffered, OUTBOUND_QUEUE);
        gateway.stop(None);
    }

    #[tokio::test]
    async fn events_go_only_to_their_owner() {
        let (gateway, _dir) = gateway().await;
        let (a_tx, mut a) = mpsc::channel(8);
        let (b_tx, mut b) = mpsc::channel(8);
        gateway
            .cast(GatewayMsg::Connect {
                conn: 1,
                user: UserId::new("a").unwrap(),
                outbound: a_tx,
            })
            .unwrap();
        gateway
            .cast(GatewayMsg::Connect {
                conn: 2,
                user: UserId::new("b").unwrap(),
                outbound: b_tx,
            })
            .unwrap();
        gateway
            .cast(GatewayMsg::Deliver {
                user: UserId::new("a").unwrap(),
                frame: frame(1),
            })
            .unwrap();
        assert!(a.recv().await.is_some());
        gateway.stop(None);
        assert!(b.recv().await.is_none(), "b never received a's event");
    }
}
