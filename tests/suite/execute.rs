//! `POST /api/execute` through HTTP: typed results, several statements, parameters, limits,
//! timeouts and disconnects cancelled on the server, read-only rules and access checks,
//! against the real database servers.

use std::time::{Duration, Instant};

use mako_tests::databases::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::connections::{Team, body_for};

fn run_body(team: &Team, connection: &str, query: &str) -> Value {
    json!({ "workspaceId": team.workspace, "connectionId": connection, "query": query })
}

#[tokio::test]
async fn results_are_typed_and_every_statement_is_returned() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let id = team.connect(body_for(&postgres, "pg")).await;

    let (status, created) = team
        .member
        .post(
            "/api/execute",
            run_body(
                &team,
                &id,
                "create table deals (id bigint, amount numeric(20,4), closed date, at timestamptz, note text);
                 insert into deals values (9007199254740993, 12345678901234.5600, '2024-02-29', '2024-01-01 12:00:00+02', ''), (2, 'NaN', null, null, null);
                 select * from deals order by id desc",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let data = &created["data"];
    let sets = data["resultSets"].as_array().expect("every result set");
    assert_eq!(sets.len(), 3);
    assert_eq!(sets[1]["affectedRows"], 2);
    assert_eq!(data["rowCount"], 2, "the top level is the last result");
    let types: Vec<&str> = data["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, vec!["int64", "decimal", "date", "timestamptz", "string"]);
    assert_eq!(
        data["columns"][1]["nativeType"], "numeric(20,4)",
        "a table column keeps its precision and scale"
    );
    assert_eq!(
        data["rows"][0],
        json!([
            "9007199254740993",
            "12345678901234.5600",
            "2024-02-29",
            "2024-01-01T10:00:00Z",
            ""
        ])
    );
    assert_eq!(data["rows"][1], json!(["2", "NaN", null, null, null]));
    assert!(data["elapsedMs"].is_u64());
    assert_eq!(data["truncated"], false);
    postgres.drop_database().await;
}

#[tokio::test]
async fn parameters_are_bound_not_spliced() {
    let team = Team::new(&[]).await;
    let mut checked = 0;
    for database in [TestDatabase::postgres().await, TestDatabase::mysql().await]
        .into_iter()
        .flatten()
    {
        let id = team.connect(body_for(&database, "db")).await;
        team.owner
            .post(
                "/api/execute",
                run_body(&team, &id, "create table people (name varchar(50), born date)"),
            )
            .await;
        let mut insert = run_body(&team, &id, "insert into people values ({{name}}, {{born}})");
        insert["params"] =
            json!({ "name": "Robert'); drop table people; --", "born": { "type": "date", "value": "1990-05-17" } });
        let (status, body) = team.owner.post("/api/execute", insert).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let mut select = run_body(
            &team,
            &id,
            "select name, born from people where born < {{before}} and name in ({{names}})",
        );
        select["params"] = json!({
            "before": { "type": "date", "value": "2000-01-01" },
            "names": { "type": "text[]", "value": ["Robert'); drop table people; --", "nobody"] },
        });
        let (status, body) = team.viewer.post("/api/execute", select).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"]["rows"],
            json!([["Robert'); drop table people; --", "1990-05-17"]])
        );

        let mut wrong = run_body(&team, &id, "select {{n}}");
        wrong["params"] = json!({ "n": { "type": "integer", "value": "twelve" } });
        let (status, body) = team.viewer.post("/api/execute", wrong).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["details"].get("params.n").is_some(), "{body}");

        let (status, body) = team
            .viewer
            .post("/api/execute", run_body(&team, &id, "select {{missing}}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "INVALID_QUERY");
        database.drop_database().await;
        checked += 1;
    }
    assert!(checked > 0 || !mako_tests::services::services_required());
}

#[tokio::test]
async fn viewers_and_read_only_connections_cannot_write() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    postgres.run("create table t (x int); insert into t values (1)").await;
    let id = team.connect(body_for(&postgres, "pg")).await;

    let writes = [
        "insert into t values (2)",
        "update t set x = 3",
        "select 1; delete from t",
        "with gone as (delete from t returning *) select * from gone",
        "select set_config('default_transaction_read_only', 'off', false); insert into t values (4)",
    ];
    for query in writes {
        let (status, body) = team.viewer.post("/api/execute", run_body(&team, &id, query)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {body}");
        assert_eq!(body["code"], "READ_ONLY", "{body}");
    }
    let viewer_key = team.app.api_key(&team.owner, &team.workspace, "viewer").await;
    let (status, _) = team
        .app
        .with_key(&viewer_key)
        .post("/api/execute", run_body(&team, &id, "insert into t values (5)"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = team
        .viewer
        .post("/api/execute", run_body(&team, &id, "select x from t"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["rows"], json!([[1]]), "nothing changed");

    // A connection marked read-only applies to everyone, owners included.
    let mut read_only = body_for(&postgres, "reporting");
    read_only["readOnly"] = json!(true);
    let reporting = team.connect(read_only).await;
    let (status, body) = team
        .owner
        .post("/api/execute", run_body(&team, &reporting, "insert into t values (6)"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = team
        .member
        .post("/api/execute", run_body(&team, &id, "insert into t values (7)"))
        .await;
    assert_eq!(status, StatusCode::OK, "members write on a writable connection");
    postgres.drop_database().await;
}

#[tokio::test]
async fn callers_reach_only_their_workspace_connections() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let id = team.connect(body_for(&postgres, "pg")).await;

    let stranger = team.app.user("outsider@else.test").await;
    let theirs = team.app.workspace(&stranger, "Theirs").await;
    let (status, body) = stranger.post("/api/execute", run_body(&team, &id, "select 1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Their own workspace id with our connection id: the connection is not theirs.
    let (status, body) = stranger
        .post(
            "/api/execute",
            json!({ "workspaceId": theirs, "connectionId": id, "query": "select 1" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let key = team.app.api_key(&stranger, &theirs, "admin").await;
    let (status, body) = team
        .app
        .with_key(&key)
        .post("/api/execute", run_body(&team, &id, "select 1"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "KEY_WRONG_WORKSPACE");

    let (status, _) = team
        .app
        .client()
        .post("/api/execute", run_body(&team, &id, "select 1"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let ours = team.app.api_key(&team.owner, &team.workspace, "member").await;
    let (status, body) = team
        .app
        .with_key(&ours)
        .post("/api/execute", run_body(&team, &id, "select 1 as one"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rows"], json!([[1]]));
    postgres.drop_database().await;
}

#[tokio::test]
async fn limits_are_checked_and_caps_tell_the_truth() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[("MAKO_EXECUTE_MAX_ROWS", "500"), ("MAKO_EXECUTE_DEFAULT_ROWS", "100")]).await;
    let id = team.connect(body_for(&postgres, "pg")).await;
    let series = "select g from generate_series(1, 1000) g";

    let (_, body) = team.viewer.post("/api/execute", run_body(&team, &id, series)).await;
    assert_eq!(body["data"]["rowCount"], 100, "the server default");
    assert_eq!(body["data"]["truncated"], true);

    let mut lower = run_body(&team, &id, series);
    lower["limit"] = json!(7);
    let (_, body) = team.viewer.post("/api/execute", lower).await;
    assert_eq!(body["data"]["rowCount"], 7);
    assert_eq!(body["data"]["rows"].as_array().map(Vec::len), Some(7));

    let mut exact = run_body(&team, &id, "select g from generate_series(1, 5) g");
    exact["limit"] = json!(5);
    let (_, body) = team.viewer.post("/api/execute", exact).await;
    assert_eq!(body["data"]["truncated"], false, "exactly the limit is not truncated");

    for (field, value) in [
        ("limit", json!(0)),
        ("limit", json!(501)),
        ("timeoutMs", json!(5)),
        ("timeoutMs", json!(10_000_000)),
    ] {
        let mut request = run_body(&team, &id, "select 1");
        request[field] = value.clone();
        let (status, body) = team.viewer.post("/api/execute", request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        assert!(body["details"].get(field).is_some(), "{body}");
    }
    let (status, body) = team.viewer.post("/api/execute", run_body(&team, &id, "   ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = team.member.post("/api/execute", run_body(&team, &id, "selec 1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "QUERY_FAILED");
    assert!(
        body["error"].as_str().is_some_and(|message| message.contains("syntax")),
        "{body}"
    );
    postgres.drop_database().await;
}

/// Whether PostgreSQL is still running a query containing `marker`, other than the check.
async fn still_running(postgres: &TestDatabase, marker: &str) -> bool {
    let url = postgres.url.as_deref().expect("url");
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("control");
    let running: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where query like '%' || $1 || '%' and pid <> pg_backend_pid() and state = 'active'",
    )
    .bind(marker)
    .fetch_one(&mut connection)
    .await
    .expect("pg_stat_activity");
    running > 0
}

async fn wait_until_stopped(postgres: &TestDatabase, marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !still_running(postgres, marker).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn timeouts_and_disconnects_cancel_the_query_on_the_server() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let id = team.connect(body_for(&postgres, "pg")).await;

    let mut slow = run_body(&team, &id, "select pg_sleep(30) /* timeout-marker */");
    slow["timeoutMs"] = json!(500);
    let started = Instant::now();
    let (status, body) = team.viewer.post("/api/execute", slow).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["code"], "QUERY_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        wait_until_stopped(&postgres, "timeout-marker").await,
        "the server stopped the query"
    );

    // A client that goes away takes its query with it.
    let request = team
        .viewer
        .request(reqwest::Method::POST, "/api/execute")
        .json(&run_body(&team, &id, "select pg_sleep(30) /* disconnect-marker */"))
        .timeout(Duration::from_millis(1500));
    let outcome = request.send().await;
    assert!(outcome.is_err(), "the client gave up");
    assert!(
        wait_until_stopped(&postgres, "disconnect-marker").await,
        "the server stopped the query"
    );

    // The pooled connection is still usable.
    let (status, body) = team
        .viewer
        .post("/api/execute", run_body(&team, &id, "select 1 as ok"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    postgres.drop_database().await;
}

#[tokio::test]
async fn mysql_and_mongodb_run_through_http() {
    let team = Team::new(&[]).await;
    let mut checked = 0;
    if let Some(mysql) = TestDatabase::mysql().await {
        let id = team.connect(body_for(&mysql, "maria")).await;
        let (status, body) = team
            .owner
            .post(
                "/api/execute",
                run_body(
                    &team,
                    &id,
                    "create table t (d date, n bigint unsigned); insert into t values ('0000-00-00', 18446744073709551615); select * from t",
                ),
            )
            .await;
        // MariaDB's default SQL mode refuses zero dates in strict mode; either outcome is
        // stated plainly, never half-applied silently.
        if status == StatusCode::OK {
            assert_eq!(body["data"]["rows"][0][1], "18446744073709551615", "{body}");
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        mysql.drop_database().await;
        checked += 1;
    }
    if let Some(mongo) = TestDatabase::mongodb().await {
        let id = team.connect(body_for(&mongo, "mongo")).await;
        let (status, body) = team
            .owner
            .post(
                "/api/execute",
                run_body(&team, &id, r#"db.events.insertOne({_id: ObjectId("64f1a2b3c4d5e6f708091a2b"), n: NumberLong("9007199254740993"), at: ISODate("2024-05-01T10:00:00Z")})"#),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["affectedRows"], 1);
        let (status, body) = team
            .viewer
            .post("/api/execute", run_body(&team, &id, "db.events.find({}).limit(5)"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"]["rows"][0],
            json!(["64f1a2b3c4d5e6f708091a2b", "9007199254740993", "2024-05-01T10:00:00Z"])
        );
        let types: Vec<&str> = body["data"]["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, vec!["objectid", "int64", "timestamptz"]);
        let (status, body) = team
            .viewer
            .post("/api/execute", run_body(&team, &id, "db.events.deleteMany({})"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let mut with_params = run_body(&team, &id, "db.events.countDocuments({_id: {$exists: {{present}}}})");
        with_params["params"] = json!({ "present": false });
        let (status, body) = team.viewer.post("/api/execute", with_params).await;
        assert_eq!(status, StatusCode::OK, "MongoDB takes parameters: {body}");
        assert_eq!(body["data"]["rows"], json!([["0"]]), "the boolean was bound: {body}");
        mongo.drop_database().await;
        checked += 1;
    }
    assert!(checked > 0 || !mako_tests::services::services_required());
}

#[tokio::test]
async fn busy_pool_is_named_in_the_error() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[("MAKO_DATABASE_POOL_SIZE", "1")]).await;
    let id = team.connect(body_for(&postgres, "pg")).await;
    let mut slow = run_body(&team, &id, "select pg_sleep(3)");
    slow["timeoutMs"] = json!(10000);
    let long = team.member.post("/api/execute", slow);
    let mut quick = run_body(&team, &id, "select 1");
    quick["timeoutMs"] = json!(1000);
    let second = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        team.member.post("/api/execute", quick).await
    };
    let ((first_status, _), (status, body)) = tokio::join!(long, second);
    assert_eq!(first_status, StatusCode::OK);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("busy")), "{body}");
    postgres.drop_database().await;
}
