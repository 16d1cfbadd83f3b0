//! Query parameters: `{{name}}` placeholders in the query text, replaced by the driver's own
//! placeholders (`$1` for PostgreSQL, `?` for MySQL and SQLite) and bound as values, never
//! spliced into the text. Placeholders inside strings, quoted identifiers and comments are
//! left alone.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use crate::error::ConnectorError;

/// A typed parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Exact decimal digits, such as `"12.50"`.
    Decimal(String),
    Text(String),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    /// Expands to one placeholder per element, for `IN ({{ids}})`.
    List(Vec<ParamValue>),
}

impl ParamValue {
    /// Infers a value from JSON: strings are text, whole numbers integers, other numbers
    /// floats, arrays lists. Objects are refused.
    pub fn from_json(name: &str, value: &Value) -> Result<ParamValue, ConnectorError> {
        Ok(match value {
            Value::Null => ParamValue::Null,
            Value::Bool(value) => ParamValue::Bool(*value),
            Value::Number(number) => match number.as_i64() {
                Some(integer) => ParamValue::Int(integer),
                None => ParamValue::Float(number.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(text) => ParamValue::Text(text.clone()),
            Value::Array(items) => ParamValue::List(
                items
                    .iter()
                    .map(|item| match item {
                        Value::Array(_) => Err(ConnectorError::InvalidParameter {
                            name: name.to_owned(),
                            message: format!("The parameter {name:?} is a list of lists; use a flat list."),
                        }),
                        other => ParamValue::from_json(name, other),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(_) => {
                return Err(ConnectorError::InvalidParameter {
                    name: name.to_owned(),
                    message: format!(
                        "The parameter {name:?} is an object; give text, a number, a boolean, null, a list, or {{\"type\": …, \"value\": …}}."
                    ),
                });
            }
        })
    }
}

/// Type of a scalar parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarType {
    Text,
    /// An exact decimal number.
    Number,
    Integer,
    Boolean,
    Date,
    /// Wall-clock date and time, without zone.
    Timestamp,
    /// An instant, given with its UTC offset.
    Timestamptz,
}

/// Declared type of a parameter: a scalar type, or a list of one (written `date[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamType {
    pub scalar: ScalarType,
    pub list: bool,
}

const TYPE_NAMES: &str = "text, number, integer, boolean, date, timestamp or timestamptz, with [] for a list";

impl ParamType {
    /// Parses `integer`, `date[]` and the like.
    pub fn parse(text: &str) -> Result<ParamType, String> {
        let (base, list) = match text.trim().strip_suffix("[]") {
            Some(base) => (base, true),
            None => (text.trim(), false),
        };
        let scalar = match base {
            "text" | "string" => ScalarType::Text,
            "number" | "decimal" => ScalarType::Number,
            "integer" => ScalarType::Integer,
            "boolean" => ScalarType::Boolean,
            "date" => ScalarType::Date,
            "timestamp" => ScalarType::Timestamp,
            "timestamptz" => ScalarType::Timestamptz,
            _ => return Err(format!("{text:?} is not a parameter type; use {TYPE_NAMES}.")),
        };
        Ok(ParamType { scalar, list })
    }

    pub fn name(&self) -> String {
        let base = match self.scalar {
            ScalarType::Text => "text",
            ScalarType::Number => "number",
            ScalarType::Integer => "integer",
            ScalarType::Boolean => "boolean",
            ScalarType::Date => "date",
            ScalarType::Timestamp => "timestamp",
            ScalarType::Timestamptz => "timestamptz",
        };
        if self.list {
            format!("{base}[]")
        } else {
            base.to_owned()
        }
    }

    /// Checks a JSON value against this type and converts it. `null` is accepted for any
    /// type.
    pub fn value(&self, name: &str, value: &Value) -> Result<ParamValue, ConnectorError> {
        if value.is_null() {
            return Ok(ParamValue::Null);
        }
        if !self.list {
            return scalar_value(self.scalar, value).map_err(|expected| invalid(name, value, &expected));
        }
        let Value::Array(items) = value else {
            return Err(invalid(name, value, &format!("a list ({})", self.name())));
        };
        items
            .iter()
            .map(|item| {
                if item.is_null() {
                    Ok(ParamValue::Null)
                } else {
                    scalar_value(self.scalar, item).map_err(|expected| invalid(name, item, &expected))
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ParamValue::List)
    }
}

fn invalid(name: &str, value: &Value, expected: &str) -> ConnectorError {
    let mut shown = value.to_string();
    if shown.chars().count() > 60 {
        shown = shown.chars().take(60).collect::<String>() + "…";
    }
    ConnectorError::InvalidParameter {
        name: name.to_owned(),
        message: format!("The parameter {name:?} must be {expected}; got {shown}."),
    }
}

/// Converts one value, or returns what was expected.
fn scalar_value(scalar: ScalarType, value: &Value) -> Result<ParamValue, String> {
    let text = value.as_str().map(str::trim);
    match scalar {
        ScalarType::Text => match value {
            Value::String(text) => Ok(ParamValue::Text(text.clone())),
            _ => Err("text (a JSON string)".into()),
        },
        ScalarType::Integer => value
            .as_i64()
            .or_else(|| text.and_then(|text| text.parse().ok()))
            .map(ParamValue::Int)
            .ok_or_else(|| "a whole number between -9223372036854775808 and 9223372036854775807".into()),
        ScalarType::Number => {
            let digits = match value {
                Value::Number(number) => number.to_string(),
                Value::String(text) => text.trim().to_owned(),
                _ => String::new(),
            };
            if is_decimal(&digits) {
                Ok(ParamValue::Decimal(digits))
            } else {
                Err("a number (such as 12.50, given as a JSON number or string)".into())
            }
        }
        ScalarType::Boolean => match (value, text) {
            (Value::Bool(value), _) => Ok(ParamValue::Bool(*value)),
            (_, Some("true")) => Ok(ParamValue::Bool(true)),
            (_, Some("false")) => Ok(ParamValue::Bool(false)),
            _ => Err("true or false".into()),
        },
        ScalarType::Date => text
            .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
            .map(ParamValue::Date)
            .ok_or_else(|| "a date written YYYY-MM-DD".into()),
        ScalarType::Timestamp => text
            .and_then(|text| {
                NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                    .ok()
            })
            .map(ParamValue::Timestamp)
            .ok_or_else(|| "a date and time without zone, written YYYY-MM-DDTHH:MM:SS".into()),
        ScalarType::Timestamptz => text
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|instant| ParamValue::TimestampTz(instant.with_timezone(&Utc)))
            .ok_or_else(|| "an instant with its offset, written YYYY-MM-DDTHH:MM:SSZ or with +HH:MM".into()),
    }
}

/// Whether `text` is a plain decimal number: optional sign, digits, optional fraction and
/// exponent.
fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|exponent| {
        let digits_part = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        !digits_part.is_empty() && digits(digits_part)
    });
    !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction) && exponent_ok && text.len() <= 100
}

/// Reads a request's parameter value: `{"type": "date", "value": "2024-01-31"}` is checked
/// against its type; any other JSON value is taken as it is (strings are text, whole
/// numbers integers, other numbers floats, arrays lists).
pub fn request_value(name: &str, value: &Value) -> Result<ParamValue, ConnectorError> {
    if let Value::Object(object) = value
        && let Some(kind) = object.get("type")
    {
        let unexpected = object.keys().find(|key| !matches!(key.as_str(), "type" | "value"));
        if let Some(key) = unexpected {
            return Err(ConnectorError::InvalidParameter {
                name: name.to_owned(),
                message: format!("The parameter {name:?} has an unknown field {key:?}; give type and value."),
            });
        }
        let kind = kind.as_str().ok_or_else(|| ConnectorError::InvalidParameter {
            name: name.to_owned(),
            message: format!("The type of parameter {name:?} must be a string; use {TYPE_NAMES}."),
        })?;
        let kind = ParamType::parse(kind).map_err(|message| ConnectorError::InvalidParameter {
            name: name.to_owned(),
            message,
        })?;
        return kind.value(name, object.get("value").unwrap_or(&Value::Null));
    }
    ParamValue::from_json(name, value)
}

/// Placeholder style of the target database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `$1`, `$2`, … (PostgreSQL).
    Numbered,
    /// `?` (MySQL, SQLite).
    Question,
    /// Like `Question`, plus backslash escapes in strings and `#` comments (MySQL).
    QuestionMySql,
}

