//! One build: run a data source's query and stream its rows as Parquet into the `Blobs` port.
//!
//! The query runs on a blocking thread, where the [`ParquetSink`] encodes row groups and
//! hands the bytes, 1 MiB at a time, through a channel of four chunks to the upload task.
//! When the upload falls behind, the sink waits and so does the database cursor, so memory
//! stays bounded by the open row group plus those chunks. A failed query makes the upload
//! fail, and the `Blobs` port keeps nothing of a failed put.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use mako_core::ports::{BlobMeta, Blobs};
use mako_databases::{ConnectorError, Database, ExecuteRequest};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use crate::parquet::{ChunkWriter, FileSummary, ParquetSink};

/// Media type of the artifacts.
pub const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Chunks in flight between the encoder and the upload.
const CHANNEL_CHUNKS: usize = 4;

/// The failure of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Query(#[from] ConnectorError),
    #[error("storing the Parquet file failed: {0}")]
    Upload(String),
}

/// Runs `request` on `database` and stores the result at `key`.
pub async fn build(
    database: Arc<dyn Database>,
    request: ExecuteRequest,
    max_rows: u64,
    blobs: Arc<dyn Blobs>,
    key: String,
) -> Result<(FileSummary, BlobMeta), BuildError> {
    let (sender, mut receiver) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
    let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let reader = StreamReader::new(stream);
    let upload = tokio::spawn(async move { blobs.put(&key, Box::pin(reader), PARQUET_CONTENT_TYPE).await });

    let runtime = tokio::runtime::Handle::current();
    let query = tokio::task::spawn_blocking(move || {
        let mut sink = ParquetSink::new(ChunkWriter::new(sender), max_rows);
        match runtime.block_on(database.execute_into(request, &mut sink)) {
            Ok(_) => sink.finish(),
            Err(error) => {
                sink.abort(&error.to_string());
                Err(error)
            }
        }
    });

    let summary = match query.await {
        Ok(result) => result,
        Err(error) => Err(ConnectorError::internal(anyhow::anyhow!(
            "the build thread failed: {error}"
        ))),
    };
    let stored = upload.await;
    let summary = summary?;
    match stored {
        Ok(Ok(meta)) => Ok((summary, meta)),
        Ok(Err(error)) => Err(BuildError::Upload(format!("{error:#}"))),
        Err(error) => Err(BuildError::Upload(error.to_string())),
    }
}
