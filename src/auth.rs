//! User JWTs: HS256 with `auth.jwt_secret` (Supabase's JWT secret); `sub` is the user id,
//! `email` (optional) is where notifications go, `exp` is enforced. Verified at the edge only.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    exp: u64,
}

/// Verifies and mints user tokens with one secret.
#[derive(Clone)]
pub struct Jwt {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl Jwt {
    pub fn new(secret: &str) -> Jwt {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Jwt {
            decoding: DecodingKey::from_secret(secret.as_bytes())
                .expect("HMAC keys take any secret"),
            encoding: EncodingKey::from_secret(secret.as_bytes())
                .expect("HMAC keys take any secret"),
            validation,
        }
    }

    /// Only HS256 signed with our secret, unexpired, with a valid `sub`, is accepted.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let user_id = UserId::new(&data.claims.sub).map_err(|_| AuthError::Invalid)?;
        let email = data
            .claims
            .email
            .filter(|e| e.contains('@') && e.len() <= 320);
        Ok(Identity { user_id, email })
    }

    /// A token for `user` valid for `ttl` (the `token` subcommand, and tests).
    pub fn mint(&self, user: &UserId, email: Option<&str>, ttl: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            sub: user.as_str().to_owned(),
            email: email.map(str::to_owned),
            exp: (now + ttl).as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail")
    }
}

/// The JWT secret: `auth.jwt_secret` when configured, otherwise the one kept in
/// `<data-dir>/jwt-secret`, generated on first use (readable by this user only), so that
/// `token` and `serve` agree.
pub fn jwt_secret(configured: Option<&str>, data_dir: &Path) -> std::io::Result<String> {
    if let Some(secret) = configured {
        return Ok(secret.to_owned());
    }
    let file = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&file) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)?;
    out.write_all(secret.as_bytes())?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn user() -> UserId {
        UserId::new("user-a").unwrap()
    }

    #[test]
    fn the_generated_secret_is_kept_and_reused_and_configuration_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = jwt_secret(None, dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(jwt_secret(None, dir.path()).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            jwt_secret(Some("configured"), dir.path()).unwrap(),
            "configured"
        );
    }

    #[test]
    fn a_minted_token_verifies_with_its_email() {
        let jwt = Jwt::new("s3cret");
        let token = jwt.mint(&user(), Some("ana@example.com"), Duration::from_secs(60));
        assert_eq!(
            jwt.verify(&token),
            Ok(Identity {
                user_id: user(),
                email: Some("ana@example.com".into())
            })
        );
    }

    #[test]
    fn wrong_secret_expired_none_and_garbage_are_refused() {
        let jwt = Jwt::new("s3cret");
        let other = Jwt::new("other");
        assert_eq!(
            jwt.verify(&other.mint(&user(), None, Duration::from_secs(60))),
            Err(AuthError::Invalid)
        );
        // Expired an hour ago (beyond the leeway).
        let claims = Claims {
            sub: "user-a".into(),
            email: None,
            exp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                - 3600,
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &jwt.encoding).unwrap();
        assert_eq!(jwt.verify(&expired), Err(AuthError::Expired));
        // alg: none, unsigned.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"user-a","exp":9999999999}"#);
        assert_eq!(
            jwt.verify(&format!("{header}.{payload}.")),
            Err(AuthError::Invalid)
        );
        assert_eq!(jwt.verify("not.a.jwt"), Err(AuthError::Invalid));
        assert_eq!(jwt.verify(""), Err(AuthError::Missing));
        // No exp at all.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let unsigned = format!(
            "{header}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"user-a"}"#)
        );
        assert_eq!(
            jwt.verify(&format!("{unsigned}.AAAA")),
            Err(AuthError::Invalid)
        );
    }
}
