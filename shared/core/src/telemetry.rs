//! Logging for processes that are not Lambda functions (Lambda uses the runtime's own
//! subscriber, which follows `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs a subscriber: level from `RUST_LOG` (default `info`), format from
/// `MAKO_LOG_FORMAT` (`text`, the default, or `json`). Colours are used only when standard
/// output is a terminal. Fails on an invalid value, naming the variable.
pub fn init() -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|error| anyhow::anyhow!("RUST_LOG={directives:?} is invalid: {error}"))?,
        _ => EnvFilter::new("info"),
    };
    let json = match std::env::var("MAKO_LOG_FORMAT").unwrap_or_default().trim() {
        "" | "text" => false,
        "json" => true,
        other => anyhow::bail!("MAKO_LOG_FORMAT={other:?} is invalid: use text or json"),
    };

    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    // A second call (tests start several servers) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}
