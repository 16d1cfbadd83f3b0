//! Connections through HTTP: adding, reading, changing, testing, browsing and deleting them,
//! tried as each role, against the real PostgreSQL, MariaDB and MongoDB servers.

use mako_core::ports::Query;
use mako_databases::ConnectionKind;
use mako_tests::app::{Client, TestApp, spawn_app, spawn_app_with};
use mako_tests::databases::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A workspace with a member of every role.
pub struct Team {
    pub app: TestApp,
    pub workspace: String,
    pub owner: Client,
    pub admin: Client,
    pub member: Client,
    pub viewer: Client,
}

impl Team {
    pub async fn new(vars: &[(&str, &str)]) -> Team {
        let app = spawn_app_with(vars).await;
        let owner = app.user("owner@team.test").await;
        let workspace = app.workspace(&owner, "Team").await;
        let mut others = Vec::new();
        for role in ["admin", "member", "viewer"] {
            let email = format!("{role}@team.test");
            let client = app.user(&email).await;
            let (status, body) = owner
                .post(
                    &format!("/api/workspaces/{workspace}/members"),
                    json!({ "email": email, "role": role }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "adding the {role}: {body}");
            others.push(client);
        }
        let viewer = others.pop().expect("viewer");
        let member = others.pop().expect("member");
        let admin = others.pop().expect("admin");
        Team {
            app,
            workspace,
            owner,
            admin,
            member,
            viewer,
        }
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/api/workspaces/{}/connectors{rest}", self.workspace)
    }

    /// Adds a connection as the owner and returns its id.
    pub async fn connect(&self, body: Value) -> String {
        let (status, created) = self.owner.post(&self.path(""), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"]["id"].as_str().expect("connection id").to_owned()
    }
}

/// The body that adds a test database by its connection string.
pub fn body_for(database: &TestDatabase, name: &str) -> Value {
    let kind = match database.kind {
        ConnectionKind::Postgres => "postgresql",
        ConnectionKind::Mysql => "mysql",
        ConnectionKind::Mongodb => "mongodb",
        ConnectionKind::Sqlite => "sqlite",
    };
    json!({
        "name": name,
        "type": kind,
        "connectionString": database.url.as_deref().expect("a server database"),
    })
}

/// Every stored item as text, to look for secrets in clear.
async fn stored_text(app: &TestApp, workspace: &str) -> String {
    let page = app
        .state
        .store
        .query(&Query::partition(format!("WS#{workspace}")).limit(1000))
        .await
        .expect("reading the workspace's items");
    page.items
        .iter()
        .map(|item| item.data.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn admins_add_connections_whose_secrets_stay_sealed() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let url = url::Url::parse(database.url.as_deref().expect("url")).expect("url");
    let password = "Sealed-Pa55word-7c1e";

    let (status, created) = team
        .admin
        .post(
            &team.path(""),
            json!({
                "name": "Warehouse",
                "type": "postgresql",
                "host": url.host_str(),
                "port": url.port().unwrap_or(5432),
                "database": database.name,
                "username": url.username(),
                "password": password,
                "tls": "disable",
                "test": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let connection = &created["data"];
    assert_eq!(connection["passwordSet"], true);
    assert_eq!(connection["lastTest"]["ok"], true, "{connection}");
    assert!(
        connection["lastTest"]["serverVersion"]
            .as_str()
            .is_some_and(|version| version.starts_with("PostgreSQL"))
    );
    assert!(!created.to_string().contains(password), "never returned: {created}");
    let id = connection["id"].as_str().expect("id");
    assert!(id.starts_with("conn_"));

    let stored = stored_text(&team.app, &team.workspace).await;
    assert!(stored.contains("sealedSecret"), "the secret is stored sealed");
    assert!(!stored.contains(password), "never stored in clear");

    let (_, listed) = team.viewer.get(&team.path("")).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains(password));

    // Renaming without resending the password keeps it.
    let (status, renamed) = team
        .admin
        .put(&team.path(&format!("/{id}")), json!({ "name": "Warehouse (prod)" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["data"]["passwordSet"], true);
    assert_eq!(renamed["data"]["name"], "Warehouse (prod)");
    let (status, _) = team.viewer.post(&team.path(&format!("/{id}/test")), json!({})).await;
    assert_eq!(status, StatusCode::OK, "the kept password still works");

    // `null` removes it.
    let (_, cleared) = team
        .admin
        .put(&team.path(&format!("/{id}")), json!({ "password": null }))
        .await;
    assert_eq!(cleared["data"]["passwordSet"], false, "{cleared}");
    database.drop_database().await;
}

#[tokio::test]
async fn only_admins_and_owners_change_connections() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let id = team.connect(body_for(&database, "Shared")).await;
    let one = team.path(&format!("/{id}"));

    for (who, client) in [("member", &team.member), ("viewer", &team.viewer)] {
        let (status, body) = client.post(&team.path(""), body_for(&database, "Mine")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who} adds: {body}");
        assert_eq!(body["code"], "ROLE_TOO_LOW");
        let (status, _) = client.put(&one, json!({ "name": "Renamed" })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who} renames");
        let (status, _) = client.delete(&one).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{who} deletes");

        let (status, _) = client.get(&team.path("")).await;
        assert_eq!(status, StatusCode::OK, "{who} lists");
        let (status, _) = client.get(&one).await;
        assert_eq!(status, StatusCode::OK, "{who} reads");
        let (status, body) = client.post(&team.path(&format!("/{id}/test")), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{who} tests: {body}");
    }

    // An API key acts with its own role.
    let viewer_key = team.app.api_key(&team.owner, &team.workspace, "viewer").await;
    let script = team.app.with_key(&viewer_key);
    let (status, _) = script.delete(&one).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin_key = team.app.api_key(&team.owner, &team.workspace, "admin").await;
    let (status, body) = team.app.with_key(&admin_key).delete(&one).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = team.owner.get(&one).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another workspace's members and keys see nothing.
    let stranger = team.app.user("stranger@else.test").await;
    let other = team.app.workspace(&stranger, "Elsewhere").await;
    let (status, _) = stranger.get(&team.path("")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other_key = team.app.api_key(&stranger, &other, "admin").await;
    let (status, body) = team.app.with_key(&other_key).get(&team.path("")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "KEY_WRONG_WORKSPACE");
    database.drop_database().await;
}

#[tokio::test]
async fn bad_settings_name_the_field() {
    let app = spawn_app().await;
    let owner = app.user("fields@example.com").await;
    let workspace = app.workspace(&owner, "Fields").await;
    let path = format!("/api/workspaces/{workspace}/connectors");

    let cases = [
        (json!({ "name": "x", "type": "oracle" }), "type"),
        (json!({ "name": "x", "type": "postgresql", "username": "u" }), "host"),
        (
            json!({ "name": "x", "type": "postgresql", "host": "db", "port": 0, "username": "u" }),
            "port",
        ),
        (
            json!({ "name": "x", "type": "postgresql", "host": "/var/run/postgresql", "username": "u" }),
            "host",
        ),
        (
            json!({ "name": "", "type": "postgresql", "host": "db", "username": "u" }),
            "name",
        ),
        (
            json!({ "name": "x", "type": "sqlite", "path": "../../etc/passwd" }),
            "path",
        ),
        (
            json!({ "name": "x", "type": "mysql", "connectionString": "mysql://u@db/x?local_infile=1" }),
            "connectionString",
        ),
        (
            json!({ "name": "x", "type": "postgresql", "connectionString": "postgres://u@db/x?sslrootcert=/etc/ca.pem" }),
            "connectionString",
        ),
        (
            json!({ "name": "x", "type": "mongodb", "connectionString": "mongodb://db/x?tlsCAFile=/ca.pem" }),
            "connectionString",
        ),
    ];
    for (body, field) in cases {
        let (status, response) = owner.post(&path, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {response}");
        assert!(
            response["details"].get(field).is_some(),
            "{body} names {field}: {response}"
        );
    }

    let (status, response) = owner
        .post(&path, json!({ "name": "x", "type": "postgresql", "hots": "db" }))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an unknown field is refused: {response}"
    );
    assert!(response["error"].as_str().unwrap_or("").contains("hots"), "{response}");

    let (_, listed) = owner.get(&path).await;
    assert_eq!(listed["data"], json!([]), "nothing was saved");
}

#[tokio::test]
async fn tests_report_failures_in_plain_words_and_save_nothing() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let Some(mysql) = TestDatabase::mysql().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let pg = url::Url::parse(postgres.url.as_deref().expect("url")).expect("url");
    let my = url::Url::parse(mysql.url.as_deref().expect("url")).expect("url");

    let unused_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let cases = [
        (
            json!({ "name": "down", "type": "postgresql", "host": "127.0.0.1", "port": unused_port, "username": "u", "test": true }),
            StatusCode::BAD_GATEWAY,
            "DATABASE_UNREACHABLE",
        ),
        (
            json!({ "name": "nodb", "type": "postgresql", "host": pg.host_str(), "port": pg.port(), "username": pg.username(), "database": "no_such_database_here", "test": true }),
            StatusCode::BAD_GATEWAY,
            "DATABASE_NOT_FOUND",
        ),
        (
            json!({ "name": "badpw", "type": "mysql", "host": my.host_str(), "port": my.port(), "username": "no_such_user", "password": "wrong", "test": true }),
            StatusCode::BAD_GATEWAY,
            "DATABASE_AUTH_FAILED",
        ),
        (
            // The server's certificate is self-signed, so checking it fails.
            json!({ "name": "tls", "type": "postgresql", "host": pg.host_str(), "port": pg.port(), "username": pg.username(), "tls": "verify-full", "test": true }),
            StatusCode::BAD_GATEWAY,
            "DATABASE_TLS_FAILED",
        ),
        (
            json!({ "name": "tls", "type": "mysql", "host": my.host_str(), "port": my.port(), "username": my.username(), "tls": "require", "test": true }),
            StatusCode::BAD_GATEWAY,
            "DATABASE_TLS_FAILED",
        ),
    ];
    for (body, status, code) in cases {
        let (got, response) = team.owner.post(&team.path(""), body.clone()).await;
        assert_eq!(got, status, "{body}: {response}");
        assert_eq!(response["code"], code, "{response}");
        let message = response["error"].as_str().unwrap_or("");
        assert!(
            !message.contains("sqlx") && !message.contains("Error {"),
            "no driver internals: {message}"
        );
    }
    let (_, listed) = team.owner.get(&team.path("")).await;
    assert_eq!(listed["data"], json!([]), "a failed test saves nothing");

    // A saved connection whose database went away reports it and records the outcome.
    let mut body = body_for(&postgres, "Vanishing");
    body["database"] = json!("no_such_database_here");
    body.as_object_mut().map(|object| object.remove("connectionString"));
    body["host"] = json!(pg.host_str());
    body["port"] = json!(pg.port());
    body["username"] = json!(pg.username());
    let id = team.connect(body).await;
    let (status, response) = team.owner.post(&team.path(&format!("/{id}/test")), json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{response}");
    assert!(
        response["error"]
            .as_str()
            .is_some_and(|message| message.contains("no_such_database_here")),
        "{response}"
    );
    let (_, got) = team.owner.get(&team.path(&format!("/{id}"))).await;
    assert_eq!(got["data"]["lastTest"]["ok"], false, "{got}");
    postgres.drop_database().await;
    mysql.drop_database().await;
}

#[tokio::test]
async fn schemas_are_browsable_for_every_type() {
    let team = Team::new(&[]).await;
    let mut checked = 0;

    if let Some(postgres) = TestDatabase::postgres().await {
        postgres
            .run("create schema sales; create table sales.deals (id bigint primary key, amount numeric(12,2) not null, closed date); create view sales.big as select * from sales.deals where amount > 1000")
            .await;
        let id = team.connect(body_for(&postgres, "pg")).await;
        let (status, root) = team.viewer.get(&team.path(&format!("/{id}/schema"))).await;
        assert_eq!(status, StatusCode::OK, "{root}");
        assert!(
            root["data"]["databases"]
                .as_array()
                .is_some_and(|list| list.contains(&json!(postgres.name)))
        );
        assert_eq!(root["data"]["defaultDatabase"], postgres.name.as_str());

        let (_, tables) = team
            .viewer
            .get(&team.path(&format!("/{id}/schema?database={}&schema=sales", postgres.name)))
            .await;
        let tables = &tables["data"]["tables"];
        assert!(
            tables
                .as_array()
                .is_some_and(|list| list.contains(&json!({ "schema": "sales", "name": "deals", "kind": "table" }))),
            "{tables}"
        );
        assert!(
            tables
                .as_array()
                .is_some_and(|list| list.contains(&json!({ "schema": "sales", "name": "big", "kind": "view" }))),
            "{tables}"
        );

        let (_, columns) = team
            .viewer
            .get(&team.path(&format!("/{id}/schema?schema=sales&table=deals")))
            .await;
        let columns = &columns["data"]["columns"];
        assert_eq!(columns[0]["name"], "id");
        assert_eq!(columns[0]["type"], "int64");
        assert_eq!(columns[0]["nullable"], false);
        assert_eq!(columns[1]["type"], "decimal");
        assert!(
            columns[1]["nativeType"]
                .as_str()
                .is_some_and(|native| native.starts_with("numeric")),
            "{columns}"
        );
        assert_eq!(columns[2]["type"], "date");
        postgres.drop_database().await;
        checked += 1;
    }

    if let Some(mysql) = TestDatabase::mysql().await {
        mysql
            .run("create table deals (id bigint unsigned primary key, amount decimal(12,2), closed datetime)")
            .await;
        let id = team.connect(body_for(&mysql, "my")).await;
        let (_, tables) = team
            .viewer
            .get(&team.path(&format!("/{id}/schema?database={}", mysql.name)))
            .await;
        assert!(
            tables["data"]["tables"]
                .as_array()
                .is_some_and(|list| list.iter().any(|table| table["name"] == "deals")),
            "{tables}"
        );
        let (_, columns) = team.viewer.get(&team.path(&format!("/{id}/schema?table=deals"))).await;
        assert_eq!(columns["data"]["columns"][0]["type"], "uint64", "{columns}");
        assert_eq!(columns["data"]["columns"][2]["type"], "timestamp", "{columns}");
        mysql.drop_database().await;
        checked += 1;
    }

    if let Some(mongo) = TestDatabase::mongodb().await {
        mongo
            .run(r#"db.orders.insertMany([{_id: 1, total: NumberDecimal("9.99"), at: ISODate("2024-01-01T00:00:00Z")}, {_id: 2, total: NumberDecimal("5.00"), note: "gift"}])"#)
            .await;
        let id = team.connect(body_for(&mongo, "mongo")).await;
        let (_, tables) = team
            .viewer
            .get(&team.path(&format!("/{id}/schema?database={}", mongo.name)))
            .await;
        assert!(
            tables["data"]["tables"].as_array().is_some_and(|list| list
                .iter()
                .any(|table| table["name"] == "orders" && table["kind"] == "collection")),
            "{tables}"
        );
        let (_, columns) = team
            .viewer
            .get(&team.path(&format!("/{id}/schema?database={}&table=orders", mongo.name)))
            .await;
        let names: Vec<&str> = columns["data"]["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|column| column["name"].as_str())
            .collect();
        assert_eq!(names, vec!["_id", "total", "at", "note"], "{columns}");
        mongo.drop_database().await;
        checked += 1;
    }

    let app = spawn_app_with(&[("MAKO_SAMPLE_DATABASE", "true")]).await;
    let owner = app.user("sample@example.com").await;
    let workspace = app.workspace(&owner, "Sample").await;
    let (_, listed) = owner.get(&format!("/api/workspaces/{workspace}/connectors")).await;
    let sample = listed["data"][0]["id"].as_str().expect("sample connection").to_owned();
    let (_, columns) = owner
        .get(&format!(
            "/api/workspaces/{workspace}/connectors/{sample}/schema?table=invoices"
        ))
        .await;
    assert!(
        columns["data"]["columns"].as_array().is_some_and(|list| list.len() > 3),
        "{columns}"
    );
    assert!(checked > 0 || !mako_tests::services::services_required());
}

#[tokio::test]
async fn new_local_workspaces_get_the_sample_database() {
    let app = spawn_app_with(&[("MAKO_SAMPLE_DATABASE", "true")]).await;
    let owner = app.user("newcomer@example.com").await;
    let workspace = app.workspace(&owner, "First steps").await;
    let path = format!("/api/workspaces/{workspace}/connectors");

    let (status, listed) = owner.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    let sample = &listed["data"][0];
    assert_eq!(sample["name"], "Sample database");
    assert_eq!(sample["type"], "sqlite");
    assert_eq!(sample["readOnly"], true);
    assert_eq!(sample["sample"], true);
    let id = sample["id"].as_str().expect("id");

    let (status, result) = owner
        .post(
            "/api/execute",
            json!({ "workspaceId": workspace, "connectionId": id, "query": "select count(*) as accounts from accounts" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let accounts: i64 = result["data"]["rows"][0][0]
        .as_str()
        .and_then(|text| text.parse().ok())
        .or_else(|| result["data"]["rows"][0][0].as_i64())
        .expect("a count");
    assert!(accounts >= 1000, "thousands of accounts: {result}");

    let (status, refused) = owner
        .post(
            "/api/execute",
            json!({ "workspaceId": workspace, "connectionId": id, "query": "delete from invoices" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "READ_ONLY");

    let (status, renamed) = owner.put(&format!("{path}/{id}"), json!({ "name": "Demo data" })).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    let (status, refused) = owner.put(&format!("{path}/{id}"), json!({ "readOnly": false })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the sample stays read-only: {refused}");

    let (status, deleted) = owner.delete(&format!("{path}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
}

#[tokio::test]
async fn sqlite_files_stay_inside_the_sqlite_folder() {
    let app = spawn_app().await;
    let owner = app.user("files@example.com").await;
    let workspace = app.workspace(&owner, "Files").await;
    let folder = app.data_dir.join("sqlite");
    std::fs::create_dir_all(folder.join("team")).expect("folder");
    let file = folder.join("team/q1.db");
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true);
        let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .expect("creating the file");
        sqlx::Executor::execute(&mut connection, "create table t (x integer); insert into t values (42)")
            .await
            .expect("seeding");
    }

    let (status, created) = owner
        .post(
            &format!("/api/workspaces/{workspace}/connectors"),
            json!({ "name": "Q1", "type": "sqlite", "path": "team/q1.db", "test": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["data"]["id"].as_str().expect("id");
    let (status, result) = owner
        .post(
            "/api/execute",
            json!({ "workspaceId": workspace, "connectionId": id, "query": "select x from t" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["data"]["rows"], json!([["42"]]));

    let (status, missing) = owner
        .post(
            &format!("/api/workspaces/{workspace}/connectors"),
            json!({ "name": "Nope", "type": "sqlite", "path": "absent.db", "test": true }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{missing}");
}
