//! Chromium process hygiene: spawning so that no Chromium outlives us, killing whole trees,
//! sweeping leftovers, and guarding profile directories.
//!
//! A Chromium is spawned in its own process group with `PR_SET_PDEATHSIG(SIGKILL)`, so it dies
//! with the thread that spawned it (a tokio worker, which lives as long as the runtime), and
//! [`ChromiumProcess`] kills the whole group when dropped.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};

use super::BrowserError;

/// Lines of Chromium's stderr kept for error messages.
const STDERR_TAIL: usize = 20;

/// A running Chromium process tree. Dropping it kills the tree.
pub struct ChromiumProcess {
    pid: i32,
    exit: watch::Receiver<Option<String>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ChromiumProcess {
    /// Spawns `executable args…` and waits (up to `timeout`) for its DevTools WebSocket URL.
    pub async fn spawn(
        executable: &Path,
        args: &[String],
        timeout: Duration,
    ) -> Result<(ChromiumProcess, String), BrowserError> {
        let mut command = Command::new(executable);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| BrowserError::Spawn {
            path: executable.to_owned(),
            source,
        })?;
        let pid = child.id().expect("a just-spawned child has a pid") as i32;
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let (url_tx, url_rx) = oneshot::channel();
        tokio::spawn(drain_stderr(stderr, url_tx, stderr_tail.clone(), pid));
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(error) => format!("wait failed: {error}"),
            };
            tracing::debug!(pid, %status, "chromium exited");
            let _ = exit_tx.send(Some(status));
        });
        let process = ChromiumProcess {
            pid,
            exit: exit_rx,
            stderr_tail,
        };
        let mut exit = process.exit.clone();
        let url = tokio::select! {
            url = url_rx => url.ok(),
            _ = exit.wait_for(Option::is_some) => None,
            _ = tokio::time::sleep(timeout) => {
                return Err(BrowserError::LaunchTimeout { after: timeout, stderr: process.stderr_tail() });
            }
        };
        match url {
            Some(url) => Ok((process, url)),
            None => Err(BrowserError::Exited {
                status: process.exit_status().unwrap_or_else(|| "unknown".into()),
                stderr: process.stderr_tail(),
            }),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Why the main process exited, once it has.
    pub fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Resolves when the main process has exited, with its status.
    pub fn exited(&self) -> impl Future<Output = String> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            match exit.wait_for(Option::is_some).await {
                Ok(status) => status.clone().unwrap_or_default(),
                Err(_) => "unknown".into(),
            }
        }
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Kills the whole process tree now.
    pub fn kill(&self) {
        kill_group(self.pid);
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn drain_stderr(
    stderr: tokio::process::ChildStderr,
    url_tx: oneshot::Sender<String>,
    tail: Arc<Mutex<VecDeque<String>>>,
    pid: i32,
) {
    let mut url_tx = Some(url_tx);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.strip_prefix("DevTools listening on ")
            && let Some(tx) = url_tx.take()
        {
            let _ = tx.send(url.trim().to_owned());
            continue;
        }
        tracing::trace!(pid, %line, "chromium stderr");
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// SIGKILL to the process group led by `pid` (and to `pid` itself, should it have left it).
pub fn kill_group(pid: i32) {
    if pid <= 1 {
        return;
    }
    // SAFETY: plain syscalls on pids we own; errors (already gone) are irrelevant.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Command line of a live process, split at NULs.
pub fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// The `--user-data-dir` of a process, if it has one.
fn user_data_dir(args: &[String]) -> Option<PathBuf> {
    args.iter()
        .find_map(|a| a.strip_prefix("--user-data-dir="))
        .map(PathBuf::from)
}

/// Every live process whose `--user-data-dir` is `dir` or lies under it.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let own = std::process::id() as i32;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            cmdline(*pid)
                .as_deref()
                .and_then(user_data_dir)
                .is_some_and(|p| p.starts_with(&dir))
        })
        .collect()
}

/// Proportional set size of these processes together, in bytes (`/proc/<pid>/smaps_rollup`).
/// Shared pages are divided among the processes that share them, so sums over a tree are honest.
pub fn pss_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .sum()
}

