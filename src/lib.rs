//! wa-supervisor: runs many WhatsApp Web sessions on one host and keeps them alive.
//!
//! # Layout
//!
//! - [`config`]: configuration layering (defaults < file < environment) and validation.
//! - [`auth`]: user JWTs (HS256), verified at the edge.
//! - [`cli`]: the subcommands behind the binary.
//! - [`browser`]: the Chromium driver, the only code that speaks CDP.
//! - [`ids`]: `SessionId` and `UserId`, validated on construction.
//! - [`protocol`]: the WebSocket frames of SPEC §4, parsed and checked at the edge.
//! - [`session`]: the session actor and its pure policy.
//! - [`supervisor`]: the root supervisor (restarts, restore, launch limit).
//! - [`server`]: the warp server: `/ws`, `/health`, the user routes; `App` wires the actors.
//! - [`gateway`]: WebSocket connections per user, ownership checks, routing.
//! - [`store`]: the accounts table; the embedded SQLite backend.
//! - [`qr`]: QR codes as PNG.
//! - [`metrics`]: counters and the background sample of each session's Chromium memory and CPU.
//! - [`sim`]: the WhatsApp Web simulator (page, page socket, `/__sim` control API).

pub mod auth;
pub mod backup;
pub mod browser;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod ids;
pub mod mail;
pub mod metrics;
pub mod protocol;
pub mod qr;
pub mod server;
pub mod session;
pub mod sim;
pub mod store;
pub mod supervisor;
