//! Creates the Mako resources in a local AWS emulator and prints the environment that
//! points the AWS adapters at them, as `export` lines for a shell:
//!
//! ```sh
//! eval "$(mako-provision --endpoint http://127.0.0.1:5000)"
//! ```
//!
//! Deployments to AWS create their resources with the SAM template instead.

use std::io::Write;
use std::process::ExitCode;

use mako_aws::Settings;
use mako_aws::provision::{Resources, provision};

const USAGE: &str = "\
Usage: mako-provision --endpoint URL [--prefix NAME] [--region REGION] [--queue-max-attempts N]

Creates the table, bucket, queues and secret in an AWS emulator unless they exist, and
prints export lines for MAKO_TABLE, MAKO_BUCKET, MAKO_QUEUE_URL,
MAKO_DEAD_LETTER_QUEUE_URL, MAKO_SECRET_ID, MAKO_QUEUE_MAX_ATTEMPTS, AWS_REGION and
MAKO_AWS_ENDPOINT.

Options:
  --endpoint URL            emulator endpoint, for example http://127.0.0.1:5000 (required)
  --prefix NAME             resource name prefix: lowercase letters, digits and '-' (default: mako)
  --region REGION           AWS region (default: us-east-1)
  --queue-max-attempts N    deliveries before a job moves to the dead-letter queue, 1 to 100 (default: 5)
  -h, --help                print this help";

struct Options {
    endpoint: String,
    prefix: String,
    region: String,
    queue_max_attempts: u32,
}

/// Parses the arguments after the program name. `Ok(None)` means that help was requested.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut endpoint = None;
    let mut prefix = "mako".to_owned();
    let mut region = "us-east-1".to_owned();
    let mut queue_max_attempts = 5;

    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("missing value after {flag}"))?;
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value),
            "--prefix" => prefix = value,
            "--region" => region = value,
            "--queue-max-attempts" => {
                queue_max_attempts = value
                    .parse()
                    .ok()
                    .filter(|attempts| (1..=100).contains(attempts))
                    .ok_or_else(|| format!("invalid --queue-max-attempts {value:?}: expected 1 to 100"))?;
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }

    let endpoint = endpoint.ok_or("missing --endpoint: this tool provisions emulators only")?;
    Ok(Some(Options {
        endpoint,
        prefix,
        region,
        queue_max_attempts,
    }))
}

/// Quotes a value for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn export_lines(settings: &Settings, endpoint: &str) -> String {
    let variables = [
        ("MAKO_TABLE", settings.table.as_str()),
        ("MAKO_BUCKET", settings.bucket.as_str()),
        ("MAKO_QUEUE_URL", settings.queue_url.as_str()),
        ("MAKO_DEAD_LETTER_QUEUE_URL", settings.dead_letter_queue_url.as_str()),
        ("MAKO_SECRET_ID", settings.secret_id.as_str()),
        ("MAKO_QUEUE_MAX_ATTEMPTS", &settings.queue_max_attempts.to_string()),
        ("AWS_REGION", settings.region.as_str()),
        ("MAKO_AWS_ENDPOINT", endpoint),
    ]
    .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)));
    variables.concat()
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            let _ = writeln!(std::io::stderr(), "mako-provision: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let resources = Resources::named(&options.prefix);
    let result = provision(
        Some(&options.endpoint),
        &options.region,
        &resources,
        options.queue_max_attempts,
    )
    .await;
    match result {
        Ok(settings) => {
            let lines = export_lines(&settings, &options.endpoint);
            if let Err(error) = std::io::stdout().write_all(lines.as_bytes()) {
                let _ = writeln!(std::io::stderr(), "mako-provision: writing the output failed: {error}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "mako-provision: provisioning failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        parse_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn defaults_apply() {
        let options = parse(&["--endpoint", "http://127.0.0.1:5123"])
            .expect("valid")
            .expect("options");
        assert_eq!(options.endpoint, "http://127.0.0.1:5123");
        assert_eq!(options.prefix, "mako");
        assert_eq!(options.region, "us-east-1");
        assert_eq!(options.queue_max_attempts, 5);
    }

    #[test]
    fn every_flag_is_read() {
        let options = parse(&[
            "--prefix",
            "dev",
            "--region",
            "eu-west-1",
            "--queue-max-attempts",
            "3",
            "--endpoint",
            "http://127.0.0.1:1",
        ])
        .expect("valid")
        .expect("options");
        assert_eq!(options.prefix, "dev");
        assert_eq!(options.region, "eu-west-1");
        assert_eq!(options.queue_max_attempts, 3);
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let cases: [&[&str]; 5] = [
            &[],
            &["--prefix", "dev"],
            &["--endpoint"],
            &["--endpoint", "http://127.0.0.1:1", "--queue-max-attempts", "0"],
            &["--endpoint", "http://127.0.0.1:1", "--verbose", "yes"],
        ];
        for args in cases {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn help_is_recognised() {
        assert!(matches!(parse(&["--help"]), Ok(None)));
        assert!(matches!(parse(&["-h"]), Ok(None)));
    }

    #[test]
    fn values_are_shell_quoted() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
