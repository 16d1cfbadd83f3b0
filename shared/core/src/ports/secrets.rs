//! `Secrets`: named secret values (the master encryption key, OAuth client secrets, model
//! provider keys).

use std::fmt;

use async_trait::async_trait;

/// A secret value whose `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("invalid secret name {0:?}: names are 1 to 64 lowercase letters, digits and '-'")]
    InvalidName(String),
    #[error("secrets backend failed")]
    Backend(#[source] anyhow::Error),
}

impl SecretsError {
    pub fn backend(error: impl Into<anyhow::Error>) -> Self {
        Self::Backend(error.into())
    }
}

/// Name of the secret that contains the master encryption key.
pub const MASTER_KEY: &str = "master-key";

#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// Reads a secret, or `None` when it is not set.
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError>;

    /// Sets a secret, replacing any previous value.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretsError>;
}

/// Checks a secret name: 1 to 64 characters of `a-z`, `0-9` and `-`.
pub fn validate_name(name: &str) -> Result<(), SecretsError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(SecretsError::InvalidName(name.chars().take(80).collect()))
    }
}

/// Returns the environment variable that can set a secret: `MAKO_` plus the name in upper
/// case with `-` replaced by `_` (`google-client-secret` is `MAKO_GOOGLE_CLIENT_SECRET`).
pub fn env_var_name(name: &str) -> String {
    format!("MAKO_{}", name.to_ascii_uppercase().replace('-', "_"))
}
