//! The JSON response of an execution, written while the driver reads rows.
//!
//! Each row is encoded as soon as it arrives, so a result costs its encoded size in memory,
//! not the size of its values. The body is
//!
//! ```json
//! {"success": true, "data": {
//!   "columns": [...], "rows": [[...]], "rowCount": 2, "truncated": false, "statement": "...",
//!   "elapsedMs": 4,
//!   "resultSets": [...]
//! }}
//! ```
//!
//! where the top-level result is the last statement's, and `resultSets` lists every
//! statement's result in order when the text had more than one.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::error::ConnectorError;
use crate::execute::{RowSink, SetEnd};
use crate::memory::MemoryCharge;
use crate::value::{Cell, Column};

/// One result set with its rows already encoded.
struct EncodedSet {
    statement: String,
    columns: Vec<Column>,
    /// The rows, comma-separated JSON arrays.
    rows: Bytes,
    end: SetEnd,
}

/// A sink that encodes rows as JSON while they are read.
#[derive(Default)]
pub struct JsonSink {
    sets: Vec<EncodedSet>,
    current: Vec<u8>,
    /// Bytes of rows in `sets`.
    finished_bytes: usize,
    memory: Option<MemoryCharge>,
}

impl RowSink for JsonSink {
    fn begin(&mut self, statement: String, columns: Vec<Column>) -> Result<(), ConnectorError> {
        self.sets.push(EncodedSet {
            statement,
            columns,
            rows: Bytes::new(),
            end: SetEnd::default(),
        });
        self.current = Vec::new();
        Ok(())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ConnectorError> {
        if !self.current.is_empty() {
            self.current.push(b',');
        }
        serde_json::to_writer(&mut self.current, &cells).map_err(ConnectorError::internal)?;
        let bytes = self.finished_bytes + self.current.len();
        match self.memory.as_mut() {
            Some(memory) => memory.cover(bytes),
            None => Ok(()),
        }
    }

    fn end(&mut self, end: SetEnd) -> Result<(), ConnectorError> {
        let Some(set) = self.sets.last_mut() else {
            return Err(ConnectorError::internal(anyhow::anyhow!("end before begin")));
        };
        set.rows = Bytes::from(std::mem::take(&mut self.current));
        self.finished_bytes += set.rows.len();
        set.end = end;
        Ok(())
    }
}

impl JsonSink {
    /// Creates a sink that takes the memory of its encoded rows from `pool` (one permit per
    /// KiB) and fails with [`ConnectorError::ResultMemoryFull`] when the pool runs out. The
    /// memory goes back when the response body is sent or dropped.
    pub fn with_memory(pool: Arc<Semaphore>) -> JsonSink {
        JsonSink {
            memory: Some(MemoryCharge::new(pool)),
            ..JsonSink::default()
        }
    }

    /// Rows returned, over all result sets.
    pub fn row_count(&self) -> usize {
        self.sets.iter().map(|set| set.end.row_count).sum()
    }

    /// The last result set's row count and whether it was truncated.
    pub fn last_end(&self) -> SetEnd {
        self.sets.last().map(|set| set.end).unwrap_or_default()
    }

