//! `Blobs` on one S3 bucket.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime as S3DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use chrono::{DateTime, Utc};
use mako_core::ports::blobs::validate_key;
use mako_core::ports::{BlobError, BlobMeta, BlobRead, BlobReader, Blobs, ByteRange};
use tokio::io::AsyncReadExt;

use crate::errors::{backend, chain, error_code};

/// Size of each multipart upload part. A body shorter than this goes in one PutObject.
/// S3 requires parts of at least 5 MiB, except the last.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Keys per DeleteObjects request (S3's maximum).
const DELETE_BATCH: usize = 1000;

const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// `Blobs` adapter over an S3 bucket.
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

impl S3Blobs {
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    fn backend<E, R>(&self, operation: &'static str, error: SdkError<E, R>) -> BlobError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        BlobError::Backend(backend("S3", operation, &self.bucket, error))
    }

    /// Uploads a body of at least [`PART_SIZE`] bytes, of which `first_part` is already
    /// read, as a multipart upload. Any failure aborts the upload, so the previous object
    /// stays in place.
    async fn put_multipart(
        &self,
        key: &str,
        first_part: Vec<u8>,
        body: &mut BlobReader,
        content_type: &str,
    ) -> Result<(String, u64), BlobError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|error| self.backend("CreateMultipartUpload", error))?;
        let Some(upload_id) = upload.upload_id else {
            return Err(BlobError::backend(anyhow::anyhow!(
                "S3 CreateMultipartUpload for {key:?} returned no upload id"
            )));
        };

        let result = self.upload_parts(key, &upload_id, first_part, body).await;
        if result.is_err() {
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(error) = abort {
                // The bucket's lifecycle rule removes abandoned uploads after a day.
                let error = self.backend("AbortMultipartUpload", error);
                tracing::warn!(bucket = %self.bucket, key, upload_id, error = %chain(&error), "aborting a failed upload failed");
            }
        }
        result
    }

    /// Uploads every part, completes the upload and returns the ETag and size.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first_part: Vec<u8>,
        body: &mut BlobReader,
    ) -> Result<(String, u64), BlobError> {
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut chunk = first_part;
        loop {
            let chunk_len = chunk.len();
            let part_number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            size += chunk_len as u64;
            let output = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|error| self.backend("UploadPart", error))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(output.e_tag)
                    .set_checksum_crc32(output.checksum_crc32)
                    .build(),
            );

            if chunk_len < PART_SIZE {
                break;
            }
            chunk = read_chunk(body).await?;
            if chunk.is_empty() {
                break;
            }
        }

        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|error| self.backend("CompleteMultipartUpload", error))?;
        let etag = output
            .e_tag
            .ok_or_else(|| missing("CompleteMultipartUpload", key, "ETag"))?;
        Ok((etag, size))
    }

    /// Reads the metadata of `key`, optionally only while its ETag is `if_match`.
    /// Returns `None` when the object is missing or, with `if_match`, was replaced.
    async fn head_object(&self, key: &str, if_match: Option<&str>) -> Result<Option<BlobMeta>, BlobError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(None);
            }
            Err(error) if is_precondition_failed(&error) => return Ok(None),
            Err(error) => return Err(self.backend("HeadObject", error)),
        };

        Ok(Some(BlobMeta {
            size: non_negative(output.content_length),
            etag: quoted(output.e_tag.ok_or_else(|| missing("HeadObject", key, "ETag"))?),
            content_type: output.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            last_modified: timestamp(output.last_modified.as_ref())
                .ok_or_else(|| missing("HeadObject", key, "Last-Modified"))?,
        }))
    }

    /// Opens a byte range: HEAD for the size and ETag, then a GET of the resolved range
    /// that succeeds only while the ETag still matches, so the range and the metadata
    /// describe the same object. A replacement between the two requests is retried once.
    async fn get_range(&self, key: &str, range: ByteRange) -> Result<BlobRead, BlobError> {
        for attempt in 1..=2 {
            let Some(meta) = self.head_object(key, None).await? else {
                return Err(BlobError::NotFound { key: key.to_owned() });
            };
            let Some((first, last)) = range.resolve(meta.size) else {
                return Err(BlobError::RangeNotSatisfiable { size: meta.size });
            };

            let result = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(format!("bytes={first}-{last}"))
                .if_match(&meta.etag)
                .send()
                .await;
            match result {
                Ok(output) => {
                    return Ok(BlobRead {
                        meta,
                        range: Some((first, last)),
                        body: Box::pin(output.body.into_async_read()),
                        buffered: None,
                    });
                }
                Err(error) if is_precondition_failed(&error) && attempt == 1 => {
                    tracing::debug!(bucket = %self.bucket, key, "object replaced between HEAD and GET; retrying");
                }
                Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                    return Err(BlobError::NotFound { key: key.to_owned() });
                }
                Err(error) => return Err(self.backend("GetObject", error)),
            }
        }
        Err(BlobError::backend(anyhow::anyhow!(
            "S3 object {key:?} in bucket {} changed twice while its range was being read",
            self.bucket
        )))
    }
}

