//! The checks every route that runs a query shares: the request's limits checked against the
//! server's, checks on the query text, and the binding of `{{name}}` parameters in the
//! connection's dialect. `/api/execute` and saved consoles both go through here, so they
//! accept and refuse the same things.

use std::collections::BTreeMap;
use std::time::Duration;

use mako_core::config::ConnectorSettings;
use mako_core::{ApiError, ApiResult};
use serde_json::{Map, Value};

use crate::execute::ExecuteRequest;
use crate::params::{ParamValue, Style, compile, request_value};
use crate::settings::ConnectionKind;

/// Maximum query text length, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024 * 1024;
/// Maximum parameters one request may bind.
pub const MAX_PARAMS: usize = 1000;
/// Maximum values bound to one query, lists counted element by element. SQLite allows 32,766
/// by default, and PostgreSQL and MySQL 65,535.
pub const MAX_BOUND_VALUES: usize = 32_766;
/// Shortest time limit a request may set.
const MIN_TIMEOUT_MS: u64 = 100;

/// Row cap and time limit of one execution.
#[derive(Clone, Copy, Debug)]
pub struct RunLimits {
    pub max_rows: usize,
    pub timeout: Duration,
}

/// Checks a request's `limit` and `timeoutMs` against the server's maxima; absent ones take
/// the server's defaults.
pub fn limits(policy: &ConnectorSettings, limit: Option<u64>, timeout_ms: Option<u64>) -> ApiResult<RunLimits> {
    let max_rows = match limit {
        None => policy.default_rows,
        Some(limit) if limit >= 1 && limit <= policy.max_rows as u64 => limit as usize,
        Some(limit) => {
            return Err(ApiError::invalid_field(
                "limit",
                format!("limit must be between 1 and {}, got {limit}.", policy.max_rows),
            ));
        }
    };
    let max_timeout = u64::try_from(policy.max_timeout.as_millis()).unwrap_or(u64::MAX);
    let timeout = match timeout_ms {
        None => policy.default_timeout,
        Some(ms) if (MIN_TIMEOUT_MS..=max_timeout).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(ApiError::invalid_field(
                "timeoutMs",
                format!("timeoutMs must be between {MIN_TIMEOUT_MS} and {max_timeout}, got {ms}."),
            ));
        }
    };
    Ok(RunLimits { max_rows, timeout })
}

/// Checks query text: not empty, not over [`MAX_QUERY_BYTES`]. `field` names it in errors.
pub fn check_query(field: &str, query: &str) -> ApiResult<()> {
    if query.trim().is_empty() {
        return Err(ApiError::invalid_field(field, "The query is empty."));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::invalid_field(
            field,
            format!(
                "The query is {} bytes; at most {MAX_QUERY_BYTES} are accepted.",
                query.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a database name given instead of the connection's own.
pub fn check_database(database: &str) -> ApiResult<()> {
    if database.is_empty() || database.len() > 256 || database.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "database",
            "The database must be 1 to 256 bytes without control characters.",
        ));
    }
    Ok(())
}

/// Reads the `params` of an ad-hoc request: `{"type": …, "value": …}` objects are checked
/// against their type, other values are taken as they are.
pub fn request_values(params: Option<&Map<String, Value>>) -> ApiResult<BTreeMap<String, ParamValue>> {
    let Some(params) = params else {
        return Ok(BTreeMap::new());
    };
    if params.len() > MAX_PARAMS {
        return Err(ApiError::invalid_field(
            "params",
            format!("At most {MAX_PARAMS} parameters are accepted."),
        ));
    }
    let mut values = BTreeMap::new();
    for (name, value) in params {
        values.insert(name.clone(), request_value(name, value)?);
    }
    Ok(values)
}

/// Query text and values ready for a driver.
#[derive(Debug)]
pub struct Bound {
    pub query: String,
    /// Values of the driver's placeholders, in order (SQL).
    pub params: Vec<ParamValue>,
    /// Values by name, for drivers that resolve `{{name}}` themselves (MongoDB).
    pub named_params: BTreeMap<String, ParamValue>,
}

/// Replaces `{{name}}` placeholders with the driver's own and orders the values to bind. A
/// placeholder without a value, or a value without a placeholder, is refused.
pub fn bind(kind: ConnectionKind, query: &str, values: BTreeMap<String, ParamValue>) -> ApiResult<Bound> {
    let style = match kind {
        ConnectionKind::Postgres => Style::Numbered,
        ConnectionKind::Mysql => Style::QuestionMySql,
        ConnectionKind::Sqlite => Style::Question,
        // The MongoDB parser places typed values where the placeholders stand.
        ConnectionKind::Mongodb => {
            return Ok(Bound {
                query: query.to_owned(),
                params: Vec::new(),
                named_params: values,
            });
        }
    };
    let (query, params) = compile(query, style, &values)?;
    if params.len() > MAX_BOUND_VALUES {
        return Err(ApiError::invalid_field(
            "params",
            format!(
                "The parameters bind {} values, lists counted element by element; at most {MAX_BOUND_VALUES} are accepted.",
                params.len()
            ),
        ));
    }
    Ok(Bound {
        query,
        params,
        named_params: BTreeMap::new(),
    })
}

impl Bound {
    /// Builds the driver request that runs this text within `limits` and `max_bytes`.
    pub fn into_request(
        self,
        database: Option<String>,
        limits: RunLimits,
        max_bytes: usize,
        read_only: bool,
    ) -> ExecuteRequest {
        ExecuteRequest {
            query: self.query,
            database,
            max_rows: limits.max_rows,
            max_bytes,
            timeout: limits.timeout,
            read_only,
            params: self.params,
            named_params: self.named_params,
        }
    }
}
