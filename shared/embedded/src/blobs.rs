//! `Blobs` in a folder.
//!
//! Each blob is an immutable content file under `objects/`, named by a fresh id, plus a small
//! reference file under `refs/<key>.json` that names the content file and keeps its metadata.
//! A put writes and syncs the new content file, then atomically renames a new reference over
//! the old one, then removes the old content file. A reader that opened the old content keeps
//! reading it (Linux keeps an open file alive after unlinking), so no reader sees a partial
//! or mixed blob. A content file that no reference names (a put interrupted by a crash) is
//! removed the next time the folder is opened.

use std::collections::HashSet;
use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mako_core::ports::blobs::validate_key;
use mako_core::ports::{BlobError, BlobMeta, BlobRead, BlobReader, Blobs, ByteRange};
use serde::{Deserialize, Serialize};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct FsBlobs {
    refs: PathBuf,
    objects: PathBuf,
    temp: PathBuf,
    /// Open content files by key, with their references. This process is the folder's only
    /// writer, and every put or delete of a key drops its entry, so an entry is current.
    open_files: std::sync::Mutex<std::collections::HashMap<String, (Reference, Arc<std::fs::File>)>>,
    /// Counts puts and deletes, so that a read that raced one does not cache what it opened.
    generation: std::sync::atomic::AtomicU64,
}

/// Open content files kept at most; the cache empties when it fills.
const MAX_OPEN_FILES: usize = 256;

/// Contents of a reference file.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    object: String,
    size: u64,
    content_type: String,
    last_modified: DateTime<Utc>,
}

impl Reference {
    fn meta(&self) -> BlobMeta {
        BlobMeta {
            size: self.size,
            etag: format!("\"{}\"", self.object),
            content_type: self.content_type.clone(),
            last_modified: self.last_modified,
        }
    }
}

fn io_error(error: std::io::Error) -> BlobError {
    BlobError::backend(error)
}

/// Attempts at reading a blob whose content file is replaced between reading its reference
/// and opening the file.
const OPEN_ATTEMPTS: usize = 3;

/// Ranges up to this size are read into memory by the call that opens the file.
const MAX_BUFFERED_RANGE: u64 = 4 * 1024 * 1024;

/// Source of an open blob's bytes.
enum Content {
    Bytes(Vec<u8>),
    /// Positioned at the start of the range.
    File(std::fs::File),
}

/// Reads the content of a resolved range from an open file, into memory when it is small.
fn read_content(file: &std::fs::File, size: u64, resolved: Option<(u64, u64)>) -> Result<Content, BlobError> {
    use std::io::Seek;
    use std::os::unix::fs::FileExt;
    Ok(match resolved {
        Some((first, last)) if last - first < MAX_BUFFERED_RANGE => {
            let mut bytes = vec![0u8; (last - first + 1) as usize];
            file.read_exact_at(&mut bytes, first).map_err(io_error)?;
            Content::Bytes(bytes)
        }
        None if size < MAX_BUFFERED_RANGE => {
            let mut bytes = vec![0u8; size as usize];
            file.read_exact_at(&mut bytes, 0).map_err(io_error)?;
            Content::Bytes(bytes)
        }
        Some((first, _)) => {
            let mut file = file.try_clone().map_err(io_error)?;
            file.seek(SeekFrom::Start(first)).map_err(io_error)?;
            Content::File(file)
        }
        None => {
            let mut file = file.try_clone().map_err(io_error)?;
            file.rewind().map_err(io_error)?;
            Content::File(file)
        }
    })
}

fn resolve(meta: &BlobMeta, range: Option<ByteRange>) -> Result<Option<(u64, u64)>, BlobError> {
    match range {
        Some(range) => Ok(Some(
            range
                .resolve(meta.size)
                .ok_or(BlobError::RangeNotSatisfiable { size: meta.size })?,
        )),
        None => Ok(None),
    }
}

