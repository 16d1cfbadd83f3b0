//! `Store` on one DynamoDB table.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem};
use mako_core::ports::store::{MAX_BATCH_GET_KEYS, validate_item, validate_query, validate_transaction};
use mako_core::ports::{Condition, Item, Key, Page, Query, Store, StoreError, Write};

use crate::errors::{backend, error_code};
use crate::time::now_seconds;
use codec::{Attributes, COUNTER, TTL, number};
use expression::Expression;

mod codec;
mod expression;

/// Requests of one `batch_get` before unprocessed keys count as throttling.
const BATCH_GET_ATTEMPTS: u32 = 6;

/// Back-off before the first retry of unprocessed keys. It doubles on each retry.
const BATCH_GET_BACKOFF: Duration = Duration::from_millis(25);

/// Rounds of `increment` before giving up on a counter that keeps expiring and reappearing.
const INCREMENT_ROUNDS: u32 = 4;

/// Error codes that DynamoDB returns when it sheds load.
const THROTTLING_CODES: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// Cancellation reason codes of a transaction that a later retry may get past.
const RETRYABLE_CANCELLATION_CODES: [&str; 4] = [
    "TransactionConflict",
    "ProvisionedThroughputExceeded",
    "ThrottlingError",
    "RequestLimitExceeded",
];