    /// Builds the `200` response. `extra` fields go first in `data` (a console's id and
    /// name, for instance).
    pub fn into_response(self, elapsed_ms: u64, extra: Map<String, Value>) -> Response {
        let mut chunks: Vec<Bytes> = Vec::with_capacity(8 + 4 * self.sets.len());
        let mut head = br#"{"success":true,"data":{"#.to_vec();
        for (key, value) in &extra {
            push_field(&mut head, key, value);
        }
        chunks.push(Bytes::from(head));

        let empty = EncodedSet {
            statement: String::new(),
            columns: Vec::new(),
            rows: Bytes::new(),
            end: SetEnd::default(),
        };
        let last = self.sets.last().unwrap_or(&empty);
        push_set(&mut chunks, last);

        let mut tail = b",".to_vec();
        push_field(&mut tail, "elapsedMs", &Value::from(elapsed_ms));
        tail.pop();
        chunks.push(Bytes::from(tail));

        if self.sets.len() > 1 {
            chunks.push(Bytes::from_static(br#","resultSets":["#));
            for (index, set) in self.sets.iter().enumerate() {
                chunks.push(Bytes::from_static(if index == 0 { b"{" } else { b",{" }));
                push_set(&mut chunks, set);
                chunks.push(Bytes::from_static(b"}"));
            }
            chunks.push(Bytes::from_static(b"]"));
        }
        chunks.push(Bytes::from_static(b"}}"));

        let length: usize = chunks.iter().map(Bytes::len).sum();
        // The body owns the memory permits until it is sent or dropped.
        let permits = self.memory.and_then(MemoryCharge::into_permit);
        let stream = futures::stream::iter(chunks.into_iter().map(move |chunk| {
            let _held = &permits;
            Ok::<Bytes, std::convert::Infallible>(chunk)
        }));
        let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        response
    }
}

/// Appends `"key":value,` (the comma separates it from what follows).
fn push_field(buffer: &mut Vec<u8>, key: &str, value: &impl serde::Serialize) {
    // Serializing a string key and a JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buffer, key);
    buffer.push(b':');
    let _ = serde_json::to_writer(&mut *buffer, value);
    buffer.push(b',');
}

/// Appends a result set's fields, without a comma after the last one.
fn push_set(chunks: &mut Vec<Bytes>, set: &EncodedSet) {
    let mut head = Vec::new();
    push_field(&mut head, "columns", &set.columns);
    head.extend_from_slice(br#""rows":["#);
    chunks.push(Bytes::from(head));
    chunks.push(set.rows.clone());
    let mut tail = b"],".to_vec();
    push_field(&mut tail, "rowCount", &set.end.row_count);
    push_field(&mut tail, "truncated", &set.end.truncated);
    if let Some(affected) = set.end.affected_rows {
        push_field(&mut tail, "affectedRows", &affected);
    }
    push_field(&mut tail, "statement", &set.statement);
    tail.pop();
    chunks.push(Bytes::from(tail));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::SetWriter;
    use crate::value::PortableType;

    async fn body_json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("valid JSON")
    }

    fn write_set(sink: &mut JsonSink, statement: &str, rows: &[i64]) {
        let mut writer = SetWriter::new(statement);
        let mut caps = crate::execute::Caps::new(&crate::execute::ExecuteRequest {
            query: String::new(),
            database: None,
            max_rows: 100,
            max_bytes: 1 << 20,
            timeout: std::time::Duration::from_secs(1),
            read_only: true,
            params: Vec::new(),
            named_params: Default::default(),
        });
        for row in rows {
            let columns = || vec![Column::new("n", PortableType::Int64, "int8")];
            writer
                .row(sink, &mut caps, columns, vec![Cell::big_int(*row)])
                .expect("row");
        }
        writer.end(sink, None).expect("end");
    }

    /// Writes `count` rows of about 1 KiB of text each.
    fn write_text_rows(sink: &mut JsonSink, count: usize) -> Result<(), ConnectorError> {
        sink.begin(
            "select text".into(),
            vec![Column::new("t", PortableType::String, "text")],
        )?;
        for _ in 0..count {
            sink.row(vec![Cell::text("x".repeat(1000))])?;
        }
        sink.end(SetEnd::default())
    }

    #[tokio::test]
    async fn result_memory_is_shared_and_returned() {
        // 3 MiB for the process: one result of 2 MiB fits, a second one does not.
        let pool = Arc::new(Semaphore::new(3 * 1024));
        let mut first = JsonSink::with_memory(pool.clone());
        write_text_rows(&mut first, 2_000).expect("first result fits");

        let mut second = JsonSink::with_memory(pool.clone());
        let refused = write_text_rows(&mut second, 2_000);
        assert!(matches!(refused, Err(ConnectorError::ResultMemoryFull)), "{refused:?}");
        drop(second);

        // The first result's memory stays taken until its body is sent.
        let response = first.into_response(1, Map::new());
        assert!(pool.available_permits() < 2 * 1024, "{}", pool.available_permits());
        let body = body_json(response).await;
        assert_eq!(body["data"]["rows"].as_array().map(Vec::len), Some(2_000));
        assert_eq!(pool.available_permits(), 3 * 1024, "every permit is back");

        let mut third = JsonSink::with_memory(pool.clone());
        write_text_rows(&mut third, 2_000).expect("fits again once the first is sent");
    }

    #[tokio::test]
    async fn one_statement_has_no_result_sets_list() {
        let mut sink = JsonSink::default();
        write_set(&mut sink, "select n", &[1, 2]);
        let mut extra = Map::new();
        extra.insert("consoleId".into(), Value::from("c1"));

        let json = body_json(sink.into_response(7, extra)).await;

        assert_eq!(json["success"], true);
        assert_eq!(json["data"]["consoleId"], "c1");
        assert_eq!(json["data"]["rows"], serde_json::json!([["1"], ["2"]]));
        assert_eq!(json["data"]["rowCount"], 2);
        assert_eq!(json["data"]["columns"][0]["type"], "int64");
        assert_eq!(json["data"]["elapsedMs"], 7);
        assert!(json["data"].get("resultSets").is_none());
    }

    #[tokio::test]
    async fn several_statements_list_every_result() {
        let mut sink = JsonSink::default();
        write_set(&mut sink, "select 1", &[1]);
        let writer = SetWriter::new("update t");
        writer.end(&mut sink, Some(3)).expect("end");
        write_set(&mut sink, "select 2", &[]);

        let json = body_json(sink.into_response(1, Map::new())).await;

        let sets = json["data"]["resultSets"].as_array().expect("list");
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[0]["rows"], serde_json::json!([["1"]]));
        assert_eq!(sets[1]["affectedRows"], 3);
        assert_eq!(sets[1]["statement"], "update t");
        assert_eq!(json["data"]["statement"], "select 2");
        assert_eq!(json["data"]["rows"], serde_json::json!([]));
    }
}
