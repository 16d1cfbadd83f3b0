//! Portable column types and the lossless JSON encoding of values.
//!
//! Every driver maps its native types onto [`PortableType`] and each value onto a [`Cell`].
//! The encoding follows the proto3 JSON mapping where it has a rule:
//! - 64-bit integers and decimals are strings, so no digit is lost in JavaScript clients;
//! - floats are numbers, with `"NaN"`, `"Infinity"` and `"-Infinity"` as strings;
//! - dates are `YYYY-MM-DD`; timestamps without zone are wall-clock `YYYY-MM-DDTHH:MM:SS[.f]`
//!   with no offset; timestamps with zone are UTC instants ending in `Z`;
//! - binary values are base64 (standard alphabet, padded), the column type saying `binary`;
//! - JSON values are embedded as JSON, byte for byte as the database returned them;
//! - intervals are `{"months": m, "days": d, "microseconds": us}`, keeping the parts apart;
//! - arrays are JSON arrays whose elements follow these rules, nulls included.
//!
//! A type the mapper does not know is returned as its text, typed `string`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Database-independent column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortableType {
    Boolean,
    Int16,
    Int32,
    Int64,
    /// Unsigned 64-bit (MySQL `BIGINT UNSIGNED`), encoded as a string like `int64`.
    Uint64,
    Float32,
    Float64,
    Decimal,
    String,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Binary,
    Json,
    Uuid,
    Array,
    /// MongoDB's ObjectId.
    Objectid,
    /// A MongoDB field whose values have different types across documents, or a nested document.
    Document,
    /// Values of several types in one column (SQLite, MongoDB).
    Mixed,
    /// A column whose every value is null, so no type is known.
    Null,
}

/// One column of a result.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub portable: PortableType,
    /// The database's own name for the type, such as `int8`, `DECIMAL` or `timestamptz`.
    pub native_type: String,
    /// Portable type of the elements of an array column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_type: Option<PortableType>,
}

impl Column {
    pub fn new(name: impl Into<String>, portable: PortableType, native_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            portable,
            native_type: native_type.into(),
            element_type: None,
        }
    }
}

/// One value of a result.
#[derive(Clone, Debug)]
pub enum Cell {
    Value(Value),
    /// JSON text from the database, passed through unchanged.
    Json(Box<RawValue>),
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Value(a), Cell::Value(b)) => a == b,
            (Cell::Json(a), Cell::Json(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl Serialize for Cell {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Value(value) => value.serialize(serializer),
            Cell::Json(raw) => raw.serialize(serializer),
        }
    }
}

impl Cell {
    pub const NULL: Cell = Cell::Value(Value::Null);

    pub fn text(text: impl Into<String>) -> Cell {
        Cell::Value(Value::String(text.into()))
    }

    pub fn bool(value: bool) -> Cell {
        Cell::Value(Value::Bool(value))
    }

    /// A 16- or 32-bit integer, as a JSON number.
    pub fn small_int(value: i64) -> Cell {
        Cell::Value(Value::from(value))
    }

    /// A 64-bit integer, as a string that keeps every digit.
    pub fn big_int(value: impl ToString) -> Cell {
        Cell::Value(Value::String(value.to_string()))
    }

    /// A float: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub fn float(value: f64) -> Cell {
        if value.is_finite() {
            serde_json::Number::from_f64(value).map_or(Cell::NULL, |number| Cell::Value(Value::Number(number)))
        } else if value.is_nan() {
            Cell::text("NaN")
        } else if value > 0.0 {
            Cell::text("Infinity")
        } else {
            Cell::text("-Infinity")
        }
    }

    /// Binary data, base64-encoded.
    pub fn binary(bytes: &[u8]) -> Cell {
        Cell::text(STANDARD.encode(bytes))
    }

    /// JSON text from the database; invalid JSON becomes a string so the cell still shows.
    pub fn json_text(text: &str) -> Cell {
        match RawValue::from_string(text.trim().to_owned()) {
            Ok(raw) => Cell::Json(raw),
            Err(_) => Cell::text(text),
        }
    }

    /// An interval with months, days and microseconds kept apart.
    pub fn interval(months: i64, days: i64, microseconds: i64) -> Cell {
        Cell::Value(serde_json::json!({ "months": months, "days": days, "microseconds": microseconds }))
    }

    pub fn array(items: Vec<Cell>) -> Cell {
        // Raw JSON items are re-parsed into values; arrays of JSON documents are rare.
        let values = items.into_iter().map(Cell::into_value).collect();
        Cell::Value(Value::Array(values))
    }

    pub fn into_value(self) -> Value {
        match self {
            Cell::Value(value) => value,
            Cell::Json(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Value(Value::Null))
    }

    /// Approximate size of the cell in the JSON response, for the result size cap.
    pub fn approximate_size(&self) -> usize {
        match self {
            Cell::Value(Value::String(text)) => text.len() + 2,
            Cell::Value(Value::Null) => 4,
            Cell::Value(Value::Bool(_)) => 5,
            Cell::Value(Value::Number(_)) => 12,
            Cell::Value(other) => other.to_string().len(),
            Cell::Json(raw) => raw.get().len(),
        }
    }
}

