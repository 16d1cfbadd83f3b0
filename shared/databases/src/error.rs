//! Errors of the connectors, in plain words for the person who configured the connection.
//!
//! Drivers translate their errors here, at the call site, so the API can pick the status:
//! a configuration problem is 400, an unreachable database 502, a query the database rejects
//! 422, a timeout 504, a write on a read-only connection 403.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A setting is missing or invalid; `field` names it.
    #[error("{message}")]
    InvalidConfig { field: &'static str, message: String },
    /// The address guard refused the host.
    #[error("{message}")]
    AddressRefused { message: String },
    #[error("Cannot reach the database at {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("The database rejected the user name or password.")]
    AuthenticationFailed,
    #[error("The database requires an encrypted connection; set the TLS mode to require (or stricter).")]
    TlsRequired,
    #[error("The TLS handshake failed: {reason}")]
    TlsFailed { reason: String },
    #[error("The database {name:?} does not exist on this server.")]
    UnknownDatabase { name: String },
    /// The database rejected the query; `message` is the database's own text.
    #[error("{message}")]
    QueryFailed { message: String, code: Option<String> },
    #[error("The query was stopped after the time limit of {} ms.", timeout.as_millis())]
    Timeout { timeout: Duration },
    #[error("This query cannot run here, because {reason}: {statement}")]
    ReadOnly { reason: &'static str, statement: String },
    /// A parameter value is missing or does not match its type; `name` is the parameter.
    #[error("{message}")]
    InvalidParameter { name: String, message: String },
    /// The query text could not be parsed (MongoDB shell syntax, unterminated SQL strings).
    #[error("{message}")]
    InvalidQuery { message: String },
    /// The results of all running executions already use the process's result memory.
    #[error("The server is holding as many query results as MAKO_EXECUTE_MEMORY_BYTES allows; retry in a moment.")]
    ResultMemoryFull,
    /// Every pooled connection to the database stayed busy until the wait ran out.
    #[error(
        "All {size} connections to the database at {target} stayed busy for {waited_ms} ms; retry shortly, or raise MAKO_DATABASE_POOL_SIZE."
    )]
    PoolBusy { target: String, size: u32, waited_ms: u128 },
    /// The client read a streamed result so slowly that `max_bytes` waited unsent.
    #[error("The client read the export too slowly: {max_bytes} bytes were waiting to be sent.")]
    SlowClient { max_bytes: usize },
    /// The client went away while the result was being sent.
    #[error("The client disconnected before the whole result was sent.")]
    Disconnected,
    #[error("connector failure")]
    Internal(#[source] anyhow::Error),
}

impl ConnectorError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            message: message.into(),
        }
    }
}

/// Shortens a database message for the response: one line, at most 1,000 characters.
pub fn tidy_message(message: &str) -> String {
    let single_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if single_line.chars().count() <= 1000 {
        single_line
    } else {
        single_line.chars().take(1000).collect::<String>() + "…"
    }
}
