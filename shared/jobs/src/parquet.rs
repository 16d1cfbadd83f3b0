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
use mako_databases::{ConnectorError, CopyColumn, CopySink, PortableType, RowSink};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use tokio::sync::mpsc;

/// Rows per record batch, and the rows read before the types of untyped columns are chosen.
pub const BATCH_ROWS: usize = 8192;

/// A batch closes earlier when its values reach this many bytes, which bounds memory for
/// wide rows and keeps Arrow's 32-bit string offsets far from overflowing.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

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

    /// Sends the buffered bytes and closes the stream, so the upload reads the end of the file.
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

/// Summary of a finished file.
#[derive(Clone, Debug)]
pub struct FileSummary {
    pub row_count: u64,
    pub byte_size: u64,
    pub truncated: bool,
    /// Each column's name and Arrow type.
    pub columns: Vec<(String, String)>,
}

/// Arrow type of a column, which decides how its values are converted.
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
    // A column without a declared type (a SQLite expression) is typed by the driver from
    // its first value only, so the first batch decides instead.
    let undeclared = column.native_type.is_empty()
        && matches!(
            column.portable,
            PortableType::Boolean | PortableType::Int64 | PortableType::Float64 | PortableType::String
        );
    if undeclared {
        // The driver writes 64-bit integers as strings.
        let integers_as_text = column.portable == PortableType::Int64;
        return observed(values, integers_as_text);
    }
    // Time zones of `timetz` values have no Arrow time type, so they stay text.
    if column.portable == PortableType::Time && column.native_type.to_ascii_lowercase().contains("tz") {
        return Kind::Text;
    }
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
    // No declared precision: keep the largest scale seen and room for 38 digits, or text
    // when a value needs more digits than that.
    let mut scale = 0usize;
    let mut whole = 0usize;
    for value in values {
        let digits = match value {
            Cell::Value(Value::Null) => continue,
            Cell::Value(Value::String(text)) => decimal_digits(text),
            Cell::Value(Value::Number(number)) => decimal_digits(&number.to_string()),
            _ => None,
        };
        let Some((whole_digits, fraction)) = digits else {
            return Kind::Text;
        };
        whole = whole.max(whole_digits);
        scale = scale.max(fraction);
    }
    match i8::try_from(scale) {
        Ok(scale) if whole + (scale as usize) <= usize::from(MAX_DECIMAL_PRECISION) => Kind::Decimal {
            precision: MAX_DECIMAL_PRECISION,
            scale,
        },
        _ => Kind::Text,
    }
}

/// Returns the kind that every non-null value of a column of unknown type fits.
fn observed_kind(values: &mut dyn Iterator<Item = &Cell>) -> Kind {
    observed(values, false)
}

