//! State shared by every handler of a process: configuration and the four ports, built once.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
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
}

impl AppState {
    pub fn new(config: Config, ports: Ports) -> Self {
        Self(Arc::new(Inner {
            config,
            store: ports.store,
            blobs: ports.blobs,
            queue: ports.queue,
            secrets: ports.secrets,
        }))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
