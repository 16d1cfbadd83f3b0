//! PostgreSQL types: portable column types, and cells from the text format (simple query
//! protocol) and the binary format (extended protocol, used with parameters).
//!
//! The session runs with `DateStyle = ISO, YMD`, `TimeZone = UTC`, `IntervalStyle =
//! iso_8601`, `extra_float_digits = 3` and `bytea_output = hex`, which the text parsers rely
//! on. Types without a rule here (ranges, composites, geometric and network types, custom
//! base types) keep the server's own text.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use sqlx::TypeInfo;
use sqlx::postgres::{PgTypeInfo, PgTypeKind};

use crate::value::{
    Cell, Column, PgArray, PortableType, iso_local_timestamp, iso_utc_timestamp, parse_iso_interval, parse_pg_array,
};

/// Built-in type OIDs this module decodes (from the `pg_type` catalog).
/// OID of `numeric`, whose precision and scale the driver looks up for table columns.
pub const NUMERIC_OID: u32 = oid::NUMERIC;

mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const POINT: u32 = 600;
    pub const CIDR: u32 = 650;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Returns whether sqlx has only the type's OID. The simple query protocol leaves types that
/// are not built in (enums, composites, `regclass`, `tsvector`, extension types)
/// unresolved, and sqlx 0.9 panics when asked for the kind of such a type. Its display name
/// is then `?`, which no resolved result type has.
pub fn is_unresolved(type_info: &PgTypeInfo) -> bool {
    type_info.name() == "?"
}

/// Returns the kind of a type, or `None` when sqlx has not resolved it (see [`is_unresolved`]).
fn kind(type_info: &PgTypeInfo) -> Option<&PgTypeKind> {
    (!is_unresolved(type_info)).then(|| type_info.kind())
}

/// The type that decides decoding: domains decode as their base type.
fn effective(type_info: &PgTypeInfo) -> &PgTypeInfo {
    match kind(type_info) {
        Some(PgTypeKind::Domain(base)) => effective(base),
        _ => type_info,
    }
}

fn oid_of(type_info: &PgTypeInfo) -> Option<u32> {
    effective(type_info).oid().map(|oid| oid.0)
}

/// Portable type of a PostgreSQL type.
pub fn portable(type_info: &PgTypeInfo) -> PortableType {
    let type_info = effective(type_info);
    if let Some(PgTypeKind::Array(_)) = kind(type_info) {
        return PortableType::Array;
    }
    portable_for_oid(type_info.oid().map(|oid| oid.0))
}

/// Portable type of a non-array built-in type, by OID.
pub fn portable_for_oid(type_oid: Option<u32>) -> PortableType {
    match type_oid {
        Some(oid::BOOL) => PortableType::Boolean,
        Some(oid::BYTEA) => PortableType::Binary,
        Some(oid::INT2) => PortableType::Int16,
        Some(oid::INT4) => PortableType::Int32,
        Some(oid::INT8 | oid::OID) => PortableType::Int64,
        Some(oid::FLOAT4) => PortableType::Float32,
        Some(oid::FLOAT8) => PortableType::Float64,
        Some(oid::NUMERIC) => PortableType::Decimal,
        Some(oid::DATE) => PortableType::Date,
        Some(oid::TIME | oid::TIMETZ) => PortableType::Time,
        Some(oid::TIMESTAMP) => PortableType::Timestamp,
        Some(oid::TIMESTAMPTZ) => PortableType::Timestamptz,
        Some(oid::INTERVAL) => PortableType::Interval,
        Some(oid::JSON | oid::JSONB) => PortableType::Json,
        Some(oid::UUID) => PortableType::Uuid,
        _ => PortableType::String,
    }
}

/// Describes a result column.
///
/// `names` contains the names of types that sqlx left unresolved, by OID; their values arrive
/// as text and are returned as strings.
pub fn column(name: &str, type_info: &PgTypeInfo, names: &HashMap<u32, String>) -> Column {
    let native = match (is_unresolved(type_info), type_info.oid()) {
        (true, Some(oid)) => names.get(&oid.0).cloned().unwrap_or_else(|| format!("oid {}", oid.0)),
        _ => type_info.name().to_ascii_lowercase(),
    };
    let mut column = Column::new(name, portable(type_info), native);
    if let Some(PgTypeKind::Array(element)) = kind(effective(type_info)) {
        column.element_type = Some(portable(element));
    }
    column
}

