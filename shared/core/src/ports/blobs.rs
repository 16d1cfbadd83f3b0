//! `Blobs`: large immutable objects (Parquet artifacts) read by byte range.
//!
//! A put is atomic: readers see the previous object or the new one, never a partial file.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;

/// A streamed body, read once.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Maximum length of a blob key, in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;

/// Metadata of a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    /// Strong entity tag, quoted as HTTP sends it; it changes whenever the content is replaced.
    pub etag: String,
    pub content_type: String,
    pub last_modified: DateTime<Utc>,
}

/// A byte range as an HTTP `Range` header expresses it, before it is resolved against a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-end`, both inclusive.
    Bounded { start: u64, end: u64 },
    /// `bytes=start-`.
    From { start: u64 },
    /// `bytes=-length`: the last `length` bytes.
    Suffix { length: u64 },
}

impl ByteRange {
    /// Parses a `Range` header holding one byte range. Several ranges, other units and
    /// malformed values return `None`, which HTTP servers treat as "no range".
    pub fn parse_header(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        let number = |text: &str| -> Option<u64> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };

        match (start.is_empty(), end.is_empty()) {
            (true, false) => Some(ByteRange::Suffix { length: number(end)? }),
            (false, true) => Some(ByteRange::From { start: number(start)? }),
            (false, false) => {
                let (start, end) = (number(start)?, number(end)?);
                (start <= end).then_some(ByteRange::Bounded { start, end })
            }
            (true, true) => None,
        }
    }

    /// Resolves the range against an object of `size` bytes into inclusive `(first, last)`
    /// offsets, clamping the end to the object as RFC 9110 specifies. Returns `None` when the
    /// range is not satisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        let last = size - 1;
        match self {
            ByteRange::Bounded { start, end } => (start <= last).then(|| (start, end.min(last))),
            ByteRange::From { start } => (start <= last).then_some((start, last)),
            ByteRange::Suffix { length } => (length > 0).then(|| (size - length.min(size), last)),
        }
    }

    /// Formats the range as a `Range` header value.
    pub fn to_header(self) -> String {
        match self {
            ByteRange::Bounded { start, end } => format!("bytes={start}-{end}"),
            ByteRange::From { start } => format!("bytes={start}-"),
            ByteRange::Suffix { length } => format!("bytes=-{length}"),
        }
    }
}

/// An open blob: its metadata, the resolved range (when one was requested) and the body.
pub struct BlobRead {
    pub meta: BlobMeta,
    /// Inclusive `(first, last)` offsets of the body when a range was requested.
    pub range: Option<(u64, u64)>,
    pub body: BlobReader,
    /// The body's bytes, when the adapter read them already (small local ranges); `body`
    /// reads the same bytes.
    pub buffered: Option<bytes::Bytes>,
}

impl BlobRead {
    /// Number of bytes the body yields.
    pub fn body_len(&self) -> u64 {
        match self.range {
            Some((first, last)) => last - first + 1,
            None => self.meta.size,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob at {key}")]
    NotFound { key: String },
    #[error("the requested range is not satisfiable for {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("reading the blob body failed")]
    Body(#[source] std::io::Error),
    #[error("blob backend failed")]
    Backend(#[source] anyhow::Error),
}

impl BlobError {
    pub fn backend(error: impl Into<anyhow::Error>) -> Self {
        Self::Backend(error.into())
    }
}

#[async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Streams `body` into the blob at `key`, replacing it atomically, and returns the new
    /// metadata. On failure the previous blob, if any, is untouched.
    async fn put(&self, key: &str, body: BlobReader, content_type: &str) -> Result<BlobMeta, BlobError>;

    /// Reads a blob's metadata, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError>;

    /// Opens a blob, whole or one byte range of it.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError>;

    /// Deletes a blob; deleting a missing blob succeeds.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Deletes every blob whose key starts with `prefix` and returns how many there were.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError>;

    /// Returns a URL that reads the blob without credentials until `ttl` passes and accepts
    /// `Range` headers, or `None` when the backend cannot sign URLs.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<Option<String>, BlobError>;
}

/// Checks a blob key: relative, `/`-separated, no empty, `.` or `..` segments, printable ASCII.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let invalid = |reason| BlobError::InvalidKey {
        key: key.chars().take(100).collect(),
        reason,
    };
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(invalid("keys are 1 to 1024 bytes long"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'='))
    {
        return Err(invalid("keys use only letters, digits, '/', '-', '_', '.' and '='"));
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(invalid("keys have no empty, '.' or '..' segments"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_header_forms_parse() {
        assert_eq!(
            ByteRange::parse_header("bytes=0-99"),
            Some(ByteRange::Bounded { start: 0, end: 99 })
        );
        assert_eq!(
            ByteRange::parse_header("bytes=100-"),
            Some(ByteRange::From { start: 100 })
        );
        assert_eq!(
            ByteRange::parse_header("bytes=-8"),
            Some(ByteRange::Suffix { length: 8 })
        );
        assert_eq!(
            ByteRange::parse_header(" bytes= 5 - 6 "),
            Some(ByteRange::Bounded { start: 5, end: 6 })
        );
    }

    #[test]
    fn range_header_rejects_other_forms() {
        for header in [
            "bytes=5-4",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(ByteRange::parse_header(header), None, "{header}");
        }
    }

    #[test]
    fn range_resolves_against_size() {
        assert_eq!(ByteRange::Bounded { start: 0, end: 99 }.resolve(50), Some((0, 49)));
        assert_eq!(ByteRange::Bounded { start: 50, end: 99 }.resolve(50), None);
        assert_eq!(ByteRange::From { start: 49 }.resolve(50), Some((49, 49)));
        assert_eq!(ByteRange::Suffix { length: 8 }.resolve(50), Some((42, 49)));
        assert_eq!(ByteRange::Suffix { length: 80 }.resolve(50), Some((0, 49)));
        assert_eq!(ByteRange::Suffix { length: 0 }.resolve(50), None);
        assert_eq!(ByteRange::From { start: 0 }.resolve(0), None);
    }

    #[test]
    fn blob_keys_are_checked() {
        assert!(validate_key("ws/01J/ds/abc.parquet").is_ok());
        for key in ["", "/abs", "a//b", "a/../b", "a/./b", "sp ace", "a\\b", "trailing/"] {
            assert!(validate_key(key).is_err(), "{key}");
        }
    }
}