/// Converts a PostgreSQL or MySQL timestamp text (`2024-02-29 13:45:00.123`) to ISO 8601
/// wall-clock form (`2024-02-29T13:45:00.123`), leaving anything else (`infinity`, BC dates,
/// MySQL zero dates) unchanged.
pub fn iso_local_timestamp(text: &str) -> String {
    let bytes = text.as_bytes();
    if bytes.len() >= 19
        && bytes[4] == b'-'
        && bytes[10] == b' '
        && !text.contains("0000-00-00")
        && !text.ends_with(" BC")
    {
        let mut iso = text.to_owned();
        iso.replace_range(10..11, "T");
        iso
    } else {
        text.to_owned()
    }
}

/// Converts a timestamp text whose zone is UTC (`2024-02-29 13:45:00+00`, or a MySQL
/// `TIMESTAMP` read with `time_zone = '+00:00'`) to an ISO 8601 instant ending in `Z`.
pub fn iso_utc_timestamp(text: &str) -> String {
    let trimmed = text
        .strip_suffix("+00:00")
        .or_else(|| text.strip_suffix("+00"))
        .unwrap_or(text);
    let local = iso_local_timestamp(trimmed);
    if local.contains('T') {
        format!("{local}Z")
    } else {
        text.to_owned()
    }
}

/// Parses an ISO 8601 duration as PostgreSQL prints it with `IntervalStyle = iso_8601`
/// (`P1Y2M3DT4H5M6.5S`, each part possibly negative) into months, days and microseconds.
pub fn parse_iso_interval(text: &str) -> Option<(i64, i64, i64)> {
    let body = text.strip_prefix('P')?;
    let (date_part, time_part) = match body.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (body, None),
    };

    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    for (number, unit) in iso_parts(date_part)? {
        let whole: i64 = number.parse().ok()?;
        match unit {
            'Y' => months = months.checked_add(whole.checked_mul(12)?)?,
            'M' => months = months.checked_add(whole)?,
            'W' => days = days.checked_add(whole.checked_mul(7)?)?,
            'D' => days = days.checked_add(whole)?,
            _ => return None,
        }
    }
    if let Some(time_part) = time_part {
        for (number, unit) in iso_parts(time_part)? {
            let scale = match unit {
                'H' => 3_600_000_000i64,
                'M' => 60_000_000,
                'S' => 1_000_000,
                _ => return None,
            };
            micros = micros.checked_add(scaled_micros(number, scale)?)?;
        }
    }
    Some((months, days, micros))
}

/// Splits `1Y-2M3.5D` into (`"1"`, 'Y'), (`"-2"`, 'M'), (`"3.5"`, 'D').
fn iso_parts(text: &str) -> Option<Vec<(&str, char)>> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (index, c) in text.char_indices() {
        if c.is_ascii_alphabetic() {
            if index == start {
                return None;
            }
            parts.push((&text[start..index], c));
            start = index + c.len_utf8();
        }
    }
    (start == text.len()).then_some(parts)
}

/// Converts a decimal number of units to whole microseconds, exactly.
fn scaled_micros(number: &str, scale: i64) -> Option<i64> {
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['-', '+']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut value = whole.checked_mul(scale)?;
    if !fraction.is_empty() {
        let fraction_digits = fraction.len().min(12);
        let fraction_value: i64 = fraction[..fraction_digits].parse().ok()?;
        let divisor = 10i64.checked_pow(u32::try_from(fraction_digits).ok()?)?;
        value = value.checked_add(fraction_value.checked_mul(scale)? / divisor)?;
    }
    Some(if negative { -value } else { value })
}

/// Parses a PostgreSQL array literal (`{1,NULL,"a b",{2,3}}`) into its elements, nested
/// arrays kept as nested vectors. `None` when the text is not an array literal (for example
/// one with explicit bounds, `[0:1]={1,2}`).
pub fn parse_pg_array(text: &str) -> Option<PgArray> {
    let mut parser = ArrayParser {
        bytes: text.as_bytes(),
        text,
        position: 0,
    };
    let array = parser.array()?;
    (parser.position == text.len()).then_some(array)
}

