//! `Store` conformance: conditions, versions, queries, indexes, pagination, transactions,
//! TTL and counters.

use std::collections::HashSet;

use mako_core::ports::store::{MAX_ITEM_BYTES, validate_item};
use mako_core::ports::{Condition, Index, IndexKey, Item, Key, Query, SortKey, Store, StoreError, Write};
use serde_json::json;

use super::now;
use crate::fixtures::Adapters;

fn item(pk: &str, sk: &str) -> Item {
    Item::new(Key::new(pk, sk), json!({ "pk": pk, "sk": sk }))
}

/// Reads every page of a query and returns the sort keys in the order read.
async fn collect_sort_keys(store: &dyn Store, query: Query) -> Vec<String> {
    let limit = query.limit as usize;
    let mut query = query;
    let mut keys = Vec::new();
    for _ in 0..1000 {
        let page = store.query(&query).await.expect("query");
        assert!(page.items.len() <= limit, "a page holds at most the limit");
        keys.extend(page.items.iter().map(|item| item.sk.clone()));
        match page.cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return keys,
        }
    }
    panic!("pagination did not end after 1000 pages");
}

pub async fn put_then_get_round_trips(adapters: &Adapters) {
    let store = &*adapters.store;
    let data = json!({
        "name": "Ünïcödé ✓",
        "big": 18446744073709551615u64,
        "negative": -9223372036854775808i64,
        "float": 0.1,
        "nested": { "list": [1, null, "x", { "deep": true }] },
        "empty": "",
    });
    let stored = Item::new(Key::new("P#round", "S#1"), data)
        .with_gsi1(IndexKey::new("G1#a", "x"))
        .with_gsi2(IndexKey::new("G2#b", "y"))
        .expiring_at(now() + 3600);
    let stored = Item { version: 7, ..stored };

    store.put(stored.clone(), Condition::Always).await.expect("put");
    let read = store.get(&stored.key()).await.expect("get");

    assert_eq!(read, Some(stored));
}

pub async fn get_missing_returns_none(adapters: &Adapters) {
    let read = adapters.store.get(&Key::new("P#none", "S#none")).await.expect("get");
    assert_eq!(read, None);
}

pub async fn conditional_put_requires_absence(adapters: &Adapters) {
    let store = &*adapters.store;
    let first = item("P#cond", "S#1");

    store.put(first.clone(), Condition::NotExists).await.expect("first put");
    let second = store.put(first.clone(), Condition::NotExists).await;

    assert!(
        matches!(second, Err(StoreError::ConditionFailed { index: None })),
        "{second:?}"
    );
}

pub async fn conditional_put_requires_presence(adapters: &Adapters) {
    let store = &*adapters.store;
    let missing = store.put(item("P#exists", "S#1"), Condition::Exists).await;
    assert!(
        matches!(missing, Err(StoreError::ConditionFailed { .. })),
        "{missing:?}"
    );

    store
        .put(item("P#exists", "S#1"), Condition::Always)
        .await
        .expect("put");
    store
        .put(item("P#exists", "S#1"), Condition::Exists)
        .await
        .expect("put over existing");
}

pub async fn version_conflict_is_rejected(adapters: &Adapters) {
    let store = &*adapters.store;
    let v1 = item("P#ver", "S#1");
    store.put(v1.clone(), Condition::NotExists).await.expect("v1");

    let v2 = Item {
        version: 2,
        data: json!({"n": 2}),
        ..v1.clone()
    };
    store
        .put(v2.clone(), Condition::Version(1))
        .await
        .expect("v2 based on v1");

    let stale = Item {
        version: 2,
        data: json!({"n": "stale"}),
        ..v1.clone()
    };
    let result = store.put(stale, Condition::Version(1)).await;
    assert!(matches!(result, Err(StoreError::ConditionFailed { .. })), "{result:?}");

    let current = store.get(&v1.key()).await.expect("get").expect("present");
    assert_eq!(current, v2);
}

pub async fn version_condition_on_missing_item_fails(adapters: &Adapters) {
    let result = adapters
        .store
        .put(item("P#ver-missing", "S#1"), Condition::Version(1))
        .await;
    assert!(matches!(result, Err(StoreError::ConditionFailed { .. })), "{result:?}");
}

