//! The root supervisor: starts, stops and restarts session actors (one_for_one), with a restart
//! budget per session; owns the gateway; restores stored sessions at start-up; tells the
//! gateway whenever a session actor is replaced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::oneshot;

use crate::gateway::{Gateway, GatewayArgs, GatewayMsg};
use crate::ids::SessionId;
use crate::protocol::{ErrorCode, ServerEvent, ServerFrame};
use crate::session::actor::{
    SessionActor, SessionArgs, SessionContext, SessionMsg, SessionSnapshot, StopMode,
};
use crate::session::policy::{RestartBudget, Status};
use crate::store::{Account, StatusUpdate};

pub enum SupervisorMsg {
    Start {
        account: Box<Account>,
        settled: Option<oneshot::Sender<Status>>,
    },
    Stop {
        session_id: SessionId,
        mode: StopMode,
        reply: Option<RpcReplyPort<bool>>,
    },
    /// An operator's restart: the actor stops (browser closed, status kept) and a fresh one
    /// starts from the same profile. Answers whether the session was running.
    Restart {
        session_id: SessionId,
        reply: RpcReplyPort<bool>,
    },
    /// Start every stored session whose status is restorable, `restore_concurrency` at a time.
    Restore(RpcReplyPort<usize>),
    Snapshots(RpcReplyPort<Vec<SessionSnapshot>>),
    /// Closes every browser (statuses kept, so the next start restores them), then stops.
    Shutdown(RpcReplyPort<()>),
    Gateway(RpcReplyPort<ActorRef<GatewayMsg>>),
}

pub struct SupervisorArgs {
    /// The context of every session; its `gateway` is replaced by the one spawned here.
    pub context: SessionContextSeed,
}

/// Everything a session context needs except the gateway, which the supervisor spawns.
#[derive(Clone)]
pub struct SessionContextSeed {
    pub config: Arc<crate::config::Config>,
    pub store: Arc<dyn crate::store::Store>,
    pub launcher: Arc<dyn crate::session::browser::Launcher>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub executable: std::path::PathBuf,
    pub sessions_path: std::path::PathBuf,
    pub simulator_args: Vec<String>,
    pub mailer: Arc<crate::mail::Mailer>,
    pub backups: Arc<crate::backup::Backups>,
}

struct Child {
    actor: ActorRef<SessionMsg>,
    account: Account,
    budget: RestartBudget,
    restarts: u32,
}

pub struct SupervisorState {
    context: SessionContext,
    children: HashMap<SessionId, Child>,
    gateway: ActorRef<GatewayMsg>,
}

pub struct RootSupervisor;

