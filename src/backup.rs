//! Profile backups (SPEC §10): each session's credential-bearing subset (`Default/IndexedDB`,
//! `Default/Local Storage`) as `<backup.dir>/<sessionId>-<UTC timestamp>.tar.gz`, with a
//! manifest as the last entry. Every archive is verified after writing (re-read to the end,
//! entries listed, sizes matched against the manifest) before it takes its final name; the
//! newest `backup.keep` per session are kept. A session whose profile directory is missing
//! at restore time gets the newest archive that verifies; corrupt ones are skipped.
//! Archives hold WhatsApp credentials: the directory is 0700 and the files 0600, and a
//! session's archives are deleted with its credentials (logout, destroy, account deleted).
//! Everything here is blocking file work: call it from `spawn_blocking` or the CLI.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::ids::SessionId;

/// The profile subset a backup holds, relative to the profile directory.
pub const SUBSET: [&str; 2] = ["Default/IndexedDB", "Default/Local Storage"];
const MANIFEST: &str = "wa-backup.json";
const SUFFIX: &str = ".tar.gz";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("session {0} has no profile with credentials to back up")]
    NothingToBackUp(SessionId),
    #[error("no backup of session {0}")]
    NoBackup(SessionId),
    #[error("no backup of session {session} verifies ({tried} tried)")]
    NoneVerifies { session: SessionId, tried: usize },
    #[error(
        "the profile of session {0} is in use by a running Chromium (pids {1:?}); stop the session first"
    )]
    InUse(SessionId, Vec<i32>),
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub session_id: String,
    pub created_at: String,
    /// Every file with its size, in archive order.
    pub files: BTreeMap<String, u64>,
}

/// One archive on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub session_id: SessionId,
    pub path: PathBuf,
    /// The UTC timestamp of its name (`20261204T030000123Z`); names sort by it.
    pub stamp: String,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Backups {
    pub dir: PathBuf,
    pub sessions_path: PathBuf,
    pub keep: usize,
}

/// `2026-12-04T03:00:00.123Z` → `20261204T030000123Z`.
fn stamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | '.'))
        .collect()
}

impl Backups {
    pub fn new(dir: PathBuf, sessions_path: PathBuf, keep: u32) -> Backups {
        Backups {
            dir,
            sessions_path,
            keep: keep.max(1) as usize,
        }
    }

    pub fn profile(&self, session_id: &SessionId) -> PathBuf {
        self.sessions_path.join(session_id.profile_dir_name())
    }

