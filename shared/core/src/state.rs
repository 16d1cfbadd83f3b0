//! State shared by every handler of a process: configuration and the four ports, built once.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::{OnceCell, Semaphore};

use crate::config::Config;
use crate::crypto::CredentialCipher;
use crate::error::ApiError;
use crate::ports::secrets::MASTER_KEY;
use crate::ports::{Blobs, Queue, Secrets, Store};

/// One adapter for each port.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn Blobs>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
}

/// Shared state, cheap to clone because every route family's router keeps a copy.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn Blobs>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
    /// Memory for encoded query results, one permit per KiB (`MAKO_EXECUTE_MEMORY_BYTES`).
    pub result_memory: Arc<Semaphore>,
    /// Built from the master key on first use.
    cipher: OnceCell<CredentialCipher>,
}

impl AppState {
    pub fn new(config: Config, ports: Ports) -> Self {
        let result_kib = config
            .connectors
            .result_memory
            .div_ceil(1024)
            .min(Semaphore::MAX_PERMITS);
        Self(Arc::new(Inner {
            result_memory: Arc::new(Semaphore::new(result_kib)),
            config,
            store: ports.store,
            blobs: ports.blobs,
            queue: ports.queue,
            secrets: ports.secrets,
            cipher: OnceCell::new(),
        }))
    }

    /// Returns the cipher for connection credentials, reading the master key on first use.
    pub async fn credential_cipher(&self) -> Result<&CredentialCipher, ApiError> {
        self.0
            .cipher
            .get_or_try_init(|| async {
                match self.secrets.get(MASTER_KEY).await? {
                    Some(master) => Ok(CredentialCipher::from_master_key(&master)),
                    None => Err(ApiError::internal(anyhow::anyhow!(
                        "the secret {MASTER_KEY} is not set; it encrypts connection credentials"
                    ))),
                }
            })
            .await
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
