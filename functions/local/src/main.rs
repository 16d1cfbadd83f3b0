//! `mako-local`: the whole API on one machine, over embedded storage.

use std::process::ExitCode;

use mako_core::config::Environment;
use mako_local::{Application, LocalSettings};

#[tokio::main]
async fn main() -> ExitCode {
    // Errors print as one line with their causes, never as a debug dump with a backtrace.
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    mako_core::telemetry::init()?;

    let settings = LocalSettings::from_env()?;
    let app = Application::build(settings, &Environment).await?;
    tracing::info!(
        data_dir = %app.data_dir().display(),
        "Mako is listening on http://{}/api",
        app.local_addr()
    );

    app.run_until(shutdown_signal()).await?;
    tracing::info!("Mako stopped");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "failed to listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}
