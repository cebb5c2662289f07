//! Counters, and per-session resource use sampled in the background (never on a request path):
//! what `/metrics` and `/admin/sessions` show.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::ids::SessionId;
use crate::session::actor::SessionSnapshot;
use crate::session::policy::Status;

/// Memory and CPU of one session's Chromium tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Proportional set size summed over the tree (`/proc/<pid>/smaps_rollup`).
    pub pss_bytes: u64,
    /// User + system CPU time of the live processes of the tree.
    pub cpu_seconds: f64,
}

/// The tree of processes whose `--user-data-dir` is `profile`.
pub fn tree_usage(profile: &Path) -> Usage {
    let pids = crate::browser::process::processes_under(profile);
    Usage {
        pss_bytes: crate::browser::process::pss_bytes(&pids),
        cpu_seconds: pids.iter().map(|pid| cpu_seconds(*pid)).sum(),
    }
}

fn cpu_seconds(pid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12] // utime, stime (fields 14 and 15)
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / per_second
}

/// A per-session gauge: name, help, and its value from a sample.
type PerSession = (&'static str, &'static str, fn(&Usage) -> String);

#[derive(Default)]
pub struct Metrics {
    pub restarts: AtomicU64,
    pub reconnects: AtomicU64,
    pub qr_codes: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub ws_connections: AtomicI64,
    pub mails_sent: AtomicU64,
    pub mails_failed: AtomicU64,
    pub backups_written: AtomicU64,
    pub backups_failed: AtomicU64,
    pub store_write_retries: AtomicU64,
    sample: Mutex<Vec<(SessionSnapshot, Usage)>>,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the background sample.
    pub fn set_sample(&self, sample: Vec<(SessionSnapshot, Usage)>) {
        *self.sample.lock().unwrap_or_else(|e| e.into_inner()) = sample;
    }

    pub fn usage_of(&self) -> HashMap<SessionId, Usage> {
        self.sample
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(s, u)| (s.session_id.clone(), *u))
            .collect()
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let sample = self
            .sample
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP wa_sessions Sessions by status.\n# TYPE wa_sessions gauge"
        );
        for status in Status::ALL {
            let n = sample.iter().filter(|(s, _)| s.status == status).count();
            let _ = writeln!(out, "wa_sessions{{status=\"{status}\"}} {n}");
        }
        let counters = [
            (
                "wa_session_restarts_total",
                "Session actors restarted after a crash.",
                &self.restarts,
            ),
            (
                "wa_session_reconnects_total",
                "Temporary disconnections (relaunches and socket reconnects).",
                &self.reconnects,
            ),
            (
                "wa_qr_codes_total",
                "QR codes sent to owners.",
                &self.qr_codes,
            ),
            (
                "wa_messages_in_total",
                "Incoming messages delivered to owners.",
                &self.messages_in,
            ),
            (
                "wa_messages_out_total",
                "Messages sent.",
                &self.messages_out,
            ),
            (
                "wa_mails_sent_total",
                "Notification mails handed to the mail transport.",
                &self.mails_sent,
            ),
            (
                "wa_mails_failed_total",
                "Notification mails given up after their retries.",
                &self.mails_failed,
            ),
            (
                "wa_backups_total",
                "Backup archives written and verified.",
                &self.backups_written,
            ),
            (
                "wa_backup_failures_total",
                "Backups that failed (nothing kept of them).",
                &self.backups_failed,
            ),
            (
                "wa_store_write_retries_total",
                "Store writes that failed and were retried (the store was away).",
                &self.store_write_retries,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP wa_ws_connections Open WebSocket connections.\n# TYPE wa_ws_connections gauge\nwa_ws_connections {}",
            self.ws_connections.load(Ordering::Relaxed)
        );
        let per_session: [PerSession; 2] = [
            (
                "wa_session_chromium_pss_bytes",
                "PSS of the session's Chromium process tree.",
                |u| u.pss_bytes.to_string(),
            ),
            (
                "wa_session_chromium_cpu_seconds",
                "CPU time of the session's live Chromium processes.",
                |u| format!("{:.2}", u.cpu_seconds),
            ),
        ];
        for (name, help, value) in per_session {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (s, u) in &sample {
                let _ = writeln!(
                    out,
                    "{name}{{session_id=\"{}\"}} {}",
                    s.session_id,
                    value(u)
                );
            }
        }
        out
    }
}