/// A piece of query text: plain text to copy, or a `{{name}}` placeholder.
enum Piece<'t> {
    Text(&'t str),
    Placeholder(&'t str),
}

/// Splits `text` into plain text and placeholders. Strings, quoted identifiers and comments
/// are plain text whatever they contain.
fn walk<'t>(
    text: &'t str,
    style: Style,
    mut visit: impl FnMut(Piece<'t>) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let skip_to = skip_literal(text, index, style);
        if skip_to > index {
            visit(Piece::Text(&text[index..skip_to]))?;
            index = skip_to;
            continue;
        }
        if text[index..].starts_with("{{")
            && let Some(close) = text[index + 2..].find("}}")
        {
            let name = text[index + 2..index + 2 + close].trim();
            if is_identifier(name) {
                visit(Piece::Placeholder(name))?;
                index += 2 + close + 2;
                continue;
            }
        }
        let character = text[index..].chars().next().unwrap_or('\0');
        let end = index + character.len_utf8().max(1);
        visit(Piece::Text(&text[index..end]))?;
        index = end;
    }
    Ok(())
}

/// Returns the names of the `{{name}}` placeholders in `text`.
pub fn placeholders(text: &str, style: Style) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let _ = walk(text, style, |piece| {
        if let Piece::Placeholder(name) = piece {
            names.insert(name.to_owned());
        }
        Ok(())
    });
    names
}

