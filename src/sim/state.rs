//! The simulator's server-side world: devices (one per Chromium profile) and phones.
//!
//! Pure bookkeeping: every operation takes the lock, changes the maps, and pushes frames
//! into the outbound queues of the page connections it concerns. No I/O, no awaits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Frames the simulator server sends to a page.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToPage {
    /// A new QR ref to show.
    Qr { r#ref: String },
    /// The phone scanned the QR or entered the pairing code: keep these credentials.
    Paired { creds: Creds, me: Me },
    /// Stored credentials accepted: the device is online.
    Connected { me: Me },
    /// Stored credentials are not (or no longer) linked: forget them and show a QR.
    Unpaired,
    /// The phone logged this device out.
    Logout,
    /// Answer to the page's own `logout`.
    LoggedOut,
    /// An incoming message.
    Msg(IncomingMsg),
    /// Server acknowledgement of an outgoing message.
    Ack { id: String, ack: i8 },
    /// Pairing code for the phone number the page asked for.
    PairCode { code: String },
    /// Set `Socket.state` to this value.
    State { state: String },
    /// Block the page's main thread for this long.
    Stall { ms: u64 },
}

/// Frames a page sends to the simulator server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromPage {
    Hello {
        device_id: String,
        keys: DeviceKeys,
        creds: Option<Creds>,
    },
    Send {
        id: String,
        to: String,
        body: String,
    },
    Logout,
    PairCode {
        phone: String,
    },
    RefreshQr,
    Presence {
        available: bool,
    },
    /// The page has stored an incoming message; until then the server keeps it for redelivery.
    MsgAck {
        id: String,
    },
}

/// Public key material a page shows in its QR string.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct DeviceKeys {
    pub noise: String,
    pub identity: String,
    pub adv: String,
    pub platform: String,
}