/// An element of a parsed PostgreSQL array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgArray {
    Null,
    Element(String),
    Nested(Vec<PgArray>),
}

struct ArrayParser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    position: usize,
}

impl ArrayParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn array(&mut self) -> Option<PgArray> {
        if self.peek()? != b'{' {
            return None;
        }
        self.position += 1;
        let mut items = Vec::new();
        if self.peek()? == b'}' {
            self.position += 1;
            return Some(PgArray::Nested(items));
        }
        loop {
            let item = match self.peek()? {
                b'{' => self.array()?,
                b'"' => PgArray::Element(self.quoted()?),
                _ => self.unquoted()?,
            };
            items.push(item);
            match self.peek()? {
                b',' => self.position += 1,
                b'}' => {
                    self.position += 1;
                    return Some(PgArray::Nested(items));
                }
                _ => return None,
            }
        }
    }

    fn quoted(&mut self) -> Option<String> {
        self.position += 1;
        let mut value = Vec::new();
        loop {
            match self.peek()? {
                b'\\' => {
                    value.push(*self.bytes.get(self.position + 1)?);
                    self.position += 2;
                }
                b'"' => {
                    self.position += 1;
                    return String::from_utf8(value).ok();
                }
                byte => {
                    value.push(byte);
                    self.position += 1;
                }
            }
        }
    }

    fn unquoted(&mut self) -> Option<PgArray> {
        let start = self.position;
        while !matches!(self.peek()?, b',' | b'}') {
            self.position += 1;
        }
        let raw = self.text.get(start..self.position)?.trim();
        Some(if raw.eq_ignore_ascii_case("NULL") {
            PgArray::Null
        } else {
            PgArray::Element(raw.to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_serialize_losslessly() {
        let cells = [
            (Cell::big_int(i64::MAX), "\"9223372036854775807\""),
            (Cell::small_int(-42), "-42"),
            (Cell::float(f64::NAN), "\"NaN\""),
            (Cell::float(f64::NEG_INFINITY), "\"-Infinity\""),
            (Cell::float(0.1), "0.1"),
            (Cell::binary(&[0, 255]), "\"AP8=\""),
            (
                Cell::json_text(r#"{"a": 12345678901234567890.5}"#),
                r#"{"a": 12345678901234567890.5}"#,
            ),
            (Cell::interval(14, 3, -1), r#"{"months":14,"days":3,"microseconds":-1}"#),
            (Cell::NULL, "null"),
            (Cell::text(""), "\"\""),
        ];
        for (cell, expected) in cells {
            assert_eq!(serde_json::to_string(&cell).expect("serialize"), expected);
        }
    }

    #[test]
    fn timestamps_become_iso() {
        assert_eq!(
            iso_local_timestamp("2024-02-29 13:45:00.123456"),
            "2024-02-29T13:45:00.123456"
        );
        assert_eq!(iso_local_timestamp("infinity"), "infinity");
        assert_eq!(iso_local_timestamp("0000-00-00 00:00:00"), "0000-00-00 00:00:00");
        assert_eq!(iso_utc_timestamp("2024-02-29 13:45:00+00"), "2024-02-29T13:45:00Z");
        assert_eq!(iso_utc_timestamp("2024-02-29 13:45:00.5"), "2024-02-29T13:45:00.5Z");
    }

    #[test]
    fn intervals_keep_parts_apart() {
        assert_eq!(parse_iso_interval("P1Y2M3DT4H5M6.5S"), Some((14, 3, 14_706_500_000)));
        assert_eq!(parse_iso_interval("P-1M30D"), Some((-1, 30, 0)));
        assert_eq!(parse_iso_interval("PT-0.000001S"), Some((0, 0, -1)));
        assert_eq!(parse_iso_interval("P0D"), Some((0, 0, 0)));
        assert_eq!(parse_iso_interval("1 day"), None);
    }

    #[test]
    fn pg_arrays_parse_with_nulls_and_quotes() {
        use PgArray::{Element, Nested, Null};
        assert_eq!(
            parse_pg_array(r#"{1,NULL,"a \"b\"",{2,3},"NULL"}"#),
            Some(Nested(vec![
                Element("1".into()),
                Null,
                Element("a \"b\"".into()),
                Nested(vec![Element("2".into()), Element("3".into())]),
                Element("NULL".into()),
            ]))
        );
        assert_eq!(parse_pg_array("{}"), Some(Nested(vec![])));
        assert_eq!(parse_pg_array("[0:1]={1,2}"), None);
    }
}
