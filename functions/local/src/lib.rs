//! The local server: every route family mounted in one process over the embedded adapters.
//! Background work runs in the same process: the maintenance task, the job worker and the
//! scheduler tick.

mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use mako_core::config::{Config, Environment, Lookup, parse_var};
use mako_core::{AppState, Ports};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use serve::ServerLimits;

/// Every route family. Adding a family is one line here.
const FAMILIES: &[fn(AppState) -> Router] = &[
    mako_auth::router,
    mako_workspaces::router,
    mako_connectors::router,
    mako_execute::router,
    mako_consoles::router,
    mako_dashboards::router,
    mako_chats::router,
    mako_agent::router,
];

/// How often expired items are purged and interrupted deletions finished.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// Settings of the local server besides the shared [`Config`].
#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// `MAKO_ADDR`: address to listen on.
    pub addr: SocketAddr,
    /// `MAKO_DATA_DIR`: folder holding the database, blobs and secrets.
    pub data_dir: PathBuf,
    /// `MAKO_QUEUE_MAX_ATTEMPTS`: deliveries before a job is dead-lettered.
    pub queue_max_attempts: u32,
    /// `MAKO_HEADER_TIMEOUT_SECS`, `MAKO_MAX_CONNECTIONS` and `MAKO_SHUTDOWN_GRACE_SECS`.
    pub limits: ServerLimits,
    /// `MAKO_BODY_TIMEOUT_SECS`: time a client has to send a request body.
    pub body_timeout: Duration,
    /// `MAKO_SAMPLE_DATABASE`: generate the sample database and connect new workspaces to it.
    pub sample_database: bool,
    /// `MAKO_SCHEDULER_TICK_SECS`: how often scheduled refreshes are looked for.
    pub scheduler_tick: Duration,
    /// `MAKO_RUN_WORKER`: build queued jobs in this process.
    pub run_worker: bool,
}

/// Reads a whole number of seconds within `range`.
fn parse_secs(
    lookup: &dyn Lookup,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Duration> {
    let secs: u64 = parse_var(lookup, variable, default)?;
    if !range.contains(&secs) {
        anyhow::bail!(
            "{variable}={secs} is invalid: expected a whole number of seconds from {} to {}",
            range.start(),
            range.end()
        );
    }
    Ok(Duration::from_secs(secs))
}

impl LocalSettings {
    pub fn from_lookup(lookup: &dyn Lookup) -> anyhow::Result<Self> {
        let addr: SocketAddr = parse_var(lookup, "MAKO_ADDR", SocketAddr::from(([127, 0, 0, 1], 8787)))?;
        let data_dir: PathBuf = parse_var(lookup, "MAKO_DATA_DIR", PathBuf::from(".mako"))?;
        let queue_max_attempts: u32 = parse_var(lookup, "MAKO_QUEUE_MAX_ATTEMPTS", 5)?;
        if !(1..=100).contains(&queue_max_attempts) {
            anyhow::bail!("MAKO_QUEUE_MAX_ATTEMPTS={queue_max_attempts} is invalid: expected 1 to 100");
        }
        let max_connections: usize = parse_var(lookup, "MAKO_MAX_CONNECTIONS", 1024)?;
        if !(1..=100_000).contains(&max_connections) {
            anyhow::bail!("MAKO_MAX_CONNECTIONS={max_connections} is invalid: expected 1 to 100000");
        }
        let limits = ServerLimits {
            header_timeout: parse_secs(lookup, "MAKO_HEADER_TIMEOUT_SECS", 30, 1..=3600)?,
            max_connections,
            shutdown_grace: parse_secs(lookup, "MAKO_SHUTDOWN_GRACE_SECS", 10, 0..=3600)?,
        };
        let body_timeout = parse_secs(lookup, "MAKO_BODY_TIMEOUT_SECS", 30, 1..=3600)?;
        let sample_database: bool = parse_var(lookup, "MAKO_SAMPLE_DATABASE", true)?;
        let scheduler_tick = parse_secs(lookup, "MAKO_SCHEDULER_TICK_SECS", 60, 1..=3600)?;
        let run_worker: bool = parse_var(lookup, "MAKO_RUN_WORKER", true)?;
        Ok(Self {
            addr,
            data_dir,
            queue_max_attempts,
            limits,
            body_timeout,
            sample_database,
            scheduler_tick,
            run_worker,
        })
    }

    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(&Environment)
    }
}