impl Actor for RootSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let seed = args.context;
        let (gateway, _) = Actor::spawn_linked(
            None,
            Gateway,
            GatewayArgs {
                config: seed.config.clone(),
                store: seed.store.clone(),
                backups: Some(seed.backups.clone()),
            },
            myself.get_cell(),
        )
        .await?;
        gateway.cast(GatewayMsg::Supervisor(myself.clone()))?;
        let launches = Arc::new(tokio::sync::Semaphore::new(
            seed.config.sessions.launch_concurrency as usize,
        ));
        Ok(SupervisorState {
            context: SessionContext {
                config: seed.config,
                store: seed.store.clone(),
                gateway: gateway.clone(),
                launches,
                launcher: seed.launcher,
                metrics: seed.metrics.clone(),
                writes: Arc::new(crate::store::writes::StoreWrites::new(
                    seed.store.clone(),
                    seed.metrics.clone(),
                )),
                executable: seed.executable,
                sessions_path: seed.sessions_path,
                simulator_args: seed.simulator_args,
                mailer: seed.mailer,
                backups: seed.backups,
            },
            children: HashMap::new(),
            gateway,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Start { account, settled } => {
                if state.children.contains_key(&account.session_id) {
                    if let Some(settled) = settled {
                        let _ = settled.send(Status::Initializing);
                    }
                    return Ok(());
                }
                let budget = RestartBudget::new(
                    state.context.config.supervisor.max_restarts,
                    state.context.config.supervisor.restart_window,
                );
                state.spawn(&myself, *account, budget, 0, settled).await;
            }
            SupervisorMsg::Stop {
                session_id,
                mode,
                reply,
            } => {
                let found = match state.children.remove(&session_id) {
                    Some(child) => {
                        let _ = child
                            .actor
                            .call(
                                |reply| SessionMsg::Stop {
                                    mode,
                                    reply: Some(reply),
                                },
                                Some(Duration::from_secs(15)),
                            )
                            .await;
                        true
                    }
                    None => false,
                };
                if let Some(reply) = reply {
                    let _ = reply.send(found);
                }
            }
            SupervisorMsg::Restart { session_id, reply } => {
                let Some(child) = state.children.remove(&session_id) else {
                    let _ = reply.send(false);
                    return Ok(());
                };
                let _ = child
                    .actor
                    .call(
                        |reply| SessionMsg::Stop {
                            mode: StopMode::Shutdown,
                            reply: Some(reply),
                        },
                        Some(Duration::from_secs(15)),
                    )
                    .await;
                let _ = state.gateway.cast(GatewayMsg::SessionDown {
                    session_id: session_id.clone(),
                    actor: child.actor.get_id(),
                });
                state
                    .spawn(&myself, child.account, child.budget, child.restarts, None)
                    .await;
                let _ = reply.send(true);
            }
            SupervisorMsg::Restore(reply) => {
                let store = state.context.store.clone();
                let concurrency = state.context.config.sessions.restore_concurrency as usize;
                let myself = myself.clone();
                let mailer = state.context.mailer.clone();
                let backups = state.context.backups.clone();
                tokio::spawn(async move {
                    let accounts = restorable_with_backoff(&*store).await;
                    for account in &accounts {
                        // Their owners were told they are connected; a restore is no news.
                        mailer.assume(&account.session_id, crate::mail::MailKind::Connected);
                    }
                    let count = accounts.len();
                    futures::stream::iter(accounts)
                        .for_each_concurrent(concurrency, |account| {
                            let myself = myself.clone();
                            let backups = backups.clone();
                            async move {
                                // A profile lost with its disk comes back from its backup.
                                let session_id = account.session_id.clone();
                                let _ = tokio::task::spawn_blocking(move || {
                                    backups.restore_if_missing(&session_id)
                                })
                                .await;
                                let (settled, done) = oneshot::channel();
                                let _ = myself.cast(SupervisorMsg::Start {
                                    account: Box::new(account),
                                    settled: Some(settled),
                                });
                                let _ = tokio::time::timeout(Duration::from_secs(120), done).await;
                            }
                        })
                        .await;
                    let _ = reply.send(count);
                });
            }
            SupervisorMsg::Snapshots(reply) => {
                let actors: Vec<(ActorRef<SessionMsg>, u32)> = state
                    .children
                    .values()
                    .map(|c| (c.actor.clone(), c.restarts))
                    .collect();
                tokio::spawn(async move {
                    let mut snapshots = Vec::new();
                    for (actor, restarts) in actors {
                        if let Ok(ractor::rpc::CallResult::Success(mut s)) = actor
                            .call(SessionMsg::Snapshot, Some(Duration::from_secs(5)))
                            .await
                        {
                            s.restarts = restarts;
                            snapshots.push(s);
                        }
                    }
                    snapshots.sort_by(|a, b| a.session_id.cmp(&b.session_id));
                    let _ = reply.send(snapshots);
                });
            }
            SupervisorMsg::Gateway(reply) => {
                let _ = reply.send(state.gateway.clone());
            }
            SupervisorMsg::Shutdown(reply) => {
                let children: Vec<Child> = state.children.drain().map(|(_, c)| c).collect();
                let stops = children.iter().map(|child| {
                    child.actor.call(
                        |reply| SessionMsg::Stop {
                            mode: StopMode::Shutdown,
                            reply: Some(reply),
                        },
                        Some(Duration::from_secs(15)),
                    )
                });
                futures::future::join_all(stops).await;
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some(session_id) = state.child_of(&cell) else {
                    if cell.get_id() == state.gateway.get_id() {
                        return Err(format!("the gateway failed: {error}").into());
                    }
                    return Ok(());
                };
                let mut child = state.children.remove(&session_id).expect("child");
                let _ = state.gateway.cast(GatewayMsg::SessionDown {
                    session_id: session_id.clone(),
                    actor: cell.get_id(),
                });
                tracing::error!(%session_id, %error, "session actor failed");
                if child.budget.try_restart(Instant::now().into_std()) {
                    child.restarts += 1;
                    crate::metrics::Metrics::count(&state.context.metrics.restarts);
                    let restarts = child.restarts;
                    state
                        .spawn(&myself, child.account, child.budget, restarts, None)
                        .await;
                } else {
                    state.park(&child.account, "restart budget exhausted");
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(session_id) = state.child_of(&cell) {
                    state.children.remove(&session_id);
                    let _ = state.gateway.cast(GatewayMsg::SessionDown {
                        session_id,
                        actor: cell.get_id(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    fn child_of(&self, cell: &ractor::ActorCell) -> Option<SessionId> {
        self.children
            .iter()
            .find(|(_, c)| c.actor.get_id() == cell.get_id())
            .map(|(id, _)| id.clone())
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        account: Account,
        budget: RestartBudget,
        restarts: u32,
        settled: Option<oneshot::Sender<Status>>,
    ) {
        let args = SessionArgs {
            context: self.context.clone(),
            session_id: account.session_id.clone(),
            user_id: account.user_id.clone(),
            settled,
        };
        match Actor::spawn_linked(None, SessionActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                let _ = self.gateway.cast(GatewayMsg::SessionUp {
                    session_id: account.session_id.clone(),
                    user: account.user_id.clone(),
                    actor: actor.clone(),
                });
                self.children.insert(
                    account.session_id.clone(),
                    Child {
                        actor,
                        account,
                        budget,
                        restarts,
                    },
                );
            }
            Err(error) => {
                tracing::error!(session_id = %account.session_id, %error, "cannot start a session actor");
                self.park(&account, "cannot start the session");
            }
        }
    }

    /// Parks a session in `error` and tells its owner.
    fn park(&self, account: &Account, why: &str) {
        // Through the session's own queue, so it lands after anything its actors still wrote.
        self.context.writes.status(
            &account.session_id,
            StatusUpdate {
                at: crate::store::now(),
                status: Status::Error,
                error_message: Some(why.to_owned()),
                identity: None,
            },
        );
        for event in [
            ServerEvent::State {
                session_id: account.session_id.clone(),
                status: Status::Error,
                detail: Some(why.to_owned()),
            },
            ServerEvent::Error {
                session_id: Some(account.session_id.clone()),
                error: ErrorCode::BrowserError,
                message: why.to_owned(),
            },
            ServerEvent::Disconnected {
                session_id: account.session_id.clone(),
                reason: why.to_owned(),
                requires_reconnect: true,
            },
        ] {
            let _ = self.gateway.cast(GatewayMsg::Deliver {
                user: account.user_id.clone(),
                frame: ServerFrame {
                    event,
                    reference: None,
                },
            });
        }
    }
}

/// Start-up reads wait for the store with backoff, saying so in the log.
async fn restorable_with_backoff(store: &dyn crate::store::Store) -> Vec<Account> {
    use backon::Retryable;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times();
    (|| store.restorable())
        .retry(backoff)
        .notify(|error, delay| {
            tracing::warn!(%error, ?delay, "the store is not answering; waiting to restore sessions");
        })
        .await
        .unwrap_or_default()
}
