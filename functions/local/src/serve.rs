//! The HTTP server loop of the local server, with the limits `axum::serve` does not set:
//! a deadline for request headers (which also closes idle keep-alive connections), a cap
//! on open connections, and a bounded drain on shutdown.
//!
//! NOTE: requests that hyper rejects before routing (a URI over 64 KiB, more than 100
//! headers, a malformed request line) get hyper's bare 414, 431 or 400 without the JSON
//! error body or an `x-request-id`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mako_core::http::ClientAddr;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits of the server loop.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Time a client has to send a request's headers, including the wait for the next
    /// request on a keep-alive connection.
    pub header_timeout: Duration,
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

/// Pause after a failed accept (such as running out of file descriptors), so the loop does
/// not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` completes, then drains open connections for
/// at most `limits.shutdown_grace`.
pub async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, shutdown: impl Future<Output = ()>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = builder.http1_only();
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };

        let builder = builder.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            // hyper's header deadline starts with the first byte, so a client that connects and
            // sends nothing is timed out here.
            let mut first = [0u8; 1];
            let first_byte = tokio::time::timeout(header_timeout, stream.peek(&mut first)).await;
            if !matches!(first_byte, Ok(Ok(1))) {
                tracing::debug!(client = %remote, "closed a connection that sent nothing");
                return;
            }

            let service = router.map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(Some(remote.ip())));
                request
            });
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(client = %remote, error = %error, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    let open = slots_in_use(&slots, limits.max_connections);
    if open > 0 {
        tracing::info!(open, "waiting for open connections to finish");
    }
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = slots_in_use(&slots, limits.max_connections),
            grace_secs = limits.shutdown_grace.as_secs(),
            "closed connections that were still open after the shutdown grace period"
        );
    }
}

fn slots_in_use(slots: &Semaphore, max: usize) -> usize {
    max.saturating_sub(slots.available_permits())
}
