//! Creation of the AWS resources for local emulators and tests, with the layout of the SAM
//! template (`template.yaml`): the table and its indexes, the bucket and its CORS rule, the
//! FIFO job queue with its dead-letter queue, and the secret with a generated master key.
//!
//! Every step accepts a resource that already exists, so provisioning can run repeatedly.

use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CorsConfiguration, CorsRule, CreateBucketConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use mako_core::ports::secrets::MASTER_KEY;
use rand::RngExt;

use crate::Settings;
use crate::errors::backend;
use crate::sdk::Clients;

/// How long provisioning waits for the table and its indexes to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

const TABLE_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Message retention of both queues: 14 days, SQS's maximum, as in the SAM template.
const QUEUE_RETENTION_SECONDS: &str = "1209600";

/// Default visibility timeout of the job queue, as in the SAM template. Every receive sets
/// its own, so this applies only to other consumers.
const QUEUE_VISIBILITY_SECONDS: &str = "960";

/// Length of the random suffix of [`Resources::unique`].
const UNIQUE_SUFFIX_LEN: usize = 12;

/// Longest SQS queue name without the `.fifo` suffix (SQS allows 80 characters in all).
const MAX_QUEUE_NAME_LEN: usize = 75;

/// Names of the resources to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resources {
    pub table: String,
    pub bucket: String,
    /// Job queue name without the `.fifo` suffix.
    pub queue: String,
    /// Dead-letter queue name without the `.fifo` suffix.
    pub dead_letter_queue: String,
    pub secret: String,
}

impl Resources {
    /// Names every resource after `prefix`, as the SAM template names the queues after the
    /// stack: `<prefix>` for the table, bucket and secret, `<prefix>-jobs` and
    /// `<prefix>-jobs-dlq` for the queues.
    pub fn named(prefix: &str) -> Resources {
        Resources {
            table: prefix.to_owned(),
            bucket: prefix.to_owned(),
            queue: format!("{prefix}-jobs"),
            dead_letter_queue: format!("{prefix}-jobs-dlq"),
            secret: prefix.to_owned(),
        }
    }

    /// Names every resource after `prefix` plus a random suffix of lowercase letters and
    /// digits, so tests get fresh resources. A lowercase `prefix` of letters, digits and
    /// `-` of up to 40 characters gives a valid bucket name.
    pub fn unique(prefix: &str) -> Resources {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let suffix: String = (0..UNIQUE_SUFFIX_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Self::named(&format!("{prefix}-{suffix}"))
    }

    /// Checks the names against the S3 bucket and SQS queue naming rules, which are the
    /// strictest of the four services.
    pub fn validate(&self) -> anyhow::Result<()> {
        let bucket = &self.bucket;
        let bucket_valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_valid {
            bail!(
                "invalid bucket name {bucket:?}: bucket names are 3 to 63 lowercase letters, digits and '-', \
                 starting and ending with a letter or digit"
            );
        }
        for queue in [&self.queue, &self.dead_letter_queue] {
            let queue_valid = !queue.is_empty()
                && queue.len() <= MAX_QUEUE_NAME_LEN
                && queue
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !queue_valid {
                bail!(
                    "invalid queue name {queue:?}: queue names are 1 to {MAX_QUEUE_NAME_LEN} letters, digits, \
                     '-' and '_' before the .fifo suffix"
                );
            }
        }
        Ok(())
    }
}

/// Creates the resources that do not exist yet, waits until the table is active and
/// returns the settings that address them.
pub async fn provision(
    endpoint: Option<&str>,
    region: &str,
    resources: &Resources,
    queue_max_attempts: u32,
) -> anyhow::Result<Settings> {
    resources.validate()?;
    if !(1..=100).contains(&queue_max_attempts) {
        bail!("the queue's maximum attempts is {queue_max_attempts}, expected 1 to 100");
    }
    let clients = Clients::new(region, endpoint).await;

    create_table(&clients.dynamodb, &resources.table).await?;
    create_bucket(&clients.s3, region, &resources.bucket).await?;
    let dead_letter_queue_url = create_queue(&clients.sqs, &resources.dead_letter_queue).await?;
    let queue_url = create_queue(&clients.sqs, &resources.queue).await?;
    configure_queues(&clients.sqs, &queue_url, &dead_letter_queue_url, queue_max_attempts).await?;
    create_secret(&clients.secrets_manager, &resources.secret).await?;

    Ok(Settings {
        region: region.to_owned(),
        endpoint: endpoint.map(str::to_owned),
        table: resources.table.clone(),
        bucket: resources.bucket.clone(),
        queue_url,
        dead_letter_queue_url,
        secret_id: resources.secret.clone(),
        queue_max_attempts,
    })
}

async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
    };
    let index = |name: &str, partition: &str, sort: &str| -> anyhow::Result<GlobalSecondaryIndex> {
        Ok(GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key(sort, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()?)
    };

    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index("gsi1", "gsi1pk", "gsi1sk")?)
        .global_secondary_indexes(index("gsi2", "gsi2pk", "gsi2sk")?);
    for name in ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"] {
        request = request.attribute_definitions(attribute(name)?);
    }
    match request.send().await {
        Ok(_) => tracing::info!(table, "created table"),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::info!(table, "table exists");
        }
        Err(error) => return Err(backend("DynamoDB", "CreateTable", table, error)),
    }

    wait_until_active(client, table).await?;
    enable_ttl(client, table).await
}