    /// Sessions whose profile directory holds any of the subset.
    pub fn profiles(&self) -> Vec<SessionId> {
        let Ok(entries) = std::fs::read_dir(&self.sessions_path) else {
            return Vec::new();
        };
        let mut sessions: Vec<SessionId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                SessionId::new(name.strip_prefix("session-")?).ok()
            })
            .filter(|s| SUBSET.iter().any(|d| self.profile(s).join(d).is_dir()))
            .collect();
        sessions.sort();
        sessions
    }

    /// Writes, verifies and keeps one archive of `session_id`'s profile subset; prunes older
    /// archives beyond `keep`.
    pub fn backup(&self, session_id: &SessionId) -> Result<Archive, BackupError> {
        let profile = self.profile(session_id);
        let files = subset_files(&profile);
        if files.is_empty() {
            return Err(BackupError::NothingToBackUp(session_id.clone()));
        }
        create_private_dir(&self.dir)?;
        self.remove_partials(session_id);
        let now = SystemTime::now();
        let name = format!("{session_id}-{}{SUFFIX}", stamp(now));
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let written = write_archive(&partial, &profile, &files, session_id, now);
        let verified = written.and_then(|manifest| {
            let read = verify(&partial)?;
            if read == manifest {
                Ok(())
            } else {
                Err(BackupError::Corrupt {
                    path: partial.clone(),
                    message: "the archive read back differs from what was written".into(),
                })
            }
        });
        if let Err(error) = verified {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
        std::fs::rename(&partial, &path).map_err(io(&path))?;
        // The session may have been logged out while this ran (its profile deleted, then its
        // archives): this one must not outlive them.
        if !profile.exists() {
            let _ = std::fs::remove_file(&path);
            return Err(BackupError::NothingToBackUp(session_id.clone()));
        }
        let bytes = std::fs::metadata(&path).map_err(io(&path))?.len();
        self.prune(session_id);
        Ok(Archive {
            session_id: session_id.clone(),
            path,
            stamp: stamp(now),
            bytes,
        })
    }

    /// Backs up every profile; one failure does not stop the others.
    pub fn backup_all(&self) -> Vec<(SessionId, Result<Archive, BackupError>)> {
        self.profiles()
            .into_iter()
            .map(|s| {
                let result = self.backup(&s);
                (s, result)
            })
            .collect()
    }

    /// Archives of one session (or all), newest first within a session.
    pub fn list(&self, session_id: Option<&SessionId>) -> Vec<Archive> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut archives: Vec<Archive> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (session, stamp) = parse_name(&name)?;
                Some(Archive {
                    session_id: SessionId::new(session).ok()?,
                    path: e.path(),
                    stamp: stamp.to_owned(),
                    bytes: e.metadata().ok()?.len(),
                })
            })
            .filter(|a| session_id.is_none_or(|s| &a.session_id == s))
            .collect();
        archives.sort_by(|a, b| {
            a.session_id
                .cmp(&b.session_id)
                .then_with(|| b.stamp.cmp(&a.stamp))
        });
        archives
    }

    /// Archives left half-written by an interrupted run of this session (never listed,
    /// never restored). Another session whose id starts like this one's is left alone.
    fn remove_partials(&self, session_id: &SessionId) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let Some(archive) = name
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(".partial"))
            else {
                continue;
            };
            if parse_name(archive).is_some_and(|(s, _)| s == session_id.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Deletes a session's credentials for good: its profile directory, then its archives (in
    /// that order, so a backup finishing meanwhile removes its own archive).
    pub fn erase(&self, session_id: &SessionId) {
        let profile = self.profile(session_id);
        if let Err(error) = std::fs::remove_dir_all(&profile)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %profile.display(), %error, "cannot delete a profile");
        }
        self.delete_all(session_id);
    }

    /// Deletes every archive of a session: its credentials are gone (logout, destroy) or the
    /// account is, and nobody may get them back — not even a later account with the same id.
    pub fn delete_all(&self, session_id: &SessionId) {
        self.remove_partials(session_id);
        for archive in self.list(Some(session_id)) {
            if let Err(error) = std::fs::remove_file(&archive.path) {
                tracing::warn!(path = %archive.path.display(), %error, "cannot delete a backup");
            }
        }
    }

    fn prune(&self, session_id: &SessionId) {
        for old in self.list(Some(session_id)).into_iter().skip(self.keep) {
            if let Err(error) = std::fs::remove_file(&old.path) {
                tracing::warn!(path = %old.path.display(), %error, "cannot remove an old backup");
            }
        }
    }

    /// Puts the newest archive that verifies back into the profile (the subset is replaced,
    /// the rest of the profile kept). Refuses while a Chromium has the profile open.
    /// Returns the archive used and the corrupt ones skipped.
    pub fn restore(
        &self,
        session_id: &SessionId,
    ) -> Result<(Archive, Vec<(Archive, BackupError)>), BackupError> {
        let profile = self.profile(session_id);
        let running = crate::browser::process::processes_under(&profile);
        if !running.is_empty() {
            return Err(BackupError::InUse(session_id.clone(), running));
        }
        let archives = self.list(Some(session_id));
        if archives.is_empty() {
            return Err(BackupError::NoBackup(session_id.clone()));
        }
        let mut skipped = Vec::new();
        for archive in archives {
            let checked = verify(&archive.path).and_then(|manifest| {
                if manifest.session_id == session_id.as_str() {
                    Ok(())
                } else {
                    Err(BackupError::Corrupt {
                        path: archive.path.clone(),
                        message: format!("it holds session {}", manifest.session_id),
                    })
                }
            });
            match checked.and_then(|()| extract(&archive.path, &profile)) {
                Ok(()) => return Ok((archive, skipped)),
                Err(error) => {
                    tracing::warn!(%session_id, archive = %archive.path.display(), %error, "backup does not verify; trying an older one");
                    skipped.push((archive, error));
                }
            }
        }
        Err(BackupError::NoneVerifies {
            session: session_id.clone(),
            tried: skipped.len(),
        })
    }

    /// At restore time: when the profile directory is missing and a backup exists, restore it.
    pub fn restore_if_missing(&self, session_id: &SessionId) -> Option<Archive> {
        if self.profile(session_id).exists() {
            return None;
        }
        match self.restore(session_id) {
            Ok((archive, _)) => {
                tracing::info!(%session_id, archive = %archive.path.display(), "profile was missing; restored from backup");
                Some(archive)
            }
            Err(BackupError::NoBackup(_)) => None,
            Err(error) => {
                tracing::error!(%session_id, %error, "profile is missing and no backup could restore it");
                None
            }
        }
    }
}

