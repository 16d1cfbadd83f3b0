//! What a query execution takes and returns, and the caps every driver applies while it
//! reads rows.
//!
//! Drivers hand rows to a [`RowSink`] as they read them, so a consumer can write them out
//! (JSON, CSV, Parquet) without holding the result as values. [`Collect`] is the sink that
//! keeps everything, for small results and tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::ConnectorError;
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
    /// Values bound to the placeholders of `query`, in order (SQL drivers, after
    /// [`crate::params::compile`]).
    pub params: Vec<ParamValue>,
    /// Values of the `{{name}}` placeholders, for drivers that resolve them while parsing
    /// the query (MongoDB).
    pub named_params: BTreeMap<String, ParamValue>,
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
}

/// How one result set ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetEnd {
    pub row_count: usize,
    pub truncated: bool,
    /// Rows inserted, updated or deleted, for statements that return no rows.
    pub affected_rows: Option<u64>,
}

/// Receives the results of an execution while the driver reads them. For each statement,
/// in order: `begin` with its columns, each row, then `end`. An error from the sink stops the
/// execution; an error of the execution means the sink's output is incomplete and must be
/// thrown away.
pub trait RowSink: Send {
    fn begin(&mut self, statement: String, columns: Vec<Column>) -> Result<(), ConnectorError>;
    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ConnectorError>;
    fn end(&mut self, end: SetEnd) -> Result<(), ConnectorError>;

    /// A sink that can read PostgreSQL's binary `COPY` format returns itself here; the
    /// PostgreSQL driver then streams a single query without parameters that way, which
    /// skips building [`Cell`]s (see [`CopySink`]).
    fn copy_sink(&mut self) -> Option<&mut dyn CopySink> {
        None
    }
}

/// A result column of a PostgreSQL binary `COPY`, with its type's OID.
#[derive(Clone, Debug)]
pub struct CopyColumn {
    pub column: Column,
    pub type_oid: u32,
}

/// Receives a query's rows as PostgreSQL's binary `COPY` stream: the columns first, then
/// each `CopyData` message (the header, one message per row, the trailer).
pub trait CopySink: Send {
    /// Returns false to decline, when a column has a type the sink cannot decode; the
    /// driver then runs the query the usual way.
    fn begin_copy(&mut self, columns: &[CopyColumn]) -> Result<bool, ConnectorError>;
    /// Takes one message; returns false once the row limit is reached, and the driver then
    /// cancels the rest.
    fn copy_data(&mut self, data: &[u8]) -> Result<bool, ConnectorError>;
    /// Ends the stream; `truncated` when rows were left out.
    fn end_copy(&mut self, truncated: bool) -> Result<(), ConnectorError>;
}

/// The sink that keeps every result set.
#[derive(Debug, Default)]
pub struct Collect {
    pub sets: Vec<ResultSet>,
}

impl RowSink for Collect {
    fn begin(&mut self, statement: String, columns: Vec<Column>) -> Result<(), ConnectorError> {
        self.sets.push(ResultSet {
            columns,
            statement,
            ..ResultSet::default()
        });
        Ok(())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ConnectorError> {
        match self.sets.last_mut() {
            Some(set) => {
                set.rows.push(cells);
                Ok(())
            }
            None => Err(ConnectorError::internal(anyhow::anyhow!("row before begin"))),
        }
    }

    fn end(&mut self, end: SetEnd) -> Result<(), ConnectorError> {
        match self.sets.last_mut() {
            Some(set) => {
                set.row_count = end.row_count;
                set.truncated = end.truncated;
                set.affected_rows = end.affected_rows;
                Ok(())
            }
            None => Err(ConnectorError::internal(anyhow::anyhow!("end before begin"))),
        }
    }
}

/// Writes one result set to a sink for a driver: begins it at the first row (or when the
/// driver calls [`SetWriter::begin`] for a statement without rows), applies the caps and
/// counts rows.
#[derive(Debug)]
pub struct SetWriter {
    statement: String,
    begun: bool,
    rows: usize,
    truncated: bool,
}

impl SetWriter {
    pub fn new(statement_text: &str) -> SetWriter {
        SetWriter {
            statement: statement_label(statement_text),
            begun: false,
            rows: 0,
            truncated: false,
        }
    }

    pub fn is_begun(&self) -> bool {
        self.begun
    }

    /// Whether a cap was reached; later rows of the statement are to be skipped.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Begins the result set with `columns`, unless it has begun.
    pub fn begin(&mut self, sink: &mut dyn RowSink, columns: Vec<Column>) -> Result<(), ConnectorError> {
        if !self.begun {
            sink.begin(self.statement.clone(), columns)?;
            self.begun = true;
        }
        Ok(())
    }

    /// Passes a row on unless a cap is reached. Returns false when the row did not fit: the
    /// result is truncated there and the driver should stop the query.
    pub fn row(
        &mut self,
        sink: &mut dyn RowSink,
        caps: &mut Caps,
        columns: impl FnOnce() -> Vec<Column>,
        cells: Vec<Cell>,
    ) -> Result<bool, ConnectorError> {
        if !self.begun {
            self.begin(sink, columns())?;
        }
        if self.truncated || !caps.admit(row_size(&cells)) {
            self.truncated = true;
            return Ok(false);
        }
        sink.row(cells)?;
        self.rows += 1;
        Ok(true)
    }

    /// Ends the result set; `affected_rows` is reported only for statements without columns.
    pub fn end(mut self, sink: &mut dyn RowSink, affected_rows: Option<u64>) -> Result<(), ConnectorError> {
        self.begin(sink, Vec::new())?;
        sink.end(SetEnd {
            row_count: self.rows,
            truncated: self.truncated,
            affected_rows,
        })
    }
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

/// Counts rows and bytes across result sets and reports when to stop reading.
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
