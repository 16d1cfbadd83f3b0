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

/// Returns the path of a script in `tests/js`, or `None` when its npm package is not
/// installed there. Under `MAKO_REQUIRE_SERVICES=1` a missing package fails the test.
pub fn node_script(package: &str, script: &str) -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    if dir.join("node_modules").join(package).is_dir() {
        return Some(dir.join(script));
    }
    assert!(
        !services::services_required(),
        "the npm package {package} is not installed; run `npm ci` in tests/js (.ci/run does)"
    );
    eprintln!("skipping the {script} check: run `npm ci` in tests/js");
    None
}