pub async fn delete_honours_conditions(adapters: &Adapters) {
    let store = &*adapters.store;
    let stored = item("P#del", "S#1");
    store.put(stored.clone(), Condition::Always).await.expect("put");

    let wrong = store.delete(&stored.key(), Condition::Version(9)).await;
    assert!(matches!(wrong, Err(StoreError::ConditionFailed { .. })), "{wrong:?}");
    assert!(store.get(&stored.key()).await.expect("get").is_some());

    store
        .delete(&stored.key(), Condition::Version(1))
        .await
        .expect("delete");
    assert_eq!(store.get(&stored.key()).await.expect("get"), None);

    store
        .delete(&stored.key(), Condition::Always)
        .await
        .expect("deleting a missing item");
    let missing = store.delete(&stored.key(), Condition::Exists).await;
    assert!(
        matches!(missing, Err(StoreError::ConditionFailed { .. })),
        "{missing:?}"
    );
}

pub async fn query_filters_by_sort_key(adapters: &Adapters) {
    let store = &*adapters.store;
    for sk in ["A#1", "A#2", "A#3", "B#1", "B#2", "C"] {
        store.put(item("P#sort", sk), Condition::Always).await.expect("put");
    }
    store
        .put(item("P#sort2", "A#9"), Condition::Always)
        .await
        .expect("put in another partition");

    let cases = [
        (SortKey::All, vec!["A#1", "A#2", "A#3", "B#1", "B#2", "C"]),
        (SortKey::BeginsWith("A#".into()), vec!["A#1", "A#2", "A#3"]),
        (SortKey::Equals("B#1".into()), vec!["B#1"]),
        (SortKey::Between("A#2".into(), "B#1".into()), vec!["A#2", "A#3", "B#1"]),
        (SortKey::After("B#1".into()), vec!["B#2", "C"]),
        (SortKey::Before("A#3".into()), vec!["A#1", "A#2"]),
    ];
    for (sort, expected) in cases {
        let keys = collect_sort_keys(store, Query::partition("P#sort").sort(sort.clone())).await;
        assert_eq!(keys, expected, "{sort:?} forwards");

        let keys = collect_sort_keys(store, Query::partition("P#sort").sort(sort.clone()).backwards()).await;
        let reversed: Vec<_> = expected.iter().rev().copied().collect();
        assert_eq!(keys, reversed, "{sort:?} backwards");
    }
}

pub async fn query_orders_by_utf8_bytes(adapters: &Adapters) {
    let store = &*adapters.store;
    for sk in ["é", "z", "a", "~", "B", "€"] {
        store.put(item("P#utf8", sk), Condition::Always).await.expect("put");
    }

    let keys = collect_sort_keys(store, Query::partition("P#utf8")).await;

    assert_eq!(keys, vec!["B", "a", "z", "~", "é", "€"]);
}

pub async fn paginates_forwards_and_backwards(adapters: &Adapters) {
    let store = &*adapters.store;
    let expected: Vec<String> = (0..25).map(|i| format!("S#{i:03}")).collect();
    for sk in &expected {
        store.put(item("P#pages", sk), Condition::Always).await.expect("put");
    }

    let forwards = collect_sort_keys(store, Query::partition("P#pages").limit(10)).await;
    assert_eq!(forwards, expected);

    let backwards = collect_sort_keys(store, Query::partition("P#pages").limit(7).backwards()).await;
    let reversed: Vec<String> = expected.iter().rev().cloned().collect();
    assert_eq!(backwards, reversed);

    let first = store
        .query(&Query::partition("P#pages").limit(10))
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 10);
    assert!(
        first.cursor.is_some(),
        "a full page with more items after it has a cursor"
    );
}

pub async fn gsi_queries_cross_partitions(adapters: &Adapters) {
    let store = &*adapters.store;
    for (pk, gsi_sk) in [("P#g1", "3"), ("P#g2", "1"), ("P#g3", "2")] {
        let stored = item(pk, "META").with_gsi1(IndexKey::new("OWNER#x", gsi_sk));
        store.put(stored, Condition::Always).await.expect("put");
    }
    store
        .put(
            item("P#g4", "META").with_gsi1(IndexKey::new("OWNER#y", "1")),
            Condition::Always,
        )
        .await
        .expect("put other owner");
    store
        .put(item("P#g5", "META"), Condition::Always)
        .await
        .expect("put without index key");
    store
        .put(
            item("P#g6", "META").with_gsi2(IndexKey::new("OWNER#x", "0")),
            Condition::Always,
        )
        .await
        .expect("put in gsi2");

    let page = store
        .query(&Query::index(Index::Gsi1, "OWNER#x"))
        .await
        .expect("gsi1 query");
    let pks: Vec<_> = page.items.iter().map(|item| item.pk.as_str()).collect();
    assert_eq!(pks, vec!["P#g2", "P#g3", "P#g1"]);
    assert_eq!(page.cursor, None);

    let page = store
        .query(&Query::index(Index::Gsi2, "OWNER#x"))
        .await
        .expect("gsi2 query");
    let pks: Vec<_> = page.items.iter().map(|item| item.pk.as_str()).collect();
    assert_eq!(pks, vec!["P#g6"]);
}

