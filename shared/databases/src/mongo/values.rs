//! MongoDB documents as rows: columns are the union of the documents' keys, in order of
//! first appearance; a key missing from a document is NULL there.
//!
//! A column whose values all have one BSON type is typed and encoded like SQL values
//! (`int64` and `decimal` as strings, dates as UTC instants, ObjectIds as hex, binary as
//! base64). A column that mixes types, and every nested document or array, uses MongoDB
//! Extended JSON, relaxed except that 64-bit integers, decimals, ObjectIds, dates and binary
//! keep their canonical wrappers (`{"$numberLong": "…"}`, `{"$oid": "…"}`, …), so no value
//! loses its type.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mongodb::bson::{Bson, Document, spec::ElementType};
use serde_json::{Map, Value, json};

use crate::error::ConnectorError;
use crate::execute::{Caps, RowSink, SetEnd, row_size, statement_label};
use crate::value::{Cell, Column, PortableType};

/// Portable type and BSON type name of one value.
fn kind(value: &Bson) -> (PortableType, &'static str) {
    match value.element_type() {
        ElementType::Double => (PortableType::Float64, "double"),
        ElementType::String => (PortableType::String, "string"),
        ElementType::EmbeddedDocument => (PortableType::Document, "object"),
        ElementType::Array => (PortableType::Array, "array"),
        ElementType::Binary => (PortableType::Binary, "binData"),
        ElementType::ObjectId => (PortableType::Objectid, "objectId"),
        ElementType::Boolean => (PortableType::Boolean, "bool"),
        ElementType::DateTime => (PortableType::Timestamptz, "date"),
        ElementType::Null => (PortableType::Null, "null"),
        ElementType::Int32 => (PortableType::Int32, "int"),
        ElementType::Int64 => (PortableType::Int64, "long"),
        ElementType::Decimal128 => (PortableType::Decimal, "decimal"),
        ElementType::RegularExpression => (PortableType::Document, "regex"),
        ElementType::Timestamp => (PortableType::Document, "timestamp"),
        _ => (PortableType::Document, "other"),
    }
}