/// Decodes a value in the text format.
pub fn text_cell(type_info: &PgTypeInfo, text: &str) -> Cell {
    let type_info = effective(type_info);
    if let Some(PgTypeKind::Array(element)) = kind(type_info) {
        // An array whose lower bound is not 1 starts with its bounds, as in `[0:1]={1,2}`.
        // JSON arrays have no bounds, so the elements are returned without them.
        let elements = match text.strip_prefix('[') {
            Some(_) => text
                .split_once("]={")
                .map_or(text, |(_, rest)| &text[text.len() - rest.len() - 1..]),
            None => text,
        };
        return match parse_pg_array(elements) {
            Some(array) => array_cell(element, array),
            None => Cell::text(text),
        };
    }
    match portable(type_info) {
        PortableType::Boolean => Cell::bool(text == "t"),
        PortableType::Int16 | PortableType::Int32 => {
            text.parse::<i64>().map_or_else(|_| Cell::text(text), Cell::small_int)
        }
        PortableType::Float32 | PortableType::Float64 => match text {
            "NaN" | "Infinity" | "-Infinity" => Cell::text(text),
            _ => text.parse::<f64>().map_or_else(|_| Cell::text(text), Cell::float),
        },
        PortableType::Timestamp => Cell::text(iso_local_timestamp(text)),
        PortableType::Timestamptz => Cell::text(iso_utc_timestamp(text)),
        PortableType::Interval => match parse_iso_interval(text) {
            Some((months, days, micros)) => Cell::interval(months, days, micros),
            None => Cell::text(text),
        },
        PortableType::Binary => match text.strip_prefix("\\x").and_then(|digits| hex::decode(digits).ok()) {
            Some(bytes) => Cell::binary(&bytes),
            None => Cell::text(text),
        },
        PortableType::Json => Cell::json_text(text),
        // int8, numeric, dates, times, uuids and text keep the server's exact text.
        _ => Cell::text(text),
    }
}

fn array_cell(element: &PgTypeInfo, array: PgArray) -> Cell {
    match array {
        PgArray::Null => Cell::NULL,
        PgArray::Element(text) => text_cell(element, &text),
        PgArray::Nested(items) => Cell::array(items.into_iter().map(|item| array_cell(element, item)).collect()),
    }
}

/// Reads big-endian integers from a binary value.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.bytes.split_first_chunk::<N>()?;
        self.bytes = rest;
        Some(*head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take::<8>().map(i64::from_be_bytes)
    }

    fn bytes(&mut self, count: usize) -> Option<&[u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }
}

/// Decodes a value in the binary format. A value that does not parse, or of a type without
/// a rule, is returned as text when it is valid UTF-8 and as base64 otherwise.
/// NOTE: only parameterized queries use this format, so there an unknown type whose binary
/// form is not UTF-8 (such as PostGIS geometry) comes back as base64 instead of its text.
pub fn binary_cell(type_info: &PgTypeInfo, bytes: &[u8]) -> Cell {
    let type_info = effective(type_info);
    if let Some(PgTypeKind::Array(element)) = kind(type_info) {
        return binary_array(element, bytes).unwrap_or_else(|| fallback(bytes));
    }
    let mut reader = Reader { bytes };
    let decoded = match oid_of(type_info) {
        Some(oid::BOOL) => bytes.first().map(|byte| Cell::bool(*byte != 0)),
        Some(oid::INT2) => reader.i16().map(|value| Cell::small_int(i64::from(value))),
        Some(oid::INT4) => reader.i32().map(|value| Cell::small_int(i64::from(value))),
        Some(oid::INT8) => reader.i64().map(Cell::big_int),
        Some(oid::OID) => reader.take::<4>().map(|raw| Cell::big_int(u32::from_be_bytes(raw))),
        Some(oid::FLOAT4) => reader
            .take::<4>()
            .map(|raw| Cell::float(f64::from(f32::from_be_bytes(raw)))),
        Some(oid::FLOAT8) => reader.take::<8>().map(|raw| Cell::float(f64::from_be_bytes(raw))),
        Some(oid::NUMERIC) => numeric(bytes).map(Cell::text),
        Some(oid::MONEY) => reader.i64().map(|cents| Cell::text(money(cents))),
        Some(oid::BYTEA) => Some(Cell::binary(bytes)),
        Some(oid::JSON) => std::str::from_utf8(bytes).ok().map(Cell::json_text),
        Some(oid::JSONB) => bytes
            .split_first()
            .and_then(|(_, body)| std::str::from_utf8(body).ok())
            .map(Cell::json_text),
        Some(oid::UUID) => (bytes.len() == 16).then(|| Cell::text(uuid(bytes))),
        Some(oid::DATE) => reader.i32().map(|days| Cell::text(date(days))),
        Some(oid::TIME) => reader.i64().map(|micros| Cell::text(time_of_day(micros))),
        Some(oid::TIMETZ) => {
            let micros = reader.i64();
            let west = reader.i32();
            micros
                .zip(west)
                .map(|(micros, west)| Cell::text(format!("{}{}", time_of_day(micros), offset(-west))))
        }
        Some(oid::TIMESTAMP) => reader.i64().map(|micros| Cell::text(timestamp(micros, false))),
        Some(oid::TIMESTAMPTZ) => reader.i64().map(|micros| Cell::text(timestamp(micros, true))),
        Some(oid::INTERVAL) => {
            let micros = reader.i64();
            let days = reader.i32();
            let months = reader.i32();
            match (micros, days, months) {
                (Some(micros), Some(days), Some(months)) => {
                    Some(Cell::interval(i64::from(months), i64::from(days), micros))
                }
                _ => None,
            }
        }
        Some(oid::POINT) => {
            let x = reader.take::<8>().map(f64::from_be_bytes);
            let y = reader.take::<8>().map(f64::from_be_bytes);
            x.zip(y).map(|(x, y)| Cell::text(format!("({x},{y})")))
        }
        Some(oid::INET | oid::CIDR) => network(bytes, oid_of(type_info) == Some(oid::CIDR)).map(Cell::text),
        Some(oid::MACADDR) => (bytes.len() == 6).then(|| {
            Cell::text(
                bytes
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            )
        }),
        Some(oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR | oid::XML) => {
            std::str::from_utf8(bytes).ok().map(Cell::text)
        }
        _ => None,
    };
    decoded.unwrap_or_else(|| fallback(bytes))
}

