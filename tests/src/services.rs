//! Addresses of the real services that some tests need.
//!
//! A service-backed test reads its service's address from an environment variable. When the
//! variable is unset the test prints one "skipped" line and passes, unless
//! `MAKO_REQUIRE_SERVICES=1`, under which it fails instead (CI sets it).

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Returns whether missing services fail tests instead of skipping them.
pub fn services_required() -> bool {
    std::env::var("MAKO_REQUIRE_SERVICES").is_ok_and(|value| value == "1")
}

/// Reads the address of a service from `variable`, or reports the test as skipped.
///
/// # Panics
/// When the variable is unset and `MAKO_REQUIRE_SERVICES=1`.
pub fn service_address(variable: &str, service: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Some(value.trim().to_owned()),
        _ => {
            assert!(
                !services_required(),
                "{service} is required because MAKO_REQUIRE_SERVICES=1, but {variable} is not set"
            );
            report_skip(variable, service);
            None
        }
    }
}

/// Prints the skip line once per variable and process. It writes to stderr directly
/// because the test harness captures `eprintln!` output of passing tests.
fn report_skip(variable: &str, service: &str) {
    static REPORTED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let reported = REPORTED.get_or_init(Default::default);
    let first = reported
        .lock()
        .map(|mut set| set.insert(variable.to_owned()))
        .unwrap_or(true);
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: tests that need {service} are not configured (set {variable})"
        );
    }
}

/// Endpoint of the AWS emulator (moto) for the AWS adapter suites.
pub fn aws_endpoint() -> Option<String> {
    service_address(
        "MAKO_TEST_AWS_ENDPOINT",
        "an AWS emulator (DynamoDB, S3, SQS, Secrets Manager)",
    )
}