/// Portable type and BSON type name of a column from its values: the one type they share
/// (nulls aside), or `mixed`.
pub fn column_for(values: &[Bson]) -> (PortableType, String) {
    let mut found: Option<(PortableType, &'static str)> = None;
    for value in values {
        if matches!(value, Bson::Null) {
            continue;
        }
        let current = kind(value);
        match found {
            None => found = Some(current),
            Some(previous) if previous.1 == current.1 => {}
            Some(_) => return (PortableType::Mixed, "mixed".to_owned()),
        }
    }
    match found {
        Some((portable, name)) => (portable, name.to_owned()),
        None => (PortableType::Null, "null".to_owned()),
    }
}

fn iso_date(value: &mongodb::bson::DateTime) -> Value {
    match value.try_to_rfc3339_string() {
        Ok(text) => Value::String(text),
        Err(_) => json!({ "$numberLong": value.timestamp_millis().to_string() }),
    }
}

/// Extended JSON of a value: relaxed, with canonical wrappers for the types JSON cannot
/// carry.
pub fn extended_json(value: &Bson) -> Value {
    match value {
        Bson::Document(document) => Value::Object(
            document
                .iter()
                .map(|(key, value)| (key.clone(), extended_json(value)))
                .collect::<Map<_, _>>(),
        ),
        Bson::Array(items) => Value::Array(items.iter().map(extended_json).collect()),
        Bson::Int32(value) => json!(value),
        Bson::Int64(value) => json!({ "$numberLong": value.to_string() }),
        Bson::Double(value) if value.is_finite() => json!(value),
        Bson::Double(value) => {
            let text = if value.is_nan() {
                "NaN"
            } else if *value > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            json!({ "$numberDouble": text })
        }
        Bson::Decimal128(value) => json!({ "$numberDecimal": value.to_string() }),
        Bson::String(text) => Value::String(text.clone()),
        Bson::Boolean(value) => Value::Bool(*value),
        Bson::Null => Value::Null,
        Bson::ObjectId(id) => json!({ "$oid": id.to_hex() }),
        Bson::DateTime(date) => json!({ "$date": iso_date(date) }),
        Bson::Binary(binary) => json!({
            "$binary": { "base64": STANDARD.encode(&binary.bytes), "subType": format!("{:02x}", u8::from(binary.subtype)) }
        }),
        other => other.clone().into_relaxed_extjson(),
    }
}

/// Encodes a value of a column whose values share `portable`.
fn plain_cell(portable: PortableType, value: &Bson) -> Cell {
    match (portable, value) {
        (_, Bson::Null) => Cell::NULL,
        (PortableType::Float64, Bson::Double(value)) => Cell::float(*value),
        (PortableType::String, Bson::String(text)) => Cell::text(text.clone()),
        (PortableType::Binary, Bson::Binary(binary)) => Cell::binary(&binary.bytes),
        (PortableType::Objectid, Bson::ObjectId(id)) => Cell::text(id.to_hex()),
        (PortableType::Boolean, Bson::Boolean(value)) => Cell::bool(*value),
        (PortableType::Timestamptz, Bson::DateTime(date)) => Cell::Value(iso_date(date)),
        (PortableType::Int32, Bson::Int32(value)) => Cell::small_int(i64::from(*value)),
        (PortableType::Int64, Bson::Int64(value)) => Cell::big_int(*value),
        (PortableType::Decimal, Bson::Decimal128(value)) => Cell::text(value.to_string()),
        (_, other) => Cell::Value(extended_json(other)),
    }
}

/// Documents collected for one result set.
#[derive(Default)]
pub struct Table {
    keys: Vec<String>,
    documents: Vec<Document>,
    truncated: bool,
}

impl Table {
    /// Adds a document unless a cap is reached; returns false once it is (the result is then
    /// truncated).
    pub fn push(&mut self, document: Document, caps: &mut Caps) -> bool {
        let cells: Vec<Cell> = document
            .values()
            .map(|value| Cell::Value(extended_json(value)))
            .collect();
        if !caps.admit(row_size(&cells)) {
            self.truncated = true;
            return false;
        }
        for key in document.keys() {
            if !self.keys.iter().any(|known| known == key) {
                self.keys.push(key.clone());
            }
        }
        self.documents.push(document);
        true
    }

    /// Writes the documents as one result set, their columns being the union of their keys.
    pub fn finish(self, statement: &str, sink: &mut dyn RowSink) -> Result<(), ConnectorError> {
        let mut columns = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let values: Vec<Bson> = self
                .documents
                .iter()
                .filter_map(|document| document.get(key).cloned())
                .collect();
            let (portable, native) = column_for(&values);
            columns.push(Column::new(key.clone(), portable, native));
        }
        let row_count = self.documents.len();
        let cells_of = |document: &Document| -> Vec<Cell> {
            columns
                .iter()
                .map(|column| match document.get(&column.name) {
                    None => Cell::NULL,
                    Some(value) if column.portable == PortableType::Mixed => Cell::Value(extended_json(value)),
                    Some(value) => plain_cell(column.portable, value),
                })
                .collect()
        };
        sink.begin(statement_label(statement), columns.clone())?;
        for document in &self.documents {
            sink.row(cells_of(document))?;
        }
        sink.end(SetEnd {
            row_count,
            truncated: self.truncated,
            affected_rows: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, oid::ObjectId};

    fn finish(table: Table) -> crate::execute::ResultSet {
        let mut collect = crate::execute::Collect::default();
        table.finish("q", &mut collect).expect("finish");
        collect.sets.remove(0)
    }

    fn caps() -> Caps {
        Caps::new(&crate::execute::ExecuteRequest {
            query: String::new(),
            database: None,
            max_rows: 100,
            max_bytes: 1 << 20,
            timeout: std::time::Duration::from_secs(1),
            read_only: true,
            params: Vec::new(),
            named_params: Default::default(),
        })
    }

    #[test]
    fn columns_are_the_union_of_keys() {
        let mut table = Table::default();
        let mut caps = caps();
        table.push(doc! { "_id": 1, "a": 1 }, &mut caps);
        table.push(doc! { "_id": 2, "b": "x" }, &mut caps);

        let set = finish(table);

        let names: Vec<&str> = set.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["_id", "a", "b"]);
        assert_eq!(
            serde_json::to_value(&set.rows).expect("rows"),
            json!([[1, 1, null], [2, null, "x"]])
        );
    }

    #[test]
    fn uniform_and_mixed_columns_encode_differently() {
        let id = ObjectId::parse_str("64f1a2b3c4d5e6f708091a2b").expect("oid");
        let mut table = Table::default();
        let mut caps = caps();
        table.push(
            doc! { "id": id, "n": 9_007_199_254_740_993i64, "m": 1i64, "nested": { "x": 5i64 } },
            &mut caps,
        );
        table.push(
            doc! { "id": id, "n": 1i64, "m": "one", "nested": { "x": 6i64 } },
            &mut caps,
        );

        let set = finish(table);
        let rows = serde_json::to_value(&set.rows).expect("rows");

        assert_eq!(rows[0][0], json!("64f1a2b3c4d5e6f708091a2b"));
        assert_eq!(rows[0][1], json!("9007199254740993"));
        assert_eq!(
            rows[0][2],
            json!({ "$numberLong": "1" }),
            "a mixed column keeps wrappers"
        );
        assert_eq!(rows[1][2], json!("one"));
        assert_eq!(rows[0][3], json!({ "x": { "$numberLong": "5" } }));
        assert_eq!(set.columns[0].portable, PortableType::Objectid);
        assert_eq!(set.columns[2].portable, PortableType::Mixed);
    }
}
