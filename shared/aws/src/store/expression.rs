//! DynamoDB expressions for write conditions, key conditions and the expiry filter.
//!
//! DynamoDB deletes expired items lazily (up to days after `ttl` passes), so every
//! expression treats an item whose `ttl` is at or before `:now` as absent.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use mako_core::ports::{Condition, SortKey};

use super::codec::{TTL, VERSION, number, string};

/// An expression with its placeholder names (`#x`) and values (`:x`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Expression {
    pub text: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expression {
    fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names.insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    /// Returns the placeholder names for a request, or `None` when there are none, because
    /// DynamoDB rejects an empty map.
    pub fn names_or_none(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// Returns the placeholder values for a request, or `None` when there are none.
    pub fn values_or_none(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// Adds the names and values of `other`. A placeholder that both use takes `other`'s
    /// meaning, so callers keep their placeholders distinct.
    pub fn merge_placeholders(&mut self, other: &Expression) {
        self.names.extend(other.names.clone());
        self.values.extend(other.values.clone());
    }
}

/// Builds the condition expression of a write, or `None` for [`Condition::Always`].
pub(crate) fn condition(condition: Condition, now: i64) -> Option<Expression> {
    let expression = match condition {
        Condition::Always => return None,
        Condition::NotExists => Expression::new("attribute_not_exists(pk) OR #ttl <= :now"),
        Condition::Exists => Expression::new("attribute_exists(pk) AND (attribute_not_exists(#ttl) OR #ttl > :now)"),
        Condition::Version(version) => Expression::new("#v = :v AND (attribute_not_exists(#ttl) OR #ttl > :now)")
            .name("#v", VERSION)
            .value(":v", number(version)),
    };
    Some(expression.name("#ttl", TTL).value(":now", number(now)))
}

/// Builds the condition expression of a transaction's check. `ConditionCheck` requires an
/// expression, so [`Condition::Always`] becomes one that always holds.
pub(crate) fn check_condition(condition: Condition, now: i64) -> Expression {
    self::condition(condition, now)
        .unwrap_or_else(|| Expression::new("attribute_exists(pk) OR attribute_not_exists(pk)"))
}

/// Builds the key condition of a query over partition `pk` of the key attributes
/// `partition_attribute` and `sort_attribute`.
pub(crate) fn key_condition(partition_attribute: &str, sort_attribute: &str, pk: &str, sort: &SortKey) -> Expression {
    let sort_text = match sort {
        SortKey::All => None,
        SortKey::Equals(_) => Some("#sk = :sk"),
        SortKey::BeginsWith(_) => Some("begins_with(#sk, :sk)"),
        SortKey::Between(_, _) => Some("#sk BETWEEN :sk AND :sk_end"),
        SortKey::After(_) => Some("#sk > :sk"),
        SortKey::Before(_) => Some("#sk < :sk"),
    };
    let mut expression = Expression::new("#pk = :pk")
        .name("#pk", partition_attribute)
        .value(":pk", string(pk));
    let Some(sort_text) = sort_text else {
        return expression;
    };

    expression.text = format!("#pk = :pk AND {sort_text}");
    expression = expression.name("#sk", sort_attribute);
    match sort {
        SortKey::All => expression,
        SortKey::Equals(value) | SortKey::BeginsWith(value) | SortKey::After(value) | SortKey::Before(value) => {
            expression.value(":sk", string(value))
        }
        SortKey::Between(start, end) => expression.value(":sk", string(start)).value(":sk_end", string(end)),
    }
}

/// Builds the filter expression that hides expired items from a query.
pub(crate) fn not_expired(now: i64) -> Expression {
    Expression::new("attribute_not_exists(#ttl) OR #ttl > :now")
        .name("#ttl", TTL)
        .value(":now", number(now))
}

/// Condition of `increment`'s update: the counter is missing, never expires or is live.
pub(crate) fn counter_live(now: i64) -> Expression {
    Expression::new("attribute_not_exists(pk) OR attribute_not_exists(#ttl) OR #ttl > :now")
        .name("#ttl", TTL)
        .value(":now", number(now))
}

/// Condition of the fresh counter that replaces an expired one: it is still expired.
pub(crate) fn counter_expired(now: i64) -> Expression {
    Expression::new("#ttl <= :now")
        .name("#ttl", TTL)
        .value(":now", number(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn always_has_no_condition() {
        assert_eq!(condition(Condition::Always, NOW), None);
    }

    #[test]
    fn not_exists_admits_expired_items() {
        let expression = condition(Condition::NotExists, NOW).expect("expression");
        assert_eq!(expression.text, "attribute_not_exists(pk) OR #ttl <= :now");
        assert_eq!(expression.names, HashMap::from([("#ttl".into(), "ttl".into())]));
        assert_eq!(
            expression.values,
            HashMap::from([(":now".into(), AttributeValue::N(NOW.to_string()))])
        );
    }

    #[test]
    fn exists_rejects_expired_items() {
        let expression = condition(Condition::Exists, NOW).expect("expression");
        assert_eq!(
            expression.text,
            "attribute_exists(pk) AND (attribute_not_exists(#ttl) OR #ttl > :now)"
        );
        assert_eq!(expression.values.len(), 1);
    }

    #[test]
    fn version_compares_attribute_v() {
        let expression = condition(Condition::Version(7), NOW).expect("expression");
        assert_eq!(
            expression.text,
            "#v = :v AND (attribute_not_exists(#ttl) OR #ttl > :now)"
        );
        assert_eq!(expression.names.get("#v").map(String::as_str), Some("v"));
        assert_eq!(expression.values.get(":v"), Some(&AttributeValue::N("7".into())));
        assert_eq!(expression.values.get(":now"), Some(&AttributeValue::N(NOW.to_string())));
    }

    #[test]
    fn check_of_always_still_has_an_expression() {
        let expression = check_condition(Condition::Always, NOW);
        assert!(!expression.text.is_empty());
        assert_eq!(expression.names_or_none(), None);
        assert_eq!(expression.values_or_none(), None);
    }

    #[test]
    fn key_conditions_cover_every_sort_key() {
        let cases = [
            (SortKey::All, "#pk = :pk", 1),
            (SortKey::Equals("a".into()), "#pk = :pk AND #sk = :sk", 2),
            (
                SortKey::BeginsWith("a".into()),
                "#pk = :pk AND begins_with(#sk, :sk)",
                2,
            ),
            (
                SortKey::Between("a".into(), "b".into()),
                "#pk = :pk AND #sk BETWEEN :sk AND :sk_end",
                3,
            ),
            (SortKey::After("a".into()), "#pk = :pk AND #sk > :sk", 2),
            (SortKey::Before("a".into()), "#pk = :pk AND #sk < :sk", 2),
        ];
        for (sort, text, values) in cases {
            let expression = key_condition("gsi1pk", "gsi1sk", "OWNER#x", &sort);
            assert_eq!(expression.text, text, "{sort:?}");
            assert_eq!(expression.values.len(), values, "{sort:?}");
            assert_eq!(
                expression.names.get("#pk").map(String::as_str),
                Some("gsi1pk"),
                "{sort:?}"
            );
            assert_eq!(
                expression.values.get(":pk"),
                Some(&AttributeValue::S("OWNER#x".into())),
                "{sort:?}"
            );
        }
    }

    #[test]
    fn between_binds_both_bounds() {
        let expression = key_condition("pk", "sk", "P", &SortKey::Between("a".into(), "b".into()));
        assert_eq!(expression.values.get(":sk"), Some(&AttributeValue::S("a".into())));
        assert_eq!(expression.values.get(":sk_end"), Some(&AttributeValue::S("b".into())));
    }

    #[test]
    fn filter_and_key_condition_merge() {
        let mut expression = key_condition("pk", "sk", "P", &SortKey::All);
        expression.merge_placeholders(&not_expired(NOW));
        assert_eq!(expression.names.len(), 2);
        assert_eq!(expression.values.len(), 2);
    }
}
