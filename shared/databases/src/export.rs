//! Results as CSV or NDJSON files instead of the JSON envelope, encoded while rows are read.
//!
//! Only the last result set is exported, the one the JSON envelope puts at its top level.
//! Values keep the lossless encoding of [`crate::value`]: 64-bit integers and decimals keep
//! every digit, dates and timestamps are ISO 8601, nested values are JSON text.
//!
//! CSV follows RFC 4180: a header row, CRLF line ends, and fields in double quotes (quotes
//! doubled) when they hold a comma, quote, CR or LF. NULL is an empty field and the empty
//! string is `""`, as PostgreSQL's `COPY … CSV` writes them. The file starts with a UTF-8
//! byte order mark, which spreadsheets need to read non-ASCII text as UTF-8.
//!
//! A file that stays under [`STREAM_AFTER_BYTES`] is sent once the query has finished, with
//! its length, row count and truncation in the headers, and a query that fails gets its error
//! status. A larger one is streamed while rows are read, in chunks of [`CHUNK_BYTES`], without
//! those headers. A failure after streaming has started aborts the response, so the client
//! sees a broken transfer, never a complete file.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::http::HeaderMap;
use http_body_util::StreamBody;
use hyper::body::Frame;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ConnectorError;
use crate::execute::{RowSink, SetEnd};
use crate::memory::MemoryCharge;
use crate::value::{Cell, Column};

