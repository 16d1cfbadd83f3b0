//! The Parquet writer: a [`RowSink`] that turns a query's rows into Arrow record batches and
//! writes them as ZSTD-compressed row groups to a byte stream.
//!
//! Types are kept faithful:
//! - integers keep their width (`int64` and `uint64` included), floats stay floats;
//! - decimals are `Decimal128(precision, scale)`, taken from the column's declared type when
//!   it has one (`numeric(12,2)`) and otherwise from the values of the first batch;
//! - dates are `Date32`, times `Time64(µs)`, timestamps `Timestamp(µs)` without a time zone,
//!   and timestamps with a time zone `Timestamp(µs, "UTC")`, which Parquet marks as adjusted
//!   to UTC;
//! - binary values are `Binary`; JSON, arrays, documents and intervals are their JSON text;
//! - columns of mixed or unknown type (SQLite expressions, MongoDB fields) take the type
//!   that every value of the first batch has, or text.
//!
//! Column names are written exactly as the query returned them, duplicates included.
//! Only whole row groups are held in memory; bytes leave through the [`ChunkWriter`] as soon
//! as a row group is encoded.

use std::io::{self, Write};
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use mako_databases::execute::SetEnd;
use mako_databases::value::{Cell, Column};
use mako_databases::{ConnectorError, PortableType, RowSink};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use tokio::sync::mpsc;

/// Rows per record batch, and the rows read before the types of untyped columns are chosen.
pub const BATCH_ROWS: usize = 8192;

/// A row group is closed when its encoded size reaches this many bytes or
/// [`MAX_ROW_GROUP_ROWS`] rows, which bounds the writer's memory.
const ROW_GROUP_BYTES: usize = 48 * 1024 * 1024;
const MAX_ROW_GROUP_ROWS: usize = 128 * 1024;

/// Size of the chunks handed to the upload.
const CHUNK_BYTES: usize = 1024 * 1024;

/// Decimals with more digits than this have no `Decimal128` form and are written as text.
const MAX_DECIMAL_PRECISION: u8 = 38;

/// Bytes of a Parquet file, sent in chunks to the task that uploads it. Sending waits while
/// the upload is behind, so memory stays bounded. It is used from a blocking thread.
pub struct ChunkWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<io::Result<Bytes>>,
    written: u64,
    /// Set once the whole file was sent; dropping an unfinished writer fails the upload.
    finished: bool,
}

impl ChunkWriter {
    pub fn new(sender: mpsc::Sender<io::Result<Bytes>>) -> Self {
        Self {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            sender,
            written: 0,
            finished: false,
        }
    }

    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        futures::executor::block_on(self.sender.send(item))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload of the Parquet file stopped"))
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.send(Ok(Bytes::from(chunk)))
    }

    /// Sends what is buffered; the upload then sees the end of the file.
    pub fn finish(mut self) -> io::Result<u64> {
        self.send_buffer()?;
        self.finished = true;
        Ok(self.written)
    }

    /// Makes the upload fail, so that nothing of the file is kept.
    pub fn abort(mut self, reason: &str) {
        self.finished = true;
        let _ = self.send(Err(io::Error::other(reason.to_owned())));
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.send(Err(io::Error::other("the Parquet file was not finished")));
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        self.written += bytes.len() as u64;
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a finished file holds.
#[derive(Clone, Debug)]
pub struct FileSummary {
    pub row_count: u64,
    pub byte_size: u64,
    pub truncated: bool,
    /// Each column's name and Arrow type.
    pub columns: Vec<(String, String)>,
}

/// How the values of one column are converted.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Boolean,
    Int16,
    Int32,
    Int64,
    UInt64,
    Float32,
    Float64,
    Decimal { precision: u8, scale: i8 },
    Text,
    Binary,
    Date,
    Time,
    Timestamp,
    TimestampUtc,
}

