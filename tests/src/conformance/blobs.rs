//! `Blobs` conformance: streamed puts, byte ranges, atomic replacement, deletion and
//! presigned reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mako_core::ports::{BlobError, BlobReader, Blobs, ByteRange};
use rand::RngExt;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::fixtures::Adapters;

const PARQUET: &str = "application/vnd.apache.parquet";

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill(&mut bytes[..]);
    bytes
}

fn reader(bytes: Vec<u8>) -> BlobReader {
    Box::pin(io::Cursor::new(bytes))
}

async fn read_all(blobs: &dyn Blobs, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let mut read = blobs.get(key, range).await.expect("get");
    let mut body = Vec::new();
    read.body.read_to_end(&mut body).await.expect("reading the body");
    assert_eq!(body.len() as u64, read.body_len(), "the body is as long as announced");
    body
}

/// A body that yields `ok_bytes` bytes and then fails, like a producer that crashes.
struct FailingReader {
    left: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::other("producer failed")));
        }
        let n = self.left.min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&vec![b'z'; n]);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

pub async fn put_then_get_round_trips(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let bytes = random_bytes(1024 * 1024 + 17);

    let meta = blobs
        .put("ws/a/one.parquet", reader(bytes.clone()), PARQUET)
        .await
        .expect("put");
    let head = blobs.head("ws/a/one.parquet").await.expect("head").expect("present");

    assert_eq!(meta.size, bytes.len() as u64);
    assert_eq!(head.size, meta.size);
    assert_eq!(head.etag, meta.etag);
    assert!(
        head.etag.starts_with('"') && head.etag.ends_with('"'),
        "quoted etag: {}",
        head.etag
    );
    assert_eq!(head.content_type, PARQUET);
    assert_eq!(read_all(blobs, "ws/a/one.parquet", None).await, bytes);
}

pub async fn empty_blob_round_trips(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let meta = blobs.put("empty", reader(Vec::new()), "text/plain").await.expect("put");

    assert_eq!(meta.size, 0);
    assert_eq!(read_all(blobs, "empty", None).await, Vec::<u8>::new());
    let range = blobs.get("empty", Some(ByteRange::From { start: 0 })).await;
    assert!(
        matches!(range, Err(BlobError::RangeNotSatisfiable { size: 0 })),
        "{:?}",
        range.err()
    );
}

pub async fn byte_ranges_are_served(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let bytes = random_bytes(100_000);
    blobs.put("ranges", reader(bytes.clone()), PARQUET).await.expect("put");

    let cases = [
        (ByteRange::Bounded { start: 0, end: 0 }, 0..1),
        (ByteRange::Bounded { start: 10, end: 19 }, 10..20),
        (
            ByteRange::Bounded {
                start: 99_990,
                end: 200_000,
            },
            99_990..100_000,
        ),
        (ByteRange::From { start: 50_000 }, 50_000..100_000),
        (ByteRange::Suffix { length: 8 }, 99_992..100_000),
        (ByteRange::Suffix { length: 500_000 }, 0..100_000),
    ];
    for (range, expected) in cases {
        let read = blobs.get("ranges", Some(range)).await.expect("ranged get");
        assert_eq!(
            read.range,
            Some((expected.start as u64, expected.end as u64 - 1)),
            "{range:?}"
        );
        assert_eq!(read.meta.size, 100_000, "{range:?}");
        assert_eq!(
            read_all(blobs, "ranges", Some(range)).await,
            bytes[expected].to_vec(),
            "{range:?}"
        );
    }
}

pub async fn unsatisfiable_range_reports_size(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    blobs.put("small", reader(vec![1, 2, 3]), PARQUET).await.expect("put");

    for range in [
        ByteRange::From { start: 3 },
        ByteRange::Bounded { start: 5, end: 9 },
        ByteRange::Suffix { length: 0 },
    ] {
        let result = blobs.get("small", Some(range)).await;
        assert!(
            matches!(result, Err(BlobError::RangeNotSatisfiable { size: 3 })),
            "{range:?}: {:?}",
            result.err()
        );
    }
}

pub async fn missing_blob_is_reported(adapters: &Adapters) {
    let blobs = &*adapters.blobs;

    assert_eq!(blobs.head("nothing/here").await.expect("head"), None);
    let result = blobs.get("nothing/here", None).await;
    assert!(matches!(result, Err(BlobError::NotFound { .. })), "{:?}", result.err());
    blobs.delete("nothing/here").await.expect("deleting a missing blob");
}

pub async fn overwrite_replaces_content_and_etag(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let first = blobs
        .put("over", reader(b"first".to_vec()), PARQUET)
        .await
        .expect("first put");
    let second = blobs
        .put("over", reader(b"second!".to_vec()), PARQUET)
        .await
        .expect("second put");

    assert_ne!(first.etag, second.etag);
    assert_eq!(second.size, 7);
    assert_eq!(read_all(blobs, "over", None).await, b"second!".to_vec());
}

