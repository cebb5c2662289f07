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
//! - [`session`]: the session lifecycle's pure policy.
//! - [`sim`]: the WhatsApp Web simulator (page, page socket, `/__sim` control API).

pub mod auth;
pub mod browser;
pub mod cli;
pub mod config;
pub mod ids;
pub mod protocol;
pub mod session;
pub mod sim;
