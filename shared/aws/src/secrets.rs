//! `Secrets` on one Secrets Manager secret whose value is a JSON object of named strings.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use mako_core::ports::secrets::validate_name;
use mako_core::ports::{SecretString, Secrets, SecretsError};
use serde_json::{Map, Value};

use crate::errors::redacted_backend;

/// How long a read of the secret serves later `get` calls in this process.
const CACHE_TTL: Duration = Duration::from_secs(60);

type Values = HashMap<String, SecretString>;

/// `Secrets` adapter over one Secrets Manager secret (`MAKO_SECRET_ID`).
pub struct SecretsManagerSecrets {
    client: Client,
    secret_id: String,
    cache: Mutex<Option<(Instant, Values)>>,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, secret_id: String) -> Self {
        Self {
            client,
            secret_id,
            cache: Mutex::new(None),
        }
    }

    fn cached(&self) -> Option<Values> {
        let cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .as_ref()
            .filter(|(read_at, _)| read_at.elapsed() < CACHE_TTL)
            .map(|(_, values)| values.clone())
    }

    fn store_cache(&self, values: Values) {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *cache = Some((Instant::now(), values));
    }

    /// Reads and parses the secret, bypassing the cache, and refreshes the cache.
    async fn load(&self) -> Result<Values, SecretsError> {
        let result = self.client.get_secret_value().secret_id(&self.secret_id).send().await;
        let output = match result {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                tracing::error!(secret_id = %self.secret_id, "secret not found");
                return Err(SecretsError::backend(anyhow::anyhow!(
                    "secret {:?} not found: set MAKO_SECRET_ID to an existing secret or create it",
                    self.secret_id
                )));
            }
            Err(error) => {
                return Err(SecretsError::Backend(redacted_backend(
                    "Secrets Manager",
                    "GetSecretValue",
                    &self.secret_id,
                    error,
                )));
            }
        };

        let text = output.secret_string.unwrap_or_default();
        let values = parse_values(&text).map_err(|problem| {
            tracing::error!(secret_id = %self.secret_id, problem, "invalid secret value");
            SecretsError::backend(anyhow::anyhow!(
                "the value of secret {:?} (MAKO_SECRET_ID) {problem}, but it must be a JSON object of named strings",
                self.secret_id
            ))
        })?;
        self.store_cache(values.clone());
        Ok(values)
    }
}

/// Parses the secret value, or returns a description of the problem that never quotes
/// the value. Entries whose values are not strings are skipped.
fn parse_values(text: &str) -> Result<Values, String> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return Err("is not a JSON object".to_owned());
    };
    let mut values = HashMap::new();
    for (name, value) in object {
        match value {
            Value::String(text) => {
                values.insert(name, SecretString::new(text));
            }
            _ => tracing::warn!(name, "skipping a secret entry whose value is not a string"),
        }
    }
    Ok(values)
}

fn encode_values(values: &Values) -> String {
    let object: Map<String, Value> = values
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.expose().to_owned())))
        .collect();
    Value::Object(object).to_string()
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        validate_name(name)?;
        let values = match self.cached() {
            Some(values) => values,
            None => self.load().await?,
        };
        Ok(values.get(name).cloned())
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretsError> {
        validate_name(name)?;
        // NOTE: read-modify-write without a lock: two concurrent puts (in any processes)
        // can each write an object that lacks the other's entry, so one update is lost.
        let mut values = self.load().await?;
        values.insert(name.to_owned(), value.clone());

        self.client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(encode_values(&values))
            .send()
            .await
            .map_err(|error| {
                SecretsError::Backend(redacted_backend(
                    "Secrets Manager",
                    "PutSecretValue",
                    &self.secret_id,
                    error,
                ))
            })?;
        self.store_cache(values);
        tracing::info!(secret_id = %self.secret_id, name, "stored secret entry");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let values = HashMap::from([
            ("master-key".to_owned(), SecretString::new("00ff")),
            ("google-client-secret".to_owned(), SecretString::new("a \"quoted\" ✓")),
        ]);
        assert_eq!(parse_values(&encode_values(&values)), Ok(values));
    }

    #[test]
    fn non_string_entries_are_skipped() {
        let values = parse_values(r#"{"a": "x", "b": 1, "c": null}"#).expect("parse");
        assert_eq!(values.len(), 1);
        assert_eq!(values.get("a"), Some(&SecretString::new("x")));
    }

    #[test]
    fn non_object_values_are_rejected() {
        for text in ["", "plain", "[]", "\"text\""] {
            assert_eq!(parse_values(text), Err("is not a JSON object".to_owned()), "{text:?}");
        }
    }
}
