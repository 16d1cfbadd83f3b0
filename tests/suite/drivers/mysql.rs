//! MySQL and MariaDB: lossless types, zero dates, limits, cancellation, read-only, sessions.

use std::time::{Duration, Instant};

use mako_databases::ConnectorError;
use mako_databases::params::ParamValue;
use mako_tests::databases::TestDatabase;
use serde_json::{Value, json};

fn rows(output: &mako_databases::ExecuteOutput) -> Value {
    serde_json::to_value(&output.result_sets[0].rows).expect("rows")
}

const TABLE: &str = "CREATE TABLE t ( \
    id BIGINT PRIMARY KEY, big BIGINT, ubig BIGINT UNSIGNED, small SMALLINT, flag TINYINT(1), \
    dec1 DECIMAL(30,6), f DOUBLE, f4 FLOAT, d DATE, dt DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, \
    bin VARBINARY(8), txt_bin VARCHAR(20) COLLATE utf8mb4_bin, doc JSON, bits BIT(12), note TEXT, \
    e ENUM('small','large'), yr YEAR)";

#[tokio::test]
async fn mysql_values_are_lossless() {
    let Some(db) = TestDatabase::mysql().await else { return };
    db.run(&format!(
        "SET SESSION sql_mode = ''; {TABLE}; \
         INSERT INTO t VALUES (1, 9223372036854775807, 18446744073709551615, -32768, 1, 12345678901234567890.123400, 0.1, 1.5, \
         '2024-02-29', '2024-02-29 23:59:59.123456', '2024-02-29 23:30:00.5', '-838:59:59', X'00FF', 'Héllo', \
         '{{\"a\": [1, null, {{\"b\": 12345678901234567890}}]}}', b'101', '', 'large', 2024); \
         INSERT INTO t (id, d, dt, note) VALUES (2, '0000-00-00', '0000-00-00 00:00:00', NULL)"
    ))
    .await;

    let output = db.run("SELECT * FROM t ORDER BY id").await;
    let rows = rows(&output);
    let expected_first = json!([
        "1", "9223372036854775807", "18446744073709551615", -32768, 1, "12345678901234567890.123400", 0.1, 1.5,
        "2024-02-29", "2024-02-29T23:59:59.123456", "2024-02-29T23:30:00.5Z", "-838:59:59", "AP8=", "Héllo",
        { "a": [1, null, { "b": 12345678901234567890u64 }] }, "5", "", "large", 2024
    ]);
    let mariadb = db
        .database
        .test()
        .await
        .expect("test")
        .server_version
        .starts_with("MariaDB");
    for (index, expected) in expected_first.as_array().expect("array").iter().enumerate() {
        let name = &output.result_sets[0].columns[index].name;
        if name == "doc" && mariadb {
            // MariaDB's JSON is LONGTEXT on the wire: the exact text comes back.
            assert_eq!(
                rows[0][index],
                json!("{\"a\": [1, null, {\"b\": 12345678901234567890}]}"),
                "column doc"
            );
            continue;
        }
        assert_eq!(&rows[0][index], expected, "column {name}");
    }
    assert_eq!(rows[1][8], json!("0000-00-00"), "a zero date comes back as itself");
    assert_eq!(rows[1][9], json!("0000-00-00 00:00:00"));
    assert_eq!(rows[1][16], Value::Null, "NULL stays distinct from ''");

    let types: Vec<(String, String)> = output.result_sets[0]
        .columns
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                serde_json::to_value(c.portable)
                    .expect("type")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    for (name, portable) in [
        ("big", "int64"),
        ("ubig", "uint64"),
        ("dec1", "decimal"),
        ("dt", "timestamp"),
        ("ts", "timestamptz"),
        ("bin", "binary"),
        ("txt_bin", "string"),
    ] {
        let found = types.iter().find(|(column, _)| column == name).map(|(_, t)| t.as_str());
        assert_eq!(found, Some(portable), "type of {name}");
    }
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_parameters_decode_like_text() {
    let Some(db) = TestDatabase::mysql().await else { return };
    db.run(&format!("SET SESSION sql_mode = ''; {TABLE}; INSERT INTO t VALUES (1, -9223372036854775808, 18446744073709551615, 7, 0, -0.000001, -2.5, 3.25, '1999-12-31', '2000-01-01 00:00:00.000001', '2038-01-19 03:14:07.999', '25:00:00.5', X'01', 'x', '[1,2]', b'111111111111', 'n', 'small', 1999)")).await;

    let text = db.run("SELECT * FROM t WHERE id = 1").await;
    let mut request = db.request("SELECT * FROM t WHERE id = ?");
    request.params = vec![ParamValue::Int(1)];
    let binary = db.database.execute(request).await.expect("binary");

    assert_eq!(rows(&binary), rows(&text));
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_row_cap_truncates_a_huge_result() {
    let Some(db) = TestDatabase::mysql().await else { return };
    let mut request = db.request(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT i, REPEAT('x', 100) FROM n",
    );
    request.max_rows = 1000;

    let started = Instant::now();
    let output = db.database.execute(request).await;

    // MariaDB caps recursion at cte_max_recursion_depth; either way the result is cut short.
    match output {
        Ok(output) => {
            assert_eq!(output.result_sets[0].row_count, 1000);
            assert!(output.result_sets[0].truncated);
        }
        Err(ConnectorError::QueryFailed { .. }) => {}
        Err(other) => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(rows(&db.run("SELECT 1").await), json!([[1]]));
    db.drop_database().await;
}

/// Counts this database's sleeping queries.
async fn sleeping_queries(db: &TestDatabase) -> i64 {
    let output = db
        .run(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{}' AND INFO LIKE 'SELECT SLEEP%'",
            db.name
        ))
        .await;
    rows(&output)[0][0]
        .as_str()
        .and_then(|count| count.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test]
async fn mysql_timeout_stops_the_query_on_the_server() {
    let Some(db) = TestDatabase::mysql().await else { return };
    let mut request = db.request("SELECT SLEEP(30)");
    request.timeout = Duration::from_millis(800);

    let started = Instant::now();
    let result = db.database.execute(request).await;

    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(
        matches!(result, Err(ConnectorError::Timeout { timeout }) if timeout == Duration::from_millis(800)),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sleeping_queries(&db).await, 0);

    // An interrupted SLEEP or BENCHMARK returns a value instead of failing; the result is
    // still a timeout, not that value.
    let mut request = db.request("SELECT BENCHMARK(10000000000, MD5('a'))");
    request.timeout = Duration::from_millis(800);
    let result = db.database.execute(request).await;
    assert!(matches!(result, Err(ConnectorError::Timeout { .. })), "{result:?}");
    for _ in 0..6 {
        assert_eq!(rows(&db.run("SELECT 2").await), json!([[2]]));
    }
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_dropped_request_stops_its_query() {
    let Some(db) = TestDatabase::mysql().await else { return };
    let database = db.database.clone();
    let request = db.request("SELECT SLEEP(30)");
    let task = tokio::spawn(async move { database.execute(request).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sleeping_queries(&db).await, 1);

    task.abort();
    tokio::time::sleep(Duration::from_millis(800)).await;

    assert_eq!(sleeping_queries(&db).await, 0);
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_session_state_does_not_leak() {
    let Some(db) = TestDatabase::mysql().await else { return };
    for _ in 0..6 {
        db.run("SET @leak = 42; SET SESSION sql_mode = 'ANSI_QUOTES'; CREATE TEMPORARY TABLE scratch (x INT); SELECT @other := 7").await;
    }

    let output = db
        .run("SELECT @leak, @other, @@SESSION.sql_mode LIKE '%ANSI_QUOTES%'")
        .await;

    assert_eq!(rows(&output), json!([[null, null, 0]]));
    let temp = db.database.execute(db.request("SELECT * FROM scratch")).await;
    assert!(
        matches!(temp, Err(ConnectorError::QueryFailed { .. })),
        "the temporary table is gone: {temp:?}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_returns_every_result_set() {
    let Some(db) = TestDatabase::mysql().await else { return };
    let output = db
        .run("CREATE TABLE t (id INT, name TEXT); INSERT INTO t VALUES (1, 'a;b'), (2, 'it\\'s'); SELECT * FROM t ORDER BY id; SELECT id FROM t WHERE 1 = 0")
        .await;

    assert_eq!(output.result_sets.len(), 4);
    assert_eq!(output.result_sets[1].affected_rows, Some(2));
    assert_eq!(
        serde_json::to_value(&output.result_sets[2].rows).expect("rows"),
        json!([[1, "a;b"], [2, "it's"]])
    );
    assert_eq!(
        output.result_sets[3].columns.len(),
        1,
        "an empty result still names its columns"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_read_only_refuses_writes() {
    let Some(db) = TestDatabase::mysql().await else { return };
    db.run("CREATE TABLE t (id INT)").await;

    for query in [
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "SELECT 1 INTO OUTFILE '/tmp/x'",
        "SELECT 1 /*! ; DELETE FROM t */",
        "SELECT 1; DELETE FROM t",
    ] {
        let mut request = db.request(query);
        request.read_only = true;
        let result = db.database.execute(request).await;
        assert!(
            matches!(
                result,
                Err(ConnectorError::ReadOnly { .. } | ConnectorError::InvalidQuery { .. })
            ),
            "{query}: {result:?}"
        );
    }
    let mut request = db.request("SELECT COUNT(*) FROM t");
    request.read_only = true;
    let output = db.database.execute(request).await.expect("reading works");
    assert_eq!(rows(&output), json!([["0"]]));
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_local_infile_is_refused() {
    let Some(db) = TestDatabase::mysql().await else { return };
    db.run("CREATE TABLE t (line TEXT)").await;

    let result = db
        .database
        .execute(db.request("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"))
        .await;

    assert!(matches!(result, Err(ConnectorError::QueryFailed { .. })), "{result:?}");
    assert_eq!(rows(&db.run("SELECT COUNT(*) FROM t").await), json!([["0"]]));
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_errors_are_plain() {
    let Some(db) = TestDatabase::mysql().await else { return };
    let result = db.database.execute(db.request("SELEC 1")).await;
    match result {
        Err(ConnectorError::QueryFailed { message, code }) => {
            assert!(message.contains("syntax"), "{message}");
            assert_eq!(code.as_deref(), Some("1064"));
        }
        other => panic!("{other:?}"),
    }

    let user = format!("u{}", &db.name[7..20]);
    db.run(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'right-password'; CREATE USER '{user}'@'localhost' IDENTIFIED BY 'right-password'")).await;
    let url = format!("mysql://{user}:wrong-password@127.0.0.1:3306/{}", db.name);
    let input = mako_databases::settings::ConnectionInput {
        connection_string: Some(url),
        ..Default::default()
    };
    let (settings, secret) =
        mako_databases::settings::merge_input(mako_databases::ConnectionKind::Mysql, &input, None).expect("input");
    let config =
        mako_databases::settings::resolve(mako_databases::ConnectionKind::Mysql, &settings, &secret, &db.policy)
            .expect("config");
    let wrong = mako_databases::open(config, &db.policy).await.expect("open");
    let result = wrong.test().await;
    assert!(
        matches!(result, Err(ConnectorError::AuthenticationFailed)),
        "{result:?}"
    );
    db.run(&format!("DROP USER '{user}'@'%'; DROP USER '{user}'@'localhost'"))
        .await;
    db.drop_database().await;
}

#[tokio::test]
async fn mysql_test_and_schema() {
    let Some(db) = TestDatabase::mysql().await else { return };
    let report = db.database.test().await.expect("test");
    assert!(
        report.server_version.starts_with("MariaDB ") || report.server_version.starts_with("MySQL "),
        "{}",
        report.server_version
    );

    db.run("CREATE TABLE deals (id BIGINT NOT NULL, amount DECIMAL(12,2), payload BLOB); CREATE VIEW big AS SELECT * FROM deals").await;
    let databases = db.database.databases().await.expect("databases");
    assert!(databases.contains(&db.name));
    assert!(
        !databases.iter().any(|name| name == "mysql"),
        "system databases are hidden"
    );
    let tables = db.database.tables(None, None).await.expect("tables");
    let names: Vec<(&str, &str)> = tables.iter().map(|t| (t.name.as_str(), t.kind.as_str())).collect();
    assert_eq!(names, vec![("big", "view"), ("deals", "table")]);
    let columns = db.database.columns(None, None, "deals").await.expect("columns");
    let summary: Vec<(&str, &str, Option<bool>)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.native_type.as_str(), c.nullable))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("id", "bigint(20)", Some(false)),
            ("amount", "decimal(12,2)", Some(true)),
            ("payload", "blob", Some(true))
        ]
    );
    db.drop_database().await;
}
