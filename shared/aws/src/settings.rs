//! Adapter settings read from the environment.

use anyhow::{Context, bail};

/// Default number of attempts after which a job moves to the dead-letter queue.
const DEFAULT_QUEUE_MAX_ATTEMPTS: u32 = 5;

/// Largest accepted `MAKO_QUEUE_MAX_ATTEMPTS`.
const MAX_QUEUE_MAX_ATTEMPTS: u32 = 100;

/// Names and addresses of the AWS resources the adapters use.
#[derive(Clone, Debug)]
pub struct Settings {
    /// AWS region (`AWS_REGION`, default `us-east-1`).
    pub region: String,
    /// Endpoint URL of an emulator (`MAKO_AWS_ENDPOINT`), or `None` on AWS.
    pub endpoint: Option<String>,
    /// DynamoDB table name (`MAKO_TABLE`).
    pub table: String,
    /// S3 bucket name (`MAKO_BUCKET`).
    pub bucket: String,
    /// URL of the SQS FIFO job queue (`MAKO_QUEUE_URL`).
    pub queue_url: String,
    /// URL of the SQS FIFO dead-letter queue (`MAKO_DEAD_LETTER_QUEUE_URL`).
    pub dead_letter_queue_url: String,
    /// Name or ARN of the Secrets Manager secret (`MAKO_SECRET_ID`).
    pub secret_id: String,
    /// Attempts after which a job moves to the dead-letter queue (`MAKO_QUEUE_MAX_ATTEMPTS`,
    /// 1 to 100, default 5).
    pub queue_max_attempts: u32,
}

impl Settings {
    /// Reads the settings from the process environment.
    ///
    /// `MAKO_TABLE`, `MAKO_BUCKET`, `MAKO_QUEUE_URL`, `MAKO_DEAD_LETTER_QUEUE_URL` and
    /// `MAKO_SECRET_ID` are required, and the error names the first one missing.
    pub fn from_env() -> anyhow::Result<Settings> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value or `None`.
    /// Empty and blank values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let optional = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let required =
            |name: &str| optional(name).with_context(|| format!("the environment variable {name} is missing or empty"));

        let queue_max_attempts = match optional("MAKO_QUEUE_MAX_ATTEMPTS") {
            None => DEFAULT_QUEUE_MAX_ATTEMPTS,
            Some(text) => parse_max_attempts(&text)?,
        };

        Ok(Settings {
            region: optional("AWS_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint: optional("MAKO_AWS_ENDPOINT"),
            table: required("MAKO_TABLE")?,
            bucket: required("MAKO_BUCKET")?,
            queue_url: required("MAKO_QUEUE_URL")?,
            dead_letter_queue_url: required("MAKO_DEAD_LETTER_QUEUE_URL")?,
            secret_id: required("MAKO_SECRET_ID")?,
            queue_max_attempts,
        })
    }
}

fn parse_max_attempts(text: &str) -> anyhow::Result<u32> {
    let Ok(value) = text.parse::<u32>() else {
        bail!("MAKO_QUEUE_MAX_ATTEMPTS is {text:?}, expected a whole number from 1 to {MAX_QUEUE_MAX_ATTEMPTS}");
    };
    if !(1..=MAX_QUEUE_MAX_ATTEMPTS).contains(&value) {
        bail!("MAKO_QUEUE_MAX_ATTEMPTS is {value}, expected a whole number from 1 to {MAX_QUEUE_MAX_ATTEMPTS}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn complete() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("MAKO_TABLE", "table"),
            ("MAKO_BUCKET", "bucket"),
            ("MAKO_QUEUE_URL", "http://127.0.0.1:5123/123456789012/jobs.fifo"),
            (
                "MAKO_DEAD_LETTER_QUEUE_URL",
                "http://127.0.0.1:5123/123456789012/jobs-dlq.fifo",
            ),
            ("MAKO_SECRET_ID", "secret"),
        ])
    }

    fn read(vars: &HashMap<&'static str, &'static str>) -> anyhow::Result<Settings> {
        Settings::from_lookup(|name| vars.get(name).map(|value| (*value).to_owned()))
    }

    #[test]
    fn defaults_apply_to_optional_variables() {
        let settings = read(&complete()).expect("complete settings");

        assert_eq!(settings.region, "us-east-1");
        assert_eq!(settings.endpoint, None);
        assert_eq!(settings.queue_max_attempts, 5);
        assert_eq!(settings.table, "table");
        assert_eq!(settings.secret_id, "secret");
    }

    #[test]
    fn optional_variables_are_read() {
        let mut vars = complete();
        vars.insert("AWS_REGION", "eu-west-1");
        vars.insert("MAKO_AWS_ENDPOINT", "http://127.0.0.1:5123");
        vars.insert("MAKO_QUEUE_MAX_ATTEMPTS", "100");

        let settings = read(&vars).expect("settings");

        assert_eq!(settings.region, "eu-west-1");
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:5123"));
        assert_eq!(settings.queue_max_attempts, 100);
    }

    #[test]
    fn missing_variable_is_named() {
        for name in [
            "MAKO_TABLE",
            "MAKO_BUCKET",
            "MAKO_QUEUE_URL",
            "MAKO_DEAD_LETTER_QUEUE_URL",
            "MAKO_SECRET_ID",
        ] {
            let mut vars = complete();
            vars.remove(name);
            let error = read(&vars).expect_err("a required variable is missing");
            assert!(error.to_string().contains(name), "{name}: {error}");

            vars.insert(name, "  ");
            let error = read(&vars).expect_err("a required variable is blank");
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn max_attempts_out_of_range_is_rejected() {
        for value in ["0", "101", "-1", "five", "2.5"] {
            let mut vars = complete();
            vars.insert("MAKO_QUEUE_MAX_ATTEMPTS", value);
            let error = read(&vars).expect_err("an invalid attempt count");
            assert!(
                error.to_string().contains("MAKO_QUEUE_MAX_ATTEMPTS"),
                "{value}: {error}"
            );
        }
    }
}
