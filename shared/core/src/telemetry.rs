//! Logging for processes that are not Lambda functions (Lambda uses the runtime's own
//! subscriber, which follows `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`).

use tracing_subscriber::EnvFilter;

/// Installs a subscriber: level from `RUST_LOG` (default `info`), format from
/// `MAKO_LOG_FORMAT` (`text`, the default, or `json`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("MAKO_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // A second call (tests start several servers) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