/// Formats the binary inet and cidr format: family, prefix length, cidr flag, address
/// length, address. A host address (full prefix) prints without a prefix for inet, as the
/// server's text does.
fn network(bytes: &[u8], cidr: bool) -> Option<String> {
    let (&family, rest) = bytes.split_first()?;
    let (&bits, rest) = rest.split_first()?;
    let address = rest.get(2..)?;
    let ip: std::net::IpAddr = match (family, address.len()) {
        (2, 4) => std::net::Ipv4Addr::new(address[0], address[1], address[2], address[3]).into(),
        (3, 16) => {
            let octets: [u8; 16] = address.try_into().ok()?;
            std::net::Ipv6Addr::from(octets).into()
        }
        _ => return None,
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    Some(if bits == full && !cidr {
        ip.to_string()
    } else {
        format!("{ip}/{bits}")
    })
}

fn fallback(bytes: &[u8]) -> Cell {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cell::text(text),
        Err(_) => Cell::binary(bytes),
    }
}

/// Decodes the binary array format: dimensions, a null flag, the element type, each
/// dimension's length and lower bound, then length-prefixed elements (-1 for NULL).
fn binary_array(element: &PgTypeInfo, bytes: &[u8]) -> Option<Cell> {
    let mut reader = Reader { bytes };
    let dimensions = usize::try_from(reader.i32()?).ok()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    if dimensions == 0 {
        return Some(Cell::array(Vec::new()));
    }
    let mut lengths = Vec::with_capacity(dimensions);
    for _ in 0..dimensions {
        lengths.push(usize::try_from(reader.i32()?).ok()?);
        let _lower_bound = reader.i32()?;
    }
    let total: usize = lengths.iter().product();
    let mut elements = Vec::with_capacity(total.min(1 << 20));
    for _ in 0..total {
        let length = reader.i32()?;
        if length < 0 {
            elements.push(Cell::NULL);
        } else {
            let value = reader.bytes(usize::try_from(length).ok()?)?;
            elements.push(binary_cell(element, value));
        }
    }
    Some(nest(&lengths, &mut elements.into_iter()))
}

/// Groups a flat list of elements into nested arrays of the given dimension lengths.
fn nest(lengths: &[usize], elements: &mut impl Iterator<Item = Cell>) -> Cell {
    match lengths.split_first() {
        Some((length, [])) => Cell::array(elements.take(*length).collect()),
        Some((length, inner)) => Cell::array((0..*length).map(|_| nest(inner, elements)).collect()),
        None => Cell::array(Vec::new()),
    }
}