impl Kind {
    fn data_type(self) -> DataType {
        match self {
            Kind::Boolean => DataType::Boolean,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt64 => DataType::UInt64,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            Kind::Text => DataType::Utf8,
            Kind::Binary => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    fn builder(self, capacity: usize) -> Box<dyn ArrayBuilder> {
        match self {
            Kind::Boolean => Box::new(BooleanBuilder::with_capacity(capacity)),
            Kind::Int16 => Box::new(Int16Builder::with_capacity(capacity)),
            Kind::Int32 => Box::new(Int32Builder::with_capacity(capacity)),
            Kind::Int64 => Box::new(Int64Builder::with_capacity(capacity)),
            Kind::UInt64 => Box::new(UInt64Builder::with_capacity(capacity)),
            Kind::Float32 => Box::new(Float32Builder::with_capacity(capacity)),
            Kind::Float64 => Box::new(Float64Builder::with_capacity(capacity)),
            Kind::Decimal { precision, scale } => Box::new(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(precision, scale)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(capacity)),
            ),
            Kind::Text => Box::new(StringBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Binary => Box::new(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Date => Box::new(Date32Builder::with_capacity(capacity)),
            Kind::Time => Box::new(Time64MicrosecondBuilder::with_capacity(capacity)),
            Kind::Timestamp => Box::new(TimestampMicrosecondBuilder::with_capacity(capacity)),
            Kind::TimestampUtc => Box::new(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC")),
        }
    }
}

/// Reads `(precision, scale)` from a declared type such as `numeric(12,2)` or `DECIMAL(10, 0)`.
fn declared_decimal(native: &str) -> Option<(u8, i8)> {
    let inside = native.split_once('(')?.1.split_once(')')?.0;
    let (precision, scale) = match inside.split_once(',') {
        Some((precision, scale)) => (precision.trim().parse().ok()?, scale.trim().parse().ok()?),
        None => (inside.trim().parse().ok()?, 0),
    };
    (precision >= 1 && scale >= 0 && i16::from(scale) <= i16::from(precision)).then_some((precision, scale))
}

/// Digits before and after the point of a decimal's text, or `None` when it is not one.
fn decimal_digits(text: &str) -> Option<(usize, usize)> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((whole.trim_start_matches('0').len(), fraction.len()))
}

/// Chooses the kind of a column from its type and the first batch of its values.
fn choose_kind(column: &Column, values: &mut dyn Iterator<Item = &Cell>) -> Kind {
    match column.portable {
        PortableType::Boolean => Kind::Boolean,
        PortableType::Int16 => Kind::Int16,
        PortableType::Int32 => Kind::Int32,
        PortableType::Int64 => Kind::Int64,
        PortableType::Uint64 => Kind::UInt64,
        PortableType::Float32 => Kind::Float32,
        PortableType::Float64 => Kind::Float64,
        PortableType::Decimal => decimal_kind(column, values),
        PortableType::Date => Kind::Date,
        PortableType::Time => Kind::Time,
        PortableType::Timestamp => Kind::Timestamp,
        PortableType::Timestamptz => Kind::TimestampUtc,
        PortableType::Binary => Kind::Binary,
        PortableType::String
        | PortableType::Uuid
        | PortableType::Objectid
        | PortableType::Interval
        | PortableType::Json
        | PortableType::Array
        | PortableType::Document => Kind::Text,
        PortableType::Mixed | PortableType::Null => observed_kind(values),
    }
}

fn decimal_kind(column: &Column, values: &mut dyn Iterator<Item = &Cell>) -> Kind {
    if let Some((precision, scale)) = declared_decimal(&column.native_type) {
        return if precision <= MAX_DECIMAL_PRECISION {
            Kind::Decimal { precision, scale }
        } else {
            Kind::Text
        };
    }
    // No declared precision: keep the largest scale seen and room for 38 digits.
    let mut scale = 0usize;
    for value in values {
        match value {
            Cell::Value(Value::Null) => {}
            Cell::Value(Value::String(text)) => match decimal_digits(text) {
                Some((_, fraction)) => scale = scale.max(fraction),
                None => return Kind::Text,
            },
            Cell::Value(Value::Number(number)) => match decimal_digits(&number.to_string()) {
                Some((_, fraction)) => scale = scale.max(fraction),
                None => return Kind::Text,
            },
            _ => return Kind::Text,
        }
    }
    match i8::try_from(scale) {
        Ok(scale) if scale <= 37 => Kind::Decimal {
            precision: MAX_DECIMAL_PRECISION,
            scale,
        },
        _ => Kind::Text,
    }
}

/// The kind every non-null value of a column of unknown type fits.
fn observed_kind(values: &mut dyn Iterator<Item = &Cell>) -> Kind {
    let mut kind: Option<Kind> = None;
    for value in values {
        let this = match value {
            Cell::Value(Value::Null) => continue,
            Cell::Value(Value::Bool(_)) => Kind::Boolean,
            Cell::Value(Value::Number(number)) if number.is_i64() => Kind::Int64,
            Cell::Value(Value::Number(_)) => Kind::Float64,
            Cell::Value(Value::String(_)) => Kind::Text,
            _ => return Kind::Text,
        };
        kind = match (kind, this) {
            (None, this) => Some(this),
            (Some(Kind::Int64), Kind::Float64) | (Some(Kind::Float64), Kind::Int64) => Some(Kind::Float64),
            (Some(previous), this) if previous == this => Some(previous),
            _ => return Kind::Text,
        };
    }
    kind.unwrap_or(Kind::Text)
}

/// Why a value did not fit its column.
fn mismatch(column: &Column, kind: Kind, value: &Cell, row: u64) -> ConnectorError {
    let shown: String = serde_json::to_string(value)
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    ConnectorError::InvalidQuery {
        message: format!(
            "Row {row}, column \"{}\": the value {shown} does not fit the Parquet type {} chosen for this column. \
         Cast the column in the query to one type (for example CAST(... AS TEXT), or numeric(p,s) with enough scale).",
            column.name,
            kind.data_type()
        ),
    }
}

fn micros_of_day(time: NaiveTime) -> i64 {
    let seconds = i64::from(time.num_seconds_from_midnight());
    seconds * 1_000_000 + i64::from(time.nanosecond() / 1000)
}

use chrono::Timelike;

fn parse_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn parse_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

/// Parses a decimal's text into its unscaled value at `scale`; `None` when it has more
/// fractional digits than the scale or more digits than the precision.
fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (whole_digits, fraction_digits) = decimal_digits(text)?;
    let scale = usize::try_from(scale).ok()?;
    if fraction_digits > scale || whole_digits + scale > usize::from(precision) {
        return None;
    }
    let negative = text.starts_with('-');
    let digits = text.trim_start_matches(['-', '+']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut unscaled: i128 = 0;
    for byte in whole.bytes().chain(fraction.bytes()) {
        unscaled = unscaled.checked_mul(10)?.checked_add(i128::from(byte - b'0'))?;
    }
    for _ in fraction_digits..scale {
        unscaled = unscaled.checked_mul(10)?;
    }
    Some(if negative { -unscaled } else { unscaled })
}

fn text_of(cell: &Cell) -> String {
    match cell {
        Cell::Value(Value::String(text)) => text.clone(),
        Cell::Value(value) => value.to_string(),
        Cell::Json(raw) => raw.get().to_owned(),
    }
}

/// Appends one value to a builder of `kind`; `false` when it does not fit.
fn append(builder: &mut dyn ArrayBuilder, kind: Kind, cell: &Cell) -> bool {
    let any = builder.as_any_mut();
    if matches!(cell, Cell::Value(Value::Null)) {
        macro_rules! null {
            ($($kind:ident => $builder:ty),*) => {
                match kind {
                    $(Kind::$kind { .. } => any.downcast_mut::<$builder>().map(|b| b.append_null()).is_some(),)*
                }
            };
        }
        return null!(
            Boolean => BooleanBuilder, Int16 => Int16Builder, Int32 => Int32Builder, Int64 => Int64Builder,
            UInt64 => UInt64Builder, Float32 => Float32Builder, Float64 => Float64Builder,
            Decimal => Decimal128Builder, Text => StringBuilder, Binary => BinaryBuilder, Date => Date32Builder,
            Time => Time64MicrosecondBuilder, Timestamp => TimestampMicrosecondBuilder,
            TimestampUtc => TimestampMicrosecondBuilder
        );
    }
    let value = match cell {
        Cell::Value(value) => Some(value),
        Cell::Json(_) => None,
    };
    match kind {
        Kind::Text => any
            .downcast_mut::<StringBuilder>()
            .map(|b| b.append_value(text_of(cell)))
            .is_some(),
        Kind::Boolean => match (value, any.downcast_mut::<BooleanBuilder>()) {
            (Some(Value::Bool(flag)), Some(b)) => {
                b.append_value(*flag);
                true
            }
            _ => false,
        },
        Kind::Int16 => match (value.and_then(parse_i64), any.downcast_mut::<Int16Builder>()) {
            (Some(number), Some(b)) => i16::try_from(number).map(|n| b.append_value(n)).is_ok(),
            _ => false,
        },
        Kind::Int32 => match (value.and_then(parse_i64), any.downcast_mut::<Int32Builder>()) {
            (Some(number), Some(b)) => i32::try_from(number).map(|n| b.append_value(n)).is_ok(),
            _ => false,
        },
        Kind::Int64 => match (value.and_then(parse_i64), any.downcast_mut::<Int64Builder>()) {
            (Some(number), Some(b)) => {
                b.append_value(number);
                true
            }
            _ => false,
        },
        Kind::UInt64 => {
            let number = match value {
                Some(Value::String(text)) => text.parse::<u64>().ok(),
                Some(Value::Number(number)) => number.as_u64(),
                _ => None,
            };
            match (number, any.downcast_mut::<UInt64Builder>()) {
                (Some(number), Some(b)) => {
                    b.append_value(number);
                    true
                }
                _ => false,
            }
        }
        Kind::Float32 => match (value.and_then(parse_float), any.downcast_mut::<Float32Builder>()) {
            (Some(number), Some(b)) => {
                // The driver widened a real to a double; narrowing gives the value back.
                #[allow(clippy::cast_possible_truncation)]
                b.append_value(number as f32);
                true
            }
            _ => false,
        },
        Kind::Float64 => match (value.and_then(parse_float), any.downcast_mut::<Float64Builder>()) {
            (Some(number), Some(b)) => {
                b.append_value(number);
                true
            }
            _ => false,
        },
        Kind::Decimal { precision, scale } => {
            let text = match value {
                Some(Value::String(text)) => Some(text.clone()),
                Some(Value::Number(number)) => Some(number.to_string()),
                _ => None,
            };
            match (
                text.and_then(|text| parse_decimal(&text, precision, scale)),
                any.downcast_mut::<Decimal128Builder>(),
            ) {
                (Some(unscaled), Some(b)) => {
                    b.append_value(unscaled);
                    true
                }
                _ => false,
            }
        }
        Kind::Binary => match (value, any.downcast_mut::<BinaryBuilder>()) {
            (Some(Value::String(text)), Some(b)) => STANDARD.decode(text).map(|bytes| b.append_value(bytes)).is_ok(),
            _ => false,
        },
        Kind::Date => match (value, any.downcast_mut::<Date32Builder>()) {
            (Some(Value::String(text)), Some(b)) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => {
                    let days = date.signed_duration_since(NaiveDate::default()).num_days();
                    i32::try_from(days).map(|days| b.append_value(days)).is_ok()
                }
                Err(_) => false,
            },
            _ => false,
        },
        Kind::Time => match (value, any.downcast_mut::<Time64MicrosecondBuilder>()) {
            (Some(Value::String(text)), Some(b)) => match NaiveTime::parse_from_str(text, "%H:%M:%S%.f") {
                Ok(time) => {
                    b.append_value(micros_of_day(time));
                    true
                }
                Err(_) => false,
            },
            _ => false,
        },
        Kind::Timestamp | Kind::TimestampUtc => match (value, any.downcast_mut::<TimestampMicrosecondBuilder>()) {
            (Some(Value::String(text)), Some(b)) => {
                let naive = text.strip_suffix('Z').unwrap_or(text);
                match NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f") {
                    Ok(at) => {
                        b.append_value(at.and_utc().timestamp_micros());
                        true
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        },
    }
}

/// Writer settings shared by every artifact.
fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_created_by("mako".into())
        .build()
}

struct Open {
    kinds: Vec<Kind>,
    builders: Vec<Box<dyn ArrayBuilder>>,
    schema: SchemaRef,
    writer: ArrowWriter<ChunkWriter>,
}

/// A [`RowSink`] writing the first result set of a query as a Parquet file.
pub struct ParquetSink {
    output: Option<ChunkWriter>,
    columns: Option<Vec<Column>>,
    /// Rows read before the writer opens, which decide the types of untyped columns.
    pending: Vec<Vec<Cell>>,
    open: Option<Open>,
    rows: u64,
    truncated: bool,
    sets: usize,
}

impl ParquetSink {
    pub fn new(output: ChunkWriter) -> Self {
        Self {
            output: Some(output),
            columns: None,
            pending: Vec::new(),
            open: None,
            rows: 0,
            truncated: false,
            sets: 0,
        }
    }

    fn io_error(error: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::internal(anyhow::anyhow!("writing the Parquet file failed: {error}"))
    }

    /// Chooses the schema from the pending rows and opens the writer.
    fn open(&mut self) -> Result<(), ConnectorError> {
        let columns = self.columns.clone().unwrap_or_default();
        let kinds: Vec<Kind> = columns
            .iter()
            .enumerate()
            .map(|(index, column)| choose_kind(column, &mut self.pending.iter().filter_map(|row| row.get(index))))
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .zip(&kinds)
            .map(|(column, kind)| Field::new(column.name.clone(), kind.data_type(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let output = self
            .output
            .take()
            .ok_or_else(|| Self::io_error("the output is already closed"))?;
        let writer = ArrowWriter::try_new(output, schema.clone(), Some(properties())).map_err(Self::io_error)?;
        let builders = kinds.iter().map(|kind| kind.builder(BATCH_ROWS)).collect();
        self.open = Some(Open {
            kinds,
            builders,
            schema,
            writer,
        });
        let pending = std::mem::take(&mut self.pending);
        let first_row = self.rows - pending.len() as u64;
        for (offset, row) in pending.into_iter().enumerate() {
            self.append(row, first_row + offset as u64 + 1)?;
        }
        Ok(())
    }

    fn append(&mut self, row: Vec<Cell>, number: u64) -> Result<(), ConnectorError> {
        let Some(open) = self.open.as_mut() else {
            return Err(Self::io_error("the writer is not open"));
        };
        for (index, cell) in row.iter().enumerate() {
            let (Some(kind), Some(builder)) = (open.kinds.get(index), open.builders.get_mut(index)) else {
                return Err(Self::io_error("a row has more values than columns"));
            };
            if !append(builder.as_mut(), *kind, cell) {
                let columns = self.columns.as_deref().unwrap_or_default();
                let column = columns
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| Column::new("?", PortableType::Mixed, ""));
                return Err(mismatch(&column, *kind, cell, number));
            }
        }
        if open.builders.first().is_some_and(|builder| builder.len() >= BATCH_ROWS) {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), ConnectorError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.builders.first().is_none_or(|builder| builder.is_empty()) {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = open.builders.iter_mut().map(|builder| builder.finish()).collect();
        let batch = RecordBatch::try_new(open.schema.clone(), arrays).map_err(Self::io_error)?;
        open.writer.write(&batch).map_err(Self::io_error)?;
        if open.writer.in_progress_size() >= ROW_GROUP_BYTES {
            open.writer.flush().map_err(Self::io_error)?;
        }
        Ok(())
    }

    /// Writes the last rows and the footer and hands the end of the file to the upload.
    pub fn finish(mut self) -> Result<FileSummary, ConnectorError> {
        if self.open.is_none() {
            self.open()?;
        }
        self.write_batch()?;
        let Some(open) = self.open.take() else {
            return Err(Self::io_error("the writer is not open"));
        };
        let columns = open
            .schema
            .fields()
            .iter()
            .map(|field| (field.name().clone(), field.data_type().to_string()))
            .collect();
        let output = open.writer.into_inner().map_err(Self::io_error)?;
        let byte_size = output.finish().map_err(Self::io_error)?;
        Ok(FileSummary {
            row_count: self.rows,
            byte_size,
            truncated: self.truncated,
            columns,
        })
    }

    /// Makes the upload fail, so that nothing of a failed file is kept.
    pub fn abort(mut self, reason: &str) {
        if let Some(output) = self.output.take() {
            output.abort(reason);
        } else if let Some(open) = self.open.take()
            && let Ok(output) = open.writer.into_inner()
        {
            output.abort(reason);
        }
    }
}

impl RowSink for ParquetSink {
    fn begin(&mut self, _statement: String, columns: Vec<Column>) -> Result<(), ConnectorError> {
        if columns.is_empty() {
            return Ok(());
        }
        self.sets += 1;
        if self.sets > 1 {
            return Err(ConnectorError::InvalidQuery {
                message: "A data source must return one result set; this query returned more. \
                          Keep one SELECT (or one find/aggregate)."
                    .into(),
            });
        }
        self.columns = Some(columns);
        Ok(())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ConnectorError> {
        self.rows += 1;
        if self.open.is_some() {
            return self.append(cells, self.rows);
        }
        self.pending.push(cells);
        if self.pending.len() >= BATCH_ROWS {
            self.open()?;
        }
        Ok(())
    }

    fn end(&mut self, end: SetEnd) -> Result<(), ConnectorError> {
        self.truncated |= end.truncated;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_decimals_are_read() {
        assert_eq!(declared_decimal("numeric(12,2)"), Some((12, 2)));
        assert_eq!(declared_decimal("DECIMAL(10, 0)"), Some((10, 0)));
        assert_eq!(declared_decimal("NUMERIC(5)"), Some((5, 0)));
        assert_eq!(declared_decimal("numeric"), None);
        assert_eq!(declared_decimal("numeric(2,5)"), None);
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("123.45", 12, 2), Some(12345));
        assert_eq!(parse_decimal("-0.5", 12, 2), Some(-50));
        assert_eq!(parse_decimal("7", 12, 2), Some(700));
        assert_eq!(parse_decimal("1.234", 12, 2), None);
        assert_eq!(parse_decimal("1234567890123", 12, 2), None);
        assert_eq!(parse_decimal("NaN", 12, 2), None);
        assert_eq!(
            parse_decimal("99999999999999999999999999999999999999", 38, 0),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
    }

    #[test]
    fn untyped_columns_take_the_type_of_their_values() {
        let cells = [Cell::small_int(1), Cell::NULL, Cell::small_int(2)];
        assert_eq!(observed_kind(&mut cells.iter()), Kind::Int64);
        let cells = [Cell::small_int(1), Cell::float(2.5)];
        assert_eq!(observed_kind(&mut cells.iter()), Kind::Float64);
        let cells = [Cell::small_int(1), Cell::text("a")];
        assert_eq!(observed_kind(&mut cells.iter()), Kind::Text);
        assert_eq!(observed_kind(&mut [Cell::NULL].iter()), Kind::Text);
    }
}
