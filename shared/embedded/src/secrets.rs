//! `Secrets` in `secrets.json` in the data folder, with environment variables on top.
//!
//! The file is a JSON object of named values, readable and writable by its owner only. It is
//! created on first start with a random master key. A secret named `google-client-secret`
//! can also be set by the variable `MAKO_GOOGLE_CLIENT_SECRET`, which then takes precedence.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use mako_core::ports::secrets::{MASTER_KEY, env_var_name, validate_name};
use mako_core::ports::{SecretString, Secrets, SecretsError};
use rand::RngExt;
use tokio::fs;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

pub struct FileSecrets {
    path: PathBuf,
    /// Serializes read-modify-write cycles of the file.
    lock: Mutex<()>,
}

type SecretMap = BTreeMap<String, String>;

impl FileSecrets {
    /// Opens `secrets.json` in `dir`, creating it with a fresh master key when missing.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        let secrets = Self {
            path: dir.join("secrets.json"),
            lock: Mutex::new(()),
        };
        let mut map = secrets
            .read_map()
            .await
            .with_context(|| format!("failed to read {}", secrets.path.display()))?;
        if !map.contains_key(MASTER_KEY) {
            let mut key = [0u8; 32];
            rand::rng().fill(&mut key);
            map.insert(MASTER_KEY.to_owned(), hex::encode(key));
            secrets
                .write_map(&map)
                .await
                .with_context(|| format!("failed to write {}", secrets.path.display()))?;
            tracing::info!(path = %secrets.path.display(), "created a new master key");
        }
        Ok(secrets)
    }

    async fn read_map(&self) -> anyhow::Result<SecretMap> {
        match fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a JSON object of strings", self.path.display())),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(SecretMap::new()),
            Err(error) => Err(error.into()),
        }
    }

    async fn write_map(&self, map: &SecretMap) -> anyhow::Result<()> {
        let temp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(map)?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);

        let mut file = options.open(&temp).await?;
        file.write_all(&json).await?;
        file.sync_all().await?;
        fs::rename(&temp, &self.path).await?;
        Ok(())
    }
}

#[async_trait]
impl Secrets for FileSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        validate_name(name)?;
        if let Ok(value) = std::env::var(env_var_name(name))
            && !value.is_empty()
        {
            return Ok(Some(SecretString::new(value)));
        }
        let map = self.read_map().await.map_err(SecretsError::Backend)?;
        Ok(map.get(name).map(|value| SecretString::new(value.clone())))
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretsError> {
        validate_name(name)?;
        let _guard = self.lock.lock().await;
        let mut map = self.read_map().await.map_err(SecretsError::Backend)?;
        map.insert(name.to_owned(), value.expose().to_owned());
        self.write_map(&map).await.map_err(SecretsError::Backend)
    }
}