/// Reads a blob's reference and opens its content file, on a blocking thread.
fn open_blocking(key: &str, reference_path: &Path, objects: &Path) -> Result<(Reference, std::fs::File), BlobError> {
    for _ in 0..OPEN_ATTEMPTS {
        let reference: Reference = match std::fs::read(reference_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(BlobError::backend)?,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(BlobError::NotFound { key: key.to_owned() });
            }
            Err(error) => return Err(io_error(error)),
        };
        match std::fs::File::open(objects.join(&reference.object)) {
            Ok(file) => return Ok((reference, file)),
            // Replaced between reading the reference and opening: read the new reference.
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error(error)),
        }
    }
    Err(BlobError::backend(anyhow::anyhow!(
        "the blob {key} kept changing while being opened"
    )))
}

impl FsBlobs {
    /// Opens (creating) the blob folder and removes content files that no reference names.
    pub async fn open(root: &Path) -> anyhow::Result<Self> {
        let blobs = Self {
            refs: root.join("refs"),
            objects: root.join("objects"),
            temp: root.join("tmp"),
            open_files: std::sync::Mutex::new(std::collections::HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        for dir in [&blobs.refs, &blobs.objects, &blobs.temp] {
            crate::create_private_dir(dir).with_context(|| format!("failed to create {}", dir.display()))?;
        }
        blobs.remove_orphans().await?;
        Ok(blobs)
    }

    /// Drops the open file of a key that was replaced or deleted.
    fn forget_open(&self, key: &str) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut files) = self.open_files.lock() {
            files.remove(key);
        }
    }

    fn reference_path(&self, key: &str) -> PathBuf {
        self.refs.join(format!("{key}.json"))
    }

    async fn read_reference(&self, key: &str) -> Result<Option<Reference>, BlobError> {
        match fs::read(self.reference_path(key)).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(BlobError::backend),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error(error)),
        }
    }

    async fn remove_object(&self, object: &str) {
        let path = self.objects.join(object);
        if let Err(error) = fs::remove_file(&path).await
            && error.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %error, "failed to remove a replaced blob file");
        }
    }

    async fn remove_orphans(&self) -> anyhow::Result<()> {
        let mut referenced = HashSet::new();
        for path in walk_files(&self.refs).await? {
            let bytes = fs::read(&path).await?;
            if let Ok(reference) = serde_json::from_slice::<Reference>(&bytes) {
                referenced.insert(reference.object);
            }
        }

        let mut removed = 0;
        for path in walk_files(&self.objects)
            .await?
            .into_iter()
            .chain(walk_files(&self.temp).await?)
        {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if !referenced.contains(&name) {
                fs::remove_file(&path).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed blob files left by interrupted writes");
        }
        Ok(())
    }

    /// Writes `body` into a new, synced content file and returns its id and size.
    async fn write_object(&self, mut body: BlobReader) -> Result<(String, u64), BlobError> {
        let object = ulid::Ulid::new().to_string();
        let temp_path = self.temp.join(&object);
        let result = async {
            let mut file = create_private_file(&temp_path).await.map_err(io_error)?;
            let size = tokio::io::copy(&mut body, &mut file).await.map_err(BlobError::Body)?;
            file.sync_all().await.map_err(io_error)?;
            fs::rename(&temp_path, self.objects.join(&object))
                .await
                .map_err(io_error)?;
            Ok(size)
        }
        .await;

        match result {
            Ok(size) => Ok((object, size)),
            Err(error) => {
                let _ = fs::remove_file(&temp_path).await;
                Err(error)
            }
        }
    }

    /// Atomically replaces the reference file of `key`.
    async fn write_reference(&self, key: &str, reference: &Reference) -> Result<(), BlobError> {
        let path = self.reference_path(key);
        let parent = path.parent().unwrap_or(&self.refs).to_owned();
        crate::create_private_dir(&parent).map_err(io_error)?;

        let temp_path = self.temp.join(format!("{}.ref", reference.object));
        let json = serde_json::to_vec(reference).map_err(BlobError::backend)?;
        let result = async {
            let mut file = create_private_file(&temp_path).await?;
            file.write_all(&json).await?;
            file.sync_all().await?;
            fs::rename(&temp_path, &path).await?;
            fs::File::open(&parent).await?.sync_all().await
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&temp_path).await;
        }
        result.map_err(io_error)
    }
}