/// Every regular file of the subset, relative to `profile`, sorted.
fn subset_files(profile: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                walk(base, &path, out);
            } else if kind.is_file()
                && let Ok(relative) = path.strip_prefix(base)
                && let Some(relative) = relative.to_str()
            {
                out.push(relative.to_owned());
            }
        }
    }
    let mut files = Vec::new();
    for dir in SUBSET {
        walk(profile, &profile.join(dir), &mut files);
    }
    files.sort();
    files
}

fn append(
    tar: &mut tar::Builder<GzEncoder<std::fs::File>>,
    name: &str,
    data: &[u8],
    path: &Path,
) -> Result<(), BackupError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data).map_err(io(path))
}

/// Creates the backup directory owner-only (0700); one that exists is left as the operator
/// made it.
pub fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Each file is read once (a live profile keeps changing; the size stored is the size read)
/// and dropped before the next, so memory holds one file at a time; the manifest goes last.
fn write_archive(
    path: &Path,
    profile: &Path,
    files: &[String],
    session_id: &SessionId,
    at: SystemTime,
) -> Result<Manifest, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    let mut stored = BTreeMap::new();
    for file in files {
        let data = match std::fs::read(profile.join(file)) {
            Ok(data) => data,
            // Chromium may delete a file between listing and reading (a compacted log).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&profile.join(file))(e)),
        };
        append(&mut tar, file, &data, path)?;
        stored.insert(file.clone(), data.len() as u64);
    }
    let manifest = Manifest {
        session_id: session_id.to_string(),
        created_at: humantime::format_rfc3339_millis(at).to_string(),
        files: stored,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    append(&mut tar, MANIFEST, &json, path)?;
    let gz = tar.into_inner().map_err(io(path))?;
    let mut file = gz.finish().map_err(io(path))?;
    file.flush().map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    Ok(manifest)
}

/// A relative path of plain names, inside one of the subset's directories.
fn inside_subset(name: &Path) -> bool {
    use std::path::Component;
    name.components().all(|c| matches!(c, Component::Normal(_)))
        && SUBSET
            .iter()
            .any(|d| name.starts_with(d) && name != Path::new(d))
}

/// Re-reads an archive to its end (the gzip checksum included), lists its entries and checks
/// them against its manifest (the last entry): names, sizes, and bytes actually present.
/// Only regular files inside the profile subset are accepted (no links, no `..`).
pub fn verify(path: &Path) -> Result<Manifest, BackupError> {
    let corrupt = |message: String| BackupError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut manifest: Option<Manifest> = None;
    let mut seen = BTreeMap::new();
    let entries = archive.entries().map_err(|e| corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        if manifest.is_some() {
            return Err(corrupt("entries after the manifest".into()));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(corrupt("an entry that is not a regular file".into()));
        }
        let name = entry
            .path()
            .map_err(|e| corrupt(e.to_string()))?
            .into_owned();
        let declared = entry.header().size().map_err(|e| corrupt(e.to_string()))?;
        if name == Path::new(MANIFEST) {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| corrupt(format!("manifest: {e}")))?;
            manifest =
                Some(serde_json::from_slice(&data).map_err(|e| corrupt(format!("manifest: {e}")))?);
            continue;
        }
        if !inside_subset(&name) {
            return Err(corrupt(format!(
                "{} lies outside the profile subset",
                name.display()
            )));
        }
        let read = std::io::copy(&mut entry, &mut std::io::sink())
            .map_err(|e| corrupt(format!("{}: {e}", name.display())))?;
        if read != declared {
            return Err(corrupt(format!(
                "{}: {read} bytes, header says {declared}",
                name.display()
            )));
        }
        let name = name
            .to_str()
            .ok_or_else(|| corrupt("a name that is not UTF-8".into()))?;
        seen.insert(name.to_owned(), declared);
    }
    // Reading the entries stops at the tar end marker; drain the stream so the gzip trailer
    // (CRC and length) is checked too.
    let mut rest = archive.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| corrupt(e.to_string()))?;
    let manifest = manifest.ok_or_else(|| corrupt("no manifest".into()))?;
    if manifest.files != seen {
        return Err(corrupt("entries differ from the manifest".into()));
    }
    Ok(manifest)
}

