//! Dashboards through HTTP: CRUD with roles and versions, duplicates, folders, and the
//! materialization of data sources to Parquet, read back by hyparquet under Node with range
//! requests only and compared value by value with `/api/execute`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mako_tests::app::Client;
use mako_tests::databases::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::connections::{Team, body_for};

/// Settings of a server whose new workspaces get the sample database.
const SAMPLE: &[(&str, &str)] = &[("MAKO_SAMPLE_DATABASE", "true")];

impl Team {
    pub fn dashboards(&self, rest: &str) -> String {
        format!("/api/workspaces/{}/dashboards{rest}", self.workspace)
    }

    fn dashboard_folders(&self, rest: &str) -> String {
        format!("/api/workspaces/{}/dashboard-folders{rest}", self.workspace)
    }

    /// Returns the id of the workspace's sample database connection.
    pub async fn sample_connection(&self) -> String {
        let (status, body) = self.owner.get(&self.path("")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["name"] == "Sample database"))
            .and_then(|c| c["id"].as_str())
            .expect("the sample connection")
            .to_owned()
    }

    async fn create_dashboard(&self, client: &Client, body: Value) -> Value {
        let (status, created) = client.post(&self.dashboards(""), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"].clone()
    }

    /// Polls the status until `source` is ready at a revision above `after`; returns its entry.
    pub async fn wait_ready(&self, client: &Client, dashboard: &str, source: &str, after: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let entry = self.source_status(client, dashboard, source).await;
            if entry["status"] == "ready" && entry["revision"].as_u64().unwrap_or(0) > after {
                return entry;
            }
            assert!(entry["status"] != "error", "the build failed: {entry}");
            assert!(Instant::now() < deadline, "not ready within 90 s: {entry}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn source_status(&self, client: &Client, dashboard: &str, source: &str) -> Value {
        let (status, body) = client
            .get(&self.dashboards(&format!("/{dashboard}/materialization/status")))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["dataSources"]
            .as_array()
            .and_then(|list| list.iter().find(|entry| entry["dataSourceId"] == source))
            .cloned()
            .expect("the data source's status")
    }

    async fn trigger(&self, client: &Client, dashboard: &str, source: &str) -> (StatusCode, Value) {
        client
            .post(
                &self.dashboards(&format!("/{dashboard}/materialization/trigger")),
                json!({ "dataSourceId": source }),
            )
            .await
    }
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

/// Path of the hyparquet reader script, or `None` (skipped) when its packages are missing.
fn hyparquet_reader() -> Option<PathBuf> {
    mako_tests::node_script("hyparquet", "read-parquet.mjs")
}

/// Reads a Parquet file through the stream route with hyparquet under Node.
async fn read_with_hyparquet(script: &PathBuf, url: &str, key: &str) -> Value {
    let output = tokio::process::Command::new("node")
        .arg(script)
        .arg(url)
        .arg(key)
        .output()
        .await
        .expect("running node");
    assert!(
        output.status.success(),
        "hyparquet failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reader's JSON")
}

/// Microseconds since the epoch of a timestamp as `/api/execute` writes it.
fn micros(text: &str) -> i64 {
    let naive = text.trim_end_matches('Z');
    chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|error| panic!("timestamp {text}: {error}"))
        .and_utc()
        .timestamp_micros()
}

/// Compares one value read from Parquet with the value `/api/execute` returned.
fn same_value(portable: &str, expected: &Value, parquet: &Value, scale: Option<u64>) -> bool {
    if matches!(portable, "json" | "array" | "interval" | "document") {
        // Parquet stores the JSON text, so a JSON `null` stays apart from SQL NULL there,
        // while `/api/execute` writes both as `null`.
        return match parquet {
            Value::Null => expected.is_null(),
            Value::String(text) => serde_json::from_str::<Value>(text).ok().as_ref() == Some(expected),
            _ => false,
        };
    }
    match (expected, parquet) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        _ => match portable {
            "timestamp" | "timestamptz" => {
                let expected = micros(expected.as_str().unwrap_or_default());
                parquet.as_str().and_then(|text| text.parse::<i64>().ok()) == Some(expected)
            }
            "decimal" => {
                let text = expected
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| expected.to_string());
                let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
                let scale = scale.unwrap_or(0) as usize;
                let padded = if scale == 0 {
                    whole.to_owned()
                } else {
                    format!("{whole}.{fraction:0<scale$}")
                };
                // hyparquet turns decimals into doubles, so only about 15 digits can agree;
                // `decimals_are_exact` checks every digit with the Rust reader.
                let read = parquet.as_str().unwrap_or_default();
                padded == read
                    || match (padded.parse::<f64>(), read.parse::<f64>()) {
                        (Ok(a), Ok(b)) => (a - b).abs() <= a.abs().max(1.0) * 1e-14,
                        _ => false,
                    }
            }
            "float32" if expected.is_number() => {
                expected.as_f64().map(|v| v as f32) == parquet.as_f64().map(|v| v as f32)
            }
            "float64" if expected.is_number() => expected.as_f64() == parquet.as_f64(),
            _ => expected == parquet,
        },
    }
}