/// Creates (truncating) a file readable and writable only by the owner.
async fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = crate::private_file_options();
    options.write(true).create(true).truncate(true);
    Ok(fs::File::from_std(options.open(path)?))
}

/// Lists every file under `dir`, recursively.
async fn walk_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let mut entries = match fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_type().await?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

#[async_trait]
impl Blobs for FsBlobs {
    async fn put(&self, key: &str, body: BlobReader, content_type: &str) -> Result<BlobMeta, BlobError> {
        validate_key(key)?;
        let previous = self.read_reference(key).await?;

        let (object, size) = self.write_object(body).await?;
        let reference = Reference {
            object,
            size,
            content_type: content_type.to_owned(),
            last_modified: Utc::now(),
        };
        if let Err(error) = self.write_reference(key, &reference).await {
            self.remove_object(&reference.object).await;
            return Err(error);
        }
        self.forget_open(key);

        if let Some(previous) = previous {
            self.remove_object(&previous.object).await;
        }
        Ok(reference.meta())
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>, BlobError> {
        validate_key(key)?;
        Ok(self.read_reference(key).await?.map(|reference| reference.meta()))
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<BlobRead, BlobError> {
        validate_key(key)?;
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let cached = self.open_files.lock().ok().and_then(|files| files.get(key).cloned());
        let reference_path = self.reference_path(key);
        let objects = self.objects.clone();
        let owned_key = key.to_owned();
        // One blocking call opens the file (unless it is open already) and reads a range up
        // to `MAX_BUFFERED_RANGE`: the byte-range reads of Parquet readers are many and
        // small, and each trip to the blocking pool costs more than the read itself.
        let (reference, file, resolved, content) = tokio::task::spawn_blocking(move || {
            let (reference, file) = match cached {
                Some((reference, file)) => (reference, file),
                None => {
                    let (reference, file) = open_blocking(&owned_key, &reference_path, &objects)?;
                    (reference, Arc::new(file))
                }
            };
            let resolved = resolve(&reference.meta(), range)?;
            let content = read_content(&file, reference.size, resolved)?;
            Ok::<_, BlobError>((reference, file, resolved, content))
        })
        .await
        .map_err(|error| BlobError::backend(anyhow::anyhow!("the blob read task failed: {error}")))??;
        if let Ok(mut files) = self.open_files.lock()
            && self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
        {
            if files.len() >= MAX_OPEN_FILES {
                files.clear();
            }
            files.entry(key.to_owned()).or_insert_with(|| (reference.clone(), file));
        }
        let meta = reference.meta();
        let (body, buffered): (BlobReader, _) = match content {
            Content::Bytes(bytes) => {
                let bytes = bytes::Bytes::from(bytes);
                (Box::pin(std::io::Cursor::new(bytes.clone())), Some(bytes))
            }
            Content::File(file) => {
                let file = fs::File::from_std(file);
                match resolved {
                    Some((first, last)) => (Box::pin(file.take(last - first + 1)), None),
                    None => (Box::pin(file), None),
                }
            }
        };
        Ok(BlobRead {
            meta,
            range: resolved,
            body,
            buffered,
        })
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        validate_key(key)?;
        let Some(reference) = self.read_reference(key).await? else {
            return Ok(());
        };
        let removed = fs::remove_file(self.reference_path(key)).await;
        self.forget_open(key);
        match removed {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io_error(error)),
        }
        self.remove_object(&reference.object).await;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BlobError> {
        let mut removed = 0;
        for path in walk_files(&self.refs).await.map_err(io_error)? {
            let Ok(relative) = path.strip_prefix(&self.refs) else {
                continue;
            };
            let Some(key) = relative.to_str().and_then(|text| text.strip_suffix(".json")) else {
                continue;
            };
            if key.starts_with(prefix) {
                self.delete(key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn presign_get(&self, key: &str, _ttl: Duration) -> Result<Option<String>, BlobError> {
        validate_key(key)?;
        // Local files have no signed URLs; the stream route serves byte ranges itself.
        Ok(None)
    }
}