/// `<sessionId>-<stamp>.tar.gz` → (session id, stamp).
fn parse_name(name: &str) -> Option<(&str, &str)> {
    let (session, stamp) = name.strip_suffix(SUFFIX)?.rsplit_once('-')?;
    let well_formed = stamp.len() == 19
        && stamp.ends_with('Z')
        && stamp.as_bytes()[8] == b'T'
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || i == 18 || b.is_ascii_digit());
    (well_formed && SessionId::new(session).is_ok()).then_some((session, stamp))
}

/// Extracts into a scratch directory beside the profile, then swaps each subset directory in.
fn extract(path: &Path, profile: &Path) -> Result<(), BackupError> {
    let parent = profile.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let scratch = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    for entry in archive.entries().map_err(io(path))? {
        let mut entry = entry.map_err(io(path))?;
        let name = entry.path().map_err(io(path))?.into_owned();
        if name == Path::new(MANIFEST) {
            continue;
        }
        // verify() checked this already; the file may have been replaced since.
        if entry.header().entry_type() != tar::EntryType::Regular || !inside_subset(&name) {
            return Err(BackupError::Corrupt {
                path: path.to_owned(),
                message: format!("{} is not a file of the profile subset", name.display()),
            });
        }
        if !entry.unpack_in(scratch.path()).map_err(io(path))? {
            return Err(BackupError::Corrupt {
                path: path.to_owned(),
                message: format!("{} could not be unpacked", name.display()),
            });
        }
    }
    std::fs::create_dir_all(profile.join("Default")).map_err(io(profile))?;
    for dir in SUBSET {
        let target = profile.join(dir);
        let restored = scratch.path().join(dir);
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        if restored.exists() {
            std::fs::rename(&restored, &target).map_err(io(&target))?;
        }
    }
    Ok(())
}

/// The next time `schedule` (a cron expression with seconds) fires after now.
pub fn next_run(schedule: &str) -> Result<std::time::Duration, String> {
    let schedule = cron::Schedule::from_str(schedule).map_err(|e| e.to_string())?;
    let next = schedule
        .upcoming(chrono::Utc)
        .next()
        .ok_or("the schedule never fires")?;
    Ok((next - chrono::Utc::now())
        .to_std()
        .unwrap_or(std::time::Duration::ZERO))
}

/// Runs the scheduled backups until the task is aborted.
pub async fn run_schedule(
    backups: std::sync::Arc<Backups>,
    schedule: String,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    use crate::metrics::Metrics;
    loop {
        let wait = match next_run(&schedule) {
            Ok(wait) => wait,
            Err(error) => {
                tracing::error!(%error, "backup.schedule; scheduled backups stop");
                return;
            }
        };
        tokio::time::sleep(wait).await;
        let backups = backups.clone();
        let results = tokio::task::spawn_blocking(move || backups.backup_all()).await;
        for (session_id, result) in results.unwrap_or_default() {
            match result {
                Ok(archive) => {
                    Metrics::count(&metrics.backups_written);
                    tracing::info!(%session_id, archive = %archive.path.display(), bytes = archive.bytes, "backup written and verified")
                }
                Err(error) => {
                    Metrics::count(&metrics.backups_failed);
                    tracing::error!(%session_id, %error, "backup failed")
                }
            }
        }
        // Never twice in the same second.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
