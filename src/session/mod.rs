//! Session lifecycle: the session actor, the browser it needs, and its pure policy.

pub mod actor;
pub mod browser;
pub mod policy;

#[cfg(test)]
mod tests;
