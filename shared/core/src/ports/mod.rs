//! The four storage ports every route family is written against.
//!
//! Each port has an embedded adapter (SQLite file, folder, key file) and an AWS adapter
//! (DynamoDB, S3, SQS, Secrets Manager). Both pass the same conformance suites, so code
//! written against the ports does not depend on which adapter runs it.

pub mod blobs;
pub mod queue;
pub mod secrets;
pub mod store;

pub use blobs::{BlobError, BlobMeta, BlobRead, BlobReader, Blobs, ByteRange};
pub use queue::{Delivery, NewJob, Queue, QueueError};
pub use secrets::{SecretString, Secrets, SecretsError};
pub use store::{Condition, Index, IndexKey, Item, Key, Page, Query, SortKey, Store, StoreError, Write};