async fn wait_until_active(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        let output = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|error| backend("DynamoDB", "DescribeTable", table, error))?;
        let description = output
            .table
            .with_context(|| format!("DescribeTable returned no table for {table:?}"))?;
        let table_active = description.table_status == Some(TableStatus::Active);
        let indexes_active = description
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status.is_none() || index.index_status == Some(IndexStatus::Active));
        if table_active && indexes_active {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "table {table:?} did not become active within {}s",
                TABLE_ACTIVE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(TABLE_POLL_INTERVAL).await;
    }
}

async fn enable_ttl(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let output = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|error| backend("DynamoDB", "DescribeTimeToLive", table, error))?;
    let status = output
        .time_to_live_description
        .as_ref()
        .and_then(|description| description.time_to_live_status.clone());
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        return Ok(());
    }

    let specification = TimeToLiveSpecification::builder()
        .attribute_name("ttl")
        .enabled(true)
        .build()?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(specification)
        .send()
        .await
        .map_err(|error| backend("DynamoDB", "UpdateTimeToLive", table, error))?;
    tracing::info!(table, attribute = "ttl", "enabled time to live");
    Ok(())
}

async fn create_bucket(client: &aws_sdk_s3::Client, region: &str, bucket: &str) -> anyhow::Result<()> {
    // us-east-1 is the default location and rejects an explicit location constraint.
    let configuration = (region != "us-east-1").then(|| {
        CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region))
            .build()
    });
    let result = client
        .create_bucket()
        .bucket(bucket)
        .set_create_bucket_configuration(configuration)
        .send()
        .await;
    match result {
        Ok(_) => tracing::info!(bucket, "created bucket"),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
        {
            tracing::info!(bucket, "bucket exists");
        }
        Err(error) if error.as_service_error().is_some_and(|e| e.is_bucket_already_exists()) => {
            // The name is taken, and the bucket is ours only if HeadBucket succeeds.
            client
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|error| backend("S3", "HeadBucket", bucket, error))
                .with_context(|| format!("the bucket name {bucket:?} belongs to another account"))?;
            tracing::info!(bucket, "bucket exists");
        }
        Err(error) => return Err(backend("S3", "CreateBucket", bucket, error)),
    }

    // Browsers read artifacts with range requests through presigned URLs. The SAM template
    // allows the app's origins, but an emulator allows any.
    let rule = CorsRule::builder()
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_origins("*")
        .allowed_headers("Range")
        .allowed_headers("If-None-Match")
        .allowed_headers("If-Match")
        .expose_headers("Content-Range")
        .expose_headers("Accept-Ranges")
        .expose_headers("ETag")
        .expose_headers("Content-Length")
        .expose_headers("Content-Type")
        .max_age_seconds(3600)
        .build()?;
    let cors = CorsConfiguration::builder().cors_rules(rule).build()?;
    client
        .put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(cors)
        .send()
        .await
        .map_err(|error| backend("S3", "PutBucketCors", bucket, error))?;
    Ok(())
}

