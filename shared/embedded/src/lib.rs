//! Embedded adapters for running Mako on one machine with no cloud: `Store` and `Queue` in
//! one SQLite file, `Blobs` in a folder, `Secrets` in a key file, all under the data folder.
//!
//! Layout of a data folder:
//! - `mako.db` (plus SQLite's `-wal` and `-shm` files): items, counters and jobs;
//! - `blobs/`: blob contents and the small reference files that name them;
//! - `secrets.json`: named secrets, readable only by the owner, with the master key
//!   generated on first start;
//! - `mako.lock`: held while a process uses the folder, so two servers never share it.

mod blobs;
mod database;
mod queue;
mod secrets;
mod store;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

pub use blobs::FsBlobs;
pub use queue::SqliteQueue;
pub use secrets::FileSecrets;
pub use store::SqliteStore;

/// Settings of the embedded adapters.
#[derive(Clone, Debug)]
pub struct Options {
    /// Deliveries after which an unacknowledged job moves to the dead-letter queue.
    pub queue_max_attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self { queue_max_attempts: 5 }
    }
}

/// The four embedded adapters over one data folder.
pub struct Embedded {
    pub store: Arc<SqliteStore>,
    pub queue: Arc<SqliteQueue>,
    pub blobs: Arc<FsBlobs>,
    pub secrets: Arc<FileSecrets>,
    /// Exclusive lock on `mako.lock`, released when the process exits, even by `kill -9`.
    _lock: File,
}

/// Opens (creating it when missing) the data folder at `dir` and every adapter in it.
///
/// Fails when another process holds the folder's lock.
pub async fn open(dir: &Path, options: Options) -> anyhow::Result<Embedded> {
    create_private_dir(dir).with_context(|| format!("failed to create the data folder {}", dir.display()))?;
    let lock = lock_folder(dir)?;

    let pool = database::open(&dir.join("mako.db")).await?;
    let store = Arc::new(SqliteStore::new(pool.clone()));
    let queue = Arc::new(SqliteQueue::new(pool, options.queue_max_attempts));
    let blobs = Arc::new(FsBlobs::open(&dir.join("blobs")).await?);
    let secrets = Arc::new(FileSecrets::open(dir).await?);

    Ok(Embedded {
        store,
        queue,
        blobs,
        secrets,
        _lock: lock,
    })
}

fn lock_folder(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("mako.lock");
    let file = private_file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Mako process is using the data folder {}; stop it or set MAKO_DATA_DIR to another folder",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("failed to lock {}", path.display()))
        }
    }
}

/// Creates a folder (and its parents) readable only by the owner, leaving existing folders'
/// permissions as they are.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Returns options that create files readable and writable only by the owner.
pub(crate) fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Current Unix time in milliseconds.
pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