pub async fn gsi_paginates_over_equal_index_keys(adapters: &Adapters) {
    let store = &*adapters.store;
    for i in 0..9 {
        let stored = item(&format!("P#dup{i}"), "META").with_gsi1(IndexKey::new("SAME", "k"));
        store.put(stored, Condition::Always).await.expect("put");
    }

    let mut query = Query::index(Index::Gsi1, "SAME").limit(2);
    let mut seen = Vec::new();
    loop {
        let page = store.query(&query).await.expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|item| item.pk));
        match page.cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }

    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 9, "every item once: {seen:?}");
    assert_eq!(distinct.len(), 9, "no item twice: {seen:?}");
}

pub async fn transaction_applies_every_write(adapters: &Adapters) {
    let store = &*adapters.store;
    store.put(item("P#tx", "OLD"), Condition::Always).await.expect("put");
    store
        .put(item("P#tx", "CHECKED"), Condition::Always)
        .await
        .expect("put");

    store
        .transact(vec![
            Write::Put {
                item: item("P#tx", "A"),
                condition: Condition::NotExists,
            },
            Write::Put {
                item: item("P#tx", "B"),
                condition: Condition::Always,
            },
            Write::Delete {
                key: Key::new("P#tx", "OLD"),
                condition: Condition::Exists,
            },
            Write::Check {
                key: Key::new("P#tx", "CHECKED"),
                condition: Condition::Version(1),
            },
        ])
        .await
        .expect("transaction");

    let keys = collect_sort_keys(store, Query::partition("P#tx")).await;
    assert_eq!(keys, vec!["A", "B", "CHECKED"]);
}

pub async fn failed_transaction_leaves_nothing(adapters: &Adapters) {
    let store = &*adapters.store;
    let existing = Item {
        data: json!({"original": true}),
        ..item("P#txfail", "TAKEN")
    };
    store.put(existing.clone(), Condition::Always).await.expect("put");
    store
        .put(item("P#txfail", "DOOMED"), Condition::Always)
        .await
        .expect("put");

    let result = store
        .transact(vec![
            Write::Put {
                item: item("P#txfail", "NEW"),
                condition: Condition::NotExists,
            },
            Write::Delete {
                key: Key::new("P#txfail", "DOOMED"),
                condition: Condition::Always,
            },
            Write::Put {
                item: item("P#txfail", "TAKEN"),
                condition: Condition::NotExists,
            },
        ])
        .await;

    assert!(
        matches!(result, Err(StoreError::ConditionFailed { index: Some(2) })),
        "{result:?}"
    );
    assert_eq!(store.get(&Key::new("P#txfail", "NEW")).await.expect("get"), None);
    assert!(store.get(&Key::new("P#txfail", "DOOMED")).await.expect("get").is_some());
    assert_eq!(store.get(&existing.key()).await.expect("get"), Some(existing));
}

pub async fn failed_check_aborts_transaction(adapters: &Adapters) {
    let store = &*adapters.store;

    let result = store
        .transact(vec![
            Write::Check {
                key: Key::new("P#txcheck", "GONE"),
                condition: Condition::Exists,
            },
            Write::Put {
                item: item("P#txcheck", "NEW"),
                condition: Condition::Always,
            },
        ])
        .await;

    assert!(
        matches!(result, Err(StoreError::ConditionFailed { index: Some(0) })),
        "{result:?}"
    );
    assert_eq!(store.get(&Key::new("P#txcheck", "NEW")).await.expect("get"), None);
}

pub async fn transaction_limits_are_enforced(adapters: &Adapters) {
    let store = &*adapters.store;
    let duplicate = store
        .transact(vec![
            Write::Put {
                item: item("P#txlim", "A"),
                condition: Condition::Always,
            },
            Write::Delete {
                key: Key::new("P#txlim", "A"),
                condition: Condition::Always,
            },
        ])
        .await;
    assert!(matches!(duplicate, Err(StoreError::InvalidRequest(_))), "{duplicate:?}");

    let too_many = (0..101)
        .map(|i| Write::Put {
            item: item("P#txlim", &format!("{i}")),
            condition: Condition::Always,
        })
        .collect();
    let result = store.transact(too_many).await;
    assert!(matches!(result, Err(StoreError::InvalidRequest(_))), "{result:?}");

    let empty = store.transact(Vec::new()).await;
    assert!(matches!(empty, Err(StoreError::InvalidRequest(_))), "{empty:?}");
}

