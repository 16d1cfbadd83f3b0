//! What a query execution takes and returns, and the caps every driver applies while it
//! reads rows.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::params::ParamValue;
use crate::value::{Cell, Column};

/// One execution of query text on a connection.
#[derive(Clone, Debug)]
pub struct ExecuteRequest {
    pub query: String,
    /// Database to run in, when the connection's default is not wanted.
    pub database: Option<String>,
    /// Rows returned at most, over all result sets; more make the result `truncated`.
    pub max_rows: usize,
    /// Approximate bytes of values returned at most; more make the result `truncated`.
    pub max_bytes: usize,
    /// Time limit of the whole execution, enforced on the database server.
    pub timeout: Duration,
    /// Run read-only: writes are refused by the engine and by a statement check.
    pub read_only: bool,
    /// Values bound to the placeholders of `query`, in order.
    pub params: Vec<ParamValue>,
}

/// One result set, or the outcome of one statement that returns no rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub row_count: usize,
    pub truncated: bool,
    /// Rows inserted, updated or deleted, for statements that return no rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_rows: Option<u64>,
    /// The statement that produced this result, shortened to 200 characters.
    pub statement: String,
}

/// Every result set of an execution, in statement order.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteOutput {
    pub result_sets: Vec<ResultSet>,
    pub elapsed_ms: u64,
    /// Version string of the server, when the driver learned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
}

/// Shortens a statement for [`ResultSet::statement`].
pub fn statement_label(text: &str) -> String {
    let single_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if single_line.chars().count() <= 200 {
        single_line
    } else {
        single_line.chars().take(199).collect::<String>() + "…"
    }
}

/// Counts rows and bytes across result sets and says when to stop reading.
#[derive(Debug)]
pub struct Caps {
    max_rows: usize,
    max_bytes: usize,
    rows: usize,
    bytes: usize,
    pub deadline: Instant,
}

impl Caps {
    pub fn new(request: &ExecuteRequest) -> Caps {
        Caps {
            max_rows: request.max_rows,
            max_bytes: request.max_bytes,
            rows: 0,
            bytes: 0,
            deadline: Instant::now() + request.timeout,
        }
    }

    /// Counts one row of `bytes`; returns false when it does not fit, so the result is
    /// truncated before it.
    pub fn admit(&mut self, bytes: usize) -> bool {
        if self.rows >= self.max_rows || self.bytes.saturating_add(bytes) > self.max_bytes {
            return false;
        }
        self.rows += 1;
        self.bytes += bytes;
        true
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Approximate size of a row in the response.
pub fn row_size(row: &[Cell]) -> usize {
    row.iter().map(Cell::approximate_size).sum::<usize>() + row.len()
}
