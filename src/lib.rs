//! wa-supervisor: runs many WhatsApp Web sessions on one host and keeps them alive.
//!
//! # Layout
//!
//! - [`config`]: configuration layering (defaults < file < environment) and validation.
//! - [`cli`]: the subcommands behind the binary.
//! - [`browser`]: the Chromium driver, the only code that speaks CDP.
//! - [`sim`]: the WhatsApp Web simulator (page, page socket, `/__sim` control API).

pub mod browser;
pub mod cli;
pub mod config;
pub mod sim;