pub async fn expired_items_are_invisible(adapters: &Adapters) {
    let store = &*adapters.store;
    let expired = item("P#ttl", "OLD")
        .with_gsi1(IndexKey::new("TTL#index", "1"))
        .expiring_at(now() - 10);
    let live = item("P#ttl", "NEW")
        .with_gsi1(IndexKey::new("TTL#index", "2"))
        .expiring_at(now() + 3600);
    store
        .put(expired.clone(), Condition::Always)
        .await
        .expect("put expired");
    store.put(live.clone(), Condition::Always).await.expect("put live");

    assert_eq!(store.get(&expired.key()).await.expect("get"), None);
    let batch = store.batch_get(&[expired.key(), live.key()]).await.expect("batch get");
    assert_eq!(batch, vec![None, Some(live.clone())]);
    let keys = collect_sort_keys(store, Query::partition("P#ttl")).await;
    assert_eq!(keys, vec!["NEW"]);
    let page = store
        .query(&Query::index(Index::Gsi1, "TTL#index"))
        .await
        .expect("gsi query");
    assert_eq!(page.items, vec![live]);
}

pub async fn expired_items_count_as_absent_for_conditions(adapters: &Adapters) {
    let store = &*adapters.store;
    let expired = item("P#ttlcond", "K").expiring_at(now() - 10);
    store
        .put(expired.clone(), Condition::Always)
        .await
        .expect("put expired");

    let exists = store.put(item("P#ttlcond", "K"), Condition::Exists).await;
    assert!(matches!(exists, Err(StoreError::ConditionFailed { .. })), "{exists:?}");
    let version = store.delete(&expired.key(), Condition::Version(1)).await;
    assert!(
        matches!(version, Err(StoreError::ConditionFailed { .. })),
        "{version:?}"
    );

    let fresh = Item {
        data: json!({"fresh": true}),
        ..item("P#ttlcond", "K")
    };
    store
        .put(fresh.clone(), Condition::NotExists)
        .await
        .expect("put over an expired item");
    assert_eq!(store.get(&fresh.key()).await.expect("get"), Some(fresh));
}

pub async fn batch_get_aligns_with_keys(adapters: &Adapters) {
    let store = &*adapters.store;
    let a = item("P#batch", "A");
    let b = item("P#batch", "B");
    store.put(a.clone(), Condition::Always).await.expect("put");
    store.put(b.clone(), Condition::Always).await.expect("put");

    let keys = [b.key(), Key::new("P#batch", "MISSING"), a.key(), b.key()];
    let read = store.batch_get(&keys).await.expect("batch get");

    assert_eq!(read, vec![Some(b.clone()), None, Some(a), Some(b)]);
    assert_eq!(
        store.batch_get(&[]).await.expect("empty batch"),
        Vec::<Option<Item>>::new()
    );
}

pub async fn oversized_item_is_rejected(adapters: &Adapters) {
    let store = &*adapters.store;
    let big = Item::new(Key::new("P#big", "S"), json!({ "blob": "x".repeat(MAX_ITEM_BYTES) }));

    let result = store.put(big.clone(), Condition::Always).await;

    assert!(matches!(result, Err(StoreError::TooLarge { .. })), "{result:?}");
    assert!(validate_item(&big).is_err());
    let fits = Item::new(
        Key::new("P#big", "S"),
        json!({ "blob": "x".repeat(MAX_ITEM_BYTES - 1024) }),
    );
    store
        .put(fits, Condition::Always)
        .await
        .expect("an item just under the limit");
}

pub async fn invalid_cursor_is_rejected(adapters: &Adapters) {
    let query = Query::partition("P#cursor").after(Some("not a cursor".into()));
    let result = adapters.store.query(&query).await;
    assert!(matches!(result, Err(StoreError::InvalidCursor)), "{result:?}");
}

pub async fn counter_increments_and_restarts_after_expiry(adapters: &Adapters) {
    let store = &*adapters.store;
    let key = Key::new("C#counter", "N");
    let expires = now() + 3600;

    assert_eq!(store.increment(&key, 1, Some(expires)).await.expect("first"), 1);
    assert_eq!(store.increment(&key, 2, Some(expires)).await.expect("second"), 3);
    assert_eq!(store.increment(&key, 0, Some(expires)).await.expect("read"), 3);

    let expired_key = Key::new("C#counter", "EXPIRED");
    store
        .increment(&expired_key, 5, Some(now() - 10))
        .await
        .expect("expired counter");
    assert_eq!(
        store.increment(&expired_key, 1, Some(expires)).await.expect("restart"),
        1
    );
}

