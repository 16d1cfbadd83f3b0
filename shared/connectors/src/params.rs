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
                        Value::Array(_) => Err(ConnectorError::InvalidQuery {
                            message: format!("The parameter {name:?} is a list of lists; use a flat list."),
                        }),
                        other => ParamValue::from_json(name, other),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(_) => {
                return Err(ConnectorError::InvalidQuery {
                    message: format!(
                        "The parameter {name:?} is an object; parameters are text, numbers, booleans, null or lists."
                    ),
                });
            }
        })
    }
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
    let bytes = text.as_bytes();
    let mut index = 0;

    while index < bytes.len() {
        let skip_to = skip_literal(text, index, style);
        if skip_to > index {
            output.push_str(&text[index..skip_to]);
            index = skip_to;
            continue;
        }
        if text[index..].starts_with("{{")
            && let Some(close) = text[index + 2..].find("}}")
        {
            let name = text[index + 2..index + 2 + close].trim();
            if is_identifier(name) {
                let value = values.get(name).ok_or_else(|| ConnectorError::InvalidQuery {
                    message: format!("The query uses the parameter {{{{{name}}}}} but no value was given for it."),
                })?;
                used.insert(name.to_owned());
                push_placeholders(&mut output, &mut bound, value, style);
                index += 2 + close + 2;
                continue;
            }
        }
        let character = text[index..].chars().next().unwrap_or('\0');
        output.push(character);
        index += character.len_utf8().max(1);
    }

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
}