/// Replaces `{{name}}` placeholders and returns the text for the driver with the values in
/// binding order. Every placeholder needs a value and every value a placeholder.
pub fn compile(
    text: &str,
    style: Style,
    values: &BTreeMap<String, ParamValue>,
) -> Result<(String, Vec<ParamValue>), ConnectorError> {
    let mut output = String::with_capacity(text.len());
    let mut bound = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    walk(text, style, |piece| {
        match piece {
            Piece::Text(text) => output.push_str(text),
            Piece::Placeholder(name) => {
                let value = values.get(name).ok_or_else(|| ConnectorError::InvalidQuery {
                    message: format!("The query uses the parameter {{{{{name}}}}} but no value was given for it."),
                })?;
                used.insert(name.to_owned());
                push_placeholders(&mut output, &mut bound, value, style);
            }
        }
        Ok(())
    })?;
    if let Some(unused) = values.keys().find(|name| !used.contains(*name)) {
        return Err(ConnectorError::InvalidQuery {
            message: format!(
                "The parameter {unused:?} is not used in the query; write {{{{{unused}}}}} where it belongs."
            ),
        });
    }
    Ok((output, bound))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

fn push_placeholders(output: &mut String, bound: &mut Vec<ParamValue>, value: &ParamValue, style: Style) {
    let items: Vec<ParamValue> = match value {
        // An empty list binds one NULL, so `IN ({{ids}})` matches nothing instead of failing.
        ParamValue::List(items) if items.is_empty() => vec![ParamValue::Null],
        ParamValue::List(items) => items.clone(),
        single => vec![single.clone()],
    };
    for (position, item) in items.into_iter().enumerate() {
        if position > 0 {
            output.push_str(", ");
        }
        // NULL is written as the keyword: it carries no data, and an untyped NULL compares
        // with any column type, which a bound NULL of a fixed type would not.
        if item == ParamValue::Null {
            output.push_str("NULL");
            continue;
        }
        let cast = match (&item, style) {
            (ParamValue::Decimal(_), Style::Numbered) => "::numeric",
            (ParamValue::Date(_), Style::Numbered) => "::date",
            (ParamValue::Timestamp(_), Style::Numbered) => "::timestamp",
            (ParamValue::TimestampTz(_), Style::Numbered) => "::timestamptz",
            _ => "",
        };
        bound.push(item);
        match style {
            Style::Numbered => output.push_str(&format!("${}{cast}", bound.len())),
            Style::Question | Style::QuestionMySql => output.push('?'),
        }
    }
}

/// Returns the end of the string, quoted identifier or comment starting at `index`, or
/// `index` when none starts there. An unterminated one runs to the end of the text.
fn skip_literal(text: &str, index: usize, style: Style) -> usize {
    let bytes = text.as_bytes();
    let rest = &text[index..];
    let backslashes = style == Style::QuestionMySql;
    match bytes[index] {
        b'\'' => skip_quoted(bytes, index, b'\'', backslashes),
        b'"' => skip_quoted(bytes, index, b'"', backslashes),
        b'`' => skip_quoted(bytes, index, b'`', false),
        b'-' if rest.starts_with("--") => rest.find('\n').map_or(text.len(), |end| index + end + 1),
        b'#' if style == Style::QuestionMySql => rest.find('\n').map_or(text.len(), |end| index + end + 1),
        b'/' if rest.starts_with("/*") => rest[2..].find("*/").map_or(text.len(), |end| index + 2 + end + 2),
        b'$' if style == Style::Numbered => dollar_quote_end(text, index).unwrap_or(index),
        _ => index,
    }
}

fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslashes: bool) -> usize {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' if backslashes => index += 2,
            byte if byte == quote => {
                if bytes.get(index + 1) == Some(&quote) {
                    index += 2;
                } else {
                    return index + 1;
                }
            }
            _ => index += 1,
        }
    }
    bytes.len()
}