/// What a linked page keeps in its own storage to log in again without a QR.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Creds {
    pub secret: String,
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Me {
    pub phone: String,
    pub pushname: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncomingMsg {
    /// The bare message id (`3EB0…`); the page builds the serialized key from it.
    pub id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub timestamp: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SentMsg {
    pub id: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub timestamp: u64,
    pub device: String,
}

/// One row of `GET /__sim/devices`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub phone: Option<String>,
    pub pushname: Option<String>,
    pub linked: bool,
    pub connected: bool,
    /// The full QR string the page shows now (unlinked, connected devices only).
    pub qr: Option<String>,
    pub qr_ref: Option<String>,
    /// QR refs issued to this device so far.
    pub qr_count: u32,
    pub conflicts: u32,
    pub pending: usize,
    pub presence_available: bool,
}

/// Errors of the control API: each maps to an HTTP status.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

pub type ConnId = u64;

struct Conn {
    device: String,
    tx: mpsc::UnboundedSender<ToPage>,
}

struct Device {
    keys: DeviceKeys,
    link: Option<Creds>,
    conn: Option<ConnId>,
    qr_ref: Option<String>,
    qr_count: u32,
    /// `UNPAIRED_IDLE` was pushed: no rotation until the page asks for a fresh QR.
    idle: bool,
    /// Bumped whenever a new rotation schedule starts; older schedules stop.
    epoch: u64,
    pairing: Option<(String, String)>,
    conflicts: u32,
    pending: VecDeque<IncomingMsg>,
    /// Sent to the page, not yet acknowledged: redelivered if the connection drops first.
    unacked: VecDeque<IncomingMsg>,
    presence_available: bool,
}

struct Phone {
    pushname: String,
    sent: Vec<SentMsg>,
}

/// QR timing of the simulated WhatsApp servers.
#[derive(Debug, Clone, Copy)]
pub struct QrTiming {
    pub first: Duration,
    pub rotate: Duration,
}

/// Every `Socket.state` a phone can push, plus `LOGOUT`.
pub const PUSHABLE_STATES: &[&str] = &[
    "CONFLICT",
    "CONNECTED",
    "DEPRECATED_VERSION",
    "OPENING",
    "PAIRING",
    "PROXYBLOCK",
    "SMB_TOS_BLOCK",
    "TIMEOUT",
    "TOS_BLOCK",
    "UNLAUNCHED",
    "UNPAIRED",
    "UNPAIRED_IDLE",
    "LOGOUT",
];

#[derive(Default)]
pub struct SimState {
    devices: BTreeMap<String, Device>,
    phones: BTreeMap<String, Phone>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    outage_until: Option<Instant>,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_token(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A message id as WhatsApp Web makes them: `3EB0` and 16 more upper-case hex digits.
pub fn new_message_id() -> String {
    format!("3EB0{}", random_token(16, b"0123456789ABCDEF"))
}

fn new_ref() -> String {
    format!(
        "2@{}",
        random_token(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        )
    )
}

/// Accepts `"34600111222"` or `"34600111222@c.us"`; returns the digits.
pub fn phone_digits(raw: &str) -> Result<String, SimError> {
    let digits = raw.strip_suffix("@c.us").unwrap_or(raw);
    if (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits.to_owned())
    } else {
        Err(SimError::BadRequest(format!(
            "`{raw}` is not a phone number (5 to 15 digits, optionally followed by @c.us)"
        )))
    }
}

impl Device {
    fn qr_string(&self) -> Option<String> {
        let r = self.qr_ref.as_ref()?;
        let k = &self.keys;
        Some(format!(
            "{r},{},{},{},{}",
            k.noise, k.identity, k.adv, k.platform
        ))
    }
}

impl SimState {
    fn send(&self, conn: Option<ConnId>, frame: ToPage) -> bool {
        match conn.and_then(|c| self.conns.get(&c)) {
            Some(c) => c.tx.send(frame).is_ok(),
            None => false,
        }
    }

    /// A page's WebSocket opened. `None` while an outage refuses connections.
    pub fn open(&mut self, tx: mpsc::UnboundedSender<ToPage>) -> Option<ConnId> {
        if self.in_outage() {
            return None;
        }
        self.next_conn += 1;
        let id = self.next_conn;
        self.conns.insert(
            id,
            Conn {
                device: String::new(),
                tx,
            },
        );
        Some(id)
    }

    pub fn in_outage(&self) -> bool {
        self.outage_until.is_some_and(|t| Instant::now() < t)
    }

    /// A page's WebSocket closed.
    pub fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(device) = self.devices.get_mut(&c.device)
            && device.conn == Some(conn)
        {
            // What the page never acknowledged goes back in front of the queue.
            while let Some(msg) = device.unacked.pop_back() {
                device.pending.push_front(msg);
            }
            device.conn = None;
            device.qr_ref = None;
            device.pairing = None;
            if device.link.is_none() {
                self.devices.remove(&c.device);
            }
        }
    }

    /// Handles one frame from a page. Returns the epoch of a QR rotation schedule to start.
    pub fn handle(&mut self, conn: ConnId, frame: FromPage) -> Option<u64> {
        match frame {
            FromPage::Hello {
                device_id,
                keys,
                creds,
            } => return self.hello(conn, device_id, keys, creds),
            FromPage::Send { id, to, body } => self.page_sent(conn, id, to, body),
            FromPage::Logout => {
                if let Some(device) = self.device_of(conn) {
                    self.unlink(&device);
                }
                self.send(Some(conn), ToPage::LoggedOut);
            }
            FromPage::PairCode { phone } => {
                let device = self.device_of(conn)?;
                let code = random_token(8, b"ABCDEFGHJKLMNPQRSTVWXYZ23456789");
                if let Some(d) = self.devices.get_mut(&device) {
                    d.pairing = Some((code.clone(), phone));
                }
                self.send(Some(conn), ToPage::PairCode { code });
            }
            FromPage::RefreshQr => {
                let device = self.device_of(conn)?;
                let d = self.devices.get_mut(&device)?;
                if d.link.is_some() {
                    return None;
                }
                d.idle = false;
                d.epoch += 1;
                let epoch = d.epoch;
                self.rotate(conn);
                return Some(epoch);
            }
            FromPage::MsgAck { id } => {
                if let Some(device) = self.device_of(conn)
                    && let Some(d) = self.devices.get_mut(&device)
                {
                    d.unacked.retain(|m| m.id != id);
                }
            }
            FromPage::Presence { available } => {
                if let Some(device) = self.device_of(conn)
                    && let Some(d) = self.devices.get_mut(&device)
                {
                    d.presence_available = available;
                }
            }
        }
        None
    }

    fn device_of(&self, conn: ConnId) -> Option<String> {
        let device = &self.conns.get(&conn)?.device;
        (self
            .devices
            .get(device)
            .is_some_and(|d| d.conn == Some(conn)))
        .then(|| device.clone())
    }

    fn hello(
        &mut self,
        conn: ConnId,
        device_id: String,
        keys: DeviceKeys,
        creds: Option<Creds>,
    ) -> Option<u64> {
        if device_id.is_empty() || device_id.len() > 128 {
            return None;
        }
        let c = self.conns.get_mut(&conn)?;
        c.device = device_id.clone();
        let linked = creds.as_ref().is_some_and(|creds| {
            self.devices
                .get(&device_id)
                .and_then(|d| d.link.as_ref())
                .is_some_and(|link| link == creds)
        });
        if linked {
            let device = self.devices.get_mut(&device_id).expect("linked device");
            let older = device.conn.replace(conn).filter(|old| *old != conn);
            if older.is_some() {
                device.conflicts += 1;
            }
            let phone = device.link.as_ref().expect("linked").phone.clone();
            let pending: Vec<IncomingMsg> = device.pending.drain(..).collect();
            device.unacked.extend(pending.iter().cloned());
            if let Some(old) = older {
                self.send(
                    Some(old),
                    ToPage::State {
                        state: "CONFLICT".into(),
                    },
                );
            }
            let me = self.me(&phone);
            self.send(Some(conn), ToPage::Connected { me });
            for msg in pending {
                self.send(Some(conn), ToPage::Msg(msg));
            }
            return None;
        }
        if creds.is_some() {
            self.send(Some(conn), ToPage::Unpaired);
        }
        let device = self
            .devices
            .entry(device_id.clone())
            .or_insert_with(|| Device {
                keys: keys.clone(),
                link: None,
                conn: None,
                qr_ref: None,
                qr_count: 0,
                idle: false,
                epoch: 0,
                pairing: None,
                conflicts: 0,
                pending: VecDeque::new(),
                unacked: VecDeque::new(),
                presence_available: false,
            });
        // A page that lost its credentials while the server still links it logs in anew.
        device.link = None;
        device.pending.clear();
        device.keys = keys;
        device.conn = Some(conn);
        device.idle = false;
        device.epoch += 1;
        let epoch = device.epoch;
        self.rotate(conn);
        Some(epoch)
    }

    fn me(&self, phone: &str) -> Me {
        Me {
            phone: phone.to_owned(),
            pushname: self
                .phones
                .get(phone)
                .map(|p| p.pushname.clone())
                .unwrap_or_default(),
        }
    }

    /// A rotation schedule's tick: a new ref while `epoch` is still the device's schedule.
    /// False when the schedule is over (linked, idle, gone, or replaced).
    pub fn tick(&mut self, conn: ConnId, epoch: u64) -> bool {
        let current = self
            .device_of(conn)
            .and_then(|d| self.devices.get(&d))
            .is_some_and(|d| d.epoch == epoch);
        current && self.rotate(conn)
    }

    /// Issues a fresh QR ref to the unlinked device behind `conn`; false when there is none.
    fn rotate(&mut self, conn: ConnId) -> bool {
        let Some(device_id) = self.device_of(conn) else {
            return false;
        };
        let device = self.devices.get_mut(&device_id).expect("device");
        if device.link.is_some() || device.idle {
            return false;
        }
        let r = new_ref();
        device.qr_ref = Some(r.clone());
        device.qr_count += 1;
        self.send(Some(conn), ToPage::Qr { r#ref: r });
        true
    }

    /// `POST /__sim/scan`: the phone scans this QR string.
    pub fn scan(&mut self, qr: &str, phone: &str, pushname: &str) -> Result<String, SimError> {
        let phone = phone_digits(phone)?;
        let r = qr.split(',').next().unwrap_or_default();
        let device_id = self
            .devices
            .iter()
            .find(|(_, d)| d.conn.is_some() && d.link.is_none() && d.qr_ref.as_deref() == Some(r))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| SimError::NotFound("no device is showing that QR code".into()))?;
        let device = &self.devices[&device_id];
        if qr.contains(',') && device.qr_string().as_deref() != Some(qr) {
            return Err(SimError::NotFound(
                "the QR string does not match the keys of the device showing that ref".into(),
            ));
        }
        self.link(&device_id, phone, pushname);
        Ok(device_id)
    }

    /// `POST /__sim/pairing-code`: the phone enters a pairing code.
    pub fn enter_pairing_code(
        &mut self,
        code: &str,
        phone: &str,
        pushname: &str,
    ) -> Result<String, SimError> {
        let phone = phone_digits(phone)?;
        let code: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        let (device_id, wanted) = self
            .devices
            .iter()
            .find_map(|(id, d)| match &d.pairing {
                Some((c, p)) if *c == code && d.conn.is_some() && d.link.is_none() => {
                    Some((id.clone(), p.clone()))
                }
                _ => None,
            })
            .ok_or_else(|| {
                SimError::NotFound("no device is waiting for that pairing code".into())
            })?;
        if wanted != phone {
            return Err(SimError::Conflict(format!(
                "that code was requested for {wanted}, not for {phone}"
            )));
        }
        self.link(&device_id, phone, pushname);
        Ok(device_id)
    }

    fn link(&mut self, device_id: &str, phone: String, pushname: &str) {
        let pushname = if pushname.trim().is_empty() {
            format!("Phone {phone}")
        } else {
            pushname.to_owned()
        };
        let entry = self.phones.entry(phone.clone()).or_insert_with(|| Phone {
            pushname: pushname.clone(),
            sent: Vec::new(),
        });
        entry.pushname = pushname;
        let creds = Creds {
            secret: random_token(32, b"0123456789abcdef"),
            phone: phone.clone(),
        };
        let device = self.devices.get_mut(device_id).expect("device");
        device.link = Some(creds.clone());
        device.qr_ref = None;
        device.pairing = None;
        device.idle = false;
        let conn = device.conn;
        let me = self.me(&phone);
        self.send(conn, ToPage::Paired { creds, me });
    }

    fn unlink(&mut self, device_id: &str) {
        if let Some(d) = self.devices.get_mut(device_id) {
            d.link = None;
            d.pending.clear();
            if d.conn.is_none() {
                self.devices.remove(device_id);
            }
        }
    }

    fn linked_devices(&self, phone: &str) -> Vec<String> {
        self.devices
            .iter()
            .filter(|(_, d)| d.link.as_ref().is_some_and(|l| l.phone == phone))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn page_sent(&mut self, conn: ConnId, id: String, to: String, body: String) {
        let from = self.device_of(conn).and_then(|d| {
            self.devices[&d]
                .link
                .as_ref()
                .map(|l| (d.clone(), l.phone.clone()))
        });
        let Some((device, phone)) = from else {
            self.send(Some(conn), ToPage::Ack { id, ack: -1 });
            return;
        };
        if let Some(p) = self.phones.get_mut(&phone) {
            p.sent.push(SentMsg {
                id: id.clone(),
                from: format!("{phone}@c.us"),
                to,
                body,
                timestamp: now_secs(),
                device,
            });
        }
        for ack in 1..=3 {
            self.send(
                Some(conn),
                ToPage::Ack {
                    id: id.clone(),
                    ack,
                },
            );
        }
    }

    /// `POST /__sim/phones/{phone}/messages`: a message for the phone's linked devices.
    /// Returns (message id, devices reached now, devices it was queued for).
    pub fn incoming(
        &mut self,
        phone: &str,
        from: &str,
        body: &str,
    ) -> Result<(String, usize, usize), SimError> {
        let phone = phone_digits(phone)?;
        let from = phone_digits(from)?;
        let devices = self.linked_devices(&phone);
        if devices.is_empty() {
            return Err(SimError::NotFound(format!(
                "phone {phone} has no linked device"
            )));
        }
        let msg = IncomingMsg {
            id: new_message_id(),
            from: format!("{from}@c.us"),
            to: format!("{phone}@c.us"),
            body: body.to_owned(),
            timestamp: now_secs(),
        };
        let (mut delivered, mut queued) = (0, 0);
        for id in devices {
            let conn = self.devices[&id].conn;
            if self.send(conn, ToPage::Msg(msg.clone())) {
                delivered += 1;
                self.devices
                    .get_mut(&id)
                    .expect("device")
                    .unacked
                    .push_back(msg.clone());
            } else {
                self.devices
                    .get_mut(&id)
                    .expect("device")
                    .pending
                    .push_back(msg.clone());
                queued += 1;
            }
        }
        Ok((msg.id, delivered, queued))
    }

    pub fn sent(&self, phone: &str) -> Result<Vec<SentMsg>, SimError> {
        let phone = phone_digits(phone)?;
        self.phones
            .get(&phone)
            .map(|p| p.sent.clone())
            .ok_or_else(|| SimError::NotFound(format!("no phone {phone}")))
    }

    /// `POST /__sim/phones/{phone}/state`. Returns how many devices it reached.
    pub fn push_phone_state(&mut self, phone: &str, state: &str) -> Result<usize, SimError> {
        let phone = phone_digits(phone)?;
        check_state(state)?;
        let devices = self.linked_devices(&phone);
        if devices.is_empty() {
            return Err(SimError::NotFound(format!(
                "phone {phone} has no linked device"
            )));
        }
        for id in &devices {
            self.push_state(id, state);
        }
        Ok(devices.len())
    }

    /// `POST /__sim/devices/{id}/state`: one device, linked or not (e.g. `UNPAIRED_IDLE`).
    pub fn push_device_state(&mut self, device_id: &str, state: &str) -> Result<(), SimError> {
        check_state(state)?;
        if !self.devices.contains_key(device_id) {
            return Err(SimError::NotFound(format!("no device {device_id}")));
        }
        self.push_state(device_id, state);
        Ok(())
    }

    fn push_state(&mut self, device_id: &str, state: &str) {
        let conn = self.devices[device_id].conn;
        match state {
            "LOGOUT" => {
                self.send(conn, ToPage::Logout);
                self.unlink(device_id);
            }
            "UNPAIRED" => {
                self.send(conn, ToPage::Unpaired);
                self.unlink(device_id);
            }
            _ => {
                if state == "UNPAIRED_IDLE"
                    && let Some(d) = self.devices.get_mut(device_id)
                {
                    d.idle = true;
                }
                self.send(
                    conn,
                    ToPage::State {
                        state: state.to_owned(),
                    },
                );
            }
        }
    }

    /// `POST /__sim/phones/{phone}/stall`.
    pub fn stall(&mut self, phone: &str, ms: u64) -> Result<usize, SimError> {
        let phone = phone_digits(phone)?;
        if ms == 0 || ms > 600_000 {
            return Err(SimError::BadRequest(
                "ms must be between 1 and 600000".into(),
            ));
        }
        let conns: Vec<Option<ConnId>> = self
            .linked_devices(&phone)
            .iter()
            .map(|d| self.devices[d].conn)
            .collect();
        if conns.is_empty() {
            return Err(SimError::NotFound(format!(
                "phone {phone} has no linked device"
            )));
        }
        Ok(conns
            .into_iter()
            .filter(|c| self.send(*c, ToPage::Stall { ms }))
            .count())
    }

    /// `POST /__sim/outage`: drops every page connection and refuses new ones for `ms`.
    /// Returns the connections dropped; their senders are gone, which closes the sockets.
    pub fn outage(&mut self, ms: u64) -> Result<usize, SimError> {
        if ms == 0 || ms > 600_000 {
            return Err(SimError::BadRequest(
                "ms must be between 1 and 600000".into(),
            ));
        }
        self.outage_until = Some(Instant::now() + Duration::from_millis(ms));
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in &conns {
            self.close(*c);
        }
        Ok(conns.len())
    }

    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    pub fn devices(&self) -> Vec<DeviceView> {
        self.devices
            .iter()
            .map(|(id, d)| {
                let phone = d.link.as_ref().map(|l| l.phone.clone());
                DeviceView {
                    id: id.clone(),
                    pushname: phone
                        .as_ref()
                        .and_then(|p| self.phones.get(p))
                        .map(|p| p.pushname.clone()),
                    phone,
                    linked: d.link.is_some(),
                    connected: d.conn.is_some(),
                    qr: d.conn.and(d.qr_string()),
                    qr_ref: d.qr_ref.clone(),
                    qr_count: d.qr_count,
                    conflicts: d.conflicts,
                    pending: d.pending.len() + d.unacked.len(),
                    presence_available: d.presence_available,
                }
            })
            .collect()
    }
}

fn check_state(state: &str) -> Result<(), SimError> {
    if PUSHABLE_STATES.contains(&state) {
        Ok(())
    } else {
        Err(SimError::BadRequest(format!(
            "`{state}` is not a WhatsApp Web state; use one of {}",
            PUSHABLE_STATES.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> DeviceKeys {
        DeviceKeys {
            noise: "bm9pc2U=".into(),
            identity: "aWQ=".into(),
            adv: "YWR2".into(),
            platform: "WEB".into(),
        }
    }

    fn page(state: &mut SimState) -> (ConnId, mpsc::UnboundedReceiver<ToPage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (state.open(tx).unwrap(), rx)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<ToPage>) -> Vec<ToPage> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn hello(state: &mut SimState, conn: ConnId, device: &str, creds: Option<Creds>) {
        state.handle(
            conn,
            FromPage::Hello {
                device_id: device.into(),
                keys: keys(),
                creds,
            },
        );
    }

    fn paired(state: &mut SimState) -> (ConnId, mpsc::UnboundedReceiver<ToPage>, Creds) {
        let (conn, mut rx) = page(state);
        hello(state, conn, "d1", None);
        let qr = state.devices()[0].qr.clone().unwrap();
        state.scan(&qr, "34600111222", "Ana").unwrap();
        let creds = drain(&mut rx)
            .into_iter()
            .find_map(|f| match f {
                ToPage::Paired { creds, .. } => Some(creds),
                _ => None,
            })
            .unwrap();
        (conn, rx, creds)
    }

    #[test]
    fn qr_string_is_ref_and_keys_and_scan_pairs_the_device() {
        let mut s = SimState::default();
        let (conn, mut rx) = page(&mut s);
        hello(&mut s, conn, "d1", None);
        let frames = drain(&mut rx);
        let ToPage::Qr { r#ref } = &frames[0] else {
            panic!("{frames:?}")
        };
        let qr = s.devices()[0].qr.clone().unwrap();
        assert_eq!(qr, format!("{ref},bm9pc2U=,aWQ=,YWR2,WEB"));
        assert_eq!(
            s.scan("2@nothing", "34600111222", "Ana"),
            Err(SimError::NotFound(
                "no device is showing that QR code".into()
            ))
        );
        s.scan(&qr, "34600111222", "Ana").unwrap();
        let view = &s.devices()[0];
        assert!(view.linked && view.qr.is_none());
        assert_eq!(view.phone.as_deref(), Some("34600111222"));
        assert!(matches!(drain(&mut rx)[0], ToPage::Paired { .. }));
        assert!(!s.tick(conn, 1), "a linked device stops rotating");
    }

    #[test]
    fn rotation_replaces_the_ref_and_old_refs_no_longer_scan() {
        let mut s = SimState::default();
        let (conn, _rx) = page(&mut s);
        hello(&mut s, conn, "d1", None);
        let first = s.devices()[0].qr.clone().unwrap();
        assert!(s.tick(conn, 1));
        let second = s.devices()[0].qr.clone().unwrap();
        assert_ne!(first, second);
        assert_eq!(s.devices()[0].qr_count, 2);
        assert!(s.scan(&first, "34600111222", "Ana").is_err());
    }

    #[test]
    fn stored_credentials_reconnect_without_qr_and_get_queued_messages() {
        let mut s = SimState::default();
        let (conn, _rx, creds) = paired(&mut s);
        s.close(conn);
        let (id, delivered, queued) = s.incoming("34600111222", "34699000111", "hola").unwrap();
        assert!(id.starts_with("3EB0") && id.len() == 20);
        assert_eq!((delivered, queued), (0, 1));
        let (conn2, mut rx2) = page(&mut s);
        hello(&mut s, conn2, "d1", Some(creds));
        let frames = drain(&mut rx2);
        assert!(matches!(frames[0], ToPage::Connected { .. }), "{frames:?}");
        let ToPage::Msg(msg) = &frames[1] else {
            panic!("{frames:?}")
        };
        assert_eq!(msg.body, "hola");
        assert_eq!(
            s.devices()[0].pending,
            1,
            "kept until the page acknowledges it"
        );
        s.handle(conn2, FromPage::MsgAck { id: msg.id.clone() });
        assert_eq!(s.devices()[0].pending, 0);
    }

    #[test]
    fn unacknowledged_messages_are_redelivered_after_a_drop() {
        let mut s = SimState::default();
        let (conn, mut rx, creds) = paired(&mut s);
        let (id, delivered, _) = s.incoming("34600111222", "34699000111", "uno").unwrap();
        assert_eq!(delivered, 1);
        let (acked, _, _) = s.incoming("34600111222", "34699000111", "dos").unwrap();
        s.handle(conn, FromPage::MsgAck { id: acked });
        drain(&mut rx);
        s.close(conn); // the page died before storing "uno"
        let (conn2, mut rx2) = page(&mut s);
        hello(&mut s, conn2, "d1", Some(creds));
        let bodies: Vec<String> = drain(&mut rx2)
            .into_iter()
            .filter_map(|f| match f {
                ToPage::Msg(m) => Some(m.body),
                _ => None,
            })
            .collect();
        assert_eq!(bodies, ["uno"], "only the unacknowledged one comes again");
        s.handle(conn2, FromPage::MsgAck { id });
        assert_eq!(s.devices()[0].pending, 0);
    }

    #[test]
    fn a_second_connection_with_the_same_credentials_conflicts_the_first() {
        let mut s = SimState::default();
        let (_conn, mut rx, creds) = paired(&mut s);
        let (conn2, _rx2) = page(&mut s);
        hello(&mut s, conn2, "d1", Some(creds));
        assert_eq!(
            drain(&mut rx),
            vec![ToPage::State {
                state: "CONFLICT".into()
            }]
        );
        assert_eq!(s.devices()[0].conflicts, 1);
    }

    #[test]
    fn logout_from_the_phone_unlinks_and_old_credentials_get_a_qr() {
        let mut s = SimState::default();
        let (conn, mut rx, creds) = paired(&mut s);
        assert_eq!(s.push_phone_state("34600111222", "LOGOUT"), Ok(1));
        assert_eq!(drain(&mut rx), vec![ToPage::Logout]);
        assert!(!s.devices()[0].linked);
        s.close(conn);
        let (conn2, mut rx2) = page(&mut s);
        hello(&mut s, conn2, "d1", Some(creds));
        let frames = drain(&mut rx2);
        assert_eq!(frames[0], ToPage::Unpaired);
        assert!(matches!(frames[1], ToPage::Qr { .. }));
    }

    #[test]
    fn pairing_code_links_only_the_phone_it_was_requested_for() {
        let mut s = SimState::default();
        let (conn, mut rx) = page(&mut s);
        hello(&mut s, conn, "d1", None);
        s.handle(
            conn,
            FromPage::PairCode {
                phone: "34600111222".into(),
            },
        );
        let code = drain(&mut rx)
            .into_iter()
            .find_map(|f| match f {
                ToPage::PairCode { code } => Some(code),
                _ => None,
            })
            .unwrap();
        assert_eq!(code.len(), 8);
        assert!(matches!(
            s.enter_pairing_code(&code, "34600999999", "Ana"),
            Err(SimError::Conflict(_))
        ));
        assert!(
            s.enter_pairing_code("ZZZZZZZZ", "34600111222", "Ana")
                .is_err()
        );
        s.enter_pairing_code(&code, "34600111222", "Ana").unwrap();
        assert!(s.devices()[0].linked);
    }

    #[test]
    fn outage_drops_connections_and_refuses_new_ones() {
        let mut s = SimState::default();
        let (conn, _rx, _) = paired(&mut s);
        assert_eq!(s.outage(60_000), Ok(1));
        assert!(!s.is_open(conn));
        assert!(!s.devices()[0].connected);
        let (tx, _rx) = mpsc::unbounded_channel();
        assert!(s.open(tx).is_none());
    }

    #[test]
    fn unpaired_idle_stops_rotation_until_refresh() {
        let mut s = SimState::default();
        let (conn, _rx) = page(&mut s);
        hello(&mut s, conn, "d1", None);
        s.push_device_state("d1", "UNPAIRED_IDLE").unwrap();
        assert!(!s.tick(conn, 1));
        let count = s.devices()[0].qr_count;
        let epoch = s
            .handle(conn, FromPage::RefreshQr)
            .expect("refresh restarts rotation");
        assert_eq!(
            s.devices()[0].qr_count,
            count + 1,
            "refresh issues a new ref at once"
        );
        assert!(!s.tick(conn, 1), "the old schedule is over");
        assert!(s.tick(conn, epoch));
    }

    #[test]
    fn frames_keep_their_tag_apart_from_their_fields() {
        let frame = ToPage::Msg(IncomingMsg {
            id: "3EB0".into(),
            from: "1@c.us".into(),
            to: "2@c.us".into(),
            body: "x".into(),
            timestamp: 7,
        });
        let text = serde_json::to_string(&frame).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["t"], "msg", "{text}");
        assert_eq!(value["timestamp"], 7, "{text}");
        assert_eq!(text.matches("\"t\"").count(), 1, "{text}");
    }

    #[test]
    fn bad_control_input_is_refused() {
        let mut s = SimState::default();
        assert!(matches!(
            s.push_phone_state("34600111222", "EXPLODE"),
            Err(SimError::BadRequest(_))
        ));
        assert!(matches!(
            s.incoming("not-a-phone", "1234567", "x"),
            Err(SimError::BadRequest(_))
        ));
        assert!(matches!(
            s.incoming("34600111222", "1234567", "x"),
            Err(SimError::NotFound(_))
        ));
        assert!(matches!(s.outage(0), Err(SimError::BadRequest(_))));
        assert!(matches!(
            s.stall("34600111222", 700_000),
            Err(SimError::BadRequest(_))
        ));
    }
}
