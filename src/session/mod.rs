//! Session lifecycle: the session actor and its pure policy.

pub mod actor;
pub mod policy;
