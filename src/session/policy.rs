//! Pure decisions of the session lifecycle: statuses, relaunch delays, restart intensity.
//! No I/O and no clocks of their own: callers pass the time, so tests are tables.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Wire and database status of a session (SPEC §3), in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Initializing,
    Qr,
    Authenticated,
    Ready,
    Reconnecting,
    Error,
    Stopped,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Initializing,
        Status::Qr,
        Status::Authenticated,
        Status::Ready,
        Status::Reconnecting,
        Status::Error,
        Status::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::Qr => "qr",
            Status::Authenticated => "authenticated",
            Status::Ready => "ready",
            Status::Reconnecting => "reconnecting",
            Status::Error => "error",
            Status::Stopped => "stopped",
        }
    }

    /// Sessions restored at start-up: they were (or were becoming) connected.
    pub fn is_restorable(self) -> bool {
        matches!(
            self,
            Status::Ready | Status::Authenticated | Status::Reconnecting
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a session status"))
    }
}

/// Delay before relaunch attempt `attempt` (1-based): `base × 2^(attempt-1)`, capped at `max`.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    base.checked_mul(factor).unwrap_or(max).min(max)
}

/// `delay` spread by ±20 %, `unit` being a uniform sample in [0, 1).
pub fn with_jitter(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
}

/// Restart intensity of one session: at most `max` restarts within any `window`.
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: u32,
    window: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(max: u32, window: Duration) -> RestartBudget {
        RestartBudget {
            max,
            window,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` when the budget allows it; false means: park the session.
    pub fn try_restart(&mut self, now: Instant) -> bool {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 >= self.max {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Restarts counted in the current window.
    pub fn used(&self) -> u32 {
        self.restarts.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert!("READY".parse::<Status>().is_err());
        let restorable: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| s.is_restorable())
            .collect();
        assert_eq!(
            restorable,
            [Status::Authenticated, Status::Ready, Status::Reconnecting]
        );
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(60);
        let table = [
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 60),
            (6, 60),
            (40, 60),
        ];
        for (attempt, seconds) in table {
            assert_eq!(
                retry_delay(attempt, base, max),
                Duration::from_secs(seconds),
                "attempt {attempt}"
            );
        }
        assert_eq!(retry_delay(0, base, max), base);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let d = Duration::from_secs(10);
        assert_eq!(with_jitter(d, 0.0), Duration::from_secs(8));
        assert_eq!(with_jitter(d, 0.5), Duration::from_secs(10));
        assert!(with_jitter(d, 0.999) < Duration::from_secs(12));
        assert_eq!(with_jitter(d, 7.0), Duration::from_secs(12));
    }

    #[test]
    fn restart_budget_counts_within_a_sliding_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut budget = RestartBudget::new(3, s(60));
        assert!(budget.try_restart(t0));
        assert!(budget.try_restart(t0 + s(10)));
        assert!(budget.try_restart(t0 + s(20)));
        assert!(
            !budget.try_restart(t0 + s(30)),
            "a fourth within the window is refused"
        );
        assert_eq!(budget.used(), 3);
        assert!(
            budget.try_restart(t0 + s(60)),
            "the first one left the window"
        );
        assert!(!budget.try_restart(t0 + s(61)));
        assert!(budget.try_restart(t0 + s(200)));
        assert_eq!(budget.used(), 1);
    }
}
