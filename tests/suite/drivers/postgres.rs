//! PostgreSQL: lossless types, limits, cancellation, read-only, sessions.

use std::time::{Duration, Instant};

use mako_databases::ConnectorError;
use mako_databases::params::ParamValue;
use mako_tests::databases::TestDatabase;
use serde_json::{Value, json};

/// Rows of the first result set as JSON.
fn rows(output: &mako_databases::ExecuteOutput) -> Value {
    serde_json::to_value(&output.result_sets[0].rows).expect("rows")
}

fn column_types(output: &mako_databases::ExecuteOutput) -> Vec<(String, String)> {
    output.result_sets[0]
        .columns
        .iter()
        .map(|column| {
            let portable = serde_json::to_value(column.portable).expect("type");
            (column.name.clone(), portable.as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn postgres_values_are_lossless() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    // The database's own zone must not move dates or wall-clock timestamps.
    db.run(&format!(
        "ALTER DATABASE {} SET timezone TO 'Pacific/Kiritimati'",
        db.name
    ))
    .await;

    let output = db
        .run(
            "SELECT 9223372036854775807::int8 AS big, (-32768)::int2 AS small, 2147483647 AS int4, \
             12345678901234567890.123400::numeric(30,6) AS dec, 'NaN'::numeric AS dec_nan, \
             'NaN'::float8 AS f_nan, '-Infinity'::float8 AS f_neg_inf, 0.1::float8 AS f, 1.5::float4 AS f4, \
             DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 23:59:59.123456' AS ts, \
             TIMESTAMPTZ '2024-02-29 23:30:00+05:30' AS tstz, INTERVAL '1 year 2 months 3 days 04:05:06.5' AS iv, \
             '\\x00ff'::bytea AS bin, '{\"a\": [1, null, {\"b\": 12345678901234567890}]}'::jsonb AS doc, \
             ARRAY[1, NULL, 3]::int8[] AS arr, ARRAY[ARRAY['a','b'],ARRAY['c',NULL]] AS arr2, \
             '5f9b3bd3-1a1c-4a5a-8c3b-bd8f5b6f7d2e'::uuid AS id, point(1, 2) AS unknown_type, \
             NULL::text AS null_text, ''::text AS empty_text, 0 AS zero, true AS yes",
        )
        .await;

    let row = &rows(&output)[0];
    let expected = json!([
        "9223372036854775807", -32768, 2147483647, "12345678901234567890.123400", "NaN",
        "NaN", "-Infinity", 0.1, 1.5,
        "2024-02-29", "2024-02-29T23:59:59.123456",
        "2024-02-29T18:00:00Z", { "months": 14, "days": 3, "microseconds": 14_706_500_000i64 },
        "AP8=", { "a": [1, null, { "b": 12345678901234567890u64 }] },
        ["1", null, "3"], [["a", "b"], ["c", null]],
        "5f9b3bd3-1a1c-4a5a-8c3b-bd8f5b6f7d2e", "(1,2)",
        null, "", 0, true
    ]);
    for (index, expected_value) in expected.as_array().expect("array").iter().enumerate() {
        let name = &output.result_sets[0].columns[index].name;
        assert_eq!(&row[index], expected_value, "column {name}");
    }
    let doc_text = serde_json::to_string(&output.result_sets[0].rows[0][14]).expect("doc");
    assert!(
        doc_text.contains("12345678901234567890"),
        "JSON keeps every digit: {doc_text}"
    );

    let types = column_types(&output);
    let expected_types = [
        ("big", "int64"),
        ("small", "int16"),
        ("int4", "int32"),
        ("dec", "decimal"),
        ("f", "float64"),
        ("f4", "float32"),
        ("d", "date"),
        ("ts", "timestamp"),
        ("tstz", "timestamptz"),
        ("iv", "interval"),
        ("bin", "binary"),
        ("doc", "json"),
        ("arr", "array"),
        ("id", "uuid"),
        ("unknown_type", "string"),
    ];
    for (name, portable) in expected_types {
        let found = types.iter().find(|(column, _)| column == name).map(|(_, t)| t.as_str());
        assert_eq!(found, Some(portable), "type of {name}");
    }
    let arr = output.result_sets[0]
        .columns
        .iter()
        .find(|c| c.name == "arr")
        .expect("arr column");
    assert_eq!(arr.native_type, "int8[]");
    assert_eq!(arr.element_type, Some(mako_databases::PortableType::Int64));
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_parameters_decode_like_text() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let query = "SELECT 9223372036854775807::int8 AS big, 12345678901234567890.1234::numeric AS dec, \
                 DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 23:59:59.5' AS ts, TIMESTAMPTZ '2024-02-29 23:30:00+05:30' AS tstz, \
                 INTERVAL '-1 month 2 days' AS iv, '\\x00ff'::bytea AS bin, '{\"k\": 1}'::jsonb AS doc, ARRAY[1, NULL]::int4[] AS arr, \
                 'NaN'::float8 AS f, point(1,2) AS p, '192.168.0.1/24'::inet AS net, '10.0.0.0/8'::cidr AS block, \
                 '::1'::inet AS host, $1::text AS echoed";
    let text_query = query.replace("$1::text", "'x'::text");

    let text = db.run(&text_query).await;
    let mut request = db.request(query);
    request.params = vec![ParamValue::Text("x".into())];
    let binary = db.database.execute(request).await.expect("binary");

    assert_eq!(rows(&binary), rows(&text));
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_types_beyond_builtins_come_as_text() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.run(
        "CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TYPE pair AS (a int, b text); \
         CREATE TABLE tickets (id int, m mood, p pair, ms mood[]); \
         INSERT INTO tickets VALUES (1, 'sad', ROW(2, 'x'), ARRAY['ok', 'sad']::mood[])",
    )
    .await;
    let query = "SELECT m, p, ms, 'tickets'::regclass AS rel, to_tsvector('simple', 'a b') AS ts, \
                 pg_typeof(1) AS t FROM tickets";

    let output = db.run(query).await;
    assert_eq!(
        rows(&output),
        json!([["sad", "(2,x)", "{ok,sad}", "tickets", "'a':1 'b':2", "integer"]])
    );
    let natives: Vec<&str> = output.result_sets[0]
        .columns
        .iter()
        .map(|column| column.native_type.as_str())
        .collect();
    assert_eq!(
        natives,
        vec!["mood", "pair", "mood[]", "regclass", "tsvector", "regtype"]
    );
    assert!(
        column_types(&output).iter().all(|(_, portable)| portable == "string"),
        "{:?}",
        column_types(&output)
    );

    // With a parameter the extended protocol runs, where sqlx resolves the types itself.
    let mut request = db.request("SELECT m, $1::text AS echoed FROM tickets");
    request.params = vec![ParamValue::Text("x".into())];
    let binary = db.database.execute(request).await.expect("binary");
    assert_eq!(rows(&binary), json!([["sad", "x"]]));
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_arrays_with_bounds_are_arrays() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let output = db
        .run("SELECT '[0:1]={1,2}'::int[] AS a, '[2:3][1:1]={{7},{8}}'::int[] AS b")
        .await;
    assert_eq!(rows(&output), json!([[[1, 2], [[7], [8]]]]));

    let mut request = db.request("SELECT '[0:1]={1,2}'::int[] AS a, '[2:3][1:1]={{7},{8}}'::int[] AS b, $1::text AS t");
    request.params = vec![ParamValue::Text("x".into())];
    let binary = db.database.execute(request).await.expect("binary");
    assert_eq!(rows(&binary), json!([[[1, 2], [[7], [8]], "x"]]));
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_row_cap_truncates_a_huge_result() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let mut request = db.request("SELECT g, repeat('x', 100) FROM generate_series(1, 50000000) g");
    request.max_rows = 1000;

    let started = Instant::now();
    let output = db.database.execute(request).await.expect("capped");

    let set = &output.result_sets[0];
    assert_eq!(set.row_count, 1000);
    assert!(set.truncated);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the server stopped early: {:?}",
        started.elapsed()
    );
    let after = db.run("SELECT 1 AS still_works").await;
    assert_eq!(rows(&after), json!([[1]]));
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_byte_cap_truncates() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let mut request = db.request("SELECT repeat('x', 1000) FROM generate_series(1, 1000)");
    request.max_bytes = 10_000;

    let output = db.database.execute(request).await.expect("capped");

    assert!(output.result_sets[0].truncated);
    assert!(
        output.result_sets[0].row_count < 11,
        "{}",
        output.result_sets[0].row_count
    );
    db.drop_database().await;
}

/// Counts this database's queries running `pg_sleep` other than the checking one.
async fn sleeping_queries(db: &TestDatabase) -> i64 {
    let output = db
        .run(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND query LIKE '%pg_sleep(%' AND pid <> pg_backend_pid()",
            db.name
        ))
        .await;
    rows(&output)[0][0]
        .as_str()
        .and_then(|count| count.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test]
async fn postgres_timeout_cancels_on_the_server() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let mut request = db.request("SELECT pg_sleep(30)");
    request.timeout = Duration::from_millis(700);

    let started = Instant::now();
    let result = db.database.execute(request).await;

    assert!(matches!(result, Err(ConnectorError::Timeout { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sleeping_queries(&db).await, 0, "nothing keeps running on the server");
    for _ in 0..6 {
        // More runs than the pool has connections: every pooled connection is usable.
        assert_eq!(rows(&db.run("SELECT 2").await), json!([[2]]));
    }
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_dropped_request_cancels_its_query() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let database = db.database.clone();
    let request = db.request("SELECT pg_sleep(30)");
    let task = tokio::spawn(async move { database.execute(request).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sleeping_queries(&db).await, 1, "the query runs");

    task.abort();
    tokio::time::sleep(Duration::from_millis(800)).await;

    assert_eq!(
        sleeping_queries(&db).await,
        0,
        "aborting the request cancelled the query"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_session_settings_do_not_leak() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    for _ in 0..6 {
        db.run("SET search_path TO nowhere; SET TimeZone TO 'Asia/Tokyo'; CREATE TEMP TABLE scratch (x int); BEGIN")
            .await;
    }

    let output = db
        .run("SHOW TimeZone; SHOW search_path; SELECT to_regclass('pg_temp.scratch') IS NULL AS no_temp_table")
        .await;

    assert_eq!(rows(&output), json!([["UTC"]]));
    let sets: Vec<Value> = output
        .result_sets
        .iter()
        .map(|set| serde_json::to_value(&set.rows).expect("rows"))
        .collect();
    assert_eq!(sets[1], json!([["\"$user\", public"]]));
    assert_eq!(
        sets[2],
        json!([[true]]),
        "this session has no temporary table left by another run"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_returns_every_result_set() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let output = db
        .run("CREATE TABLE t (id int, name text); INSERT INTO t VALUES (1, 'a;b'), (2, $$c;d$$); SELECT * FROM t ORDER BY id; SELECT count(*) AS n FROM t WHERE false")
        .await;

    assert_eq!(output.result_sets.len(), 4);
    assert_eq!(output.result_sets[1].affected_rows, Some(2));
    assert_eq!(
        serde_json::to_value(&output.result_sets[2].rows).expect("rows"),
        json!([[1, "a;b"], [2, "c;d"]])
    );
    let empty = &output.result_sets[3];
    assert_eq!(empty.columns.len(), 1, "an empty result still names its columns");
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_read_only_refuses_writes() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.run("CREATE TABLE t (id int); CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (1) RETURNING id'").await;

    for query in [
        "INSERT INTO t VALUES (1)",
        "SELECT sneaky()",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SELECT 1; DROP TABLE t",
        "COMMIT",
    ] {
        let mut request = db.request(query);
        request.read_only = true;
        let result = db.database.execute(request).await;
        assert!(
            matches!(result, Err(ConnectorError::ReadOnly { .. })),
            "{query}: {result:?}"
        );
    }
    let mut request = db.request("SELECT count(*) FROM t");
    request.read_only = true;
    let output = db.database.execute(request).await.expect("reading works");
    assert_eq!(rows(&output), json!([["0"]]), "nothing was written");
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_errors_are_plain() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let result = db.database.execute(db.request("SELEC 1")).await;
    match result {
        Err(ConnectorError::QueryFailed { message, code }) => {
            assert!(message.contains("syntax error"), "{message}");
            assert_eq!(code.as_deref(), Some("42601"));
        }
        other => panic!("{other:?}"),
    }

    let mut request = db.request("SELECT 1");
    request.database = Some("mako_no_such_database".into());
    let result = db.database.execute(request).await;
    assert!(
        matches!(result, Err(ConnectorError::UnknownDatabase { .. })),
        "{result:?}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_on_another_server_port_is_unreachable() {
    // The MySQL test server plays "some other server on the port".
    let Some(mysql_url) = mako_tests::services::service_address("MAKO_TEST_MYSQL_URL", "a MySQL server") else {
        return;
    };
    let port = url::Url::parse(&mysql_url).expect("MySQL URL").port().unwrap_or(3306);
    let config = mako_databases::settings::ConnectionConfig::Postgres(mako_databases::settings::ServerConfig {
        host: "127.0.0.1".into(),
        port,
        database: Some("postgres".into()),
        username: "postgres".into(),
        password: None,
        tls: mako_databases::settings::TlsMode::Disable,
    });
    let database = mako_databases::open(config, &mako_tests::databases::local_policy())
        .await
        .expect("open");
    let result = database.test().await;
    assert!(matches!(result, Err(ConnectorError::Unreachable { .. })), "{result:?}");
}

#[tokio::test]
async fn postgres_test_reports_version() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    let report = db.database.test().await.expect("test");
    assert!(
        report.server_version.starts_with("PostgreSQL "),
        "{}",
        report.server_version
    );
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_schema_is_browsable() {
    let Some(db) = TestDatabase::postgres().await else {
        return;
    };
    db.run("CREATE SCHEMA sales; CREATE TABLE sales.deals (id bigint NOT NULL, amount numeric(12,2), tags text[]); CREATE VIEW sales.big AS SELECT * FROM sales.deals WHERE amount > 1000").await;

    let databases = db.database.databases().await.expect("databases");
    assert!(databases.contains(&db.name));
    let tables = db.database.tables(None, Some("sales")).await.expect("tables");
    let names: Vec<(&str, &str)> = tables.iter().map(|t| (t.name.as_str(), t.kind.as_str())).collect();
    assert_eq!(names, vec![("big", "view"), ("deals", "table")]);
    let columns = db
        .database
        .columns(None, Some("sales"), "deals")
        .await
        .expect("columns");
    let summary: Vec<(&str, &str, Option<bool>)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.native_type.as_str(), c.nullable))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("id", "bigint", Some(false)),
            ("amount", "numeric(12,2)", Some(true)),
            ("tags", "text[]", Some(true))
        ]
    );
    assert_eq!(columns[2].portable, mako_databases::PortableType::Array);
    db.drop_database().await;
}
