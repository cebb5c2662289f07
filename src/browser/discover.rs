//! Finding the Chromium executable.
//!
//! Order: the configured path (`chromium.path`, which `CHROMIUM_PATH` and
//! `PUPPETEER_EXECUTABLE_PATH` also set), then `chromium`, `chromium-browser`, `google-chrome` on
//! `PATH`, then known install paths, then `/nix/store`. Debian's `/usr/bin/chromium` is a shell
//! wrapper that adds flags of its own; the real binary behind such a wrapper is used instead.

use std::path::{Path, PathBuf};

use super::BrowserError;

const ON_PATH: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

const KNOWN: &[&str] = &[
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "/usr/lib/chromium-browser/chromium-browser",
    "/usr/bin/chromium-browser",
    "/snap/bin/chromium",
    "/opt/google/chrome/chrome",
    "/usr/bin/google-chrome",
];

/// Which program a Chromium executable is; they differ in a few switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Full Chromium (new headless mode).
    Chromium,
    /// `chromium-headless-shell` (the old headless mode, a separate, lighter binary).
    HeadlessShell,
}

impl Engine {
    pub fn of(executable: &Path) -> Engine {
        let name = executable
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.contains("headless-shell") || name.contains("headless_shell") {
            Engine::HeadlessShell
        } else {
            Engine::Chromium
        }
    }
}

/// The executable to launch, or an error that says how to install one.
pub fn find_chromium(configured: Option<&Path>) -> Result<PathBuf, BrowserError> {
    if let Some(path) = configured {
        let resolved = if path.components().count() == 1 {
            which(path.to_str().unwrap_or_default())
        } else {
            Some(path.to_owned()).filter(|p| is_executable(p))
        };
        return resolved.map(|p| unwrap_wrapper(&p)).ok_or_else(|| {
            BrowserError::NotFound(format!(
                "chromium.path points at {}, which is not an executable file; \
                 install Chromium with `apt-get install -y chromium` or fix the path",
                path.display()
            ))
        });
    }
    ON_PATH
        .iter()
        .find_map(|name| which(name))
        .or_else(|| {
            KNOWN
                .iter()
                .map(PathBuf::from)
                .find(|p| is_executable(p))
        })
        .or_else(nix_store)
        .map(|p| unwrap_wrapper(&p))
        .ok_or_else(|| {
            BrowserError::NotFound(
                "no Chromium found (looked at chromium.path, CHROMIUM_PATH, PUPPETEER_EXECUTABLE_PATH, \
                 PATH, known install paths and /nix/store); install it with \
                 `sudo apt-get install -y chromium` (Debian/Ubuntu) or set CHROMIUM_PATH"
                    .into(),
            )
        })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn nix_store() -> Option<PathBuf> {
    std::fs::read_dir("/nix/store")
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("chromium"))
        .map(|e| e.path().join("bin/chromium"))
        .find(|p| is_executable(p))
}

/// The binary a distribution's shell-script wrapper starts, or `path` itself.
fn unwrap_wrapper(path: &Path) -> PathBuf {
    let Ok(bytes) = std::fs::read(path) else {
        return path.to_owned();
    };
    if !bytes.starts_with(b"#!") || bytes.len() > 64 * 1024 {
        return path.to_owned();
    }
    let text = String::from_utf8_lossy(&bytes);
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '=')
        .filter(|t| t.starts_with('/') && !t.starts_with("/bin/") && !t.starts_with("/usr/bin/"))
        .map(PathBuf::from)
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("chrom") || n == "chrome")
                && is_executable(p)
                && std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF"))
        })
        .unwrap_or_else(|| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_configured_path_names_the_install_command() {
        let err = find_chromium(Some(Path::new("/nowhere/chromium"))).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install -y chromium"),
            "{err}"
        );
    }

    #[test]
    fn engines_are_told_apart_by_name() {
        assert_eq!(
            Engine::of(Path::new("/usr/lib/chromium/chromium-headless-shell")),
            Engine::HeadlessShell
        );
        assert_eq!(
            Engine::of(Path::new("/usr/lib/chromium/chromium")),
            Engine::Chromium
        );
    }

    #[test]
    fn a_wrapper_script_resolves_to_the_binary_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("chromium-real");
        std::fs::write(&binary, b"\x7fELF fake").unwrap();
        let wrapper = dir.path().join("chromium");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec {} --some-flag \"$@\"\n", binary.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        for p in [&binary, &wrapper] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(find_chromium(Some(&wrapper)).unwrap(), binary);
    }
}
