//! Session lifecycle. Today: the pure policy (statuses, relaunch delays, restart intensity).

pub mod policy;