/// Returns the kind that every non-null value fits; with `integers_as_text`, strings that
/// are 64-bit integers count as integers.
fn observed(values: &mut dyn Iterator<Item = &Cell>, integers_as_text: bool) -> Kind {
    let mut kind: Option<Kind> = None;
    for value in values {
        let this = match value {
            Cell::Value(Value::Null) => continue,
            Cell::Value(Value::String(text)) if integers_as_text && text.parse::<i64>().is_ok() => Kind::Int64,
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

/// Builds the error for a value that does not fit its column.
fn mismatch(column: &Column, kind: Kind, value: &Cell, row: u64) -> ConnectorError {
    let shown: String = serde_json::to_string(value)
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    ConnectorError::InvalidQuery {
        message: format!(
            "Row {row}, column \"{}\": the value {shown} does not fit the Parquet type {} chosen for this column. \
         Cast the column in the query to one type, for example to text, or to a decimal with enough precision and scale.",
            column.name,
            kind.data_type()
        ),
    }
}

/// Splits off the " BC" that PostgreSQL writes after dates before year 1.
fn era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

/// Parses `YYYY-MM-DD`, with PostgreSQL's " BC" suffix (1 BC is year 0).
fn parse_date(text: &str) -> Option<NaiveDate> {
    use chrono::Datelike;
    let (text, bc) = era(text);
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    if bc {
        date.with_year(1 - date.year())
    } else {
        Some(date)
    }
}

/// Parses a timestamp as `/api/execute` writes it, with PostgreSQL's " BC" suffix.
fn parse_timestamp(text: &str) -> Option<NaiveDateTime> {
    use chrono::Datelike;
    let (text, bc) = era(text.strip_suffix('Z').unwrap_or(text));
    let (text, bc) = if bc { (text, true) } else { era(text) };
    let text = text.strip_suffix('Z').unwrap_or(text);
    let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    if bc { at.with_year(1 - at.year()) } else { Some(at) }
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
            // 64-bit integers arrive as strings; a column of integers and floats is Float64.
            _ => text.parse::<i64>().ok().map(|integer| integer as f64),
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
            (Some(Value::String(text)), Some(b)) => match parse_date(text) {
                Some(date) => {
                    let days = date.signed_duration_since(NaiveDate::default()).num_days();
                    i32::try_from(days).map(|days| b.append_value(days)).is_ok()
                }
                None => false,
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
            (Some(Value::String(text)), Some(b)) => match parse_timestamp(text) {
                Some(at) => {
                    b.append_value(at.and_utc().timestamp_micros());
                    true
                }
                None => false,
            },
            _ => false,
        },
    }
}

/// A column's values repeat enough for a dictionary when at most this share of the first
/// batch's values are distinct.
const DICTIONARY_SHARE: f64 = 0.5;

/// Writer settings: ZSTD row groups, and per column either a dictionary (values that repeat)
/// or, for mostly distinct integers, dates and timestamps, delta encoding, which compresses
/// ids and times far better than plain values and costs less than a dictionary that
/// overflows.
fn properties(schema: &Schema, distinct: &[Option<f64>]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_created_by("mako".into());
    for (field, share) in schema.fields().iter().zip(distinct) {
        // Settings go by column path, which duplicate names share: those keep the defaults.
        let duplicate = schema
            .fields()
            .iter()
            .filter(|other| other.name() == field.name())
            .count()
            > 1;
        let Some(share) = share.filter(|_| !duplicate) else {
            continue;
        };
        if share <= DICTIONARY_SHARE {
            continue;
        }
        let path = parquet::schema::types::ColumnPath::from(field.name().as_str());
        builder = builder.set_column_dictionary_enabled(path.clone(), false);
        let integer = matches!(
            field.data_type(),
            DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt64
                | DataType::Date32
                | DataType::Time64(_)
                | DataType::Timestamp(_, _)
        );
        if integer {
            builder = builder.set_column_encoding(path, parquet::basic::Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder.build()
}

/// Share of distinct values among the non-null ones, `None` without values.
fn distinct_share<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<f64> {
    let mut seen = std::collections::HashSet::new();
    let mut count = 0usize;
    for value in values {
        count += 1;
        seen.insert(value);
    }
    (count > 0).then(|| seen.len() as f64 / count as f64)
}

/// Messages to the encoder thread.
enum Encode {
    Batch(RecordBatch),
    /// Write the footer and end the file.
    Finish,
}

/// Encodes record batches into Parquet on a thread of its own, so that reading rows and
/// compressing row groups overlap. Dropping it without [`Encode::Finish`] fails the upload.
fn spawn_encoder(
    schema: SchemaRef,
    properties: WriterProperties,
    output: ChunkWriter,
) -> (
    std::sync::mpsc::SyncSender<Encode>,
    std::thread::JoinHandle<Result<u64, String>>,
) {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Encode>(ENCODER_QUEUE);
    let handle = std::thread::spawn(move || {
        let mut writer = ArrowWriter::try_new(output, schema, Some(properties)).map_err(|error| error.to_string())?;
        for message in receiver {
            match message {
                Encode::Batch(batch) => {
                    writer.write(&batch).map_err(|error| error.to_string())?;
                    if writer.in_progress_size() >= ROW_GROUP_BYTES {
                        writer.flush().map_err(|error| error.to_string())?;
                    }
                }
                Encode::Finish => {
                    let output = writer.into_inner().map_err(|error| error.to_string())?;
                    return output.finish().map_err(|error| error.to_string());
                }
            }
        }
        // The sink went away without finishing: dropping the writer fails the upload.
        Err("the Parquet file was not finished".to_owned())
    });
    (sender, handle)
}

/// Batches waiting for the encoder thread.
const ENCODER_QUEUE: usize = 2;

struct Open {
    kinds: Vec<Kind>,
    builders: Vec<Box<dyn ArrayBuilder>>,
    schema: SchemaRef,
    batches: std::sync::mpsc::SyncSender<Encode>,
    encoder: std::thread::JoinHandle<Result<u64, String>>,
}

/// A [`RowSink`] writing the first result set of a query as a Parquet file. It also takes
/// PostgreSQL's binary `COPY` stream ([`CopySink`]), decoding values straight into Arrow.
pub struct ParquetSink {
    output: Option<ChunkWriter>,
    columns: Option<Vec<Column>>,
    /// Type OIDs of the columns in binary `COPY` mode.
    oids: Option<Vec<u32>>,
    /// Rows read before the writer opens, which decide the types of untyped columns.
    pending: Vec<Vec<Cell>>,
    /// The same, as binary `COPY` tuples.
    pending_tuples: Vec<Vec<u8>>,
    open: Option<Open>,
    /// Approximate bytes of the rows pending or in the builders, which close a batch at
    /// `BATCH_BYTES` so that wide rows do not pile up.
    batch_bytes: usize,
    rows: u64,
    max_rows: u64,
    truncated: bool,
    sets: usize,
}

impl ParquetSink {
    /// Creates a sink that writes at most `max_rows` rows of binary `COPY` input. The driver
    /// applies the limit itself to rows it hands over as cells.
    pub fn new(output: ChunkWriter, max_rows: u64) -> Self {
        Self {
            output: Some(output),
            columns: None,
            oids: None,
            pending: Vec::new(),
            pending_tuples: Vec::new(),
            open: None,
            batch_bytes: 0,
            rows: 0,
            max_rows,
            truncated: false,
            sets: 0,
        }
    }

    fn io_error(error: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::internal(anyhow::anyhow!("writing the Parquet file failed: {error}"))
    }

    /// Opens the writer with `kinds` and starts the encoder thread; `distinct` is each
    /// column's share of distinct values in the first batch.
    fn open_with(&mut self, kinds: Vec<Kind>, distinct: &[Option<f64>]) -> Result<(), ConnectorError> {
        let columns = self.columns.clone().unwrap_or_default();
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
        let properties = properties(&schema, distinct);
        let (batches, encoder) = spawn_encoder(schema.clone(), properties, output);
        let builders = kinds.iter().map(|kind| kind.builder(BATCH_ROWS)).collect();
        self.open = Some(Open {
            kinds,
            builders,
            schema,
            batches,
            encoder,
        });
        Ok(())
    }

    /// Chooses the schema from the pending rows, opens the writer and writes them.
    fn open(&mut self) -> Result<(), ConnectorError> {
        if self.oids.is_some() {
            return self.open_binary();
        }
        let columns = self.columns.clone().unwrap_or_default();
        let kinds: Vec<Kind> = columns
            .iter()
            .enumerate()
            .map(|(index, column)| choose_kind(column, &mut self.pending.iter().filter_map(|row| row.get(index))))
            .collect();
        let texts: Vec<Vec<String>> = (0..columns.len())
            .map(|index| {
                self.pending
                    .iter()
                    .filter_map(|row| row.get(index))
                    .filter(|cell| !matches!(cell, Cell::Value(Value::Null)))
                    .map(text_of)
                    .collect()
            })
            .collect();
        let distinct: Vec<Option<f64>> = texts
            .iter()
            .map(|values| distinct_share(values.iter().map(|text| text.as_bytes())))
            .collect();
        self.open_with(kinds, &distinct)?;
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
        self.after_row()
    }

    fn after_row(&mut self) -> Result<(), ConnectorError> {
        let full = self.batch_bytes >= BATCH_BYTES
            || self
                .open
                .as_ref()
                .and_then(|open| open.builders.first())
                .is_some_and(|builder| builder.len() >= BATCH_ROWS);
        if full {
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
        self.batch_bytes = 0;
        let arrays: Vec<ArrayRef> = open.builders.iter_mut().map(|builder| builder.finish()).collect();
        let batch = RecordBatch::try_new(open.schema.clone(), arrays).map_err(Self::io_error)?;
        if open.batches.send(Encode::Batch(batch)).is_err() {
            // The encoder stopped, and its error gives the reason.
            return Err(self.encoder_error());
        }
        Ok(())
    }

    /// Joins the stopped encoder thread and returns its error.
    fn encoder_error(&mut self) -> ConnectorError {
        match self.open.take() {
            Some(open) => {
                drop(open.batches);
                match open.encoder.join() {
                    Ok(Err(error)) => Self::io_error(error),
                    Ok(Ok(_)) => Self::io_error("the encoder ended early"),
                    Err(_) => Self::io_error("the encoder thread panicked"),
                }
            }
            None => Self::io_error("the writer is not open"),
        }
    }

    /// Writes the last rows and the footer and hands the end of the file to the upload.
    pub fn finish(mut self) -> Result<FileSummary, ConnectorError> {
        if self.columns.as_ref().is_none_or(Vec::is_empty) {
            return Err(ConnectorError::InvalidQuery {
                message: "A data source must return at least one column; this query returned none.".into(),
            });
        }
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
        let _ = open.batches.send(Encode::Finish);
        drop(open.batches);
        let byte_size = match open.encoder.join() {
            Ok(Ok(size)) => size,
            Ok(Err(error)) => return Err(Self::io_error(error)),
            Err(_) => return Err(Self::io_error("the encoder thread panicked")),
        };
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
        } else if let Some(open) = self.open.take() {
            // Without `Finish`, the encoder drops its writer and the upload fails.
            drop(open.batches);
            let _ = open.encoder.join();
        }
    }

    /// Chooses the kinds from the pending binary tuples, opens the writer and writes them.
    fn open_binary(&mut self) -> Result<(), ConnectorError> {
        let columns = self.columns.clone().unwrap_or_default();
        let oids = self.oids.clone().unwrap_or_default();
        let pending = std::mem::take(&mut self.pending_tuples);
        let mut kinds = Vec::with_capacity(columns.len());
        for (index, (column, oid)) in columns.iter().zip(&oids).enumerate() {
            let kind = if *oid == binary::NUMERIC && declared_decimal(&column.native_type).is_none() {
                binary::observed_decimal(pending.iter().filter_map(|tuple| binary::field(tuple, index)))
            } else {
                choose_kind(column, &mut std::iter::empty())
            };
            kinds.push(kind);
        }
        let distinct: Vec<Option<f64>> = (0..columns.len())
            .map(|index| distinct_share(pending.iter().filter_map(|tuple| binary::field(tuple, index))))
            .collect();
        self.open_with(kinds, &distinct)?;
        let first_row = self.rows - pending.len() as u64;
        for (offset, tuple) in pending.iter().enumerate() {
            self.append_tuple(tuple, first_row + offset as u64 + 1)?;
        }
        Ok(())
    }

    fn append_tuple(&mut self, tuple: &[u8], number: u64) -> Result<(), ConnectorError> {
        let Some(open) = self.open.as_mut() else {
            return Err(Self::io_error("the writer is not open"));
        };
        let oids = self.oids.as_deref().unwrap_or_default();
        let mut fields = binary::Fields::new(tuple)?;
        for (index, (kind, builder)) in open.kinds.iter().zip(open.builders.iter_mut()).enumerate() {
            let field = fields.next_field()?;
            let oid = oids.get(index).copied().unwrap_or_default();
            if !binary::append(builder.as_mut(), *kind, oid, field) {
                let columns = self.columns.as_deref().unwrap_or_default();
                let name = columns.get(index).map_or("?", |column| column.name.as_str());
                return Err(ConnectorError::InvalidQuery {
                    message: format!(
                        "Row {number}, column \"{name}\": a value does not fit the Parquet type {} chosen for this column \
                         (an infinite date or timestamp, a NaN decimal, or more digits than the first rows had). \
                         Cast the column in the query, to text or to a numeric with enough precision and scale.",
                        kind.data_type()
                    ),
                });
            }
        }
        self.after_row()
    }
}

impl RowSink for ParquetSink {
    fn begin(&mut self, _statement: String, columns: Vec<Column>) -> Result<(), ConnectorError> {
        if columns.is_empty() {
            return Ok(());
        }
        self.one_set()?;
        self.columns = Some(columns);
        Ok(())
    }

    fn row(&mut self, cells: Vec<Cell>) -> Result<(), ConnectorError> {
        self.rows += 1;
        self.batch_bytes += mako_databases::execute::row_size(&cells);
        if self.open.is_some() {
            return self.append(cells, self.rows);
        }
        self.pending.push(cells);
        if self.pending.len() >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
            self.open()?;
        }
        Ok(())
    }

    fn end(&mut self, end: SetEnd) -> Result<(), ConnectorError> {
        self.truncated |= end.truncated;
        Ok(())
    }

    fn copy_sink(&mut self) -> Option<&mut dyn CopySink> {
        Some(self)
    }
}

impl ParquetSink {
    fn one_set(&mut self) -> Result<(), ConnectorError> {
        self.sets += 1;
        if self.sets > 1 {
            return Err(ConnectorError::InvalidQuery {
                message: "A data source must return one result set; this query returned more. \
                          Keep one SELECT (or one find/aggregate)."
                    .into(),
            });
        }
        Ok(())
    }
}

impl CopySink for ParquetSink {
    fn begin_copy(&mut self, columns: &[CopyColumn]) -> Result<bool, ConnectorError> {
        if !columns.iter().all(|column| binary::supported(column.type_oid)) {
            return Ok(false);
        }
        self.one_set()?;
        self.columns = Some(columns.iter().map(|column| column.column.clone()).collect());
        self.oids = Some(columns.iter().map(|column| column.type_oid).collect());
        Ok(true)
    }

    fn copy_data(&mut self, data: &[u8]) -> Result<bool, ConnectorError> {
        let data = binary::strip_header(data)?;
        if data.is_empty() || binary::is_trailer(data) {
            return Ok(true);
        }
        if self.rows >= self.max_rows {
            self.truncated = true;
            return Ok(false);
        }
        self.rows += 1;
        self.batch_bytes += data.len();
        if self.open.is_some() {
            self.append_tuple(data, self.rows)?;
        } else {
            self.pending_tuples.push(data.to_vec());
            if self.pending_tuples.len() >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
                self.open_binary()?;
            }
        }
        Ok(true)
    }

    fn end_copy(&mut self, truncated: bool) -> Result<(), ConnectorError> {
        self.truncated |= truncated;
        Ok(())
    }
}

/// PostgreSQL's binary `COPY` format, decoded straight into Arrow builders.
mod binary {
    use super::*;

    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

    const BOOL: u32 = 16;
    const BYTEA: u32 = 17;
    const NAME: u32 = 19;
    const INT8: u32 = 20;
    const INT2: u32 = 21;
    const INT4: u32 = 23;
    const TEXT: u32 = 25;
    const JSON: u32 = 114;
    const FLOAT4: u32 = 700;
    const FLOAT8: u32 = 701;
    const BPCHAR: u32 = 1042;
    const VARCHAR: u32 = 1043;
    const DATE: u32 = 1082;
    const TIME: u32 = 1083;
    const TIMESTAMP: u32 = 1114;
    const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    const UUID: u32 = 2950;
    const JSONB: u32 = 3802;

    /// Days and microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
    const EPOCH_DAYS: i32 = 10_957;
    const EPOCH_MICROS: i64 = 946_684_800_000_000;

    pub fn supported(oid: u32) -> bool {
        matches!(
            oid,
            BOOL | BYTEA
                | NAME
                | INT8
                | INT2
                | INT4
                | TEXT
                | JSON
                | FLOAT4
                | FLOAT8
                | BPCHAR
                | VARCHAR
                | DATE
                | TIME
                | TIMESTAMP
                | TIMESTAMPTZ
                | NUMERIC
                | UUID
                | JSONB
        )
    }

    fn malformed() -> ConnectorError {
        ConnectorError::internal(anyhow::anyhow!("malformed binary COPY data from PostgreSQL"))
    }

    /// Skips the header of the first message.
    pub fn strip_header(data: &[u8]) -> Result<&[u8], ConnectorError> {
        let Some(rest) = data.strip_prefix(SIGNATURE) else {
            return Ok(data);
        };
        // Flags (4 bytes), then the length of the header extension and the extension.
        let extension = rest
            .get(4..8)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(malformed)?;
        rest.get(8 + extension as usize..).ok_or_else(malformed)
    }

    pub fn is_trailer(data: &[u8]) -> bool {
        data == [0xff, 0xff]
    }

    /// The fields of one tuple, in order.
    pub struct Fields<'t> {
        data: &'t [u8],
        at: usize,
    }

    impl<'t> Fields<'t> {
        pub fn new(data: &'t [u8]) -> Result<Self, ConnectorError> {
            if data.len() < 2 {
                return Err(malformed());
            }
            Ok(Fields { data, at: 2 })
        }

        /// Returns the next field's bytes, or `None` for NULL.
        pub fn next_field(&mut self) -> Result<Option<&'t [u8]>, ConnectorError> {
            let length = self
                .data
                .get(self.at..self.at + 4)
                .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                .map(i32::from_be_bytes)
                .ok_or_else(malformed)?;
            self.at += 4;
            if length < 0 {
                return Ok(None);
            }
            let end = self.at + length as usize;
            let field = self.data.get(self.at..end).ok_or_else(malformed)?;
            self.at = end;
            Ok(Some(field))
        }
    }

    /// Field `index` of a tuple; `None` for NULL or malformed data.
    pub fn field(tuple: &[u8], index: usize) -> Option<&[u8]> {
        let mut fields = Fields::new(tuple).ok()?;
        for _ in 0..index {
            fields.next_field().ok()?;
        }
        fields.next_field().ok().flatten()
    }

    fn be<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
        <[u8; N]>::try_from(bytes).ok()
    }

    /// Reads a numeric's header: digit count, weight, sign and display scale.
    fn numeric_header(bytes: &[u8]) -> Option<(usize, i16, u16, u16)> {
        let digits = u16::from_be_bytes(be(bytes.get(0..2)?)?) as usize;
        let weight = i16::from_be_bytes(be(bytes.get(2..4)?)?);
        let sign = u16::from_be_bytes(be(bytes.get(4..6)?)?);
        let scale = u16::from_be_bytes(be(bytes.get(6..8)?)?);
        Some((digits, weight, sign, scale))
    }

    /// The decimal kind that fits the numerics of the first rows: their largest scale, with
    /// room for 38 digits; text when one is NaN or infinite.
    pub fn observed_decimal<'a>(values: impl Iterator<Item = &'a [u8]>) -> Kind {
        let mut scale = 0u16;
        let mut whole = 0i32;
        for value in values {
            match numeric_header(value) {
                Some((count, weight, 0x0000 | 0x4000, dscale)) => {
                    scale = scale.max(dscale);
                    // Each base-10000 digit before the point holds up to four decimal digits.
                    if count > 0 {
                        whole = whole.max(4 * (i32::from(weight) + 1));
                    }
                }
                _ => return Kind::Text,
            }
        }
        match i8::try_from(scale) {
            Ok(scale) if whole + i32::from(scale) <= i32::from(MAX_DECIMAL_PRECISION) => Kind::Decimal {
                precision: MAX_DECIMAL_PRECISION,
                scale,
            },
            _ => Kind::Text,
        }
    }

    /// A numeric as its unscaled value at `scale`; `None` when it is NaN or infinite, has
    /// more decimal places than `scale`, or more digits than `precision`.
    fn numeric_unscaled(bytes: &[u8], precision: u8, scale: i8) -> Option<i128> {
        let (count, weight, sign, _) = numeric_header(bytes)?;
        if sign != 0x0000 && sign != 0x4000 {
            return None;
        }
        let scale = i32::from(scale);
        let mut value: i128 = 0;
        for index in 0..count {
            let digit = i128::from(u16::from_be_bytes(be(bytes.get(8 + 2 * index..10 + 2 * index)?)?));
            let exponent = 4 * (i32::from(weight) - index as i32) + scale;
            if exponent >= 0 {
                value = value.checked_add(digit.checked_mul(10i128.checked_pow(exponent as u32)?)?)?;
            } else {
                let divisor = 10i128.checked_pow((-exponent) as u32)?;
                if digit % divisor != 0 {
                    return None;
                }
                value = value.checked_add(digit / divisor)?;
            }
        }
        if value >= 10i128.checked_pow(u32::from(precision))? {
            return None;
        }
        Some(if sign == 0x4000 { -value } else { value })
    }

    /// Formats a numeric as PostgreSQL writes it as text.
    fn numeric_text(bytes: &[u8]) -> Option<String> {
        let (count, weight, sign, scale) = numeric_header(bytes)?;
        match sign {
            0xC000 => return Some("NaN".into()),
            0xD000 => return Some("Infinity".into()),
            0xF000 => return Some("-Infinity".into()),
            _ => {}
        }
        let digit = |index: i32| -> Option<u16> {
            if index < 0 || index as usize >= count {
                return Some(0);
            }
            let at = 8 + 2 * index as usize;
            Some(u16::from_be_bytes(be(bytes.get(at..at + 2)?)?))
        };
        let mut text = String::new();
        if sign == 0x4000 {
            text.push('-');
        }
        if weight < 0 {
            text.push('0');
        } else {
            for index in 0..=i32::from(weight) {
                let group = digit(index)?;
                if index == 0 {
                    text.push_str(&group.to_string());
                } else {
                    text.push_str(&format!("{group:04}"));
                }
            }
        }
        if scale > 0 {
            text.push('.');
            let mut fraction = String::new();
            let mut index = i32::from(weight) + 1;
            while fraction.len() < usize::from(scale) {
                fraction.push_str(&format!("{:04}", digit(index)?));
                index += 1;
            }
            fraction.truncate(usize::from(scale));
            text.push_str(&fraction);
        }
        Some(text)
    }

    fn uuid_text(bytes: &[u8]) -> Option<String> {
        if bytes.len() != 16 {
            return None;
        }
        let hex = hex::encode(bytes);
        Some(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ))
    }

    /// Appends one field to a builder of `kind`; `false` when it does not fit.
    pub fn append(builder: &mut dyn ArrayBuilder, kind: Kind, oid: u32, field: Option<&[u8]>) -> bool {
        let any = builder.as_any_mut();
        let Some(bytes) = field else {
            return super::append(builder, kind, &Cell::NULL);
        };
        macro_rules! put {
            ($builder:ty, $value:expr) => {
                match (any.downcast_mut::<$builder>(), $value) {
                    (Some(builder), Some(value)) => {
                        builder.append_value(value);
                        true
                    }
                    _ => false,
                }
            };
        }
        match kind {
            Kind::Boolean => put!(BooleanBuilder, bytes.first().map(|byte| *byte != 0)),
            Kind::Int16 => put!(Int16Builder, be::<2>(bytes).map(i16::from_be_bytes)),
            Kind::Int32 => put!(Int32Builder, be::<4>(bytes).map(i32::from_be_bytes)),
            Kind::Int64 => put!(Int64Builder, be::<8>(bytes).map(i64::from_be_bytes)),
            Kind::Float32 => put!(Float32Builder, be::<4>(bytes).map(f32::from_be_bytes)),
            Kind::Float64 => put!(Float64Builder, be::<8>(bytes).map(f64::from_be_bytes)),
            Kind::Decimal { precision, scale } => {
                put!(Decimal128Builder, numeric_unscaled(bytes, precision, scale))
            }
            Kind::Date => put!(
                Date32Builder,
                be::<4>(bytes)
                    .map(i32::from_be_bytes)
                    .filter(|days| *days != i32::MAX && *days != i32::MIN)
                    .and_then(|days| days.checked_add(EPOCH_DAYS))
            ),
            Kind::Time => put!(Time64MicrosecondBuilder, be::<8>(bytes).map(i64::from_be_bytes)),
            Kind::Timestamp | Kind::TimestampUtc => put!(
                TimestampMicrosecondBuilder,
                be::<8>(bytes)
                    .map(i64::from_be_bytes)
                    .filter(|micros| *micros != i64::MAX && *micros != i64::MIN)
                    .and_then(|micros| micros.checked_add(EPOCH_MICROS))
            ),
            Kind::Binary => put!(BinaryBuilder, Some(bytes)),
            Kind::Text => {
                let text: Option<std::borrow::Cow<'_, str>> = match oid {
                    NUMERIC => numeric_text(bytes).map(Into::into),
                    UUID => uuid_text(bytes).map(Into::into),
                    // jsonb starts with its format version, 1.
                    JSONB => bytes
                        .split_first()
                        .filter(|(version, _)| **version == 1)
                        .and_then(|(_, rest)| std::str::from_utf8(rest).ok())
                        .map(Into::into),
                    _ => std::str::from_utf8(bytes).ok().map(Into::into),
                };
                put!(StringBuilder, text)
            }
            Kind::UInt64 => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// `value` as PostgreSQL's binary numeric: base-10000 digits after a header.
        fn numeric(digits: &[u16], weight: i16, negative: bool, scale: u16) -> Vec<u8> {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&(digits.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&weight.to_be_bytes());
            bytes.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
            bytes.extend_from_slice(&scale.to_be_bytes());
            for digit in digits {
                bytes.extend_from_slice(&digit.to_be_bytes());
            }
            bytes
        }

        #[test]
        fn numerics_decode_exactly() {
            // 12345.67 = 1|2345|6700 with weight 1.
            let value = numeric(&[1, 2345, 6700], 1, false, 2);
            assert_eq!(numeric_unscaled(&value, 12, 2), Some(1_234_567));
            assert_eq!(numeric_unscaled(&value, 12, 4), Some(123_456_700));
            assert_eq!(numeric_unscaled(&value, 12, 1), None, "a decimal place would be lost");
            assert_eq!(numeric_unscaled(&value, 6, 2), None, "too many digits");
            assert_eq!(numeric_text(&value).as_deref(), Some("12345.67"));
            // -0.0005 = 5 at weight -1.
            let small = numeric(&[5], -1, true, 4);
            assert_eq!(numeric_unscaled(&small, 10, 4), Some(-5));
            assert_eq!(numeric_text(&small).as_deref(), Some("-0.0005"));
            // 0.14285714285714285714 (scale 20).
            let seventh = numeric(&[1428, 5714, 2857, 1428, 5714], -1, false, 20);
            assert_eq!(numeric_unscaled(&seventh, 38, 20), Some(14_285_714_285_714_285_714));
            assert_eq!(numeric_text(&seventh).as_deref(), Some("0.14285714285714285714"));
            let mut nan = numeric(&[], 0, false, 0);
            nan[4..6].copy_from_slice(&0xC000u16.to_be_bytes());
            assert_eq!(numeric_unscaled(&nan, 38, 0), None);
            assert_eq!(numeric_text(&nan).as_deref(), Some("NaN"));
            assert_eq!(numeric_text(&numeric(&[], 0, false, 0)).as_deref(), Some("0"));
        }

        #[test]
        fn tuples_split_into_fields() {
            let mut tuple = vec![0, 2];
            tuple.extend_from_slice(&4i32.to_be_bytes());
            tuple.extend_from_slice(&7i32.to_be_bytes());
            tuple.extend_from_slice(&(-1i32).to_be_bytes());
            let mut fields = Fields::new(&tuple).expect("tuple");
            assert_eq!(fields.next_field().expect("first"), Some(&7i32.to_be_bytes()[..]));
            assert_eq!(fields.next_field().expect("second"), None);
            assert!(fields.next_field().is_err(), "no third field");
            let mut header = SIGNATURE.to_vec();
            header.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(strip_header(&header).expect("header"), &[] as &[u8]);
        }
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
