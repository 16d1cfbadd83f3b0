//! SQLite: values by storage class, limits, interruption, read-only, refused statements.

use std::time::{Duration, Instant};

use mako_databases::ConnectorError;
use mako_databases::params::ParamValue;
use mako_tests::databases::TestDatabase;
use serde_json::{Value, json};

fn rows(output: &mako_databases::ExecuteOutput) -> Value {
    serde_json::to_value(&output.result_sets[0].rows).expect("rows")
}

/// A recursive CTE long enough to outlast any test's patience.
const ENDLESS: &str =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT i FROM n";

#[tokio::test]
async fn sqlite_values_follow_storage_classes() {
    let db = TestDatabase::sqlite().await;
    db.run(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, big INTEGER, amount NUMERIC(12,2), ratio REAL, name TEXT, \
         payload BLOB, born DATE, seen DATETIME, doc JSON, flag BOOLEAN); \
         INSERT INTO t VALUES (1, 9223372036854775807, 12.5, 0.1, 'Zoë', X'00FF', '2024-02-29', '2024-02-29 23:59:59', '{\"a\": [1, null]}', 1); \
         INSERT INTO t VALUES (2, NULL, 7, NULL, '', NULL, NULL, NULL, NULL, 0)",
    )
    .await;

    let output = db.run("SELECT * FROM t ORDER BY id").await;

    assert_eq!(
        rows(&output),
        json!([
            ["1", "9223372036854775807", "12.5", 0.1, "Zoë", "AP8=", "2024-02-29", "2024-02-29T23:59:59", { "a": [1, null] }, true],
            ["2", null, "7", null, "", null, null, null, null, false]
        ])
    );
    let types: Vec<Value> = output.result_sets[0]
        .columns
        .iter()
        .map(|c| serde_json::to_value(c.portable).expect("type"))
        .collect();
    assert_eq!(
        types,
        vec![
            json!("int64"),
            json!("int64"),
            json!("decimal"),
            json!("float64"),
            json!("string"),
            json!("binary"),
            json!("date"),
            json!("timestamp"),
            json!("json"),
            json!("boolean")
        ]
    );

    let mut request = db.request("SELECT name FROM t WHERE id = {{id}}".replace("{{id}}", "?").as_str());
    request.params = vec![ParamValue::Int(1)];
    assert_eq!(
        rows(&db.database.execute(request).await.expect("bound")),
        json!([["Zoë"]])
    );
}

#[tokio::test]
async fn sqlite_row_cap_stops_the_statement() {
    let db = TestDatabase::sqlite().await;
    let mut request = db.request(ENDLESS);
    request.max_rows = 100;

    let started = Instant::now();
    let output = db.database.execute(request).await.expect("capped");

    assert_eq!(output.result_sets[0].row_count, 100);
    assert!(output.result_sets[0].truncated);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn sqlite_timeout_interrupts() {
    let db = TestDatabase::sqlite().await;
    let mut request = db.request("SELECT count(*) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT i FROM n)");
    request.timeout = Duration::from_millis(500);

    let started = Instant::now();
    let result = db.database.execute(request).await;

    assert!(matches!(result, Err(ConnectorError::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn sqlite_read_only_and_refused_statements() {
    let db = TestDatabase::sqlite().await;
    db.run("CREATE TABLE t (id INTEGER)").await;

    for query in ["INSERT INTO t VALUES (1)", "DROP TABLE t", "SELECT 1; DELETE FROM t"] {
        let mut request = db.request(query);
        request.read_only = true;
        let result = db.database.execute(request).await;
        assert!(
            matches!(result, Err(ConnectorError::ReadOnly { .. })),
            "{query}: {result:?}"
        );
    }
    for query in [
        "ATTACH DATABASE '/etc/passwd' AS p",
        "VACUUM INTO '/tmp/copy.db'",
        "SELECT load_extension('x')",
    ] {
        let result = db.database.execute(db.request(query)).await;
        assert!(
            matches!(result, Err(ConnectorError::ReadOnly { .. })),
            "{query}: {result:?}"
        );
    }
    let mut request = db.request("SELECT count(*) AS n FROM t");
    request.read_only = true;
    assert_eq!(rows(&db.database.execute(request).await.expect("read")), json!([["0"]]));
}

#[tokio::test]
async fn sqlite_statements_and_schema() {
    let db = TestDatabase::sqlite().await;
    let output = db
        .run("CREATE TABLE deals (id INTEGER PRIMARY KEY, amount NUMERIC NOT NULL); INSERT INTO deals (amount) VALUES (1), (2); CREATE VIEW big AS SELECT * FROM deals WHERE amount > 1; SELECT * FROM big; SELECT * FROM deals WHERE 0")
        .await;
    assert_eq!(output.result_sets.len(), 5);
    assert_eq!(output.result_sets[1].affected_rows, Some(2));
    assert_eq!(
        serde_json::to_value(&output.result_sets[3].rows).expect("rows"),
        json!([["2", "2"]])
    );
    assert_eq!(
        output.result_sets[4].columns.len(),
        2,
        "an empty result names its columns"
    );

    let tables = db.database.tables(None, None).await.expect("tables");
    let names: Vec<(&str, &str)> = tables.iter().map(|t| (t.name.as_str(), t.kind.as_str())).collect();
    assert_eq!(names, vec![("big", "view"), ("deals", "table")]);
    let columns = db.database.columns(None, None, "deals").await.expect("columns");
    assert_eq!(columns[0].nullable, Some(false), "the rowid column is never null");
    assert_eq!(columns[1].nullable, Some(false));
    assert_eq!(
        db.database.test().await.expect("test").server_version.split(' ').next(),
        Some("SQLite")
    );
}

#[tokio::test]
async fn sqlite_is_refused_outside_local_mode() {
    let mut policy = mako_tests::databases::local_policy();
    policy.deployment = mako_core::config::Deployment::Cloud;
    policy.sqlite_dir = Some(std::env::temp_dir());
    let input = mako_databases::settings::ConnectionInput {
        path: Some("x.db".into()),
        ..Default::default()
    };
    let (settings, secret) =
        mako_databases::settings::merge_input(mako_databases::ConnectionKind::Sqlite, &input, None).expect("input");

    let result = mako_databases::settings::resolve(mako_databases::ConnectionKind::Sqlite, &settings, &secret, &policy);

    assert!(
        matches!(result, Err(ConnectorError::InvalidConfig { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn sqlite_nul_character_is_rejected() {
    let db = TestDatabase::sqlite().await;
    // SQLite stops reading text at a NUL, which once made the statement loop spin forever.
    let run = db.database.execute(db.request("select 1\u{0}; select 2"));
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), run)
        .await
        .expect("a query with a NUL character returns at once");
    assert!(
        matches!(&result, Err(ConnectorError::InvalidQuery { message }) if message.contains("NUL")),
        "{result:?}"
    );
}

#[tokio::test]
async fn sqlite_errors_name_only_the_file() {
    let folder = tempfile::tempdir().expect("folder");
    let config = mako_databases::settings::ConnectionConfig::Sqlite {
        path: folder.path().join("missing.db"),
    };
    let database = mako_databases::open(config, &mako_tests::databases::local_policy())
        .await
        .expect("open");
    let result = database.test().await;
    match result {
        Err(ConnectorError::Unreachable { target, .. }) => assert_eq!(target, "missing.db"),
        other => panic!("{other:?}"),
    }
}