pub async fn failed_put_keeps_previous_blob(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let original = random_bytes(10_000);
    let before = blobs.put("keep", reader(original.clone()), PARQUET).await.expect("put");

    let failing: BlobReader = Box::pin(FailingReader { left: 6 * 1024 * 1024 });
    let result = blobs.put("keep", failing, PARQUET).await;

    assert!(result.is_err(), "a put whose body fails must fail");
    assert_eq!(blobs.head("keep").await.expect("head"), Some(before));
    assert_eq!(read_all(blobs, "keep", None).await, original);
    let result = blobs.put("never", Box::pin(FailingReader { left: 10 }), PARQUET).await;
    assert!(result.is_err());
    assert_eq!(blobs.head("never").await.expect("head"), None);
}

pub async fn multipart_sized_blob_round_trips(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let bytes = random_bytes(11 * 1024 * 1024 + 3);

    let meta = blobs.put("large", reader(bytes.clone()), PARQUET).await.expect("put");

    assert_eq!(meta.size, bytes.len() as u64);
    let boundary = 5 * 1024 * 1024;
    let range = ByteRange::Bounded {
        start: boundary as u64 - 10,
        end: boundary as u64 + 9,
    };
    assert_eq!(
        read_all(blobs, "large", Some(range)).await,
        bytes[boundary - 10..boundary + 10].to_vec()
    );
    assert_eq!(read_all(blobs, "large", None).await, bytes);
}

pub async fn readers_never_see_partial_blobs(adapters: &Adapters) {
    let blobs = adapters.blobs.clone();
    let old = vec![b'a'; 3 * 1024 * 1024];
    let new = vec![b'b'; 3 * 1024 * 1024 + 1];
    blobs.put("swap", reader(old.clone()), PARQUET).await.expect("put old");

    let writer = {
        let blobs = blobs.clone();
        let new = new.clone();
        tokio::spawn(async move { blobs.put("swap", reader(new), PARQUET).await })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 3 {
        let body = read_all(&*blobs, "swap", None).await;
        assert!(
            body == old || body == new,
            "a read saw {} bytes of mixed content",
            body.len()
        );
        reads += 1;
    }

    writer.await.expect("writer task").expect("put new");
    assert_eq!(read_all(&*blobs, "swap", None).await, new);
}

pub async fn delete_and_delete_prefix(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    for key in ["ws/1/a", "ws/1/b/c", "ws/10/a", "ws/2/a"] {
        blobs.put(key, reader(b"x".to_vec()), PARQUET).await.expect("put");
    }

    blobs.delete("ws/2/a").await.expect("delete");
    let removed = blobs.delete_prefix("ws/1/").await.expect("delete prefix");

    assert_eq!(removed, 2);
    assert_eq!(blobs.head("ws/2/a").await.expect("head"), None);
    assert_eq!(blobs.head("ws/1/a").await.expect("head"), None);
    assert_eq!(blobs.head("ws/1/b/c").await.expect("head"), None);
    assert!(
        blobs.head("ws/10/a").await.expect("head").is_some(),
        "a sibling prefix is kept"
    );
}

pub async fn invalid_keys_are_rejected(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    for key in ["", "../escape", "a//b", "/absolute", "with space"] {
        let result = blobs.put(key, reader(b"x".to_vec()), PARQUET).await;
        assert!(
            matches!(result, Err(BlobError::InvalidKey { .. })),
            "{key:?}: {:?}",
            result.err()
        );
    }
}

pub async fn presigned_url_serves_ranges(adapters: &Adapters) {
    let blobs = &*adapters.blobs;
    let bytes = random_bytes(4096);
    blobs
        .put("signed/file.parquet", reader(bytes.clone()), PARQUET)
        .await
        .expect("put");

    let Some(url) = blobs
        .presign_get("signed/file.parquet", Duration::from_secs(60))
        .await
        .expect("presign")
    else {
        // The adapter has no signed URLs; its stream route serves ranges itself.
        return;
    };

    let client = crate::http_client();
    let response = client
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("ranged GET");
    assert_eq!(response.status().as_u16(), 206);
    let content_range = response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_range.as_deref(), Some("bytes 100-199/4096"));
    assert_eq!(response.bytes().await.expect("body").to_vec(), bytes[100..200].to_vec());

    let response = client
        .get(&url)
        .header("Range", "bytes=-16")
        .send()
        .await
        .expect("suffix GET");
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(response.bytes().await.expect("body").to_vec(), bytes[4080..].to_vec());

    let tampered = url.replacen("file.parquet", "other.parquet", 1);
    let response = client.get(&tampered).send().await.expect("tampered GET");
    assert!(
        response.status().is_client_error(),
        "a URL signed for another key is refused"
    );
}
