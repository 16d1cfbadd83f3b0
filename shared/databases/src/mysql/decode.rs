//! MySQL and MariaDB types: portable column types, and cells from the text protocol and the
//! binary protocol (used with parameters).
//!
//! The session's `time_zone` is `+00:00`, so `TIMESTAMP` values (stored as instants) read as
//! UTC and are returned as instants, while `DATETIME` values are wall-clock times. Fractional
//! seconds drop trailing zeros, so both protocols print a value the same way whatever the
//! column's precision. Zero dates (`0000-00-00`) come back as that text, which no real date
//! or NULL can be mistaken for.
//!
//! NOTE: MariaDB stores `JSON` columns as `LONGTEXT`, and its protocol reports them as text
//! unless the client asks for extended metadata, which sqlx does not; so MariaDB JSON comes
//! back as a string, while MySQL's JSON type comes back as JSON.

use sqlx::TypeInfo;
use sqlx::mysql::MySqlTypeInfo;

use crate::value::{Cell, Column, PortableType, iso_local_timestamp, iso_utc_timestamp};

/// MySQL's collation number of the `binary` character set.
const BINARY_COLLATION: u16 = 63;

/// Collation of a column. sqlx keeps it private, and its `Debug` output is the one place that
/// shows it; a test against a real server checks that this still works.
fn collation(type_info: &MySqlTypeInfo) -> Option<u16> {
    let debug = format!("{type_info:?}");
    let start = debug.find("Collation(")? + "Collation(".len();
    let end = debug[start..].find(')')? + start;
    debug[start..end].parse().ok()
}

/// Returns whether a string-family column contains bytes rather than text.
fn is_binary(type_info: &MySqlTypeInfo) -> bool {
    collation(type_info) == Some(BINARY_COLLATION)
}

pub fn portable(type_info: &MySqlTypeInfo) -> PortableType {
    match type_info.name() {
        "BOOLEAN" | "TINYINT" | "TINYINT UNSIGNED" | "SMALLINT" | "YEAR" => PortableType::Int16,
        "SMALLINT UNSIGNED" | "MEDIUMINT" | "MEDIUMINT UNSIGNED" | "INT" => PortableType::Int32,
        "INT UNSIGNED" | "BIGINT" => PortableType::Int64,
        "BIGINT UNSIGNED" | "BIT" => PortableType::Uint64,
        "FLOAT" => PortableType::Float32,
        "DOUBLE" => PortableType::Float64,
        "DECIMAL" => PortableType::Decimal,
        "DATE" => PortableType::Date,
        "TIME" => PortableType::Time,
        "DATETIME" => PortableType::Timestamp,
        "TIMESTAMP" => PortableType::Timestamptz,
        "JSON" => PortableType::Json,
        "NULL" => PortableType::Null,
        "GEOMETRY" | "VECTOR" => PortableType::Binary,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            if is_binary(type_info) {
                PortableType::Binary
            } else {
                PortableType::String
            }
        }
        _ => PortableType::String,
    }
}

/// Native type name as people know it: text columns with a binary collation keep their text
/// type name rather than sqlx's `VARBINARY`.
fn native_name(type_info: &MySqlTypeInfo) -> String {
    let name = type_info.name();
    let text_name = match name {
        "BINARY" => "CHAR",
        "VARBINARY" => "VARCHAR",
        "TINYBLOB" => "TINYTEXT",
        "BLOB" => "TEXT",
        "MEDIUMBLOB" => "MEDIUMTEXT",
        "LONGBLOB" => "LONGTEXT",
        other => other,
    };
    if text_name != name && !is_binary(type_info) {
        text_name.to_owned()
    } else {
        name.to_owned()
    }
}

pub fn column(name: &str, type_info: &MySqlTypeInfo) -> Column {
    Column::new(name, portable(type_info), native_name(type_info))
}

fn text_or_binary(bytes: &[u8]) -> Cell {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cell::text(text),
        Err(_) => Cell::binary(bytes),
    }
}

/// Big-endian bytes of a `BIT(n)` value as an unsigned integer.
fn bits(bytes: &[u8]) -> Cell {
    let value = bytes
        .iter()
        .take(8)
        .fold(0u64, |value, byte| (value << 8) | u64::from(*byte));
    Cell::big_int(value)
}

/// Drops trailing zeros of the fractional seconds (`12:00:00.500` becomes `12:00:00.5`).
fn trim_fraction(text: &str) -> String {
    match text.rsplit_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        _ => text.to_owned(),
    }
}

/// Decodes a value of the text protocol.
pub fn text_cell(type_info: &MySqlTypeInfo, bytes: &[u8]) -> Cell {
    let portable = portable(type_info);
    if portable == PortableType::Binary {
        return Cell::binary(bytes);
    }
    if type_info.name() == "BIT" {
        return bits(bytes);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Cell::binary(bytes);
    };
    match portable {
        PortableType::Int16 | PortableType::Int32 => {
            text.parse::<i64>().map_or_else(|_| Cell::text(text), Cell::small_int)
        }
        PortableType::Float32 | PortableType::Float64 => {
            text.parse::<f64>().map_or_else(|_| Cell::text(text), Cell::float)
        }
        PortableType::Timestamp => Cell::text(iso_local_timestamp(&trim_fraction(text))),
        PortableType::Timestamptz => Cell::text(iso_utc_timestamp(&trim_fraction(text))),
        PortableType::Time => Cell::text(trim_fraction(text)),
        PortableType::Json => Cell::json_text(text),
        // BIGINT, DECIMAL, DATE and text keep the server's exact text.
        _ => Cell::text(text),
    }
}

