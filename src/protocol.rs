//! The WebSocket protocol of SPEC §4: client frames parsed and checked here, at the edge, into
//! typed requests; server events serialized from typed values. JSON lives only in this module.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::SessionId;
use crate::session::policy::Status;

/// Frames larger than this are refused unread.
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest text a client may send.
pub const MAX_BODY_CHARS: usize = 4096;

/// Error codes of SPEC §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Unauthorized,
    BadRequest,
    UnknownEvent,
    NotFound,
    AlreadyExists,
    LimitReached,
    RateLimited,
    FrameTooLarge,
    NotReady,
    AuthFailure,
    QrTimeout,
    BrowserError,
    Internal,
}

/// A refused client frame: the error to reply with, echoing the frame's `ref` when it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<String>,
}

/// What a client asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Create {
        name: Option<String>,
        account_id: Option<String>,
        session_id: Option<SessionId>,
    },
    PairingCode {
        session_id: SessionId,
        phone_number: String,
    },
    Send {
        session_id: SessionId,
        /// Always `<digits>@c.us`.
        to: String,
        body: String,
    },
    Destroy {
        session_id: SessionId,
    },
    Status,
    Ping,
}

/// A parsed client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    pub request: Request,
    pub reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateData {
    name: Option<String>,
    account_id: Option<String>,
    session_id: Option<SessionId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PairingCodeData {
    session_id: SessionId,
    phone_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SendData {
    session_id: SessionId,
    to: String,
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SessionData {
    session_id: SessionId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// Parses one text frame. Every refusal says why, in words a dashboard developer understands.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, Refusal> {
    let refuse = |code, message: String, reference: Option<String>| Refusal {
        code,
        message,
        reference,
    };
    if text.len() > MAX_FRAME {
        return Err(refuse(
            ErrorCode::FrameTooLarge,
            format!("frames are limited to {MAX_FRAME} bytes"),
            None,
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| refuse(ErrorCode::BadRequest, format!("malformed JSON: {e}"), None))?;
    let Value::Object(mut frame) = value else {
        return Err(refuse(
            ErrorCode::BadRequest,
            "a frame must be a JSON object {event, data, ref}".into(),
            None,
        ));
    };
    let reference = match frame.remove("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= 128 => Some(r),
        Some(_) => {
            return Err(refuse(
                ErrorCode::BadRequest,
                "ref must be a string of at most 128 characters".into(),
                None,
            ));
        }
    };
    let bad = |message: String| refuse(ErrorCode::BadRequest, message, reference.clone());
    let event = match frame.remove("event") {
        Some(Value::String(event)) => event,
        Some(_) => return Err(bad("event must be a string".into())),
        None => return Err(bad("the frame has no event".into())),
    };
    let data = match frame.remove("data") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(data @ Value::Object(_)) => data,
        Some(_) => return Err(bad("data must be a JSON object".into())),
    };
    if let Some(extra) = frame.keys().next() {
        return Err(bad(format!("unknown frame field `{extra}`")));
    }
    fn data_of<T: serde::de::DeserializeOwned>(event: &str, data: Value) -> Result<T, String> {
        serde_json::from_value(data).map_err(|e| format!("invalid data for {event}: {e}"))
    }
    let request = match event.as_str() {
        "whatsapp:create" => {
            let d: CreateData = data_of(&event, data).map_err(bad)?;
            if let Some(name) = &d.name
                && name.chars().count() > 100
            {
                return Err(bad("name is limited to 100 characters".into()));
            }
            if let Some(id) = &d.account_id
                && !is_uuid(id)
            {
                return Err(bad("accountId must be a UUID".into()));
            }
            Request::Create {
                name: d.name,
                account_id: d.account_id,
                session_id: d.session_id,
            }
        }
        "whatsapp:pairing-code" => {
            let d: PairingCodeData = data_of(&event, data).map_err(bad)?;
            if !is_phone(&d.phone_number) {
                return Err(bad(
                    "phoneNumber must be 5 to 15 digits in international form, without +".into(),
                ));
            }
            Request::PairingCode {
                session_id: d.session_id,
                phone_number: d.phone_number,
            }
        }
        "whatsapp:send" => {
            let d: SendData = data_of(&event, data).map_err(bad)?;
            let digits = d.to.strip_suffix("@c.us").unwrap_or(&d.to);
            if !is_phone(digits) {
                return Err(bad("to must be digits or <digits>@c.us".into()));
            }
            let chars = d.body.chars().count();
            if chars == 0 || chars > MAX_BODY_CHARS {
                return Err(bad(format!(
                    "body must be 1 to {MAX_BODY_CHARS} characters"
                )));
            }
            Request::Send {
                session_id: d.session_id,
                to: format!("{digits}@c.us"),
                body: d.body,
            }
        }
        "whatsapp:destroy" => {
            let d: SessionData = data_of(&event, data).map_err(bad)?;
            Request::Destroy {
                session_id: d.session_id,
            }
        }
        "whatsapp:status" => {
            let _: Empty = data_of(&event, data).map_err(bad)?;
            Request::Status
        }
        "ping" => {
            let _: Empty = data_of(&event, data).map_err(bad)?;
            Request::Ping
        }
        _ => {
            return Err(refuse(
                ErrorCode::UnknownEvent,
                format!(
                    "unknown event `{}`",
                    event.chars().take(64).collect::<String>()
                ),
                reference,
            ));
        }
    };
    Ok(ClientFrame { request, reference })
}

fn is_phone(s: &str) -> bool {
    (5..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Events the server sends (only ever to connections of the session's owner).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", content = "data")]
pub enum ServerEvent {
    #[serde(rename = "whatsapp:created", rename_all = "camelCase")]
    Created {
        account_id: String,
        session_id: SessionId,
    },
    #[serde(rename = "whatsapp:state", rename_all = "camelCase")]
    State {
        session_id: SessionId,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    #[serde(rename = "whatsapp:qr", rename_all = "camelCase")]
    Qr {
        session_id: SessionId,
        /// `data:image/png;base64,…`
        qr: String,
        /// The exact string the PNG encodes (for dashboards that draw the code themselves).
        text: String,
        attempt: u32,
        timestamp: i64,
    },
    #[serde(rename = "whatsapp:authenticated", rename_all = "camelCase")]
    Authenticated { session_id: SessionId },
    #[serde(rename = "whatsapp:loading", rename_all = "camelCase")]
    Loading { session_id: SessionId, percent: u8 },
    #[serde(rename = "whatsapp:ready", rename_all = "camelCase")]
    Ready {
        session_id: SessionId,
        phone_number: String,
        profile_name: String,
    },
    #[serde(rename = "whatsapp:message", rename_all = "camelCase")]
    Message {
        session_id: SessionId,
        id: String,
        from: String,
        body: String,
        timestamp: i64,
    },
    #[serde(rename = "whatsapp:pairing-code", rename_all = "camelCase")]
    PairingCode { session_id: SessionId, code: String },
    #[serde(rename = "whatsapp:sent", rename_all = "camelCase")]
    Sent {
        session_id: SessionId,
        id: String,
        to: String,
        timestamp: i64,
    },
    #[serde(rename = "whatsapp:disconnected", rename_all = "camelCase")]
    Disconnected {
        session_id: SessionId,
        reason: String,
        requires_reconnect: bool,
    },
    #[serde(rename = "whatsapp:error", rename_all = "camelCase")]
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
        error: ErrorCode,
        message: String,
    },
    #[serde(rename = "whatsapp:status")]
    Status { accounts: Value },
    #[serde(rename = "pong")]
    Pong {},
}

/// A server frame: an event, and the `ref` of the client frame it answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerFrame {
    #[serde(flatten)]
    pub event: ServerEvent,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames serialize")
    }
}

impl Refusal {
    /// The `whatsapp:error` frame answering this refusal.
    pub fn frame(&self) -> ServerFrame {
        ServerFrame {
            event: ServerEvent::Error {
                session_id: None,
                error: self.code,
                message: self.message.clone(),
            },
            reference: self.reference.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sid(s: &str) -> SessionId {
        SessionId::new(s).unwrap()
    }

    fn check(input: Value, expect: Result<Request, ErrorCode>) {
        let got = parse_client_frame(&input.to_string());
        match (got, expect) {
            (Ok(frame), Ok(request)) => assert_eq!(frame.request, request, "{input}"),
            (Err(refusal), Err(code)) => {
                assert_eq!(refusal.code, code, "{input}: {}", refusal.message)
            }
            (got, expect) => panic!("{input}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn valid_frames_become_requests() {
        check(json!({"event": "ping"}), Ok(Request::Ping));
        check(json!({"event": "ping", "data": {}}), Ok(Request::Ping));
        check(
            json!({"event": "whatsapp:status", "data": {}}),
            Ok(Request::Status),
        );
        check(
            json!({"event": "whatsapp:create", "data": {"name": "Tienda"}}),
            Ok(Request::Create {
                name: Some("Tienda".into()),
                account_id: None,
                session_id: None,
            }),
        );
        check(
            json!({"event": "whatsapp:create", "data": {"accountId": "6f1c2a9e-1b2c-4d3e-8f90-0123456789ab", "sessionId": "s-1"}}),
            Ok(Request::Create {
                name: None,
                account_id: Some("6f1c2a9e-1b2c-4d3e-8f90-0123456789ab".into()),
                session_id: Some(sid("s-1")),
            }),
        );
        check(
            json!({"event": "whatsapp:send", "data": {"sessionId": "s1", "to": "34600111222", "body": "hola"}}),
            Ok(Request::Send {
                session_id: sid("s1"),
                to: "34600111222@c.us".into(),
                body: "hola".into(),
            }),
        );
        check(
            json!({"event": "whatsapp:send", "data": {"sessionId": "s1", "to": "34600111222@c.us", "body": "x"}}),
            Ok(Request::Send {
                session_id: sid("s1"),
                to: "34600111222@c.us".into(),
                body: "x".into(),
            }),
        );
        check(
            json!({"event": "whatsapp:pairing-code", "data": {"sessionId": "s1", "phoneNumber": "34600111222"}}),
            Ok(Request::PairingCode {
                session_id: sid("s1"),
                phone_number: "34600111222".into(),
            }),
        );
        check(
            json!({"event": "whatsapp:destroy", "data": {"sessionId": "s1"}}),
            Ok(Request::Destroy {
                session_id: sid("s1"),
            }),
        );
    }

    #[test]
    fn bad_frames_are_refused_with_their_code() {
        use ErrorCode::*;
        let cases = [
            (json!([1, 2]), BadRequest),
            (json!("ping"), BadRequest),
            (json!({"data": {}}), BadRequest),
            (json!({"event": 5}), BadRequest),
            (json!({"event": "ping", "data": [1]}), BadRequest),
            (json!({"event": "ping", "extra": 1}), BadRequest),
            (json!({"event": "ping", "ref": 7}), BadRequest),
            (json!({"event": "ping", "data": {"x": 1}}), BadRequest),
            (json!({"event": "whatsapp:explode"}), UnknownEvent),
            (
                json!({"event": "whatsapp:send", "data": {"sessionId": "s1", "to": "34600111222"}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:send", "data": {"sessionId": "s1", "to": "+34600111222", "body": "x"}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:send", "data": {"sessionId": "s1", "to": "34600111222", "body": ""}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:send", "data": {"sessionId": "s1", "to": "34600111222", "body": "x".repeat(4097)}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:send", "data": {"sessionId": 1, "to": "34600111222", "body": "x"}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:destroy", "data": {"sessionId": "../../etc"}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:destroy", "data": {"sessionId": "x".repeat(65)}}),
                BadRequest,
            ),
            (json!({"event": "whatsapp:destroy", "data": {}}), BadRequest),
            (
                json!({"event": "whatsapp:create", "data": {"accountId": "not-a-uuid"}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:create", "data": {"name": "n".repeat(101)}}),
                BadRequest,
            ),
            (
                json!({"event": "whatsapp:pairing-code", "data": {"sessionId": "s1", "phoneNumber": "12ab"}}),
                BadRequest,
            ),
        ];
        for (input, code) in cases {
            check(input, Err(code));
        }
        assert_eq!(
            parse_client_frame("{not json").unwrap_err().code,
            ErrorCode::BadRequest
        );
        let huge = format!(
            "{{\"event\":\"ping\",\"data\":{{\"x\":\"{}\"}}}}",
            "a".repeat(MAX_FRAME)
        );
        assert_eq!(
            parse_client_frame(&huge).unwrap_err().code,
            ErrorCode::FrameTooLarge
        );
    }

    #[test]
    fn replies_echo_the_ref_even_when_refused() {
        let refusal = parse_client_frame(r#"{"event":"nope","ref":"r-9"}"#).unwrap_err();
        let frame: Value = serde_json::from_str(&refusal.frame().to_json()).unwrap();
        assert_eq!(
            frame,
            json!({"event": "whatsapp:error", "data": {"error": "UNKNOWN_EVENT", "message": "unknown event `nope`"}, "ref": "r-9"})
        );
        let ok = parse_client_frame(r#"{"event":"ping","ref":"r-1"}"#).unwrap();
        assert_eq!(ok.reference.as_deref(), Some("r-1"));
    }

    #[test]
    fn server_events_use_the_node_backend_names() {
        let frame = ServerFrame {
            event: ServerEvent::Ready {
                session_id: sid("s1"),
                phone_number: "34600111222".into(),
                profile_name: "Ana".into(),
            },
            reference: None,
        };
        assert_eq!(
            serde_json::from_str::<Value>(&frame.to_json()).unwrap(),
            json!({"event": "whatsapp:ready", "data": {"sessionId": "s1", "phoneNumber": "34600111222", "profileName": "Ana"}})
        );
        let frame = ServerFrame {
            event: ServerEvent::Disconnected {
                session_id: sid("s1"),
                reason: "CONFLICT".into(),
                requires_reconnect: true,
            },
            reference: Some("x".into()),
        };
        assert_eq!(
            serde_json::from_str::<Value>(&frame.to_json()).unwrap(),
            json!({"event": "whatsapp:disconnected", "data": {"sessionId": "s1", "reason": "CONFLICT", "requiresReconnect": true}, "ref": "x"})
        );
        let state = ServerFrame {
            event: ServerEvent::State {
                session_id: sid("s1"),
                status: Status::Reconnecting,
                detail: None,
            },
            reference: None,
        };
        assert_eq!(
            serde_json::from_str::<Value>(&state.to_json()).unwrap(),
            json!({"event": "whatsapp:state", "data": {"sessionId": "s1", "status": "reconnecting"}})
        );
        let pong = ServerFrame {
            event: ServerEvent::Pong {},
            reference: Some("p".into()),
        };
        assert_eq!(
            serde_json::from_str::<Value>(&pong.to_json()).unwrap(),
            json!({"event": "pong", "data": {}, "ref": "p"})
        );
    }
}