/// A built server, bound to its address and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    store: Arc<mako_embedded::SqliteStore>,
    data_dir: PathBuf,
    limits: ServerLimits,
    scheduler_tick: Duration,
    run_worker: bool,
    /// Keeps the embedded adapters (and the data folder's lock) alive.
    _embedded: mako_embedded::Embedded,
}

impl Application {
    /// Opens the data folder, builds every route family and binds the listener. Port 0
    /// binds a free port (tests use it).
    pub async fn build(settings: LocalSettings, lookup: &dyn Lookup) -> anyhow::Result<Self> {
        // Every setting is checked before the port is bound, so a bad value is reported as
        // such even when the port is taken.
        Config::from_lookup_with_default(lookup, Some(&format!("http://{}", settings.addr)))?;
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("failed to listen on {}; set MAKO_ADDR to a free address", settings.addr))?;
        let local_addr = listener.local_addr()?;
        let default_url = format!("http://{local_addr}");
        let mut config = Config::from_lookup_with_default(lookup, Some(&default_url))?;

        let options = mako_embedded::Options {
            queue_max_attempts: settings.queue_max_attempts,
        };
        let embedded = mako_embedded::open(&settings.data_dir, options).await?;
        prepare_databases(&mut config, &settings).await?;
        let state = AppState::new(
            config.clone(),
            Ports {
                store: embedded.store.clone(),
                blobs: embedded.blobs.clone(),
                queue: embedded.queue.clone(),
                secrets: embedded.secrets.clone(),
            },
        );

        let routes = FAMILIES
            .iter()
            .fold(Router::new(), |router, family| router.merge(family(state.clone())));
        let router =
            mako_core::http::serve_api(routes, &config).layer(RequestBodyTimeoutLayer::new(settings.body_timeout));

        Ok(Self {
            listener,
            router,
            state,
            store: embedded.store.clone(),
            data_dir: settings.data_dir,
            limits: settings.limits,
            scheduler_tick: settings.scheduler_tick,
            run_worker: settings.run_worker,
            _embedded: embedded,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish within the
    /// shutdown grace period.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let mut background = vec![
            spawn_maintenance(self.state.clone(), self.store.clone()),
            mako_jobs::scheduler::spawn_local(self.state.clone(), self.scheduler_tick),
        ];
        if self.run_worker {
            background.push(mako_jobs::worker::spawn_local(self.state.clone()));
        }
        serve::serve(self.listener, self.router, self.limits, shutdown).await;
        for task in background {
            task.abort();
        }
        Ok(())
    }
}

/// Points SQLite connections at `<data>/sqlite` unless `MAKO_SQLITE_DIR` says otherwise, and
/// generates the sample database on first start.
async fn prepare_databases(config: &mut Config, settings: &LocalSettings) -> anyhow::Result<()> {
    let connectors = &mut config.connectors;
    let sqlite_dir = connectors
        .sqlite_dir
        .get_or_insert_with(|| settings.data_dir.join("sqlite"))
        .clone();
    std::fs::create_dir_all(&sqlite_dir)
        .with_context(|| format!("failed to create the SQLite folder {}", sqlite_dir.display()))?;

    if settings.sample_database {
        let path = settings.data_dir.join(mako_databases::sample::SAMPLE_FILE_NAME);
        let summary = mako_databases::sample::ensure_sample_database(&path)
            .await
            .with_context(|| format!("failed to generate the sample database {}", path.display()))?;
        tracing::debug!(path = %path.display(), summary = ?summary, "sample database ready");
        connectors.sample_database = Some(path);
    }
    Ok(())
}

fn spawn_maintenance(state: AppState, store: Arc<mako_embedded::SqliteStore>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            ticker.tick().await;
            match store.purge_expired().await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "purged expired items"),
                Err(error) => tracing::warn!(error = ?error, "failed to purge expired items"),
            }
            mako_core::maintenance::finish_pending_deletions(&state).await;
        }
    })
}