/// File format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// Parses the `format` query option; `json` (the envelope) is `None`.
    pub fn parse(text: &str) -> Result<Option<Format>, String> {
        match text {
            "json" => Ok(None),
            "csv" => Ok(Some(Format::Csv)),
            "ndjson" => Ok(Some(Format::Ndjson)),
            other => Err(format!("{other:?} is not a result format; use json, csv or ndjson.")),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Size from which an export is streamed instead of sent whole.
pub const STREAM_AFTER_BYTES: usize = 1024 * 1024;

/// Size of the chunks a streamed export sends.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Bytes a streamed export may have sent ahead of its client. Past it the export fails, so a
/// client that stops reading takes at most this much of the process's result memory.
pub const MAX_UNSENT_BYTES: usize = 8 * 1024 * 1024;

/// State a streamed export shares with its response body.
#[derive(Default)]
pub struct StreamState {
    /// Bytes handed to the body and not yet sent to the client.
    unsent: AtomicUsize,
    /// Set when the export failed, so the body stops without sending what is queued.
    failed: AtomicBool,
}

/// Event a running export hands to its response.
pub enum ExportEvent {
    /// Bytes of a streamed file; the permit holds their memory until they are sent.
    Chunk(Bytes, Option<OwnedSemaphorePermit>),
    /// A streamed file ended, with how its result set ended.
    End(SetEnd),
    /// The whole file, which stayed under [`STREAM_AFTER_BYTES`].
    Whole(ExportSink),
    /// The query failed.
    Failed(ConnectorError),
}

/// A sink that encodes the rows of the last result set as CSV or NDJSON.
pub struct ExportSink {
    format: Format,
    buffer: Vec<u8>,
    /// NDJSON keys of the columns, JSON-encoded with their colon.
    keys: Vec<Vec<u8>>,
    end: SetEnd,
    memory: MemoryCharge,
    /// State shared with the response body of a streamed export.
    shared: Arc<StreamState>,
    /// Channel a streamed export sends its chunks to; `None` keeps the whole file.
    stream: Option<UnboundedSender<ExportEvent>>,
    /// Whether chunks have been sent.
    streaming: bool,
}

impl ExportSink {
    /// Creates a sink whose output takes its memory from `pool`, like the JSON envelope's.
    pub fn new(format: Format, pool: Arc<Semaphore>) -> ExportSink {
        ExportSink {
            format,
            buffer: Vec::new(),
            keys: Vec::new(),
            end: SetEnd::default(),
            memory: MemoryCharge::new(pool),
            stream: None,
            streaming: false,
            shared: Arc::default(),
        }
    }

    /// Creates a sink that streams a file larger than [`STREAM_AFTER_BYTES`] to `events`.
    pub fn streaming(format: Format, pool: Arc<Semaphore>, events: UnboundedSender<ExportEvent>) -> ExportSink {
        ExportSink {
            stream: Some(events),
            ..ExportSink::new(format, pool)
        }
    }

    /// Returns the state the response body of this export shares with it.
    pub fn shared(&self) -> Arc<StreamState> {
        self.shared.clone()
    }

    /// Returns the event that completes a successful export: the whole file, or the end of
    /// the stream after its last chunk.
    pub fn finish(mut self) -> ExportEvent {
        if !self.streaming {
            return ExportEvent::Whole(self);
        }
        match self.send_chunk() {
            Ok(()) => ExportEvent::End(self.end),
            Err(error) => self.fail(error),
        }
    }

    /// Returns the event of a failed export, and marks it failed so a streaming body stops at
    /// once.
    pub fn fail(&self, error: ConnectorError) -> ExportEvent {
        self.shared.failed.store(true, Ordering::Release);
        ExportEvent::Failed(error)
    }

    /// Sends the buffer as one chunk, with permits for its memory.
    fn send_chunk(&mut self) -> Result<(), ConnectorError> {
        let Some(events) = &self.stream else {
            return Ok(());
        };
        if self.buffer.is_empty() {
            return Ok(());
        }
        let kib = u32::try_from(self.buffer.len().div_ceil(1024)).map_err(|_| ConnectorError::ResultMemoryFull)?;
        let permit = self
            .memory
            .pool()
            .try_acquire_many_owned(kib)
            .map_err(|_| ConnectorError::ResultMemoryFull)?;
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        let unsent = self.shared.unsent.fetch_add(chunk.len(), Ordering::AcqRel) + chunk.len();
        if unsent > MAX_UNSENT_BYTES {
            return Err(ConnectorError::SlowClient {
                max_bytes: MAX_UNSENT_BYTES,
            });
        }
        events
            .send(ExportEvent::Chunk(chunk, Some(permit)))
            .map_err(|_| ConnectorError::Disconnected)
    }

    /// Streams the buffer once the file is large enough, and keeps its memory charged
    /// otherwise.
    fn after_write(&mut self) -> Result<(), ConnectorError> {
        let threshold = if self.streaming {
            CHUNK_BYTES
        } else {
            STREAM_AFTER_BYTES
        };
        if self.stream.is_some() && self.buffer.len() >= threshold {
            if !self.streaming {
                // From here on each chunk takes its own memory permits.
                self.memory.release();
                self.streaming = true;
            }
            return self.send_chunk();
        }
        if self.streaming {
            return Ok(());
        }
        self.memory.cover(self.buffer.len())
    }

    /// Row count and truncation of the exported result set.
    pub fn end_of_set(&self) -> SetEnd {
        self.end
    }

    /// Builds the `200` response: the file as an attachment named `file_stem`, with the row
    /// count and truncation in `x-row-count` and `x-truncated`.
    pub fn into_response(self, file_stem: &str) -> Response {
        let length = self.buffer.len();
        let end = self.end;
        let disposition = content_disposition(file_stem, self.format.extension());
        let permits = self.memory.into_permit();
        let body = Bytes::from(self.buffer);
        let stream = futures::stream::once(async move {
            // The body owns the memory permits until it is sent or dropped.
            let _held = permits;
            Ok::<Bytes, std::convert::Infallible>(body)
        });
        let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.format.content_type()),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        headers.insert("x-row-count", HeaderValue::from(end.row_count));
        headers.insert(
            "x-truncated",
            HeaderValue::from_static(if end.truncated { "true" } else { "false" }),
        );
        response
    }
}

/// Builds the `200` response of a streamed export from its first chunk and the events that
/// follow. The row count and truncation come last, as the trailers `x-row-count` and
/// `x-truncated`. A failure ends the body with an error, which aborts the response. `guard`
/// lives as long as the body, so dropping the body (the client left) can stop the query.
pub fn streamed_response<G: Send + 'static>(
    format: Format,
    file_stem: &str,
    first: (Bytes, Option<OwnedSemaphorePermit>),
    events: UnboundedReceiver<ExportEvent>,
    shared: Arc<StreamState>,
    guard: G,
) -> Response {
    type Item = Result<Frame<Bytes>, std::io::Error>;
    let disposition = content_disposition(file_stem, format.extension());
    let state = (events, shared, Some(first), guard, false);
    let frames = futures::stream::unfold(state, |(mut events, shared, first, guard, done)| async move {
        if done {
            return None;
        }
        let event = match first {
            Some((chunk, permit)) => Some(ExportEvent::Chunk(chunk, permit)),
            None => events.recv().await,
        };
        if shared.failed.load(Ordering::Acquire) {
            let error: Item = Err(std::io::Error::other("the export failed"));
            return Some((error, (events, shared, None, guard, true)));
        }
        let item: Item = match event {
            Some(ExportEvent::Chunk(chunk, permit)) => {
                shared.unsent.fetch_sub(chunk.len(), Ordering::AcqRel);
                drop(permit);
                Ok(Frame::data(chunk))
            }
            Some(ExportEvent::End(end)) => {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-row-count", HeaderValue::from(end.row_count));
                let truncated = if end.truncated { "true" } else { "false" };
                trailers.insert("x-truncated", HeaderValue::from_static(truncated));
                let item: Item = Ok(Frame::trailers(trailers));
                return Some((item, (events, shared, None, guard, true)));
            }
            Some(ExportEvent::Failed(error)) => Err(std::io::Error::other(error.to_string())),
            Some(ExportEvent::Whole(_)) | None => Err(std::io::Error::other("the export ended without finishing")),
        };
        let done = item.is_err();
        Some((item, (events, shared, None, guard, done)))
    });
    let mut response = (StatusCode::OK, Body::new(StreamBody::new(frames))).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::TRAILER, HeaderValue::from_static("x-row-count, x-truncated"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

impl RowSink for ExportSink {
    fn begin(&mut self, _statement: String, columns: Vec<Column>) -> Result<(), ConnectorError> {
        // An earlier result set is replaced: only the last one is exported. One already
        // streamed cannot be taken back.
        if self.streaming {
            return Err(ConnectorError::InvalidQuery {
                message: format!(
                    "An export holds the last result set only, and an earlier one was over {} MiB; run the last statement alone.",
                    STREAM_AFTER_BYTES / (1024 * 1024)
                ),
            });
        }
        self.buffer.clear();
        self.end = SetEnd::default();
        match self.format {
            Format::Csv => {
                self.buffer.extend_from_slice(BOM);
                for (index, column) in columns.iter().enumerate() {
                    if index > 0 {
                        self.buffer.push(b',');
                    }
                    push_csv_field(&mut self.buffer, &column.name, false);
                }
                self.buffer.extend_from_slice(b"\r\n");
            }
            Format::Ndjson => self.keys = ndjson_keys(&columns),
        }
        self.after_write()
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ConnectorError> {
        match self.format {
            Format::Csv => {
                for (index, cell) in cells.iter().enumerate() {
                    if index > 0 {
                        self.buffer.push(b',');
                    }
                    push_csv_cell(&mut self.buffer, cell)?;
                }
                self.buffer.extend_from_slice(b"\r\n");
            }
            Format::Ndjson => {
                self.buffer.push(b'{');
                for (index, (key, cell)) in self.keys.iter().zip(&cells).enumerate() {
                    if index > 0 {
                        self.buffer.push(b',');
                    }
                    self.buffer.extend_from_slice(key);
                    match cell {
                        // JSON from the database may span lines, and each line is one row.
                        Cell::Json(raw) => push_compact_json(&mut self.buffer, raw.get()),
                        Cell::Value(value) => {
                            serde_json::to_writer(&mut self.buffer, value).map_err(ConnectorError::internal)?
                        }
                    }
                }
                self.buffer.extend_from_slice(b"}\n");
            }
        }
        self.after_write()
    }

    fn end(&mut self, end: SetEnd) -> Result<(), ConnectorError> {
        self.end = end;
        Ok(())
    }
}

/// JSON keys of the columns, each followed by its colon. A name that repeats an earlier
/// one gets `_2`, `_3`…, so no value of a row is lost to a duplicate key.
fn ndjson_keys(columns: &[Column]) -> Vec<Vec<u8>> {
    let mut used_names = std::collections::HashSet::new();
    columns
        .iter()
        .map(|column| {
            let mut name = column.name.clone();
            let mut suffix = 2;
            while !used_names.insert(name.clone()) {
                name = format!("{}_{suffix}", column.name);
                suffix += 1;
            }
            let mut key = serde_json::to_vec(&name).unwrap_or_else(|_| b"\"\"".to_vec());
            key.push(b':');
            key
        })
        .collect()
}

/// Appends valid JSON text without the whitespace between its tokens. Strings, numbers and
/// everything else are copied byte for byte, so no digit changes.
fn push_compact_json(buffer: &mut Vec<u8>, json: &str) {
    let mut in_string = false;
    let mut escaped = false;
    for byte in json.bytes() {
        if in_string {
            buffer.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
            buffer.push(byte);
        } else if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            buffer.push(byte);
        }
    }
}

/// Appends one CSV field. `quote_empty` quotes an empty text so it differs from NULL.
fn push_csv_field(buffer: &mut Vec<u8>, text: &str, quote_empty: bool) {
    let needs_quotes = (quote_empty && text.is_empty()) || text.contains([',', '"', '\r', '\n']);
    if !needs_quotes {
        buffer.extend_from_slice(text.as_bytes());
        return;
    }
    buffer.push(b'"');
    for byte in text.bytes() {
        if byte == b'"' {
            buffer.push(b'"');
        }
        buffer.push(byte);
    }
    buffer.push(b'"');
}

fn push_csv_cell(buffer: &mut Vec<u8>, cell: &Cell) -> Result<(), ConnectorError> {
    match cell {
        Cell::Value(Value::Null) => {}
        Cell::Value(Value::String(text)) => push_csv_field(buffer, text, true),
        Cell::Value(Value::Bool(value)) => buffer.extend_from_slice(if *value { b"true" } else { b"false" }),
        Cell::Value(Value::Number(number)) => buffer.extend_from_slice(number.to_string().as_bytes()),
        Cell::Value(nested @ (Value::Array(_) | Value::Object(_))) => {
            let text = serde_json::to_string(nested).map_err(ConnectorError::internal)?;
            push_csv_field(buffer, &text, true);
        }
        Cell::Json(raw) => push_csv_field(buffer, raw.get(), true),
    }
    Ok(())
}

/// `attachment; filename="…"; filename*=UTF-8''…`: an ASCII fallback for old clients and
/// the exact name, percent-encoded, for the others.
fn content_disposition(stem: &str, extension: &str) -> String {
    let name = format!("{stem}.{extension}");
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::PortableType;

    fn export(format: Format, rows: Vec<Vec<Cell>>) -> String {
        let mut sink = ExportSink::new(format, Arc::new(Semaphore::new(1024)));
        let columns = vec![
            Column::new("a", PortableType::String, "text"),
            Column::new("a", PortableType::Int64, "int8"),
        ];
        sink.begin("select".into(), columns).expect("begin");
        for row in rows {
            sink.row(row).expect("row");
        }
        String::from_utf8(sink.buffer).expect("UTF-8")
    }

    #[test]
    fn csv_quotes_fields_and_marks_null() {
        let text = export(
            Format::Csv,
            vec![
                vec![Cell::text("plain"), Cell::big_int(1)],
                vec![Cell::text("say \"hi\", then\r\nleave"), Cell::NULL],
                vec![Cell::text(""), Cell::big_int(-2)],
            ],
        );
        assert_eq!(
            text,
            "\u{feff}a,a\r\nplain,1\r\n\"say \"\"hi\"\", then\r\nleave\",\r\n\"\",-2\r\n"
        );
    }

    #[test]
    fn ndjson_keeps_duplicate_columns_apart() {
        let text = export(Format::Ndjson, vec![vec![Cell::text("x"), Cell::big_int(7)]]);
        assert_eq!(text, "{\"a\":\"x\",\"a_2\":\"7\"}\n");
    }

    #[test]
    fn ndjson_puts_database_json_on_one_line() {
        let raw =
            serde_json::value::RawValue::from_string("{\n \"a b\" :\n [1.50, \"x\\\" y\"]}".into()).expect("JSON");
        let text = export(Format::Ndjson, vec![vec![Cell::Json(raw), Cell::NULL]]);
        assert_eq!(text, "{\"a\":{\"a b\":[1.50,\"x\\\" y\"]},\"a_2\":null}\n");
    }

    #[test]
    fn stalled_client_fails_the_export() {
        let (events, _unread) = tokio::sync::mpsc::unbounded_channel();
        let mut sink = ExportSink::streaming(Format::Csv, Arc::new(Semaphore::new(64 * 1024)), events);
        sink.begin("select".into(), vec![Column::new("t", PortableType::String, "text")])
            .expect("begin");
        let row = "x".repeat(10_000);
        let outcome = (0..2_000).try_for_each(|_| sink.row(vec![Cell::text(row.clone())]));
        assert!(matches!(outcome, Err(ConnectorError::SlowClient { .. })), "{outcome:?}");
    }

    #[test]
    fn file_names_are_safe_and_exact() {
        assert_eq!(
            content_disposition("Umsätze \"Q3\"", "csv"),
            "attachment; filename=\"Ums_tze _Q3_.csv\"; filename*=UTF-8''Ums%C3%A4tze%20%22Q3%22.csv"
        );
    }
}
