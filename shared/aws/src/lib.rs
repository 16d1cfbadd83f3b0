//! AWS adapters for the storage ports: DynamoDB for `Store`, S3 for `Blobs`, SQS FIFO for
//! `Queue` and Secrets Manager for `Secrets`.
//!
//! [`connect`] builds the SDK clients once from [`Settings`]. With an endpoint set (an
//! emulator such as moto) the clients use static dummy credentials and path-style S3
//! addressing, so they never look for credentials on the instance metadata service.
//! [`provision`] creates the resources in an emulator with the layout of the SAM template.

use std::sync::Arc;

use mako_core::ports::{Blobs, Queue, Secrets, Store};

mod blobs;
mod errors;
pub mod provision;
mod queue;
mod sdk;
mod secrets;
mod settings;
mod store;
mod time;

pub use blobs::S3Blobs;
pub use queue::{EventAdmission, EventMessage, SqsQueue};
pub use secrets::SecretsManagerSecrets;
pub use settings::Settings;
pub use store::DynamoStore;

/// The four port adapters, sharing one SDK configuration.
pub struct AwsAdapters {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn Blobs>,
    pub queue: Arc<dyn Queue>,
    /// The same queue adapter, for the worker function that takes SQS events.
    pub sqs: Arc<SqsQueue>,
    pub secrets: Arc<dyn Secrets>,
}

/// Builds the SDK clients for `settings` and wraps them in the port adapters.
///
/// No request is sent here, so a missing or unreachable resource shows up on first use.
pub async fn connect(settings: &Settings) -> anyhow::Result<AwsAdapters> {
    let clients = sdk::Clients::new(&settings.region, settings.endpoint.as_deref()).await;
    tracing::info!(
        region = %settings.region,
        endpoint = settings.endpoint.as_deref().unwrap_or("default"),
        table = %settings.table,
        bucket = %settings.bucket,
        "connected AWS adapters"
    );

    let sqs = Arc::new(SqsQueue::new(
        clients.sqs,
        settings.queue_url.clone(),
        settings.dead_letter_queue_url.clone(),
        settings.queue_max_attempts,
    ));
    Ok(AwsAdapters {
        store: Arc::new(DynamoStore::new(clients.dynamodb, settings.table.clone())),
        blobs: Arc::new(S3Blobs::new(clients.s3, settings.bucket.clone())),
        queue: sqs.clone(),
        sqs,
        secrets: Arc::new(SecretsManagerSecrets::new(
            clients.secrets_manager,
            settings.secret_id.clone(),
        )),
    })
}