/// Decodes a value of the binary protocol: little-endian numbers, length-prefixed temporal
/// structures, and raw bytes for everything else.
pub fn binary_cell(type_info: &MySqlTypeInfo, bytes: &[u8]) -> Cell {
    let name = type_info.name();
    let unsigned = name.ends_with("UNSIGNED");
    let decoded = match name {
        "BOOLEAN" | "TINYINT" => bytes.first().map(|byte| Cell::small_int(i64::from(*byte as i8))),
        "TINYINT UNSIGNED" => bytes.first().map(|byte| Cell::small_int(i64::from(*byte))),
        "SMALLINT" | "YEAR" | "SMALLINT UNSIGNED" => le::<2>(bytes).map(|raw| {
            if unsigned {
                Cell::small_int(i64::from(u16::from_le_bytes(raw)))
            } else {
                Cell::small_int(i64::from(i16::from_le_bytes(raw)))
            }
        }),
        "MEDIUMINT" | "MEDIUMINT UNSIGNED" | "INT" => le::<4>(bytes).map(|raw| {
            if unsigned {
                Cell::small_int(i64::from(u32::from_le_bytes(raw)))
            } else {
                Cell::small_int(i64::from(i32::from_le_bytes(raw)))
            }
        }),
        "INT UNSIGNED" => le::<4>(bytes).map(|raw| Cell::big_int(u32::from_le_bytes(raw))),
        "BIGINT" => le::<8>(bytes).map(|raw| Cell::big_int(i64::from_le_bytes(raw))),
        "BIGINT UNSIGNED" => le::<8>(bytes).map(|raw| Cell::big_int(u64::from_le_bytes(raw))),
        "FLOAT" => le::<4>(bytes).map(|raw| Cell::float(f64::from(f32::from_le_bytes(raw)))),
        "DOUBLE" => le::<8>(bytes).map(|raw| Cell::float(f64::from_le_bytes(raw))),
        "BIT" => Some(bits(bytes)),
        "DATE" | "DATETIME" | "TIMESTAMP" => temporal(bytes).map(|text| match name {
            "DATE" => Cell::text(text.split(' ').next().unwrap_or_default()),
            "DATETIME" => Cell::text(iso_local_timestamp(&text)),
            _ => Cell::text(iso_utc_timestamp(&text)),
        }),
        "TIME" => time(bytes).map(Cell::text),
        _ => None,
    };
    decoded.unwrap_or_else(|| match portable(type_info) {
        PortableType::Binary => Cell::binary(bytes),
        PortableType::Json => std::str::from_utf8(bytes).map_or_else(|_| Cell::binary(bytes), Cell::json_text),
        _ => text_or_binary(bytes),
    })
}

fn le<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.get(..N)?.try_into().ok()
}

/// Formats a binary `DATE`/`DATETIME`/`TIMESTAMP`: a length byte (0, 4, 7 or 11), then year,
/// month, day, hour, minute, second and microseconds as present. Length 0 is the zero date.
fn temporal(bytes: &[u8]) -> Option<String> {
    let (&length, body) = bytes.split_first()?;
    let field = |index: usize| body.get(index).copied().unwrap_or(0);
    let year = match length {
        0 => 0,
        _ => u16::from_le_bytes([field(0), field(1)]),
    };
    let mut text = format!(
        "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        field(2),
        field(3),
        field(4),
        field(5),
        field(6)
    );
    if length >= 11 {
        let micros = u32::from_le_bytes([field(7), field(8), field(9), field(10)]);
        if micros > 0 {
            text.push_str(&format!(".{micros:06}"));
        }
    }
    Some(trim_fraction(&text))
}

/// Formats a binary `TIME`: a length byte (0, 8 or 12), a sign, days, hours, minutes,
/// seconds and microseconds. Days fold into hours, as the text protocol prints them.
fn time(bytes: &[u8]) -> Option<String> {
    let (&length, body) = bytes.split_first()?;
    if length == 0 {
        return Some("00:00:00".into());
    }
    let negative = *body.first()? == 1;
    let days = u32::from_le_bytes(body.get(1..5)?.try_into().ok()?);
    let hours = days * 24 + u32::from(*body.get(5)?);
    let (minutes, seconds) = (*body.get(6)?, *body.get(7)?);
    let mut text = format!(
        "{}{hours:02}:{minutes:02}:{seconds:02}",
        if negative { "-" } else { "" }
    );
    if length >= 12 {
        let micros = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
        if micros > 0 {
            text.push_str(&format!(".{micros:06}"));
        }
    }
    Some(trim_fraction(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_temporal_values_format_like_text() {
        assert_eq!(temporal(&[0]).as_deref(), Some("0000-00-00 00:00:00"));
        assert_eq!(
            temporal(&[4, 0xE8, 0x07, 2, 29]).as_deref(),
            Some("2024-02-29 00:00:00")
        );
        assert_eq!(
            temporal(&[11, 0xE8, 0x07, 2, 29, 13, 45, 0, 0x40, 0xE2, 0x01, 0]).as_deref(),
            Some("2024-02-29 13:45:00.123456")
        );
        assert_eq!(time(&[8, 1, 1, 0, 0, 0, 2, 3, 4]).as_deref(), Some("-26:03:04"));
    }

    #[test]
    fn bits_read_as_unsigned_integers() {
        assert_eq!(serde_json::to_string(&bits(&[0x01, 0x02])).expect("json"), "\"258\"");
    }
}