/// Formats the binary numeric format: digit count, weight (of the first base-10000 digit),
/// sign, display scale, then base-10000 digits.
fn numeric(bytes: &[u8]) -> Option<String> {
    let mut reader = Reader { bytes };
    let count = usize::try_from(reader.i16()?).ok()?;
    let weight = i64::from(reader.i16()?);
    let sign = reader.take::<2>().map(u16::from_be_bytes)?;
    let scale = usize::try_from(reader.i16()?).ok()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let mut digits = Vec::with_capacity(count);
    for _ in 0..count {
        digits.push(reader.i16()?);
    }

    // Integer part: base-10000 digits with weight >= 0.
    let mut integer = String::new();
    for position in 0..=weight.max(-1) {
        let digit = usize::try_from(position)
            .ok()
            .and_then(|index| digits.get(index))
            .copied()
            .unwrap_or(0);
        if integer.is_empty() {
            if digit != 0 {
                integer.push_str(&digit.to_string());
            }
        } else {
            integer.push_str(&format!("{digit:04}"));
        }
    }
    if integer.is_empty() {
        integer.push('0');
    }

    // Fraction: the digits after the weight, cut to the display scale.
    let mut fraction = String::new();
    let first_fraction = weight + 1;
    let mut position = first_fraction;
    while fraction.len() < scale {
        let digit = if position < 0 {
            0
        } else {
            usize::try_from(position)
                .ok()
                .and_then(|index| digits.get(index))
                .copied()
                .unwrap_or(0)
        };
        fraction.push_str(&format!("{digit:04}"));
        position += 1;
    }
    fraction.truncate(scale);

    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    text.push_str(&integer);
    if scale > 0 {
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}

/// Formats money as plain digits with two decimals. The server's money type has the scale of
/// `lc_monetary`, which is two decimals in every common locale.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let absolute = cents.unsigned_abs();
    format!("{sign}{}.{:02}", absolute / 100, absolute % 100)
}

fn uuid(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// PostgreSQL's epoch for dates and timestamps.
fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap_or_default()
        .and_time(NaiveTime::MIN)
}

/// Formats a date as PostgreSQL's ISO text does, with `BC` for years before 1.
fn format_date(date: NaiveDate) -> String {
    use chrono::Datelike;
    if date.year() >= 1 {
        date.format("%Y-%m-%d").to_string()
    } else {
        format!("{:04}-{:02}-{:02} BC", 1 - date.year(), date.month(), date.day())
    }
}

fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => epoch()
            .date()
            .checked_add_signed(Duration::days(i64::from(days)))
            .map_or_else(|| days.to_string(), format_date),
    }
}

fn fraction(micros: i64) -> String {
    let fraction = micros.rem_euclid(1_000_000);
    if fraction == 0 {
        String::new()
    } else {
        format!(".{fraction:06}").trim_end_matches('0').to_owned()
    }
}

fn time_of_day(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    format!(
        "{:02}:{:02}:{:02}{}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60,
        fraction(micros)
    )
}

/// Formats a UTC offset in seconds east as `+hh[:mm]`, the way PostgreSQL prints it.
fn offset(east: i32) -> String {
    let sign = if east < 0 { '-' } else { '+' };
    let seconds = east.unsigned_abs();
    let (hours, minutes) = (seconds / 3600, (seconds / 60) % 60);
    if minutes == 0 {
        format!("{sign}{hours:02}")
    } else {
        format!("{sign}{hours:02}:{minutes:02}")
    }
}

fn timestamp(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let Some(moment) = epoch().checked_add_signed(Duration::microseconds(micros)) else {
        return micros.to_string();
    };
    let date_text = format_date(moment.date());
    if date_text.ends_with(" BC") {
        return date_text;
    }
    let time = time_of_day(
        i64::from(chrono::Timelike::num_seconds_from_midnight(&moment)) * 1_000_000 + micros.rem_euclid(1_000_000),
    );
    let local = iso_local_timestamp(&format!("{date_text} {time}"));
    if utc { format!("{local}Z") } else { local }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, scale: i16, digits: &[i16]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        bytes.extend_from_slice(&weight.to_be_bytes());
        bytes.extend_from_slice(&sign.to_be_bytes());
        bytes.extend_from_slice(&scale.to_be_bytes());
        for digit in digits {
            bytes.extend_from_slice(&digit.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn binary_numerics_keep_every_digit() {
        // 12345678901234567890.123400 = 1234 5678 9012 3456 7890 . 1234
        let bytes = numeric_bytes(4, 0, 6, &[1234, 5678, 9012, 3456, 7890, 1234]);
        assert_eq!(numeric(&bytes).as_deref(), Some("12345678901234567890.123400"));
        assert_eq!(numeric(&numeric_bytes(-1, 0x4000, 4, &[5])).as_deref(), Some("-0.0005"));
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, &[])).as_deref(), Some("0"));
        assert_eq!(numeric(&numeric_bytes(0, 0xC000, 0, &[])).as_deref(), Some("NaN"));
        assert_eq!(numeric(&numeric_bytes(1, 0, 2, &[1, 0])).as_deref(), Some("10000.00"));
    }

    #[test]
    fn binary_times_format_like_text() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(i32::MAX), "infinity");
        assert_eq!(time_of_day(49_500_123_000), "13:45:00.123");
        assert_eq!(timestamp(0, false), "2000-01-01T00:00:00");
        assert_eq!(timestamp(1_500_000, true), "2000-01-01T00:00:01.5Z");
        assert_eq!(offset(19_800), "+05:30");
        assert_eq!(offset(-7200), "-02");
        assert_eq!(money(-1234), "-12.34");
    }

    #[test]
    fn uuids_format_with_dashes() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid(&bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
