//! Conversion between [`Item`]s, keys and cursors and DynamoDB attribute maps.
//!
//! Attribute layout (the SAM template defines the same names): `pk` and `sk` are the table
//! key, `gsi1pk`/`gsi1sk` and `gsi2pk`/`gsi2sk` the index keys, `ttl` the expiry in Unix
//! seconds, `v` the version, `d` the JSON text of the document and `n` a counter's value.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, anyhow};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mako_core::ports::{Index, IndexKey, Item, Key, StoreError};

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const GSI1_PK: &str = "gsi1pk";
pub(crate) const GSI1_SK: &str = "gsi1sk";
pub(crate) const GSI2_PK: &str = "gsi2pk";
pub(crate) const GSI2_SK: &str = "gsi2sk";
pub(crate) const TTL: &str = "ttl";
pub(crate) const VERSION: &str = "v";
pub(crate) const DATA: &str = "d";
pub(crate) const COUNTER: &str = "n";

pub(crate) type Attributes = HashMap<String, AttributeValue>;

/// Index name and key attributes of a query target.
pub(crate) struct IndexLayout {
    /// `None` for the table itself.
    pub name: Option<&'static str>,
    pub partition: &'static str,
    pub sort: &'static str,
}

pub(crate) fn layout(index: Index) -> IndexLayout {
    match index {
        Index::Primary => IndexLayout {
            name: None,
            partition: PK,
            sort: SK,
        },
        Index::Gsi1 => IndexLayout {
            name: Some("gsi1"),
            partition: GSI1_PK,
            sort: GSI1_SK,
        },
        Index::Gsi2 => IndexLayout {
            name: Some("gsi2"),
            partition: GSI2_PK,
            sort: GSI2_SK,
        },
    }
}

pub(crate) fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(crate) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Returns the table key attributes of `key`.
pub(crate) fn key_attributes(key: &Key) -> Attributes {
    HashMap::from([(PK.to_owned(), string(&key.pk)), (SK.to_owned(), string(&key.sk))])
}

/// Returns every attribute of `item`.
pub(crate) fn item_attributes(item: &Item) -> Attributes {
    let mut attributes = key_attributes(&item.key());
    if let Some(gsi1) = &item.gsi1 {
        attributes.insert(GSI1_PK.to_owned(), string(&gsi1.pk));
        attributes.insert(GSI1_SK.to_owned(), string(&gsi1.sk));
    }
    if let Some(gsi2) = &item.gsi2 {
        attributes.insert(GSI2_PK.to_owned(), string(&gsi2.pk));
        attributes.insert(GSI2_SK.to_owned(), string(&gsi2.sk));
    }
    if let Some(expires_at) = item.expires_at {
        attributes.insert(TTL.to_owned(), number(expires_at));
    }
    attributes.insert(VERSION.to_owned(), number(item.version));
    attributes.insert(DATA.to_owned(), AttributeValue::S(item.data.to_string()));
    attributes
}

/// Decodes an item that [`item_attributes`] wrote.
pub(crate) fn item_from_attributes(attributes: &Attributes) -> anyhow::Result<Item> {
    let pk = string_attribute(attributes, PK)?.context("the item has no pk attribute")?;
    let sk = string_attribute(attributes, SK)?.context("the item has no sk attribute")?;
    let context = || format!("item pk={pk:?} sk={sk:?}");

    let index_key = |partition: &str, sort: &str| -> anyhow::Result<Option<IndexKey>> {
        let partition = string_attribute(attributes, partition)?;
        let sort = string_attribute(attributes, sort)?;
        Ok(partition.zip(sort).map(|(pk, sk)| IndexKey::new(pk, sk)))
    };
    let gsi1 = index_key(GSI1_PK, GSI1_SK).with_context(context)?;
    let gsi2 = index_key(GSI2_PK, GSI2_SK).with_context(context)?;
    let expires_at = number_attribute::<i64>(attributes, TTL).with_context(context)?;
    let version = number_attribute::<u64>(attributes, VERSION)
        .with_context(context)?
        .with_context(|| format!("{} has no version attribute v", context()))?;
    let text = string_attribute(attributes, DATA)
        .with_context(context)?
        .with_context(|| format!("{} has no document attribute d", context()))?;
    let data = serde_json::from_str(text).with_context(|| format!("{} has a document that is not JSON", context()))?;

    Ok(Item {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
        gsi1,
        gsi2,
        expires_at,
        version,
        data,
    })
}

/// Returns whether an item's `ttl` attribute has passed at `now` (Unix seconds).
pub(crate) fn is_expired(attributes: &Attributes, now: i64) -> bool {
    matches!(number_attribute::<i64>(attributes, TTL), Ok(Some(at)) if at <= now)
}

/// Reads a counter's value `n` from an item or from `UpdateItem`'s returned attributes.
pub(crate) fn counter_value(attributes: &Attributes) -> anyhow::Result<i64> {
    number_attribute::<i64>(attributes, COUNTER)?.context("the counter item has no value attribute n")
}

fn string_attribute<'a>(attributes: &'a Attributes, name: &str) -> anyhow::Result<Option<&'a str>> {
    match attributes.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(text)) => Ok(Some(text)),
        Some(other) => Err(anyhow!("attribute {name} is {other:?}, expected a string")),
    }
}