/// End of a PostgreSQL dollar-quoted string (`$$…$$`, `$tag$…$tag$`) starting at `start`.
fn dollar_quote_end(text: &str, start: usize) -> Option<usize> {
    let rest = &text[start + 1..];
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    let valid_tag =
        tag.chars().all(|c| c.is_alphanumeric() || c == '_') && !tag.starts_with(|c: char| c.is_ascii_digit());
    if !tag.is_empty() && !valid_tag {
        return None;
    }
    let delimiter = format!("${tag}$");
    let body_start = start + delimiter.len();
    Some(
        text[body_start..]
            .find(&delimiter)
            .map_or(text.len(), |end| body_start + end + delimiter.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, ParamValue)]) -> BTreeMap<String, ParamValue> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn placeholders_become_driver_placeholders() {
        let given = values(&[
            ("status", ParamValue::Text("paid".into())),
            ("min", ParamValue::Int(10)),
        ]);
        let (sql, bound) = compile(
            "select * from t where s = {{status}} and n > {{ min }}",
            Style::Numbered,
            &given,
        )
        .expect("compile");
        assert_eq!(sql, "select * from t where s = $1 and n > $2");
        assert_eq!(bound, vec![ParamValue::Text("paid".into()), ParamValue::Int(10)]);

        let (sql, _) =
            compile("select {{min}}, {{min}}", Style::Question, &given_only(&given, "min")).expect("compile");
        assert_eq!(sql, "select ?, ?");
    }

    fn given_only(all: &BTreeMap<String, ParamValue>, name: &str) -> BTreeMap<String, ParamValue> {
        all.iter()
            .filter(|(key, _)| key.as_str() == name)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[test]
    fn lists_expand() {
        let given = values(&[("ids", ParamValue::List(vec![ParamValue::Int(1), ParamValue::Int(2)]))]);
        let (sql, bound) = compile("where id in ({{ids}})", Style::Numbered, &given).expect("compile");
        assert_eq!(sql, "where id in ($1, $2)");
        assert_eq!(bound.len(), 2);

        let empty = values(&[("ids", ParamValue::List(vec![]))]);
        let (sql, bound) = compile("where id in ({{ids}})", Style::Question, &empty).expect("compile");
        assert_eq!(sql, "where id in (NULL)");
        assert_eq!(bound, Vec::<ParamValue>::new());
    }

    #[test]
    fn literals_and_comments_are_left_alone() {
        let given = values(&[("x", ParamValue::Int(1))]);
        let text = "select '{{x}}', \"{{x}}\", $t${{x}}$t$ -- {{x}}\n, {{x}} /* {{x}} */";
        let (sql, bound) = compile(text, Style::Numbered, &given).expect("compile");
        assert_eq!(sql, "select '{{x}}', \"{{x}}\", $t${{x}}$t$ -- {{x}}\n, $1 /* {{x}} */");
        assert_eq!(bound.len(), 1);

        let mysql = "select 'it\\'s {{x}}', {{x}} # {{x}}";
        let (sql, _) = compile(mysql, Style::QuestionMySql, &given).expect("compile");
        assert_eq!(sql, "select 'it\\'s {{x}}', ? # {{x}}");
    }

    #[test]
    fn typed_values_get_casts_for_postgres() {
        let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
        let given = values(&[
            ("d", ParamValue::Date(date)),
            ("n", ParamValue::Null),
            ("x", ParamValue::Decimal("1.50".into())),
        ]);
        let (sql, bound) = compile("{{d}} {{n}} {{x}}", Style::Numbered, &given).expect("compile");
        assert_eq!(sql, "$1::date NULL $2::numeric");
        assert_eq!(bound.len(), 2);
        let (sql, _) = compile("{{d}} {{n}} {{x}}", Style::Question, &given).expect("compile");
        assert_eq!(sql, "? NULL ?");
    }

    #[test]
    fn missing_and_unused_values_are_named() {
        let error = compile("select {{a}}", Style::Question, &BTreeMap::new()).expect_err("missing");
        assert!(error.to_string().contains("{{a}}"), "{error}");
        let error = compile("select 1", Style::Question, &values(&[("b", ParamValue::Null)])).expect_err("unused");
        assert!(error.to_string().contains("\"b\""), "{error}");
    }

    #[test]
    fn json_values_are_inferred() {
        let value = serde_json::json!([1, 2.5, "x", true, null]);
        assert_eq!(
            ParamValue::from_json("p", &value).expect("list"),
            ParamValue::List(vec![
                ParamValue::Int(1),
                ParamValue::Float(2.5),
                ParamValue::Text("x".into()),
                ParamValue::Bool(true),
                ParamValue::Null
            ])
        );
        assert!(ParamValue::from_json("p", &serde_json::json!({"a": 1})).is_err());
    }

    #[test]
    fn typed_values_are_checked() {
        let date = request_value("d", &serde_json::json!({"type": "date", "value": "2024-02-29"})).expect("date");
        assert_eq!(
            date,
            ParamValue::Date(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"))
        );
        let amount = request_value("n", &serde_json::json!({"type": "number", "value": "12.50"})).expect("number");
        assert_eq!(amount, ParamValue::Decimal("12.50".into()));
        let ids = request_value(
            "ids",
            &serde_json::json!({"type": "integer[]", "value": [1, "2", null]}),
        )
        .expect("ids");
        assert_eq!(
            ids,
            ParamValue::List(vec![ParamValue::Int(1), ParamValue::Int(2), ParamValue::Null])
        );
        let instant = request_value(
            "t",
            &serde_json::json!({"type": "timestamptz", "value": "2024-01-01T01:00:00+01:00"}),
        )
        .expect("instant");
        assert_eq!(
            instant,
            ParamValue::TimestampTz("2024-01-01T00:00:00Z".parse().expect("utc"))
        );

        for (json, name) in [
            (serde_json::json!({"type": "date", "value": "31/01/2024"}), "d"),
            (serde_json::json!({"type": "integer", "value": 1.5}), "d"),
            (serde_json::json!({"type": "number", "value": "1,5"}), "d"),
            (
                serde_json::json!({"type": "timestamp", "value": "2024-01-01T00:00:00Z"}),
                "d",
            ),
            (serde_json::json!({"type": "uuid", "value": "x"}), "d"),
            (serde_json::json!({"type": "text", "value": "x", "extra": 1}), "d"),
        ] {
            match request_value(name, &json) {
                Err(ConnectorError::InvalidParameter { name: named, .. }) => assert_eq!(named, name),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn type_names_round_trip() {
        for name in [
            "text",
            "number",
            "integer",
            "boolean",
            "date",
            "timestamp",
            "timestamptz",
            "date[]",
        ] {
            assert_eq!(ParamType::parse(name).expect(name).name(), name);
        }
    }
}