/// Reads up to [`PART_SIZE`] bytes, fewer only at the end of the body.
async fn read_chunk(body: &mut BlobReader) -> Result<Vec<u8>, BlobError> {
    let mut chunk = Vec::with_capacity(PART_SIZE);
    body.as_mut()
        .take(PART_SIZE as u64)
        .read_to_end(&mut chunk)
        .await
        .map_err(BlobError::Body)?;
    Ok(chunk)
}

fn is_precondition_failed<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error_code(error) == Some("PreconditionFailed")
}

fn missing(operation: &str, key: &str, header: &str) -> BlobError {
    BlobError::backend(anyhow::anyhow!("S3 {operation} for {key:?} returned no {header}"))
}

fn non_negative(length: Option<i64>) -> u64 {
    length.and_then(|length| u64::try_from(length).ok()).unwrap_or(0)
}

/// Returns the ETag quoted as HTTP sends it. S3 already quotes it, but an emulator may not.
fn quoted(etag: String) -> String {
    if etag.starts_with('"') && etag.ends_with('"') && etag.len() >= 2 {
        etag
    } else {
        format!("\"{etag}\"")
    }
}

fn timestamp(value: Option<&S3DateTime>) -> Option<DateTime<Utc>> {
    let value = value?;
    DateTime::from_timestamp(value.secs(), value.subsec_nanos())
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn put(&self, key: &str, mut body: BlobReader, content_type: &str) -> Result<BlobMeta, BlobError> {
        validate_key(key)?;
        let content_type = if content_type.is_empty() {
            DEFAULT_CONTENT_TYPE
        } else {
            content_type
        };

        let first = read_chunk(&mut body).await?;
        let (etag, size) = if first.len() < PART_SIZE {
            let size = first.len() as u64;
            let output = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(first))
                .send()
                .await
                .map_err(|error| self.backend("PutObject", error))?;
            (output.e_tag.ok_or_else(|| missing("PutObject", key, "ETag"))?, size)
        } else {
            self.put_multipart(key, first, &mut body, content_type).await?
        };
        let etag = quoted(etag);
        tracing::debug!(bucket = %self.bucket, key, size, etag, "stored blob");

        // PutObject returns no Last-Modified, so read it back while the object is still ours.
        if let Some(meta) = self.head_object(key, Some(&etag)).await? {
            return Ok(meta);
        }
        tracing::debug!(bucket = %self.bucket, key, "blob replaced right after it was stored");
        Ok(BlobMeta {
            size,
            etag,
            content_type: content_type.to_owned(),
            last_modified: Utc::now(),
        })
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        validate_key(key)?;
        self.head_object(key, None).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        validate_key(key)?;
        if let Some(range) = range {
            return self.get_range(key, range).await;
        }

        let result = self.client.get_object().bucket(&self.bucket).key(key).send().await;
        let output = match result {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(BlobError::NotFound { key: key.to_owned() });
            }
            Err(error) => return Err(self.backend("GetObject", error)),
        };
        let meta = BlobMeta {
            size: non_negative(output.content_length),
            etag: quoted(output.e_tag.ok_or_else(|| missing("GetObject", key, "ETag"))?),
            content_type: output.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            last_modified: timestamp(output.last_modified.as_ref())
                .ok_or_else(|| missing("GetObject", key, "Last-Modified"))?,
        };
        Ok(BlobRead {
            meta,
            range: None,
            body: Box::pin(output.body.into_async_read()),
            buffered: None,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| self.backend("DeleteObject", error))?;
        Ok(())
    }

    /// Lists the prefix page by page and deletes each page. The prefix must be a valid key
    /// or a valid key followed by `/`, so an empty prefix never empties the bucket.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        validate_key(prefix.strip_suffix('/').unwrap_or(prefix))?;

        let mut deleted = 0u64;
        let mut continuation_token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(continuation_token)
                .send()
                .await
                .map_err(|error| self.backend("ListObjectsV2", error))?;
            let keys: Vec<String> = page
                .contents
                .unwrap_or_default()
                .into_iter()
                .filter_map(|object| object.key)
                .collect();

            for batch in keys.chunks(DELETE_BATCH) {
                let objects = batch
                    .iter()
                    .map(|key| ObjectIdentifier::builder().key(key).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(BlobError::backend)?;
                let request = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .map_err(BlobError::backend)?;
                let output = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(request)
                    .send()
                    .await
                    .map_err(|error| self.backend("DeleteObjects", error))?;
                if let Some(failure) = output.errors.unwrap_or_default().first() {
                    return Err(BlobError::backend(anyhow::anyhow!(
                        "S3 DeleteObjects in bucket {} failed for {:?}: {} {}",
                        self.bucket,
                        failure.key().unwrap_or_default(),
                        failure.code().unwrap_or_default(),
                        failure.message().unwrap_or_default()
                    )));
                }
                deleted += batch.len() as u64;
            }

            continuation_token = page.next_continuation_token;
            if continuation_token.is_none() {
                break;
            }
        }
        tracing::debug!(bucket = %self.bucket, prefix, deleted, "deleted blobs by prefix");
        Ok(deleted)
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<Option<String>, BlobError> {
        validate_key(key)?;
        let config = PresigningConfig::expires_in(ttl).map_err(BlobError::backend)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|error| self.backend("GetObject presigning", error))?;
        Ok(Some(request.uri().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;

    /// A body that yields `left` bytes and then fails.
    struct FailingReader {
        left: usize,
    }

    impl AsyncRead for FailingReader {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            if self.left == 0 {
                return Poll::Ready(Err(io::Error::other("producer failed")));
            }
            let n = self.left.min(buf.remaining());
            buf.put_slice(&vec![b'z'; n]);
            self.left -= n;
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn etags_are_quoted_once() {
        assert_eq!(quoted("\"abc\"".into()), "\"abc\"");
        assert_eq!(quoted("abc".into()), "\"abc\"");
        assert_eq!(quoted("\"".into()), "\"\"\"");
    }

    #[tokio::test]
    async fn chunks_fill_to_part_size() {
        let mut body: BlobReader = Box::pin(std::io::Cursor::new(vec![7u8; PART_SIZE + 10]));
        assert_eq!(read_chunk(&mut body).await.expect("first chunk").len(), PART_SIZE);
        assert_eq!(read_chunk(&mut body).await.expect("second chunk").len(), 10);
        assert!(read_chunk(&mut body).await.expect("end").is_empty());
    }

    /// Runs against the emulator at `MAKO_TEST_AWS_ENDPOINT` and passes without one. The
    /// conformance suite's failing body fails before the first part, so this covers the
    /// abort of an upload that already has parts.
    #[tokio::test]
    async fn failed_multipart_put_is_aborted() {
        let Some(endpoint) = std::env::var("MAKO_TEST_AWS_ENDPOINT")
            .ok()
            .filter(|value| !value.is_empty())
        else {
            return;
        };
        let resources = crate::provision::Resources::unique("mako-unit");
        let settings = crate::provision::provision(Some(&endpoint), "us-east-1", &resources, 3)
            .await
            .expect("provisioning the emulator");
        let clients = crate::sdk::Clients::new(&settings.region, Some(&endpoint)).await;
        let blobs = S3Blobs::new(clients.s3.clone(), settings.bucket.clone());

        let before = blobs
            .put("keep", Box::pin(io::Cursor::new(b"original".to_vec())), "text/plain")
            .await
            .expect("first put");
        let failing: BlobReader = Box::pin(FailingReader {
            left: 2 * PART_SIZE + 5,
        });
        let result = blobs.put("keep", failing, "text/plain").await;

        assert!(matches!(result, Err(BlobError::Body(_))), "{:?}", result.err());
        assert_eq!(blobs.head("keep").await.expect("head"), Some(before));
        let uploads = clients
            .s3
            .list_multipart_uploads()
            .bucket(&settings.bucket)
            .send()
            .await
            .expect("listing uploads");
        assert!(
            uploads.uploads().is_empty(),
            "the failed upload was aborted: {:?}",
            uploads.uploads()
        );
    }
}