pub async fn concurrent_increments_are_atomic(adapters: &Adapters) {
    let key = Key::new("C#concurrent", "N");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = adapters.store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.increment(&key, 1, None).await })
        })
        .collect();

    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.expect("task").expect("increment"));
    }

    values.sort_unstable();
    assert_eq!(values, (1..=20).collect::<Vec<i64>>());
}

pub async fn concurrent_conditional_puts_admit_one(adapters: &Adapters) {
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = adapters.store.clone();
            tokio::spawn(async move {
                let candidate = Item::new(Key::new("P#race", "ONLY"), json!({ "writer": i }));
                store.put(candidate, Condition::NotExists).await
            })
        })
        .collect();

    let mut successes = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => successes += 1,
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }

    assert_eq!(successes, 1);
}

/// Checks that every read after a write returns the written state, whatever was read (and
/// perhaps cached) before.
pub async fn reads_follow_every_write(adapters: &Adapters) {
    let store = &*adapters.store;
    let key = Key::new("P#follow", "S#1");
    let other = Key::new("P#follow", "S#2");
    let version = |item: Option<Item>| item.map(|item| item.version);

    assert_eq!(store.get(&key).await.expect("get"), None);
    store
        .put(
            Item {
                version: 1,
                ..item("P#follow", "S#1")
            },
            Condition::NotExists,
        )
        .await
        .expect("put");
    assert_eq!(version(store.get(&key).await.expect("get")), Some(1));

    store
        .put(
            Item {
                version: 2,
                ..item("P#follow", "S#1")
            },
            Condition::Version(1),
        )
        .await
        .expect("replace");
    assert_eq!(version(store.get(&key).await.expect("get")), Some(2));
    let refused = store
        .put(
            Item {
                version: 3,
                ..item("P#follow", "S#1")
            },
            Condition::Version(1),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::ConditionFailed { .. })),
        "{refused:?}"
    );
    assert_eq!(version(store.get(&key).await.expect("get")), Some(2));

    assert_eq!(
        store
            .batch_get(&[key.clone(), other.clone()])
            .await
            .expect("batch")
            .len(),
        2
    );
    store
        .transact(vec![
            Write::Delete {
                key: key.clone(),
                condition: Condition::Version(2),
            },
            Write::Put {
                item: Item {
                    version: 5,
                    ..item("P#follow", "S#2")
                },
                condition: Condition::NotExists,
            },
        ])
        .await
        .expect("transaction");
    let both = store.batch_get(&[key.clone(), other.clone()]).await.expect("batch");
    assert_eq!(both.into_iter().map(version).collect::<Vec<_>>(), vec![None, Some(5)]);

    store.delete(&other, Condition::Always).await.expect("delete");
    assert_eq!(store.get(&other).await.expect("get"), None);

    // A record that expires is invisible from then on, even after being read.
    store
        .put(item("P#follow", "S#3").expiring_at(now() + 2), Condition::Always)
        .await
        .expect("put expiring");
    let expiring = Key::new("P#follow", "S#3");
    assert!(store.get(&expiring).await.expect("get").is_some());
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(store.get(&expiring).await.expect("get"), None);
}

/// Readers racing a writer never see a version older than one already written and read.
pub async fn concurrent_reads_never_go_back(adapters: &Adapters) {
    let store = adapters.store.clone();
    let key = Key::new("P#race", "S#1");
    store
        .put(
            Item {
                version: 0,
                ..item("P#race", "S#1")
            },
            Condition::Always,
        )
        .await
        .expect("put");

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for version in 1..=30u64 {
                store
                    .put(
                        Item {
                            version,
                            ..item("P#race", "S#1")
                        },
                        Condition::Version(version - 1),
                    )
                    .await
                    .expect("put");
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        let key = key.clone();
        readers.push(tokio::spawn(async move {
            let mut highest = 0;
            for _ in 0..60 {
                let seen = store.get(&key).await.expect("get").expect("present").version;
                assert!(seen >= highest, "read version {seen} after {highest}");
                highest = seen;
            }
        }));
    }
    writer.await.expect("writer");
    for reader in readers {
        reader.await.expect("reader");
    }
    let last = store.get(&key).await.expect("get").expect("present").version;
    assert_eq!(last, 30, "the last write is what a later read sees");
}