/// `Store` adapter over one DynamoDB table with the attribute layout of the SAM template.
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Maps an SDK error to a failed condition, throttling or a backend failure.
    fn error<E, R>(&self, operation: &'static str, error: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + Error + Send + Sync + 'static,
        R: Debug + Send + Sync + 'static,
    {
        match error_code(&error) {
            Some("ConditionalCheckFailedException") => StoreError::ConditionFailed { index: None },
            Some(code) if THROTTLING_CODES.contains(&code) => {
                tracing::warn!(operation, table = %self.table, code, "DynamoDB is throttling requests");
                StoreError::Throttled
            }
            _ => StoreError::Backend(backend("DynamoDB", operation, &self.table, error)),
        }
    }

    fn decode(&self, attributes: &Attributes) -> Result<Item, StoreError> {
        codec::item_from_attributes(attributes).map_err(|error| {
            tracing::error!(table = %self.table, error = %format!("{error:#}"), "stored item cannot be decoded");
            StoreError::Backend(error)
        })
    }

    /// Reads up to 100 distinct keys, retrying unprocessed keys with a doubling back-off.
    /// Expired items are left out of the result.
    async fn batch_read(&self, keys: Vec<Key>) -> Result<HashMap<Key, Item>, StoreError> {
        let mut found = HashMap::new();
        let mut pending: Vec<Attributes> = keys.iter().map(codec::key_attributes).collect();
        let mut backoff = BATCH_GET_BACKOFF;

        for attempt in 1..=BATCH_GET_ATTEMPTS {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(StoreError::backend)?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|error| self.error("BatchGetItem", error))?;

            let now = now_seconds();
            let items = output.responses.and_then(|mut tables| tables.remove(&self.table));
            for attributes in items.unwrap_or_default() {
                if codec::is_expired(&attributes, now) {
                    continue;
                }
                let item = self.decode(&attributes)?;
                found.insert(item.key(), item);
            }

            pending = output
                .unprocessed_keys
                .and_then(|mut tables| tables.remove(&self.table))
                .map(|request| request.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(found);
            }
            if attempt < BATCH_GET_ATTEMPTS {
                tracing::debug!(table = %self.table, attempt, unprocessed = pending.len(), "retrying unprocessed keys");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }

        tracing::warn!(
            table = %self.table,
            attempts = BATCH_GET_ATTEMPTS,
            unprocessed = pending.len(),
            "BatchGetItem left keys unprocessed after every retry"
        );
        Err(StoreError::Throttled)
    }

    /// Replaces an expired counter with a fresh one holding `delta`, unless another writer
    /// replaced it first. Returns whether this call wrote the counter.
    async fn restart_counter(
        &self,
        key: &Key,
        delta: i64,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut attributes = codec::key_attributes(key);
        attributes.insert(COUNTER.to_owned(), number(delta));
        if let Some(expires_at) = expires_at {
            attributes.insert(TTL.to_owned(), number(expires_at));
        }
        let condition = expression::counter_expired(now);

        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attributes))
            .condition_expression(&condition.text)
            .set_expression_attribute_names(condition.names_or_none())
            .set_expression_attribute_values(condition.values_or_none())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match self.error("PutItem", error) {
                StoreError::ConditionFailed { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}

/// Rejects keys that DynamoDB would reject with a validation error.
fn validate_key(key: &Key) -> Result<(), StoreError> {
    if key.pk.is_empty() || key.sk.is_empty() {
        return Err(StoreError::InvalidRequest(
            "partition and sort keys must not be empty".into(),
        ));
    }
    Ok(())
}

/// Builds one write of a transaction.
fn transact_item(table: &str, write: Write, now: i64) -> Result<TransactWriteItem, StoreError> {
    let item = match write {
        Write::Put { item, condition } => {
            let condition = expression::condition(condition, now);
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(codec::item_attributes(&item)))
                .set_condition_expression(condition.as_ref().map(|c| c.text.clone()))
                .set_expression_attribute_names(condition.as_ref().and_then(Expression::names_or_none))
                .set_expression_attribute_values(condition.as_ref().and_then(Expression::values_or_none))
                .build()
                .map_err(StoreError::backend)?;
            TransactWriteItem::builder().put(put).build()
        }
        Write::Delete { key, condition } => {
            let condition = expression::condition(condition, now);
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(codec::key_attributes(&key)))
                .set_condition_expression(condition.as_ref().map(|c| c.text.clone()))
                .set_expression_attribute_names(condition.as_ref().and_then(Expression::names_or_none))
                .set_expression_attribute_values(condition.as_ref().and_then(Expression::values_or_none))
                .build()
                .map_err(StoreError::backend)?;
            TransactWriteItem::builder().delete(delete).build()
        }
        Write::Check { key, condition } => {
            let condition = expression::check_condition(condition, now);
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(codec::key_attributes(&key)))
                .condition_expression(&condition.text)
                .set_expression_attribute_names(condition.names_or_none())
                .set_expression_attribute_values(condition.values_or_none())
                .build()
                .map_err(StoreError::backend)?;
            TransactWriteItem::builder().condition_check(check).build()
        }
    };
    Ok(item)
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        validate_key(key)?;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(codec::key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| self.error("GetItem", error))?;

        match output.item {
            Some(attributes) if !codec::is_expired(&attributes, now_seconds()) => Ok(Some(self.decode(&attributes)?)),
            _ => Ok(None),
        }
    }

    async fn batch_get(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        if keys.len() > MAX_BATCH_GET_KEYS {
            return Err(StoreError::InvalidRequest(format!(
                "batch_get takes at most {MAX_BATCH_GET_KEYS} keys, got {}",
                keys.len()
            )));
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        keys.iter().try_for_each(validate_key)?;

        // BatchGetItem rejects a request that names a key twice.
        let mut seen = HashSet::new();
        let distinct: Vec<Key> = keys.iter().filter(|key| seen.insert(*key)).cloned().collect();
        let found = self.batch_read(distinct).await?;

        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        validate_item(&item)?;
        let condition = expression::condition(condition, now_seconds());
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(codec::item_attributes(&item)))
            .set_condition_expression(condition.as_ref().map(|c| c.text.clone()))
            .set_expression_attribute_names(condition.as_ref().and_then(Expression::names_or_none))
            .set_expression_attribute_values(condition.as_ref().and_then(Expression::values_or_none))
            .send()
            .await
            .map_err(|error| self.error("PutItem", error))?;
        Ok(())
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        validate_key(key)?;
        let condition = expression::condition(condition, now_seconds());
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(codec::key_attributes(key)))
            .set_condition_expression(condition.as_ref().map(|c| c.text.clone()))
            .set_expression_attribute_names(condition.as_ref().and_then(Expression::names_or_none))
            .set_expression_attribute_values(condition.as_ref().and_then(Expression::values_or_none))
            .send()
            .await
            .map_err(|error| self.error("DeleteItem", error))?;
        Ok(())
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        validate_query(query)?;
        let layout = codec::layout(query.index);
        let start_key = match &query.cursor {
            Some(cursor) => Some(codec::decode_cursor(cursor, query.index, &query.pk)?),
            None => None,
        };
        let mut key_condition = expression::key_condition(layout.partition, layout.sort, &query.pk, &query.sort);
        let filter = expression::not_expired(now_seconds());
        key_condition.merge_placeholders(&filter);

        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(layout.name.map(str::to_owned))
            // Secondary indexes only support eventually consistent reads.
            .consistent_read(layout.name.is_none())
            .key_condition_expression(&key_condition.text)
            .filter_expression(&filter.text)
            .set_expression_attribute_names(key_condition.names_or_none())
            .set_expression_attribute_values(key_condition.values_or_none())
            .scan_index_forward(query.forward)
            .limit(i32::try_from(query.limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|error| self.error("Query", error))?;

        let items = output
            .items
            .unwrap_or_default()
            .iter()
            .map(|attributes| self.decode(attributes))
            .collect::<Result<Vec<_>, _>>()?;
        let cursor = output
            .last_evaluated_key
            .filter(|key| !key.is_empty())
            .map(|key| codec::encode_cursor(&key));
        Ok(Page { items, cursor })
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        validate_transaction(&writes)?;
        let now = now_seconds();
        let items = writes
            .into_iter()
            .map(|write| transact_item(&self.table, write, now))
            .collect::<Result<Vec<_>, _>>()?;

        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(error) = result else {
            return Ok(());
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) = error.as_service_error() {
            let codes: Vec<&str> = canceled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().unwrap_or("None"))
                .collect();
            if let Some(index) = codes.iter().position(|code| *code == "ConditionalCheckFailed") {
                return Err(StoreError::ConditionFailed { index: Some(index) });
            }
            if codes.iter().any(|code| RETRYABLE_CANCELLATION_CODES.contains(code)) {
                tracing::warn!(table = %self.table, ?codes, "transaction canceled by a conflict or throttling");
                return Err(StoreError::Throttled);
            }
        }
        Err(self.error("TransactWriteItems", error))
    }

    async fn increment(&self, key: &Key, delta: i64, expires_at: Option<i64>) -> Result<i64, StoreError> {
        validate_key(key)?;
        for round in 1..=INCREMENT_ROUNDS {
            let now = now_seconds();
            let mut update = Expression {
                text: "ADD #n :delta".to_owned(),
                names: HashMap::from([("#n".to_owned(), COUNTER.to_owned())]),
                values: HashMap::from([(":delta".to_owned(), number(delta))]),
            };
            if let Some(expires_at) = expires_at {
                update.text.push_str(" SET #ttl = :expires_at");
                update.values.insert(":expires_at".to_owned(), number(expires_at));
            }
            let condition = expression::counter_live(now);
            update.merge_placeholders(&condition);

            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(codec::key_attributes(key)))
                .update_expression(&update.text)
                .condition_expression(&condition.text)
                .set_expression_attribute_names(update.names_or_none())
                .set_expression_attribute_values(update.values_or_none())
                // ALL_NEW, not UPDATED_NEW: emulators such as moto leave an attribute that
                // did not change (`ADD n 0`) out of UPDATED_NEW. A counter item is tiny.
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(output) => {
                    let attributes = output.attributes.unwrap_or_default();
                    return codec::counter_value(&attributes).map_err(StoreError::Backend);
                }
                Err(error) => match self.error("UpdateItem", error) {
                    StoreError::ConditionFailed { .. } => {}
                    other => return Err(other),
                },
            }

            // The counter exists and has expired: start it again from zero.
            if self.restart_counter(key, delta, expires_at, now).await? {
                return Ok(delta);
            }
            tracing::debug!(table = %self.table, pk = %key.pk, sk = %key.sk, round, "counter changed during restart");
        }

        Err(StoreError::Backend(anyhow::anyhow!(
            "counter pk={:?} sk={:?} kept expiring and restarting during {INCREMENT_ROUNDS} rounds of increment",
            key.pk,
            key.sk
        )))
    }
}
