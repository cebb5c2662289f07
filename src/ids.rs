//! Identifiers that validate on construction.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A session id: `^[A-Za-z0-9_-]{1,64}$` (it names a profile directory, so nothing else gets in).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

/// A user id: the JWT `sub`; any non-empty string of at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

impl SessionId {
    pub fn new(raw: &str) -> Result<SessionId, InvalidId> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(SessionId(raw.to_owned()))
        } else {
            Err(InvalidId(
                "sessionId must be 1 to 64 characters of A-Z, a-z, 0-9, _ or -".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The profile directory name of this session (the LocalAuth layout).
    pub fn profile_dir_name(&self) -> String {
        format!("session-{}", self.0)
    }
}

impl UserId {
    pub fn new(raw: &str) -> Result<UserId, InvalidId> {
        if raw.is_empty() || raw.len() > 255 || raw.chars().any(char::is_control) {
            return Err(InvalidId(
                "user id must be 1 to 255 printable characters".into(),
            ));
        }
        Ok(UserId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SessionId::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UserId::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_checked() {
        for good in ["a", "shop-1", "A_b-9", &"x".repeat(64)] {
            assert!(SessionId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "../etc", "a b", "ñ", "a/b", &"x".repeat(65), "a.b"] {
            assert!(SessionId::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SessionId::new("s1").unwrap().profile_dir_name(),
            "session-s1"
        );
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(UserId::new("6f1c2a9e-0000-4000-8000-000000000001").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a\nb").is_err());
        assert!(UserId::new(&"u".repeat(256)).is_err());
    }
}
