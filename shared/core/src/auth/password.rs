//! Password hashing with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, 1 lane).
//! Hashing runs on the blocking pool because it takes tens of milliseconds of CPU, and a
//! semaphore bounds how many run at once, so a burst of logins cannot exhaust memory.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Maximum time a request waits for a hashing slot before it gets 503.
const SLOT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("every password-hashing slot stayed busy for {}s", SLOT_WAIT.as_secs())]
    Busy,
    #[error("password hashing failed")]
    Failed(#[source] anyhow::Error),
}

impl From<PasswordError> for ApiError {
    fn from(error: PasswordError) -> Self {
        match error {
            PasswordError::Busy => ApiError::Unavailable {
                message: "The server is busy checking passwords; retry in a few seconds.".into(),
                retry_after_secs: 2,
            },
            PasswordError::Failed(error) => ApiError::Internal(error),
        }
    }
}

/// Returns the semaphore of hashing slots: two per CPU, between 2 and 16, so at most
/// 16 × 19 MiB is in use for hashing at any time.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Semaphore::new((cpus * 2).clamp(2, 16))
    })
}

/// Runs `work` on the blocking pool once a hashing slot is free.
async fn run_hashing<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, PasswordError> {
    let permit = match tokio::time::timeout(SLOT_WAIT, slots().acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => return Err(PasswordError::Busy),
    };
    let result = tokio::task::spawn_blocking(work).await;
    drop(permit);
    match result {
        Ok(outcome) => outcome.map_err(PasswordError::Failed),
        Err(join_error) => Err(PasswordError::Failed(join_error.into())),
    }
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum password length, in characters. It bounds the hashing cost of one request.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Checks a new password against the length limits.
pub fn validate_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "The password must be at least {MIN_PASSWORD_CHARS} characters long."
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "The password must be at most {MAX_PASSWORD_CHARS} characters long."
        ));
    }
    if password.trim().is_empty() {
        return Err("The password must not be only spaces.".into());
    }
    Ok(())
}

/// Hashes a password into a PHC string.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    run_hashing(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing the password failed: {error}"))
    })
    .await
}

/// A valid hash of a random password, verified against when the account does not exist so
/// that a login takes as long for unknown emails as for known ones.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXlzYWx0ZHVtbXk$mTCKDg3ZjmvEEq3KDSnWPr0bCkHrJW3zHzhD7nh3EqM";

/// Checks a password against a stored hash, or against a dummy hash when `hash` is `None`
/// (which never matches).
pub async fn verify(password: String, hash: Option<String>) -> Result<bool, PasswordError> {
    run_hashing(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed =
            PasswordHash::new(&hash).map_err(|error| anyhow::anyhow!("stored password hash is malformed: {error}"))?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        Ok(matches && known)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hash = hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(!verify("wrong horse".into(), Some(hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn unknown_account_never_matches() {
        assert!(!verify("anything at all".into(), None).await.expect("verify"));
    }

    #[test]
    fn password_length_limits() {
        assert!(validate_new_password("short").is_err());
        assert!(validate_new_password("        ").is_err());
        assert!(validate_new_password(&"x".repeat(129)).is_err());
        assert!(validate_new_password("long enough").is_ok());
    }
}