/// Creates the FIFO queue `<name>.fifo` unless it exists and returns its URL.
async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    let name = format!("{name}.fifo");
    let result = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await;
    let url = match result {
        Ok(output) => {
            tracing::info!(queue = %name, "created or found queue");
            output.queue_url
        }
        // The queue exists with other attributes, and configure_queues sets the ones needed.
        Err(error) if error.as_service_error().is_some_and(|e| e.is_queue_name_exists()) => {
            client
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(|error| backend("SQS", "GetQueueUrl", &name, error))?
                .queue_url
        }
        Err(error) => return Err(backend("SQS", "CreateQueue", &name, error)),
    };
    url.with_context(|| format!("SQS returned no URL for queue {name:?}"))
}

/// Sets the retention of both queues and the job queue's redrive policy, whose
/// `maxReceiveCount` is `queue_max_attempts + 2`: the adapter dead-letters a job after
/// `queue_max_attempts` deliveries itself, and SQS does only when a receiver crashed first.
async fn configure_queues(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    dead_letter_queue_url: &str,
    queue_max_attempts: u32,
) -> anyhow::Result<()> {
    let output = client
        .get_queue_attributes()
        .queue_url(dead_letter_queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| backend("SQS", "GetQueueAttributes", dead_letter_queue_url, error))?;
    let dead_letter_arn = output
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("SQS returned no ARN for queue {dead_letter_queue_url}"))?;

    client
        .set_queue_attributes()
        .queue_url(dead_letter_queue_url)
        .attributes(QueueAttributeName::MessageRetentionPeriod, QUEUE_RETENTION_SECONDS)
        .send()
        .await
        .map_err(|error| backend("SQS", "SetQueueAttributes", dead_letter_queue_url, error))?;

    let redrive_policy = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": queue_max_attempts + 2,
    });
    client
        .set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::RedrivePolicy, redrive_policy.to_string())
        .attributes(QueueAttributeName::MessageRetentionPeriod, QUEUE_RETENTION_SECONDS)
        .attributes(QueueAttributeName::VisibilityTimeout, QUEUE_VISIBILITY_SECONDS)
        .send()
        .await
        .map_err(|error| backend("SQS", "SetQueueAttributes", queue_url, error))?;
    tracing::info!(
        queue_url,
        dead_letter_queue_url,
        max_receive_count = queue_max_attempts + 2,
        "configured queues"
    );
    Ok(())
}

/// Creates the secret with a random 256-bit master key, unless it exists. An existing
/// secret is left as it is.
async fn create_secret(client: &aws_sdk_secretsmanager::Client, name: &str) -> anyhow::Result<()> {
    match client.describe_secret().secret_id(name).send().await {
        Ok(_) => {
            tracing::info!(secret = name, "secret exists");
            return Ok(());
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(error) => return Err(backend("Secrets Manager", "DescribeSecret", name, error)),
    }

    let mut key = [0u8; 32];
    rand::rng().fill(&mut key[..]);
    let value = serde_json::json!({ MASTER_KEY: hex::encode(key) });
    let result = client
        .create_secret()
        .name(name)
        .description("Mako secrets as one JSON object of named strings.")
        .secret_string(value.to_string())
        .send()
        .await;
    match result {
        Ok(_) => tracing::info!(secret = name, "created secret with a new master key"),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            tracing::info!(secret = name, "secret exists");
        }
        Err(error) => return Err(backend("Secrets Manager", "CreateSecret", name, error)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_and_distinct() {
        let first = Resources::unique("mako-test");
        let second = Resources::unique("mako-test");

        assert_ne!(first, second);
        first.validate().expect("valid names");
        assert!(first.bucket.starts_with("mako-test-"), "{}", first.bucket);
        assert_eq!(first.bucket.len(), "mako-test-".len() + UNIQUE_SUFFIX_LEN);
        assert_eq!(first.queue, format!("{}-jobs", first.table));
        assert_eq!(first.dead_letter_queue, format!("{}-jobs-dlq", first.table));
    }

    #[test]
    fn named_resources_follow_the_prefix() {
        let resources = Resources::named("mako");
        assert_eq!(resources.table, "mako");
        assert_eq!(resources.bucket, "mako");
        assert_eq!(resources.queue, "mako-jobs");
        assert_eq!(resources.dead_letter_queue, "mako-jobs-dlq");
        assert_eq!(resources.secret, "mako");
    }

    #[test]
    fn invalid_prefixes_are_rejected() {
        for prefix in [
            "UPPER",
            "ab",
            "-mako",
            "mako-",
            "with space",
            "dots.in.name",
            &"x".repeat(70),
        ] {
            assert!(Resources::named(prefix).validate().is_err(), "{prefix:?}");
        }
    }
}