/// Runs `query` through `/api/execute` and checks every value against the Parquet file read
/// by hyparquet, and that the reader used a HEAD request and byte ranges only.
async fn compare_with_execute(team: &Team, connection: &str, query: &str, read: &Value) -> usize {
    let (status, executed) = team
        .owner
        .post(
            "/api/execute",
            json!({ "workspaceId": team.workspace, "connectionId": connection, "query": query, "limit": 100000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{executed}");
    let columns = executed["data"]["columns"].as_array().expect("columns");
    let expected_rows = executed["data"]["rows"].as_array().expect("rows");
    let schema = read["schema"].as_array().expect("schema");
    let rows = read["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), expected_rows.len(), "row counts differ");
    assert_eq!(schema.len(), columns.len());
    for (column, field) in columns.iter().zip(schema) {
        assert_eq!(column["name"], field["name"], "column names are kept exactly");
    }

    for (number, (expected, row)) in expected_rows.iter().zip(rows).enumerate() {
        for (index, column) in columns.iter().enumerate() {
            let portable = column["type"].as_str().unwrap_or_default();
            let scale = schema[index]["scale"].as_u64();
            assert!(
                same_value(portable, &expected[index], &row[index], scale),
                "row {number}, column {}: execute gave {}, Parquet holds {}",
                column["name"],
                expected[index],
                row[index]
            );
        }
    }

    let requests = read["requests"].as_array().expect("requests");
    assert_eq!(requests[0]["method"], "HEAD", "{requests:?}");
    for request in &requests[1..] {
        assert!(request["range"].is_string(), "every read names a range: {request}");
        assert_eq!(request["status"], 206, "{request}");
    }
    rows.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_follow_roles_versions_and_duplicate_deeply() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample_connection().await;
    let body = json!({
        "title": "Revenue",
        "description": "Invoices by status",
        "visibility": "workspace",
        "dataSources": [
            { "id": "invoices", "name": "Invoices", "connectionId": sample,
              "query": "select status, count(*) as n from invoices where amount > {{min}} group by status",
              "parameters": { "min": 10 }, "rowLimit": 5000,
              "schedule": { "cron": "0 6 * * 1-5", "timezone": "Europe/Berlin" } },
            { "name": "Accounts", "connectionId": sample, "query": "select * from accounts" },
        ],
        "widgets": [
            { "type": "chart", "title": "By status", "dataSourceId": "invoices",
              "spec": { "mark": "bar", "encoding": { "x": { "field": "status" }, "y": { "field": "n" } } },
              "layout": { "x": 0, "y": 0, "w": 6, "h": 4 } },
            { "type": "kpi", "title": "Total", "dataSourceId": "invoices", "settings": { "field": "n", "aggregate": "sum" },
              "layout": { "x": 6, "y": 0, "w": 3, "h": 2 } },
            { "type": "text", "title": "Notes", "text": "Numbers refresh at 06:00.", "layout": { "x": 9, "y": 0, "w": 3, "h": 2 } },
        ],
        "globalFilters": [
            { "name": "Minimum", "type": "number", "default": 10,
              "targets": [{ "dataSourceId": "invoices", "parameter": "min" }] },
        ],
    });
    let dashboard = team.create_dashboard(&team.member, body.clone()).await;
    let id = id_of(&dashboard);
    assert_eq!(dashboard["version"], 1);
    assert_eq!(dashboard["canEdit"], true);
    let accounts = dashboard["dataSources"][1]["id"]
        .as_str()
        .expect("generated id")
        .to_owned();
    assert!(accounts.starts_with("ds_"), "{accounts}");
    assert_eq!(dashboard["dataSources"][1]["rowLimit"], 1_000_000);

    // The schedule is set up with the dashboard.
    let entry = team.source_status(&team.member, &id, "invoices").await;
    assert_eq!(entry["status"], "missing");
    assert!(entry["nextRunAt"].is_string(), "{entry}");

    // Viewers read but cannot change or trigger; other members cannot change it either.
    let (status, read) = team.viewer.get(&team.dashboards(&format!("/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"]["canEdit"], false);
    let (status, refused) = team
        .viewer
        .put(
            &team.dashboards(&format!("/{id}")),
            json!({ "version": 1, "title": "Mine" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, _) = team.trigger(&team.viewer, &id, "invoices").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An admin edits; the member's stale version then gets 409 with the current one.
    let (status, updated) = team
        .admin
        .put(
            &team.dashboards(&format!("/{id}")),
            json!({ "version": 1, "title": "Revenue (EUR)" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["data"]["version"], 2);
    let (status, conflict) = team
        .member
        .put(
            &team.dashboards(&format!("/{id}")),
            json!({ "version": 1, "title": "Lost" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["code"], "VERSION_CONFLICT");
    assert_eq!(conflict["details"]["currentVersion"], 2);
    assert_eq!(conflict["details"]["current"]["title"], "Revenue (EUR)");
    let (status, missing) = team
        .member
        .put(&team.dashboards(&format!("/{id}")), json!({ "title": "No version" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}");

    // Widgets must point at data sources of the dashboard.
    let (status, invalid) = team
        .member
        .put(
            &team.dashboards(&format!("/{id}")),
            json!({ "version": 2, "dataSources": [body["dataSources"][1].clone()] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{invalid}");
    assert!(invalid.to_string().contains("widgets[0].dataSourceId"), "{invalid}");

    // A connection of another workspace is refused.
    let other_workspace = team.app.workspace(&team.owner, "Other").await;
    let (status, connections) = team
        .owner
        .get(&format!("/api/workspaces/{other_workspace}/connectors"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let foreign = connections["data"][0]["id"]
        .as_str()
        .expect("sample of the other workspace")
        .to_owned();
    let (status, refused) = team
        .member
        .post(
            &team.dashboards(""),
            json!({ "title": "Foreign", "dataSources": [{ "name": "x", "connectionId": foreign, "query": "select 1" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.to_string().contains("dataSources[0].connectionId"), "{refused}");

    // Private dashboards are hidden from everyone else, admins included.
    let private = team
        .create_dashboard(&team.member, json!({ "title": "Draft", "visibility": "private" }))
        .await;
    let (status, _) = team.admin.get(&team.dashboards(&format!("/{}", id_of(&private)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = team.admin.get(&team.dashboards("")).await;
    assert_eq!(status, StatusCode::OK);
    let titles: Vec<&str> = list["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["title"].as_str())
        .collect();
    assert_eq!(titles, vec!["Revenue (EUR)"]);

    // Build the original so the copy can be shown to have no artifacts of its own.
    let (status, _) = team.trigger(&team.member, &id, "invoices").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    team.wait_ready(&team.member, &id, "invoices", 0).await;

    // Duplicate: fresh ids everywhere, references remapped, owned by the caller.
    let (status, copied) = team
        .admin
        .post(&team.dashboards(&format!("/{id}/duplicate")), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copied}");
    let copy = &copied["data"];
    assert_eq!(copy["title"], "Revenue (EUR) (copy)");
    assert_ne!(copy["id"], dashboard["id"]);
    assert_eq!(copy["version"], 1);
    assert_eq!(copy["visibility"], "private");
    let admin_id = team.admin.get("/api/auth/me").await.1["data"]["user"]["id"].clone();
    assert_eq!(copy["ownerId"], admin_id);
    let copy_sources: Vec<String> = copy["dataSources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(id_of)
        .collect();
    assert!(!copy_sources.contains(&"invoices".to_owned()));
    assert!(!copy_sources.contains(&accounts));
    let widgets = copy["widgets"].as_array().expect("widgets");
    for (widget, original) in widgets.iter().zip(dashboard["widgets"].as_array().expect("widgets")) {
        assert_ne!(widget["id"], original["id"]);
    }
    assert_eq!(widgets[0]["dataSourceId"], copy["dataSources"][0]["id"]);
    assert_eq!(widgets[1]["dataSourceId"], copy["dataSources"][0]["id"]);
    assert_eq!(
        copy["globalFilters"][0]["targets"][0]["dataSourceId"],
        copy["dataSources"][0]["id"]
    );
    assert_ne!(copy["globalFilters"][0]["id"], dashboard["globalFilters"][0]["id"]);
    assert_eq!(copy["dataSources"][0]["query"], dashboard["dataSources"][0]["query"]);
    let copy_id = id_of(copy);
    let copied_source = copy_sources[0].clone();
    let entry = team.source_status(&team.admin, &copy_id, &copied_source).await;
    assert_eq!(entry["status"], "missing", "the copy shares no artifact: {entry}");
    let (status, _) = team
        .admin
        .request(
            Method::GET,
            &team.dashboards(&format!("/{copy_id}/materialization/stream/{copied_source}")),
        )
        .send()
        .await
        .map(|response| (response.status(), ()))
        .expect("stream request");
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleting the original removes its artifact; the copy is untouched.
    let (status, _) = team.member.delete(&team.dashboards(&format!("/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = team
        .member
        .get(&team.dashboards(&format!("/{id}/materialization/status")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = team.admin.get(&team.dashboards(&format!("/{copy_id}"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn dashboard_folders_nest_move_and_delete() {
    let team = Team::new(&[]).await;
    let create = |name: &str, parent: Option<&str>| {
        let body = json!({ "name": name, "parentId": parent });
        let path = team.dashboard_folders("");
        let client = team.member.clone();
        async move {
            let (status, body) = client.post(&path, body).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            id_of(&body["data"])
        }
    };
    let sales = create("Sales", None).await;
    let emea = create("EMEA", Some(&sales)).await;

    // No cycles: a folder cannot move into its own subfolder.
    let (status, refused) = team
        .member
        .put(
            &team.dashboard_folders(&format!("/{sales}")),
            json!({ "parentId": emea }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, renamed) = team
        .member
        .put(
            &team.dashboard_folders(&format!("/{emea}")),
            json!({ "name": "Europe" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["data"]["name"], "Europe");
    let (status, stale) = team
        .member
        .put(
            &team.dashboard_folders(&format!("/{emea}")),
            json!({ "name": "Old", "version": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");
    assert_eq!(stale["details"]["currentVersion"], renamed["data"]["version"]);

    let dashboard = team
        .create_dashboard(
            &team.member,
            json!({ "title": "Pipeline", "folderId": emea, "visibility": "workspace" }),
        )
        .await;
    let (status, listed) = team.viewer.get(&team.dashboards(&format!("?folderId={emea}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));

    // Not empty: 409 unless its contents move to the parent.
    let (status, conflict) = team.member.delete(&team.dashboard_folders(&format!("/{emea}"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["code"], "FOLDER_NOT_EMPTY");
    let (status, deleted) = team
        .member
        .delete(&team.dashboard_folders(&format!("/{emea}?moveContents=true")))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["data"]["moved"], 1);
    let (status, moved) = team
        .member
        .get(&team.dashboards(&format!("/{}", id_of(&dashboard))))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(moved["data"]["folderId"], sales.as_str());

    // Viewers cannot create folders.
    let (status, _) = team
        .viewer
        .post(&team.dashboard_folders(""), json!({ "name": "Mine" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, folders) = team.viewer.get(&team.dashboard_folders("")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(folders["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(folders["data"][0]["childCount"], 1);
}

/// A PostgreSQL table with every kind of column a dashboard meets, NULLs and extremes.
const METRICS: &str = "
    create table metrics (
        id bigint primary key, big bigint, small smallint, regular integer,
        amount numeric(12,2), ratio numeric, day date, at timestamp, at_tz timestamptz,
        flag boolean, real_value real, double_value double precision, label text,
        raw bytea, doc jsonb, tags integer[], uid uuid, during interval
    );
    insert into metrics
    select g, g * 1000000007::bigint * (case when g % 2 = 0 then -1 else 1 end), (g % 30000)::smallint, g * 3,
           (g * 1.37)::numeric(12,2), g / 7.0, date '2020-01-01' + g % 3000,
           timestamp '2021-03-04 05:06:07.123456' + g * interval '63.000001 seconds',
           timestamptz '2021-03-04 05:06:07.654321+02' + g * interval '17 seconds',
           g % 3 = 0, g / 3.0, g / 9.0, 'row ' || g || ' Zürich – 東京 – 🚀 ' || repeat('x', g % 50),
           decode(lpad(to_hex(g), 8, '0'), 'hex'), jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'two', null)),
           array[g, g + 1], md5(g::text)::uuid, (g || ' minutes')::interval
    from generate_series(1, 20000) g;
    update metrics set big = null, amount = null, day = null, at_tz = null, label = null, raw = null, doc = null
    where id % 97 = 0;
    insert into metrics values (0, 9223372036854775807, -32768, -2147483648, -9999999999.99, 0, '1970-01-01',
        '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', false, 'NaN', '-Infinity', '', '', 'null', '{}',
        '00000000-0000-0000-0000-000000000000', '0 seconds');
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_data_source_reads_back_exactly_through_ranges() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let Some(reader) = hyparquet_reader() else {
        return;
    };
    database.run(METRICS).await;
    let team = Team::new(&[]).await;
    let (status, connection) = team.admin.post(&team.path(""), body_for(&database, "Warehouse")).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let connection = id_of(&connection["data"]);
    let query = "select * from metrics order by id";
    // Without the array and interval columns, PostgreSQL sends the rows as binary COPY.
    let copied = "select id, big, small, regular, amount, ratio, day, at, at_tz, flag, real_value, double_value, \
                  label, raw, doc, uid from metrics order by id";
    let dashboard = team
        .create_dashboard(
            &team.member,
            json!({
                "title": "Metrics",
                "visibility": "workspace",
                "dataSources": [
                    { "id": "metrics", "name": "Metrics", "connectionId": connection, "query": query },
                    { "id": "copied", "name": "Copied", "connectionId": connection, "query": copied },
                ],
            }),
        )
        .await;
    let id = id_of(&dashboard);

    let (status, first) = team.trigger(&team.member, &id, "metrics").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["data"]["queued"], true);
    let entry = team.wait_ready(&team.member, &id, "metrics", 0).await;
    assert_eq!(entry["rowCount"], 20001);
    assert_eq!(entry["truncated"], false);
    let types: Vec<String> = entry["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|column| {
            format!(
                "{}={}",
                column["name"].as_str().unwrap_or_default(),
                column["type"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for expected in [
        "id=Int64",
        "small=Int16",
        "regular=Int32",
        "amount=Decimal128(12, 2)",
        "ratio=Decimal128(38, 20)",
        "day=Date32",
        "at=Timestamp(µs)",
        "at_tz=Timestamp(µs, \"UTC\")",
        "flag=Boolean",
        "real_value=Float32",
        "double_value=Float64",
        "label=Utf8",
        "raw=Binary",
    ] {
        assert!(types.iter().any(|t| t == expected), "{expected} not in {types:?}");
    }

    // A viewer's API key reads it the way a browser does.
    let key = team.app.api_key(&team.owner, &team.workspace, "viewer").await;
    let url = team
        .app
        .url(&team.dashboards(&format!("/{id}/materialization/stream/metrics")));
    let read = read_with_hyparquet(&reader, &url, &key).await;
    let compared = compare_with_execute(&team, &connection, query, &read).await;
    assert_eq!(compared, 20001);
    let doc = read["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .position(|field| field["name"] == "doc");
    let doc = doc.expect("the doc column");
    assert_eq!(read["rows"][0][doc], "null", "a JSON null is kept as JSON");
    assert_eq!(read["rows"][97][doc], Value::Null, "SQL NULL is NULL");
    let whole = team.owner.request(
        Method::GET,
        &team.dashboards(&format!("/{id}/materialization/stream/metrics")),
    );
    let bytes = whole.send().await.expect("download").bytes().await.expect("body");
    decimals_are_exact(&team, &connection, bytes).await;
    let size = entry["byteSize"].as_u64().expect("size");
    assert!(size > 600 * 1024, "the file should need several ranges: {size}");
    let ranged_bytes: u64 = read["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|request| request["contentRange"].as_str())
        .filter_map(|range| {
            let (span, _) = range.trim_start_matches("bytes ").split_once('/')?;
            let (first, last) = span.split_once('-')?;
            Some(last.parse::<u64>().ok()? - first.parse::<u64>().ok()? + 1)
        })
        .sum();
    assert!(ranged_bytes > 0);
    let timestamp_types: Vec<&Value> = read["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .filter(|field| field["logicalType"]["type"] == "TIMESTAMP")
        .map(|field| &field["logicalType"]["isAdjustedToUTC"])
        .collect();
    assert_eq!(
        timestamp_types,
        vec![&json!(false), &json!(true)],
        "zones are marked correctly"
    );

    // A second trigger while queued or building does not start another build.
    let (status, again) = team.trigger(&team.member, &id, "metrics").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, twice) = team.trigger(&team.member, &id, "metrics").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["data"]["queued"], true, "{again}");
    assert_eq!(twice["data"]["queued"], false, "{twice}");
    assert!(
        twice["data"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already")
    );
    let revision = entry["revision"].as_u64().expect("revision");
    team.wait_ready(&team.member, &id, "metrics", revision).await;
    database.drop_database().await;
}

/// Reads the decimal columns of the metrics file with the Rust Parquet reader and compares
/// their text, digit for digit, with `/api/execute`.
async fn decimals_are_exact(team: &Team, connection: &str, file: bytes::Bytes) {
    use arrow_array::Array;
    let (status, executed) = team
        .owner
        .post(
            "/api/execute",
            json!({ "workspaceId": team.workspace, "connectionId": connection,
                    "query": "select amount, ratio from metrics order by id", "limit": 100000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{executed}");
    let expected = executed["data"]["rows"].as_array().expect("rows");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .build()
        .expect("a reader");
    let mut row = 0;
    for batch in reader {
        let batch = batch.expect("a batch");
        for (column, name) in [(4, "amount"), (5, "ratio")] {
            let values = batch
                .column(column)
                .as_any()
                .downcast_ref::<arrow_array::Decimal128Array>()
                .unwrap_or_else(|| panic!("{name} is a decimal"));
            for index in 0..values.len() {
                let want = &expected[row + index][column - 4];
                if values.is_null(index) {
                    assert!(want.is_null(), "{name} row {}", row + index);
                    continue;
                }
                let text = values.value_as_string(index);
                let want = want.as_str().expect("decimal text");
                // The file keeps the column's scale; the database may print fewer digits.
                let (whole, fraction) = want.split_once('.').unwrap_or((want, ""));
                let scale = text.split_once('.').map_or(0, |(_, fraction)| fraction.len());
                assert_eq!(
                    text,
                    format!("{whole}.{fraction:0<scale$}"),
                    "{name} row {}",
                    row + index
                );
            }
        }
        row += batch.num_rows();
    }
    assert_eq!(row, expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_database_data_source_reads_back_exactly() {
    let Some(reader) = hyparquet_reader() else {
        return;
    };
    let team = Team::new(SAMPLE).await;
    let sample = team.sample_connection().await;
    let query =
        "select i.*, a.name as account, a.region from invoices i join accounts a on a.id = i.account_id order by i.id";
    let dashboard = team
        .create_dashboard(
            &team.owner,
            json!({ "title": "Invoices", "dataSources": [{ "id": "invoices", "name": "Invoices", "connectionId": sample, "query": query }] }),
        )
        .await;
    let id = id_of(&dashboard);
    let (status, _) = team
        .owner
        .post(
            &team.dashboards(&format!("/{id}/materialization/trigger-all")),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let entry = team.wait_ready(&team.owner, &id, "invoices", 0).await;
    let key = team.app.api_key(&team.owner, &team.workspace, "admin").await;
    let url = team
        .app
        .url(&team.dashboards(&format!("/{id}/materialization/stream/invoices")));
    let read = read_with_hyparquet(&reader, &url, &key).await;
    let compared = compare_with_execute(&team, &sample, query, &read).await;
    assert_eq!(Some(compared as u64), entry["rowCount"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_route_speaks_http_ranges() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample_connection().await;
    let dashboard = team
        .create_dashboard(
            &team.member,
            json!({ "title": "Accounts", "visibility": "workspace",
                    "dataSources": [{ "id": "accounts", "name": "Accounts", "connectionId": sample, "query": "select * from accounts" }] }),
        )
        .await;
    let id = id_of(&dashboard);
    let path = team.dashboards(&format!("/{id}/materialization/stream/accounts"));
    let (status, missing) = team.viewer.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["code"], "NOT_MATERIALIZED");

    team.trigger(&team.member, &id, "accounts").await;
    let entry = team.wait_ready(&team.member, &id, "accounts", 0).await;
    let size = entry["byteSize"].as_u64().expect("size");
    let etag = entry["etag"].as_str().expect("etag").to_owned();

    let send = |method: Method, headers: Vec<(&'static str, String)>| {
        let mut request = team.viewer.request(method, &path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.expect("stream request") }
    };

    let head = send(Method::HEAD, vec![]).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    assert_eq!(head.headers()["content-type"], "application/vnd.apache.parquet");
    assert_eq!(head.headers()["etag"], etag.as_str());
    assert!(head.headers().get("content-encoding").is_none());

    let whole = send(Method::GET, vec![]).await.bytes().await.expect("body");
    assert_eq!(whole.len() as u64, size);
    assert_eq!(&whole[..4], b"PAR1");

    for (range, first, last) in [
        ("bytes=0-99".to_owned(), 0, 99),
        (format!("bytes={}-", size - 10), size - 10, size - 1),
        ("bytes=-8".to_owned(), size - 8, size - 1),
        (format!("bytes=10-{}", size + 1000), 10, size - 1),
    ] {
        let response = send(Method::GET, vec![("range", range.clone())]).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {first}-{last}/{size}").as_str(),
            "{range}"
        );
        let body = response.bytes().await.expect("body");
        assert_eq!(&body[..], &whole[first as usize..=last as usize], "{range}");
    }
    let tail = send(Method::GET, vec![("range", "bytes=-4".into())])
        .await
        .bytes()
        .await
        .expect("tail");
    assert_eq!(&tail[..], b"PAR1");

    let outside = send(Method::GET, vec![("range", format!("bytes={size}-"))]).await;
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(outside.headers()["content-range"], format!("bytes */{size}").as_str());

    let several = send(Method::GET, vec![("range", "bytes=0-1,4-5".into())]).await;
    assert_eq!(several.status(), StatusCode::OK, "several ranges get the whole file");

    let unchanged = send(Method::GET, vec![("if-none-match", etag.clone())]).await;
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let stale_if_range = send(
        Method::GET,
        vec![("range", "bytes=0-9".into()), ("if-range", "\"other\"".into())],
    )
    .await;
    assert_eq!(stale_if_range.status(), StatusCode::OK);

    // A browser on the app's origin may send Range and read the range headers.
    let preflight = team
        .viewer
        .request(Method::OPTIONS, &path)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range,if-none-match")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(allowed.contains("range"), "{allowed}");
    let ranged = send(Method::GET, vec![("range", "bytes=0-3".into())]).await;
    let exposed = ranged.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap_or_default()
        .to_lowercase();
    for header in ["content-range", "accept-ranges", "etag", "content-length"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    assert_eq!(ranged.headers()["access-control-allow-origin"], team.app.base.as_str());

    // Unknown data sources are 404 and other workspaces' callers are refused.
    let (status, _) = team
        .viewer
        .get(&team.dashboards(&format!("/{id}/materialization/stream/nope")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let outsider = team.app.user("outsider@team.test").await;
    let (status, _) = outsider.get(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rebuilds_retry_and_keep_serving_the_last_good_file() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    database
        .run("create table items as select g as id, 'item ' || g as name from generate_series(1, 500) g")
        .await;
    let team = Team::new(&[
        ("MAKO_JOB_RETRY_SECS", "1"),
        ("MAKO_QUEUE_MAX_ATTEMPTS", "2"),
        ("MAKO_MATERIALIZE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let (status, connection) = team.admin.post(&team.path(""), body_for(&database, "Warehouse")).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let connection = id_of(&connection["data"]);
    let dashboard = team
        .create_dashboard(
            &team.member,
            json!({ "title": "Items", "dataSources": [{ "id": "items", "name": "Items", "connectionId": connection,
                    "query": "select * from items order by id" }] }),
        )
        .await;
    let id = id_of(&dashboard);
    team.trigger(&team.member, &id, "items").await;
    let good = team.wait_ready(&team.member, &id, "items", 0).await;
    assert_eq!(good["rowCount"], 500);

    // A definition change queues a rebuild; this one times out on every attempt.
    let (status, updated) = team
        .member
        .put(
            &team.dashboards(&format!("/{id}")),
            json!({ "version": 1, "dataSources": [{ "id": "items", "name": "Items", "connectionId": connection,
                    "query": "select id, name, pg_sleep(5) is null as slow from items" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["data"]["rebuilding"], json!(["items"]));

    let path = team.dashboards(&format!("/{id}/materialization/stream/items"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_retry = false;
    let failed = loop {
        let entry = team.source_status(&team.member, &id, "items").await;
        // The last good file is served all along.
        let response = team.member.request(Method::HEAD, &path).send().await.expect("head");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["etag"], good["etag"].as_str().unwrap_or_default());
        if entry["job"]["retryAt"].is_string() {
            saw_retry = true;
        }
        if entry["status"] == "error" {
            break entry;
        }
        assert!(Instant::now() < deadline, "the failing build did not end: {entry}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(saw_retry, "the first failure was retried");
    assert!(
        failed["lastError"].as_str().unwrap_or_default().contains("time"),
        "{failed}"
    );
    assert_eq!(failed["stale"], true);
    assert_eq!(failed["revision"], good["revision"]);

    // A query error is not retried.
    let (status, _) = team
        .member
        .put(
            &team.dashboards(&format!("/{id}")),
            json!({ "version": 2, "dataSources": [{ "id": "items", "name": "Items", "connectionId": connection,
                    "query": "select * from no_such_table" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entry = team.source_status(&team.member, &id, "items").await;
        if entry["status"] == "error"
            && entry["lastError"]
                .as_str()
                .unwrap_or_default()
                .contains("no_such_table")
        {
            assert_eq!(entry["job"], Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "the query error did not show: {entry}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_queues_due_runs_once() {
    let team = Team::new(&[("MAKO_SAMPLE_DATABASE", "true"), ("MAKO_SCHEDULER_TICK_SECS", "3600")]).await;
    let sample = team.sample_connection().await;
    let dashboard = team
        .create_dashboard(
            &team.member,
            json!({ "title": "Nightly", "dataSources": [{ "id": "accounts", "name": "Accounts", "connectionId": sample,
                    "query": "select count(*) as n from accounts", "schedule": { "cron": "0 2 * * *", "timezone": "America/New_York" } }] }),
        )
        .await;
    let id = id_of(&dashboard);
    let entry = team.source_status(&team.member, &id, "accounts").await;
    let next: chrono::DateTime<chrono::Utc> = entry["nextRunAt"].as_str().expect("next run").parse().expect("time");
    assert_eq!(
        next.with_timezone(&chrono_tz::America::New_York)
            .format("%H:%M")
            .to_string(),
        "02:00"
    );

    // Two ticks at the due time: only one queues the run.
    let at = next + chrono::Duration::seconds(1);
    let (first, second) = tokio::join!(
        mako_jobs::scheduler::tick(&team.app.state, at),
        mako_jobs::scheduler::tick(&team.app.state, at)
    );
    assert_eq!(first.queued + second.queued, 1, "{first:?} {second:?}");
    let entry = team.wait_ready(&team.member, &id, "accounts", 0).await;
    let later: chrono::DateTime<chrono::Utc> = entry["nextRunAt"].as_str().expect("next run").parse().expect("time");
    assert!(later > at, "the next run moved forward: {later}");
    let idle = mako_jobs::scheduler::tick(&team.app.state, at).await;
    assert_eq!(idle.queued, 0);

    // A bad schedule is explained.
    let (status, refused) = team
        .member
        .post(
            &team.dashboards(""),
            json!({ "title": "Busy", "dataSources": [{ "name": "x", "connectionId": sample, "query": "select 1",
                    "schedule": { "cron": "* * * * *", "timezone": "UTC" } }] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.to_string().contains("dataSources[0].schedule"), "{refused}");
}

/// Polls the status until `check` accepts the data source's entry.
async fn wait_for(client: &Client, path: &str, source: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = client.get(path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entry = body["data"]["dataSources"]
            .as_array()
            .and_then(|list| list.iter().find(|entry| entry["dataSourceId"] == source))
            .cloned()
            .unwrap_or_default();
        if check(&entry) {
            return entry;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within 90 s: {entry}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_leaves_the_job_to_be_retried() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    database
        .run("create table items as select g as id from generate_series(1, 400) g")
        .await;
    let dir = tempfile::tempdir().expect("data folder");
    let data_dir = dir.path().join("data");
    let port_file = dir.path().join("address");
    let vars = [("MAKO_JOB_VISIBILITY_SECS", "3"), ("MAKO_SAMPLE_DATABASE", "false")];
    let mut child = crate::restart::spawn_child(&data_dir, &port_file, &vars);
    let base = format!("http://{}", crate::restart::wait_for_address(&port_file));

    let mut owner = Client::new(&base);
    let (status, registered) = owner
        .post(
            "/api/auth/register",
            json!({ "email": "killed@example.com", "password": mako_tests::app::PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    owner.csrf_token = registered["data"]["csrfToken"].as_str().map(str::to_owned);
    let (_, workspace) = owner.post("/api/workspaces", json!({ "name": "Killed" })).await;
    let workspace = id_of(&workspace["data"]);
    let (_, key) = owner
        .post(
            &format!("/api/workspaces/{workspace}/api-keys"),
            json!({ "name": "k", "role": "admin" }),
        )
        .await;
    let key = key["data"]["key"].as_str().expect("key").to_owned();
    let mut client = Client::new(&base);
    client.bearer = Some(key.clone());

    let (status, connection) = client
        .post(
            &format!("/api/workspaces/{workspace}/connectors"),
            body_for(&database, "Warehouse"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let connection = id_of(&connection["data"]);
    let dashboards = format!("/api/workspaces/{workspace}/dashboards");
    let (status, dashboard) = client
        .post(
            &dashboards,
            json!({ "title": "Items", "dataSources": [{ "id": "items", "name": "Items", "connectionId": connection,
                    "query": "select id from items order by id" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dashboard}");
    let id = id_of(&dashboard["data"]);
    let status_path = format!("{dashboards}/{id}/materialization/status");
    let stream_path = format!("{dashboards}/{id}/materialization/stream/items");
    client
        .post(
            &format!("{dashboards}/{id}/materialization/trigger"),
            json!({ "dataSourceId": "items" }),
        )
        .await;
    let first = wait_for(&client, &status_path, "items", "the first build", |entry| {
        entry["status"] == "ready"
    })
    .await;

    // A slow definition (about 8 s) is rebuilt; the server dies while it builds.
    let (status, _) = client
        .put(
            &format!("{dashboards}/{id}"),
            json!({ "version": 1, "dataSources": [{ "id": "items", "name": "Items", "connectionId": connection,
                    "query": "select id, pg_sleep(0.02) is null as slow from items order by id" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_for(&client, &status_path, "items", "the rebuild", |entry| {
        entry["status"] == "building"
    })
    .await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaping the child");

    let app = mako_tests::app::spawn_app_in(&data_dir, &vars).await;
    let mut client = app.client();
    client.bearer = Some(key);
    // The previous file is served while the job waits for its lease to run out.
    let response = client
        .request(Method::GET, &stream_path)
        .header("range", "bytes=-4")
        .send()
        .await
        .expect("read");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()["etag"], first["etag"].as_str().unwrap_or_default());
    let (_, body) = client.get(&status_path).await;
    let during = &body["data"]["dataSources"][0];
    assert!(
        matches!(during["status"].as_str(), Some("building" | "queued")),
        "{during}"
    );
    assert_eq!(during["stale"], true);

    let done = wait_for(&client, &status_path, "items", "the retried build", |entry| {
        entry["status"] == "ready" && entry["revision"].as_u64() > first["revision"].as_u64()
    })
    .await;
    assert_eq!(done["stale"], false);
    assert_eq!(done["rowCount"], 400);
    assert_eq!(done["columns"].as_array().map(Vec::len), Some(2), "{done}");
    let response = client.request(Method::HEAD, &stream_path).send().await.expect("head");
    assert_eq!(response.headers()["etag"], done["etag"].as_str().unwrap_or_default());
    app.stop().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_jobs_are_given_up_with_a_reason() {
    // No worker runs, so a queued job shows no sign of life.
    let team = Team::new(&[
        ("MAKO_SAMPLE_DATABASE", "true"),
        ("MAKO_RUN_WORKER", "false"),
        ("MAKO_JOB_ABANDON_SECS", "600"),
    ])
    .await;
    let sample = team.sample_connection().await;
    let dashboard = team
        .create_dashboard(
            &team.member,
            json!({ "title": "Stuck", "dataSources": [{ "id": "accounts", "name": "Accounts", "connectionId": sample,
                    "query": "select * from accounts" }] }),
        )
        .await;
    let id = id_of(&dashboard);
    let (status, _) = team.trigger(&team.member, &id, "accounts").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let entry = team.source_status(&team.member, &id, "accounts").await;
    assert_eq!(entry["status"], "queued");

    // Before the limit nothing happens; after it the job is given up with a reason.
    let now = chrono::Utc::now();
    let early = mako_jobs::scheduler::tick(&team.app.state, now + chrono::Duration::seconds(300)).await;
    assert_eq!(early.abandoned, 0);
    let late = mako_jobs::scheduler::tick(&team.app.state, now + chrono::Duration::seconds(700)).await;
    assert_eq!(late.abandoned, 1);
    let entry = team.source_status(&team.member, &id, "accounts").await;
    assert_eq!(entry["status"], "error", "{entry}");
    assert_eq!(entry["job"], Value::Null);
    let reason = entry["lastError"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no progress for 10 minutes") && reason.contains("trigger"),
        "{reason}"
    );

    // A new trigger queues a fresh job.
    let (_, again) = team.trigger(&team.member, &id, "accounts").await;
    assert_eq!(again["data"]["queued"], true, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_all_while_the_worker_writes() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample_connection().await;
    let sources: Vec<Value> = ["accounts", "contacts", "opportunities", "invoices"]
        .iter()
        .map(|table| json!({ "id": table, "name": table, "connectionId": sample, "query": format!("select * from {table}") }))
        .collect();
    let dashboard = team
        .create_dashboard(&team.member, json!({ "title": "All", "dataSources": sources }))
        .await;
    let id = id_of(&dashboard);
    let path = team.dashboards(&format!("/{id}/materialization/trigger-all"));
    let mut revision = 0;
    for round in 0..8 {
        // Each round's builds write to the store while the next trigger writes too.
        let (status, body) = team.member.post(&path, json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "round {round}: {body}");
        assert_eq!(body["data"]["queued"], 4, "round {round}: {body}");
        let entry = team.wait_ready(&team.member, &id, "invoices", revision).await;
        revision = entry["revision"].as_u64().unwrap_or(0);
        for table in ["accounts", "contacts", "opportunities"] {
            let deadline = Instant::now() + Duration::from_secs(60);
            while team.source_status(&team.member, &id, table).await["status"] != "ready" {
                assert!(Instant::now() < deadline, "{table} did not finish");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Builds one data source and waits for it to end in `ready` or `error`; returns its status.
async fn build_one(team: &Team, connection: &str, query: &str) -> (String, Value) {
    let dashboard = team
        .create_dashboard(
            &team.owner,
            json!({ "title": "Odd", "dataSources": [{ "id": "d", "name": "d", "connectionId": connection, "query": query }] }),
        )
        .await;
    let id = id_of(&dashboard);
    team.trigger(&team.owner, &id, "d").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let entry = team.source_status(&team.owner, &id, "d").await;
        if entry["status"] == "ready" || entry["status"] == "error" {
            return (id, entry);
        }
        assert!(Instant::now() < deadline, "no result: {entry}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn column_types(entry: &Value) -> Vec<String> {
    entry["columns"]
        .as_array()
        .map(|columns| {
            columns
                .iter()
                .map(|c| c["type"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_values_materialize_or_explain() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample_connection().await;

    // SQLite types an expression from its first value; the first rows decide instead.
    let (_, mixed) = build_one(&team, &sample, "select column1 as v from (values (1), (2.5), (3))").await;
    assert_eq!(mixed["status"], "ready", "{mixed}");
    assert_eq!(column_types(&mixed), vec!["Float64"]);

    let (_, empty) = build_one(&team, &sample, "select 1 where 0").await;
    assert_eq!(empty["status"], "ready", "zero rows are a valid result: {empty}");

    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let (status, connection) = team.admin.post(&team.path(""), body_for(&database, "Warehouse")).await;
    assert_eq!(status, StatusCode::CREATED, "{connection}");
    let connection = id_of(&connection["data"]);

    // Duplicate names of different types, BC dates, time zones of times, intervals and
    // decimals too long for Decimal128 (the interval keeps this off the binary COPY path).
    let query = "select 1 as a, 'x' as a, '0044-03-15 BC'::date as d, interval '1 day' as i, \
                 '12:00+02'::timetz as tz, 12345678901234567890123456789012345678901234567890::numeric as n";
    let (id, odd) = build_one(&team, &connection, query).await;
    assert_eq!(odd["status"], "ready", "{odd}");
    assert_eq!(
        column_types(&odd),
        vec!["Int32", "Utf8", "Date32", "Utf8", "Utf8", "Utf8"]
    );
    let file = team
        .owner
        .request(
            Method::GET,
            &team.dashboards(&format!("/{id}/materialization/stream/d")),
        )
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("body");
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a Parquet file")
        .build()
        .expect("a reader");
    let batch = reader.next().expect("a batch").expect("a batch");
    let days = batch
        .column(2)
        .as_any()
        .downcast_ref::<arrow_array::Date32Array>()
        .expect("dates")
        .value(0);
    let bc = chrono::NaiveDate::from_ymd_opt(-43, 3, 15).expect("44 BC");
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    assert_eq!(i64::from(days), (bc - epoch).num_days());
    let text = batch
        .column(5)
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .expect("text");
    assert_eq!(text.value(0), "12345678901234567890123456789012345678901234567890");

    // The same date through binary COPY.
    let (_, copied) = build_one(&team, &connection, "select '0044-03-15 BC'::date as d").await;
    assert_eq!(copied["status"], "ready", "{copied}");

    let (_, none) = build_one(&team, &connection, "select from generate_series(1, 10)").await;
    assert_eq!(none["status"], "error", "{none}");
    assert!(
        none["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("at least one column"),
        "{none}"
    );

    // Wide rows close their batches early and build.
    let (_, wide) = build_one(
        &team,
        &connection,
        "select g, repeat(md5(g::text), 10000) as big from generate_series(1, 300) g",
    )
    .await;
    assert_eq!(wide["status"], "ready", "{wide}");
    assert_eq!(wide["rowCount"], 300);
    database.drop_database().await;
}
