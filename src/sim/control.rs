//! The simulator's control API, `/__sim/...`: what a phone and the network would do.
//!
//! Bodies are JSON objects of at most 64 KiB; every error is `{error, message}` with a 4xx status.

use std::convert::Infallible;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::Simulator;
use super::state::SimError;

const MAX_BODY: u64 = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scan {
    qr: String,
    phone: String,
    #[serde(default)]
    pushname: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairingCode {
    code: String,
    phone: String,
    #[serde(default)]
    pushname: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Incoming {
    from: String,
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Millis {
    ms: u64,
}

pub(super) fn routes(
    sim: Simulator,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    routes_without_recover(sim).recover(rejection).unify()
}

pub(super) fn routes_without_recover(
    sim: Simulator,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let with_sim = warp::any().map(move || sim.clone());
    let body = warp::body::content_length_limit(MAX_BODY).and(warp::body::bytes());
    let base = warp::path("__sim");

    // POST /__sim/scan
    let scan = base
        .and(warp::path!("scan"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(|sim: Simulator, body: warp::hyper::body::Bytes| {
            respond(parse::<Scan>(&body).and_then(|b| {
                let device = sim.lock().scan(&b.qr, &b.phone, &b.pushname)?;
                Ok(json!({ "device": device }))
            }))
        })
        .boxed();

    // POST /__sim/pairing-code
    let pairing = base
        .and(warp::path!("pairing-code"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(|sim: Simulator, body: warp::hyper::body::Bytes| {
            respond(parse::<PairingCode>(&body).and_then(|b| {
                let device = sim
                    .lock()
                    .enter_pairing_code(&b.code, &b.phone, &b.pushname)?;
                Ok(json!({ "device": device }))
            }))
        })
        .boxed();

    // POST /__sim/phones/{phone}/messages
    let incoming = base
        .and(warp::path!("phones" / String / "messages"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(
            |phone: String, sim: Simulator, body: warp::hyper::body::Bytes| {
                respond(parse::<Incoming>(&body).and_then(|b| {
                    let (id, delivered, queued) = sim.lock().incoming(&phone, &b.from, &b.body)?;
                    let from = super::state::phone_digits(&b.from)?;
                    Ok(json!({
                        "id": id,
                        "serialized": format!("false_{from}@c.us_{id}"),
                        "delivered": delivered,
                        "queued": queued,
                    }))
                }))
            },
        )
        .boxed();

    // GET /__sim/phones/{phone}/sent
    let sent = base
        .and(warp::path!("phones" / String / "sent"))
        .and(warp::get())
        .and(with_sim.clone())
        .map(|phone: String, sim: Simulator| {
            respond(sim.lock().sent(&phone).map(|sent| json!({ "sent": sent })))
        })
        .boxed();

    // POST /__sim/phones/{phone}/state
    let phone_state = base
        .and(warp::path!("phones" / String / "state"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(
            |phone: String, sim: Simulator, body: warp::hyper::body::Bytes| {
                respond(parse::<State>(&body).and_then(|b| {
                    let devices = sim.lock().push_phone_state(&phone, &b.state)?;
                    Ok(json!({ "devices": devices }))
                }))
            },
        )
        .boxed();

    // POST /__sim/phones/{phone}/stall
    let stall = base
        .and(warp::path!("phones" / String / "stall"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(
            |phone: String, sim: Simulator, body: warp::hyper::body::Bytes| {
                respond(parse::<Millis>(&body).and_then(|b| {
                    let devices = sim.lock().stall(&phone, b.ms)?;
                    Ok(json!({ "devices": devices }))
                }))
            },
        )
        .boxed();

    // POST /__sim/devices/{id}/state
    let device_state = base
        .and(warp::path!("devices" / String / "state"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(
            |device: String, sim: Simulator, body: warp::hyper::body::Bytes| {
                respond(parse::<State>(&body).and_then(|b| {
                    sim.lock().push_device_state(&device, &b.state)?;
                    Ok(json!({ "devices": 1 }))
                }))
            },
        )
        .boxed();

    // POST /__sim/outage
    let outage = base
        .and(warp::path!("outage"))
        .and(warp::post())
        .and(with_sim.clone())
        .and(body)
        .map(|sim: Simulator, body: warp::hyper::body::Bytes| {
            respond(parse::<Millis>(&body).and_then(|b| {
                let dropped = sim.lock().outage(b.ms)?;
                Ok(json!({ "dropped": dropped }))
            }))
        })
        .boxed();

    // GET /__sim/devices
    let devices = base
        .and(warp::path!("devices"))
        .and(warp::get())
        .and(with_sim)
        .map(|sim: Simulator| respond(Ok(json!({ "devices": sim.lock().devices() }))))
        .boxed();

    scan.or(pairing)
        .unify()
        .or(incoming)
        .unify()
        .or(sent)
        .unify()
        .or(phone_state)
        .unify()
        .or(stall)
        .unify()
        .or(device_state)
        .unify()
        .or(outage)
        .unify()
        .or(devices)
        .unify()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(format!("invalid body: {e}")))
}

fn respond(result: Result<serde_json::Value, SimError>) -> Response {
    match result {
        Ok(value) => reply(StatusCode::OK, value),
        Err(error) => {
            let (status, code) = match &error {
                SimError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
                SimError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
                SimError::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
            };
            reply(
                status,
                json!({ "error": code, "message": error.to_string() }),
            )
        }
    }
}

fn reply(status: StatusCode, value: serde_json::Value) -> Response {
    let mut response = warp::reply::Reply::into_response(warp::reply::with_status(
        warp::reply::json(&value),
        status,
    ));
    response
        .headers_mut()
        .insert("cache-control", "no-store".parse().expect("header"));
    response
}

/// Maps warp's rejections to `{error, message}`.
pub(super) async fn rejection(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let (status, code, message) = if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such route".to_owned(),
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("bodies are limited to {MAX_BODY} bytes"),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "BAD_REQUEST",
            "a content-length is required".to_owned(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route".to_owned(),
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("bad request: {rejection:?}"),
        )
    };
    Ok(reply(status, json!({ "error": code, "message": message })))
}