fn number_attribute<T: std::str::FromStr>(attributes: &Attributes, name: &str) -> anyhow::Result<Option<T>> {
    match attributes.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| anyhow!("attribute {name} is {text:?}, expected an integer")),
        Some(other) => Err(anyhow!("attribute {name} is {other:?}, expected a number")),
    }
}

/// Encodes a query's `LastEvaluatedKey` as a cursor: base64url without padding of a JSON
/// object of its string attributes. Key attributes are always strings in this table.
pub(crate) fn encode_cursor(last_evaluated_key: &Attributes) -> String {
    let strings: BTreeMap<&str, &str> = last_evaluated_key
        .iter()
        .filter_map(|(name, value)| match value {
            AttributeValue::S(text) => Some((name.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    // Serializing a map of strings cannot fail.
    let json = serde_json::to_vec(&strings).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor into the `ExclusiveStartKey` of a query on `index` over partition
/// `partition_key`. The cursor must hold exactly the key attributes of that index (the
/// table key, plus the index key for a secondary index) and belong to the same partition.
pub(crate) fn decode_cursor(cursor: &str, index: Index, partition_key: &str) -> Result<Attributes, StoreError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let strings: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;

    let layout = layout(index);
    let mut expected = vec![PK, SK];
    if layout.name.is_some() {
        expected.extend([layout.partition, layout.sort]);
    }
    let names_match = strings.len() == expected.len() && expected.iter().all(|name| strings.contains_key(*name));
    if !names_match || strings.get(layout.partition).map(String::as_str) != Some(partition_key) {
        return Err(StoreError::InvalidCursor);
    }

    Ok(strings
        .into_iter()
        .map(|(name, value)| (name, AttributeValue::S(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn full_item() -> Item {
        let item = Item::new(
            Key::new("P#1", "S#1"),
            json!({"big": 18446744073709551615u64, "f": 0.1, "s": "é"}),
        )
        .with_gsi1(IndexKey::new("G1", "a"))
        .with_gsi2(IndexKey::new("G2", "b"))
        .expiring_at(1_700_000_000);
        Item { version: 42, ..item }
    }

    #[test]
    fn item_round_trips_through_attributes() {
        let item = full_item();
        let attributes = item_attributes(&item);

        assert_eq!(attributes.get(TTL), Some(&AttributeValue::N("1700000000".into())));
        assert_eq!(attributes.get(VERSION), Some(&AttributeValue::N("42".into())));
        assert_eq!(item_from_attributes(&attributes).expect("decode"), item);
    }

    #[test]
    fn plain_item_has_no_optional_attributes() {
        let item = Item::new(Key::new("P", "S"), json!(null));
        let attributes = item_attributes(&item);

        let mut names: Vec<_> = attributes.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec![DATA, PK, SK, VERSION]);
        assert_eq!(item_from_attributes(&attributes).expect("decode"), item);
    }

    #[test]
    fn item_without_document_is_an_error() {
        let mut attributes = item_attributes(&full_item());
        attributes.remove(DATA);
        let error = item_from_attributes(&attributes).expect_err("no document");
        assert!(format!("{error:#}").contains("attribute d"), "{error:#}");
    }

    #[test]
    fn expiry_is_checked_against_now() {
        let attributes = item_attributes(&full_item());
        assert!(is_expired(&attributes, 1_700_000_000));
        assert!(!is_expired(&attributes, 1_699_999_999));
        assert!(!is_expired(&key_attributes(&Key::new("P", "S")), i64::MAX));
    }

    #[test]
    fn cursor_round_trips_for_each_index() {
        let table_key = key_attributes(&Key::new("P#1", "S#1"));
        let cursor = encode_cursor(&table_key);
        assert!(!cursor.contains('='), "no padding: {cursor}");
        assert_eq!(
            decode_cursor(&cursor, Index::Primary, "P#1").expect("decode"),
            table_key
        );

        let mut index_key = table_key.clone();
        index_key.insert(GSI2_PK.into(), string("OWNER#x"));
        index_key.insert(GSI2_SK.into(), string("1"));
        let cursor = encode_cursor(&index_key);
        assert_eq!(
            decode_cursor(&cursor, Index::Gsi2, "OWNER#x").expect("decode"),
            index_key
        );
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        let table_cursor = encode_cursor(&key_attributes(&Key::new("P#1", "S#1")));
        let cases = [
            ("not base64", "not a cursor".to_owned(), Index::Primary, "P#1"),
            ("not JSON", URL_SAFE_NO_PAD.encode("[1, 2"), Index::Primary, "P#1"),
            (
                "not strings",
                URL_SAFE_NO_PAD.encode(r#"{"pk": 1, "sk": "a"}"#),
                Index::Primary,
                "P#1",
            ),
            (
                "missing sk",
                URL_SAFE_NO_PAD.encode(r#"{"pk": "P#1"}"#),
                Index::Primary,
                "P#1",
            ),
            (
                "extra attribute",
                URL_SAFE_NO_PAD.encode(r#"{"pk": "P#1", "sk": "a", "x": "b"}"#),
                Index::Primary,
                "P#1",
            ),
            ("other partition", table_cursor.clone(), Index::Primary, "P#2"),
            ("table cursor on an index", table_cursor, Index::Gsi1, "P#1"),
        ];
        for (case, cursor, index, partition) in cases {
            let result = decode_cursor(&cursor, index, partition);
            assert!(matches!(result, Err(StoreError::InvalidCursor)), "{case}: {result:?}");
        }
    }
}
