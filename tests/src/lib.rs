//! Helpers shared by the end-to-end tests, the port conformance suites and the Lambda
//! fixture tests in `suite/`.

pub mod app;
pub mod conformance;
pub mod databases;
pub mod fake_models;
pub mod fake_oauth;
pub mod fixtures;
pub mod services;

/// Returns an HTTP client for tests; TLS uses rustls with ring, as the product does.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("building the test HTTP client")
}

/// Sends the product's logs to the test output when `MAKO_TEST_LOG=1` (the level comes from
/// `RUST_LOG`, as for the server).
pub fn init_logging() {
    if std::env::var("MAKO_TEST_LOG").is_ok_and(|value| value == "1")
        && let Err(error) = mako_core::telemetry::init()
    {
        panic!("invalid logging settings: {error:#}");
    }
}