/// Start-up sweep: kills every process tree left over from an earlier run whose profile lies
/// under `sessions_path`. Returns the pids it killed.
pub fn sweep_leftovers(sessions_path: &Path) -> Vec<i32> {
    let pids = processes_under(sessions_path);
    // SAFETY: getpgid on arbitrary pids only reads.
    let own_group = unsafe { libc::getpgid(0) };
    for pid in &pids {
        let group = unsafe { libc::getpgid(*pid) };
        if group > 1 && group != own_group {
            kill_group(group);
        }
        kill_group(*pid);
    }
    if !pids.is_empty() {
        tracing::warn!(count = pids.len(), path = %sessions_path.display(), "killed leftover chromium processes");
    }
    pids
}

/// Profiles opened by a live driver in this process.
static HELD: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// Exclusive use of one profile directory by one driver; released on drop.
pub struct ProfileLease {
    path: PathBuf,
}

impl ProfileLease {
    /// Creates the directory when needed, refuses a profile that a live driver holds, and removes
    /// stale `Singleton*` files when no live process holds the profile.
    pub fn acquire(path: &Path) -> Result<ProfileLease, BrowserError> {
        std::fs::create_dir_all(path).map_err(|source| BrowserError::Profile {
            path: path.to_owned(),
            source,
        })?;
        let path = path
            .canonicalize()
            .map_err(|source| BrowserError::Profile {
                path: path.to_owned(),
                source,
            })?;
        {
            let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
            if !held.insert(path.clone()) {
                return Err(BrowserError::ProfileInUse { path, pid: None });
            }
        }
        let lease = ProfileLease { path };
        if let Some(pid) = live_holder(&lease.path) {
            return Err(BrowserError::ProfileInUse {
                path: lease.path.clone(),
                pid: Some(pid as u32),
            });
        }
        for name in ["SingletonLock", "SingletonSocket", "SingletonCookie"] {
            let file = lease.path.join(name);
            if std::fs::symlink_metadata(&file).is_ok() {
                let _ = std::fs::remove_file(&file);
            }
        }
        Ok(lease)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ProfileLease {
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
    }
}

/// The live process holding `profile`: its `SingletonLock` (`<hostname>-<pid>`) names a pid on
/// this host whose command line opens this profile.
fn live_holder(profile: &Path) -> Option<i32> {
    let target = std::fs::read_link(profile.join("SingletonLock")).ok()?;
    let target = target.to_str()?;
    let (host, pid) = target.rsplit_once('-')?;
    let pid: i32 = pid.parse().ok()?;
    if host != hostname() {
        return None;
    }
    let holds = cmdline(pid)
        .as_deref()
        .and_then(user_data_dir)
        .and_then(|p| p.canonicalize().ok())
        .is_some_and(|p| p == profile);
    holds.then_some(pid)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_leased_once_and_stale_locks_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("session-a");
        std::fs::create_dir_all(&profile).unwrap();
        // A lock naming a dead pid on this host, as a killed Chromium leaves it.
        std::os::unix::fs::symlink(
            format!("{}-999999999", hostname()),
            profile.join("SingletonLock"),
        )
        .unwrap();
        std::fs::write(profile.join("SingletonCookie"), "x").unwrap();
        let lease = ProfileLease::acquire(&profile).unwrap();
        assert!(std::fs::symlink_metadata(profile.join("SingletonLock")).is_err());
        assert!(!profile.join("SingletonCookie").exists());
        let again = ProfileLease::acquire(&profile);
        assert!(matches!(
            again,
            Err(BrowserError::ProfileInUse { pid: None, .. })
        ));
        drop(lease);
        assert!(ProfileLease::acquire(&profile).is_ok());
    }

    #[test]
    fn a_lock_held_by_a_live_process_of_this_profile_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("session-b");
        std::fs::create_dir_all(&profile).unwrap();
        let profile = profile.canonicalize().unwrap();
        // A stand-in holder whose command line names the profile, as Chromium's does.
        let holder = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30; true")
            .arg(format!("--user-data-dir={}", profile.display()))
            .spawn();
        let mut holder = holder.unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let pid = holder.id();
        std::os::unix::fs::symlink(
            format!("{}-{pid}", hostname()),
            profile.join("SingletonLock"),
        )
        .unwrap();
        let refused = ProfileLease::acquire(&profile);
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(
            matches!(refused, Err(BrowserError::ProfileInUse { pid: Some(p), .. }) if p == pid),
            "{:?}",
            refused.err()
        );
        // The holder is gone now: the lock is stale and the profile opens.
        assert!(ProfileLease::acquire(&profile).is_ok());
    }
}
