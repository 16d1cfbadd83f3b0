//! Fresh sets of port adapters for the conformance suites.

use std::any::Any;
use std::sync::Arc;

use mako_core::ports::{Blobs, Queue, Secrets, Store};

/// Attempts after which the conformance queues dead-letter a job.
pub const QUEUE_MAX_ATTEMPTS: u32 = 3;

/// One adapter set on fresh, empty backing resources.
pub struct Adapters {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn Blobs>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<dyn Secrets>,
    /// Opens a second `Secrets` over the same backing storage, as another process would.
    pub reopen_secrets: Box<dyn Fn() -> futures::future::BoxFuture<'static, Arc<dyn Secrets>> + Send + Sync>,
    /// Keeps temporary folders alive for the fixture's lifetime.
    pub _guard: Box<dyn Any + Send + Sync>,
}

/// Embedded adapters in a new temporary data folder.
pub async fn embedded() -> Option<Adapters> {
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let path = dir.path().to_owned();
    let options = mako_embedded::Options {
        queue_max_attempts: QUEUE_MAX_ATTEMPTS,
    };
    let adapters = mako_embedded::open(&path, options)
        .await
        .expect("opening embedded adapters");

    let reopen_path = path.clone();
    Some(Adapters {
        store: adapters.store,
        blobs: adapters.blobs,
        queue: adapters.queue,
        secrets: adapters.secrets,
        reopen_secrets: Box::new(move || {
            let path = reopen_path.clone();
            Box::pin(async move {
                let secrets: Arc<dyn Secrets> = Arc::new(
                    mako_embedded::FileSecrets::open(&path)
                        .await
                        .expect("reopening the secrets file"),
                );
                secrets
            })
        }),
        _guard: Box::new(dir),
    })
}

/// AWS adapters on fresh, uniquely named resources in the emulator, or `None` (skipped) when
/// no emulator is configured.
pub async fn aws() -> Option<Adapters> {
    let endpoint = crate::services::aws_endpoint()?;
    let resources = mako_aws::provision::Resources::unique("mako-test");
    let settings = mako_aws::provision::provision(Some(&endpoint), "us-east-1", &resources, QUEUE_MAX_ATTEMPTS)
        .await
        .expect("creating emulator resources");
    let adapters = mako_aws::connect(&settings)
        .await
        .expect("connecting AWS adapters to the emulator");

    Some(Adapters {
        store: adapters.store,
        blobs: adapters.blobs,
        queue: adapters.queue,
        secrets: adapters.secrets,
        reopen_secrets: Box::new(move || {
            let settings = settings.clone();
            Box::pin(async move {
                let adapters = mako_aws::connect(&settings).await.expect("reconnecting AWS adapters");
                adapters.secrets
            })
        }),
        _guard: Box::new(()),
    })
}
