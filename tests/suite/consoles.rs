//! Consoles through HTTP: saving, listing, folders, sharing and roles (by session and by API
//! key), versions, typed parameters on PostgreSQL, MySQL and MongoDB, execution statistics,
//! and CSV and NDJSON exports.

use mako_tests::app::Client;
use mako_tests::databases::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::connections::{Team, body_for};

impl Team {
    fn consoles(&self, rest: &str) -> String {
        format!("/api/workspaces/{}/consoles{rest}", self.workspace)
    }

    /// Returns the id of the workspace's sample database connection.
    async fn sample(&self) -> String {
        let (status, body) = self.owner.get(&self.path("")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["name"] == "Sample database"))
            .and_then(|c| c["id"].as_str())
            .expect("the sample connection")
            .to_owned()
    }

    /// Creates a console as `client` and returns it.
    async fn save(&self, client: &Client, body: Value) -> Value {
        let (status, created) = client.post(&self.consoles(""), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"].clone()
    }

    async fn folder(&self, client: &Client, body: Value) -> String {
        let (status, created) = client.post(&self.consoles("/folders"), body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"]["id"].as_str().expect("folder id").to_owned()
    }

    async fn run(&self, client: &Client, id: &str, body: Value) -> (StatusCode, Value) {
        client.post(&self.consoles(&format!("/{id}/execute")), body).await
    }

    /// Returns the names of the consoles visible to `client` in the flat list.
    async fn visible_names(&self, client: &Client) -> Vec<String> {
        let (status, body) = client.get(&self.consoles("/list")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Settings of a server whose new workspaces get the sample database.
const SAMPLE: &[(&str, &str)] = &[("MAKO_SAMPLE_DATABASE", "true")];

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn console_runs_by_id_with_parameters() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let console = team
        .save(
            &team.member,
            json!({
                "name": "Accounts by region",
                "description": "How many accounts each region has",
                "code": "select count(*) as n from accounts where region = {{region}}",
                "connectionId": sample,
                "visibility": "workspace",
                "parameters": [{ "name": "region", "type": "text", "default": "EMEA" }],
            }),
        )
        .await;
    assert_eq!(console["language"], "sql", "the connection's language is taken");
    assert_eq!(console["version"], 1);
    assert_eq!(console["canEdit"], true);
    assert_eq!(
        console["parameters"][0]["required"], false,
        "a default makes it optional"
    );
    let id = id_of(&console);

    let (status, details) = team.viewer.get(&team.consoles(&format!("/{id}/details"))).await;
    assert_eq!(status, StatusCode::OK, "{details}");
    assert_eq!(details["data"]["code"], console["code"]);
    assert_eq!(details["data"]["canEdit"], false, "viewers read only");

    let (status, listed) = team.viewer.get(&team.consoles("/list")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(listed["data"][0].get("code").is_none(), "lists leave out the code");

    let (status, ran) = team
        .run(&team.viewer, &id, json!({ "params": { "region": "APAC" } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    assert_eq!(ran["data"]["consoleId"], id.as_str());
    assert_eq!(ran["data"]["consoleName"], "Accounts by region");
    assert_eq!(ran["data"]["consoleVersion"], 1);
    assert_eq!(ran["data"]["columns"][0]["name"], "n");
    let apac = ran["data"]["rows"][0][0].clone();

    let (status, adhoc) = team
        .member
        .post(
            "/api/execute",
            json!({
                "workspaceId": team.workspace,
                "connectionId": sample,
                "query": "select count(*) as n from accounts where region = 'APAC'",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{adhoc}");
    assert_eq!(adhoc["data"]["rows"][0][0], apac, "the same answer as the ad-hoc query");

    let (status, ran) = team.run(&team.member, &id, json!({})).await;
    assert_eq!(status, StatusCode::OK, "the default applies: {ran}");

    let (status, undeclared) = team
        .member
        .post(
            &team.consoles(""),
            json!({ "name": "Undeclared", "code": "select {{zzz}}", "connectionId": sample }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{undeclared}");
    assert!(
        undeclared["error"].as_str().is_some_and(|e| e.contains("{{zzz}}")),
        "{undeclared}"
    );
    let unused = team
        .save(
            &team.member,
            json!({ "name": "Unused", "code": "select 1 as one", "connectionId": sample,
                    "parameters": [{ "name": "later", "type": "text" }] }),
        )
        .await;
    let (status, ran) = team.run(&team.member, &id_of(&unused), json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a declared parameter the code does not use stops nothing: {ran}"
    );

    let (_, details) = team.member.get(&team.consoles(&format!("/{id}/details"))).await;
    let stats = &details["data"]["stats"];
    assert_eq!(stats["runCount"], 2, "{stats}");
    assert_eq!(stats["lastRowCount"], 1);
    assert!(stats["lastRunAt"].is_string());
    assert!(stats["lastError"].is_null());
    team.app.stop().await;
}

#[tokio::test]
async fn private_items_hidden_from_others() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let code = "select 1 as one";
    let private = team
        .save(
            &team.member,
            json!({ "name": "Mine", "code": code, "connectionId": sample }),
        )
        .await;
    assert_eq!(private["visibility"], "private", "consoles start private");
    let shared = team
        .save(
            &team.member,
            json!({ "name": "Shared", "code": code, "connectionId": sample, "visibility": "workspace" }),
        )
        .await;
    let hidden_folder = team
        .folder(&team.member, json!({ "name": "Drafts", "visibility": "private" }))
        .await;
    let in_hidden = team
        .save(
            &team.member,
            json!({ "name": "Shared but filed privately", "code": code, "connectionId": sample,
                    "visibility": "workspace", "folderId": hidden_folder }),
        )
        .await;

    let mut names = team.visible_names(&team.member).await;
    names.sort();
    assert_eq!(names, ["Mine", "Shared", "Shared but filed privately"]);
    for other in [&team.owner, &team.admin, &team.viewer] {
        assert_eq!(
            team.visible_names(other).await,
            ["Shared"],
            "a private console or folder hides it"
        );
        for hidden in [&private, &in_hidden] {
            let (status, _) = other.get(&team.consoles(&format!("/{}/details", id_of(hidden)))).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, _) = team.run(other, &id_of(hidden), json!({})).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
    }
    let (_, folders) = team.admin.get(&team.consoles("/folders")).await;
    assert_eq!(folders["data"], json!([]), "the private folder is hidden: {folders}");

    // A taken name never reveals another member's private console.
    let (status, same_name) = team
        .admin
        .post(
            &team.consoles(""),
            json!({ "name": "MINE", "code": code, "connectionId": sample }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{same_name}");
    let (status, clash) = team
        .member
        .post(
            &team.consoles(""),
            json!({ "name": "shared", "code": code, "connectionId": sample }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a private name may not repeat a visible one: {clash}"
    );
    let (status, clash) = team
        .member
        .post(
            &team.consoles(""),
            json!({ "name": "mine", "code": code, "connectionId": sample, "visibility": "workspace" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "nor a workspace name its owner's private one: {clash}"
    );

    // Nothing of another member may end up inside someone's private folder.
    let team_folder = team
        .folder(&team.owner, json!({ "name": "Team", "visibility": "workspace" }))
        .await;
    let owners_private = team.folder(&team.owner, json!({ "name": "Owner only" })).await;
    let filed = team
        .save(
            &team.member,
            json!({ "name": "Filed", "code": code, "connectionId": sample, "visibility": "workspace", "folderId": team_folder }),
        )
        .await;
    let folder_path = team.consoles(&format!("/folders/{team_folder}"));
    let (status, refused) = team
        .owner
        .put(&folder_path, json!({ "parentId": owners_private }))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "moving it under a private folder: {refused}"
    );
    let (status, refused) = team.owner.put(&folder_path, json!({ "visibility": "private" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "making it private: {refused}");
    let inner = team
        .folder(
            &team.owner,
            json!({ "name": "Inner", "parentId": owners_private, "visibility": "workspace" }),
        )
        .await;
    let (status, refused) = team
        .owner
        .put(
            &team.consoles(&format!("/{}", id_of(&filed))),
            json!({ "version": 1, "folderId": inner }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "moving a console under a private folder: {refused}"
    );
    let (status, details) = team
        .member
        .get(&team.consoles(&format!("/{}/details", id_of(&filed))))
        .await;
    assert_eq!(status, StatusCode::OK, "its owner still sees it: {details}");

    // An API key acts as its creator, with its own role.
    let key = team.app.api_key(&team.owner, &team.workspace, "member").await;
    let by_key = team.app.with_key(&key);
    assert_eq!(team.visible_names(&by_key).await, ["Shared", "Filed"]);
    let (status, ran) = team.run(&by_key, &id_of(&shared), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    let other_workspace = team.app.workspace(&team.owner, "Elsewhere").await;
    let (status, refused) = by_key
        .get(&format!("/api/workspaces/{other_workspace}/consoles/list"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "KEY_WRONG_WORKSPACE");
    team.app.stop().await;
}

#[tokio::test]
async fn roles_limit_console_edits() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let shared = team
        .save(
            &team.member,
            json!({ "name": "Pipeline", "code": "select 1", "connectionId": sample, "visibility": "workspace" }),
        )
        .await;
    let id = id_of(&shared);
    let path = team.consoles(&format!("/{id}"));

    // A second member reads and runs it but cannot change it.
    let colleague = team.app.user("colleague@team.test").await;
    let (status, body) = team
        .owner
        .post(
            &format!("/api/workspaces/{}/members", team.workspace),
            json!({ "email": "colleague@team.test", "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = colleague.get(&team.consoles(&format!("/{id}/details"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["canEdit"], false);
    let (status, refused) = colleague.put(&path, json!({ "version": 1, "code": "select 2" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "NOT_EDITABLE");
    let (status, _) = colleague.delete(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Viewers neither create nor change, by session or by key.
    let viewer_key = team.app.api_key(&team.owner, &team.workspace, "viewer").await;
    for viewer in [team.viewer.clone(), team.app.with_key(&viewer_key)] {
        let (status, refused) = viewer
            .post(
                &team.consoles(""),
                json!({ "name": "V", "code": "select 1", "connectionId": sample }),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert_eq!(refused["code"], "ROLE_TOO_LOW");
        let by_key = viewer.bearer.is_some();
        let message = refused["error"].as_str().unwrap_or_default();
        assert_eq!(
            message.starts_with("This API key's role is viewer"),
            by_key,
            "{message}"
        );
        let (status, _) = viewer.put(&path, json!({ "version": 1, "name": "Renamed" })).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, ran) = team.run(&viewer, &id, json!({})).await;
        assert_eq!(status, StatusCode::OK, "viewers run: {ran}");
    }

    // Admins edit any workspace console; a member-role key edits its creator's own.
    let (status, changed) = team
        .admin
        .put(&path, json!({ "version": 1, "name": "Pipeline (admin)" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["data"]["version"], 2);
    let member_key = team.app.api_key(&team.owner, &team.workspace, "member").await;
    let owner_by_key = team.app.with_key(&member_key);
    let own = team
        .save(
            &owner_by_key,
            json!({ "name": "Made by key", "code": "select 1", "connectionId": sample }),
        )
        .await;
    assert_eq!(
        own["ownerId"],
        team.owner.get("/api/auth/me").await.1["data"]["user"]["id"]
    );
    let (status, _) = owner_by_key
        .put(&path, json!({ "version": 2, "name": "Not allowed" }))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a member-role key cannot edit another member's console"
    );

    // Only the owner changes visibility, and viewers running a write are refused.
    let (status, _) = team
        .admin
        .put(&path, json!({ "version": 2, "visibility": "private" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let writer = team
        .save(
            &team.member,
            json!({ "name": "Writer", "code": "delete from accounts", "connectionId": sample, "visibility": "workspace" }),
        )
        .await;
    let (status, refused) = team.run(&team.viewer, &id_of(&writer), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "READ_ONLY");
    team.app.stop().await;
}

#[tokio::test]
async fn folders_nest_move_and_delete() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let m = &team.member;
    let sales = team
        .folder(m, json!({ "name": "Sales", "visibility": "workspace" }))
        .await;
    let q3 = team
        .folder(m, json!({ "name": "Q3", "parentId": sales, "visibility": "workspace" }))
        .await;
    let body = |name: &str, folder: &str| json!({ "name": name, "code": "select 1", "connectionId": sample, "folderId": folder, "visibility": "workspace" });
    let deals = team.save(m, body("Deals", &q3)).await;
    assert_eq!(deals["folderPath"], json!(["Sales", "Q3"]));
    team.save(m, body("Deals", &sales)).await;

    let (status, taken) = m.post(&team.consoles(""), body("DEALS", &q3)).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "names are unique in a folder, ignoring case: {taken}"
    );
    assert_eq!(taken["code"], "NAME_TAKEN");
    let (status, taken) = m
        .post(&team.consoles("/folders"), json!({ "name": "q3", "parentId": sales }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");

    let (status, refused) = m
        .put(&team.consoles(&format!("/folders/{sales}")), json!({ "parentId": q3 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no cycles: {refused}");

    let (status, tree) = m.get(&team.consoles("/list?view=tree")).await;
    assert_eq!(status, StatusCode::OK, "{tree}");
    let top = &tree["data"]["folders"][0];
    assert_eq!(top["name"], "Sales");
    assert_eq!(top["consoles"][0]["name"], "Deals");
    assert_eq!(top["folders"][0]["name"], "Q3");
    assert_eq!(top["folders"][0]["consoles"][0]["id"], deals["id"]);

    let (status, page) = m.get(&team.consoles(&format!("/list?folderId={q3}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "{page}");
    let (_, found) = m.get(&team.consoles("/list?q=dEaL&limit=1")).await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1));
    let cursor = found["nextCursor"].as_str().expect("a second page");
    let (_, next) = m
        .get(&team.consoles(&format!("/list?q=deal&limit=1&cursor={cursor}")))
        .await;
    assert_eq!(next["data"].as_array().map(Vec::len), Some(1));
    assert_ne!(next["data"][0]["id"], found["data"][0]["id"]);
    assert!(next["nextCursor"].is_null());

    // Moving the console to the top level is an update.
    let (status, moved) = m
        .put(
            &team.consoles(&format!("/{}", id_of(&deals))),
            json!({ "version": 1, "folderId": null, "name": "Q3 deals" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["data"]["folderPath"], json!([]));

    let (status, renamed) = m
        .put(
            &team.consoles(&format!("/folders/{q3}")),
            json!({ "version": 1, "name": "Q3 2026" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "adding children leaves the folder's version alone: {renamed}"
    );
    assert_eq!(renamed["data"]["version"], 2);
    assert_eq!(renamed["data"]["path"], json!(["Sales", "Q3 2026"]));

    let draft = team
        .save(
            &team.admin,
            json!({ "name": "Admin draft", "code": "select 1", "connectionId": sample, "folderId": q3 }),
        )
        .await;
    let (status, blocked) = m
        .delete(&team.consoles(&format!("/folders/{sales}?deleteContents=true")))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{blocked}");
    assert_eq!(blocked["details"]["blockedItems"], 1);
    assert_eq!(blocked["details"]["ownerIds"][0], draft["ownerId"]);
    let (status, _) = team.admin.delete(&team.consoles(&format!("/{}", id_of(&draft)))).await;
    assert_eq!(status, StatusCode::OK);

    let (status, refused) = m.delete(&team.consoles(&format!("/folders/{sales}"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "FOLDER_NOT_EMPTY");
    let (status, deleted) = m
        .delete(&team.consoles(&format!("/folders/{sales}?deleteContents=true")))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["data"]["deletedConsoles"], 1);
    assert_eq!(deleted["data"]["deletedFolders"], 1);
    assert_eq!(
        team.visible_names(m).await,
        ["Q3 deals"],
        "deleted consoles never appear"
    );
    let (_, folders) = m.get(&team.consoles("/folders")).await;
    assert_eq!(folders["data"], json!([]));
    team.app.stop().await;
}

#[tokio::test]
async fn console_versions_conflict_and_restore() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let console = team
        .save(
            &team.member,
            json!({ "name": "V", "code": "select 1 as v", "connectionId": sample }),
        )
        .await;
    let id = id_of(&console);
    let path = team.consoles(&format!("/{id}"));

    let (status, second) = team
        .member
        .put(&path, json!({ "version": 1, "code": "select 2 as v" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["data"]["version"], 2);

    let (status, stale) = team
        .member
        .put(&path, json!({ "version": 1, "code": "select 3 as v" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");
    assert_eq!(stale["code"], "VERSION_CONFLICT");
    assert_eq!(stale["details"]["currentVersion"], 2);
    assert_eq!(stale["details"]["current"]["code"], "select 2 as v");

    let (status, renamed) = team
        .member
        .put(&path, json!({ "version": 2, "name": "V renamed" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["data"]["version"], 3);
    assert_eq!(renamed["data"]["codeVersion"], 2, "a rename keeps the code version");

    let (_, versions) = team.member.get(&team.consoles(&format!("/{id}/versions"))).await;
    let listed: Vec<(u64, bool)> = versions["data"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_u64().unwrap_or(0), v["current"] == true))
        .collect();
    assert_eq!(listed, [(2, true), (1, false)]);
    let (status, first) = team.member.get(&team.consoles(&format!("/{id}/versions/1"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"]["code"], "select 1 as v");
    assert!(first["data"]["authorId"].is_string());

    let (status, restored) = team
        .member
        .post(
            &team.consoles(&format!("/{id}/versions/1/restore")),
            json!({ "version": 3 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["data"]["version"], 4);
    assert_eq!(restored["data"]["code"], "select 1 as v");
    let (_, ran) = team.run(&team.member, &id, json!({})).await;
    assert_eq!(ran["data"]["rows"], json!([["1"]]), "{ran}");
    assert_eq!(ran["data"]["consoleVersion"], 4);
    let (_, versions) = team.member.get(&team.consoles(&format!("/{id}/versions"))).await;
    assert_eq!(versions["data"].as_array().map(Vec::len), Some(3));

    let (status, _) = team.member.delete(&path).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = team.member.get(&team.consoles(&format!("/{id}/versions"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    team.app.stop().await;
}

/// Declared parameters of every type, with a list, as a console declares them.
fn typed_parameters() -> Value {
    json!([
        { "name": "label", "type": "text" },
        { "name": "amount", "type": "number" },
        { "name": "count", "type": "integer" },
        { "name": "flag", "type": "boolean" },
        { "name": "day", "type": "date" },
        { "name": "at", "type": "timestamp" },
        { "name": "ids", "type": "integer[]", "default": [1, 2] },
    ])
}

fn typed_values() -> Value {
    json!({
        "label": "O'Brien; drop table t; --",
        "amount": "12345678901234.56",
        "count": 9007199254740993_i64,
        "flag": true,
        "day": "2024-02-29",
        "at": "2024-03-01T12:34:56",
    })
}

#[tokio::test]
async fn typed_parameters_bind_on_sql_servers() {
    let team = Team::new(&[]).await;
    let mut checked = 0;
    for (database, code) in [
        (
            TestDatabase::postgres().await,
            "select {{label}} as label, {{amount}} as amount, {{count}}::bigint as count, {{flag}} as flag, \
             {{day}} as day, {{at}} as at, (select count(*) from unnest(array[1,2,3]) x where x in ({{ids}})) as n",
        ),
        (
            TestDatabase::mysql().await,
            "select {{label}} as label, cast({{amount}} as decimal(20,2)) as amount, {{count}} as count, \
             {{flag}} as flag, cast({{day}} as date) as day, cast({{at}} as datetime) as at, \
             (select count(*) from (select 1 as x union all select 2 union all select 3) t where x in ({{ids}})) as n",
        ),
    ] {
        let Some(database) = database else { continue };
        let connection = team.connect(body_for(&database, "db")).await;
        let console = team
            .save(
                &team.member,
                json!({ "name": format!("Typed {checked}"), "code": code, "connectionId": connection,
                        "parameters": typed_parameters() }),
            )
            .await;
        let id = id_of(&console);

        let (status, ran) = team.run(&team.member, &id, json!({ "params": typed_values() })).await;
        assert_eq!(status, StatusCode::OK, "{ran}");
        let row = &ran["data"]["rows"][0];
        assert_eq!(row[0], "O'Brien; drop table t; --", "text stays a value");
        assert_eq!(row[1], "12345678901234.56");
        assert_eq!(row[2], "9007199254740993");
        assert!(row[3] == json!(true) || row[3] == json!(1), "{row}");
        assert_eq!(row[4], "2024-02-29");
        assert_eq!(row[5], "2024-03-01T12:34:56");
        assert_eq!(row[6], "2", "the list default binds one value per element: {row}");

        let mut values = typed_values();
        values["ids"] = json!([3]);
        let (_, ran) = team.run(&team.member, &id, json!({ "params": values })).await;
        assert_eq!(ran["data"]["rows"][0][6], "1", "{ran}");

        let mut missing = typed_values();
        missing.as_object_mut().map(|m| m.remove("day"));
        let (status, refused) = team.run(&team.member, &id, json!({ "params": missing })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(refused["details"]["params.day"].is_string(), "{refused}");

        let mut wrong = typed_values();
        wrong["count"] = json!("twelve");
        let (status, refused) = team.run(&team.member, &id, json!({ "params": wrong })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(refused["details"]["params.count"].is_string(), "{refused}");

        let mut huge = typed_values();
        huge["ids"] = json!((0..40_000).collect::<Vec<i64>>());
        let (status, refused) = team.run(&team.member, &id, json!({ "params": huge })).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "more values than a database binds: {refused}"
        );

        let mut unknown = typed_values();
        unknown["extra"] = json!(1);
        let (status, refused) = team.run(&team.member, &id, json!({ "params": unknown })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(refused["details"]["params.extra"].is_string(), "{refused}");

        database.drop_database().await;
        checked += 1;
    }
    if checked == 0 {
        eprintln!("skipped: no PostgreSQL or MySQL configured");
    }
    team.app.stop().await;
}

#[tokio::test]
async fn mongodb_parameters_bind_typed_values() {
    let Some(mongo) = TestDatabase::mongodb().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let connection = team.connect(body_for(&mongo, "mongo")).await;
    let (status, inserted) = team
        .member
        .post(
            "/api/execute",
            json!({
                "workspaceId": team.workspace,
                "connectionId": connection,
                "query": r#"db.deals.insertMany([
                    {name: "a", qty: NumberLong(5), won: true, at: ISODate("2024-01-10T00:00:00Z"), tag: "x"},
                    {name: "b", qty: NumberLong(50), won: false, at: ISODate("2024-03-10T00:00:00Z"), tag: "y"},
                    {name: "c", qty: NumberLong(500), won: true, at: ISODate("2024-05-10T00:00:00Z"), tag: "z"}])"#,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{inserted}");

    let console = team
        .save(
            &team.member,
            json!({
                "name": "Won deals",
                "code": "db.deals.find({qty: {$gte: {{min}}, $lt: {{max}}}, won: {{won}}, at: {$gte: {{since}}, $lt: {{until}}}, tag: {$in: {{tags}}}}, {_id: 0, name: 1}).sort({name: 1})",
                "connectionId": connection,
                "parameters": [
                    { "name": "min", "type": "integer" },
                    { "name": "won", "type": "boolean", "default": true },
                    { "name": "since", "type": "date" },
                    { "name": "tags", "type": "text[]" },
                    { "name": "max", "type": "number", "default": "1000.5" },
                    { "name": "until", "type": "timestamp", "default": "2024-12-31T00:00:00" },
                ],
            }),
        )
        .await;
    assert_eq!(console["language"], "mongodb");
    let id = id_of(&console);
    let (status, ran) = team
        .run(
            &team.member,
            &id,
            json!({ "params": { "min": 1, "since": "2024-01-01", "tags": ["x", "z", "\"}) ; db.dropDatabase()"] } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    assert_eq!(ran["data"]["rows"], json!([["a"], ["c"]]));

    let projected = team
        .save(
            &team.member,
            json!({ "name": "Labelled", "connectionId": connection,
                    "code": "db.deals.aggregate([{$project: {_id: 0, name: 1, label: {{label}}}}])",
                    "parameters": [{ "name": "label", "type": "text" }] }),
        )
        .await;
    let (status, ran) = team
        .run(
            &team.member,
            &id_of(&projected),
            json!({ "params": { "label": "plain" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    let (status, refused) = team
        .run(
            &team.member,
            &id_of(&projected),
            json!({ "params": { "label": "$$ROOT" } }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a $ string would be a field path here: {refused}"
    );
    let (status, refused) = team
        .member
        .post(
            "/api/execute",
            json!({ "workspaceId": team.workspace, "connectionId": connection,
                    "query": "db.deals.find({}, {v: {{label}}, _id: 0})", "params": { "label": "$name" } }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a projection reads $ strings as paths too: {refused}"
    );
    let (status, refused) = team
        .member
        .post(
            "/api/execute",
            json!({ "workspaceId": team.workspace, "connectionId": connection, "query": "db.deals.find({$where: 'this.qty > 1'})" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no server-side JavaScript: {refused}");
    let json_form = team
        .save(
            &team.member,
            json!({ "name": "JSON form", "connectionId": connection,
                    "code": "{\"collection\": \"deals\", \"operation\": \"countDocuments\", \"filter\": {}}",
                    "parameters": [{ "name": "unused", "type": "integer", "default": 5 }] }),
        )
        .await;
    let (status, ran) = team.run(&team.member, &id_of(&json_form), json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the JSON form ignores an unused parameter: {ran}"
    );

    let limited = team
        .save(
            &team.member,
            json!({ "name": "Limited", "connectionId": connection, "code": "db.deals.find({}, {_id: 0, name: 1}).limit({{n}})",
                    "parameters": [{ "name": "n", "type": "integer" }] }),
        )
        .await;
    let (status, ran) = team
        .run(&team.member, &id_of(&limited), json!({ "params": { "n": i64::MIN } }))
        .await;
    assert_eq!(status, StatusCode::OK, "the most negative limit: {ran}");

    let (status, refused) = team
        .run(
            &team.member,
            &id,
            json!({ "params": { "min": "many", "since": "2024-01-01", "tags": [] } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["details"]["params.min"].is_string());

    let (status, adhoc) = team
        .member
        .post(
            "/api/execute",
            json!({
                "workspaceId": team.workspace,
                "connectionId": connection,
                "query": "db.deals.countDocuments({at: {$lt: {{before}}}})",
                "params": { "before": { "type": "timestamptz", "value": "2024-04-01T00:00:00Z" } },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{adhoc}");
    assert_eq!(adhoc["data"]["rows"][0][0], "2", "{adhoc}");
    mongo.drop_database().await;
    team.app.stop().await;
}

#[tokio::test]
async fn run_statistics_count_every_run() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let broken = team
        .save(
            &team.member,
            json!({ "name": "Broken", "code": "select * from no_such_table", "connectionId": sample }),
        )
        .await;
    let (status, failed) = team.run(&team.member, &id_of(&broken), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{failed}");
    assert_eq!(failed["success"], false);
    let (_, details) = team
        .member
        .get(&team.consoles(&format!("/{}/details", id_of(&broken))))
        .await;
    assert!(
        details["data"]["stats"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("no_such_table")),
        "{details}"
    );

    let working = team
        .save(
            &team.member,
            json!({ "name": "Works", "code": "select 1", "connectionId": sample }),
        )
        .await;
    let id = id_of(&working);
    let runs = (0..32).map(|_| team.run(&team.member, &id, json!({})));
    for (status, body) in futures::future::join_all(runs).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, details) = team.member.get(&team.consoles(&format!("/{id}/details"))).await;
    assert_eq!(details["data"]["stats"]["runCount"], 32, "{details}");
    assert_eq!(details["data"]["version"], 1, "runs never change the version");
    team.app.stop().await;
}

/// Reads a CSV export back with Python's `csv` module, as a list of rows.
fn parse_csv_with_python(bytes: &[u8]) -> Value {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, io, json, sys; print(json.dumps(list(csv.reader(io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8-sig', newline='')))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("writing the CSV");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).expect("JSON rows")
}

/// Opens a CSV export in LibreOffice Calc and returns the cells it shows, when LibreOffice is
/// installed.
fn open_csv_in_spreadsheet(bytes: &[u8]) -> Option<Value> {
    let soffice = ["/usr/bin/soffice", "/usr/bin/libreoffice"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())?;

    let dir = tempfile::tempdir().expect("temporary folder");
    let input = dir.path().join("export.csv");
    std::fs::write(&input, bytes).expect("writing the CSV");

    // Calc's CSV filter options are: comma separator, double quote, UTF-8 (76), first line
    // 1. The sheet is then written back as UTF-8 CSV, which shows how Calc read each cell.
    let status = std::process::Command::new(soffice)
        .args(["--headless", "--norestore", "--infilter=CSV:44,34,76,1", "--convert-to"])
        .arg("ods")
        .arg("--outdir")
        .arg(dir.path())
        .arg(&input)
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("soffice runs");
    assert!(status.success(), "LibreOffice opened the file");

    let ods = dir.path().join("export.ods");
    let status = std::process::Command::new(soffice)
        .args([
            "--headless",
            "--norestore",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,true",
        ])
        .arg("--outdir")
        .arg(dir.path().join("back"))
        .arg(&ods)
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("soffice runs");
    assert!(status.success(), "LibreOffice saved the sheet");

    let back = std::fs::read(dir.path().join("back").join("export.csv")).expect("the sheet as CSV");
    Some(parse_csv_with_python(&back))
}

#[tokio::test]
async fn exports_keep_quotes_newlines_unicode() {
    let team = Team::new(SAMPLE).await;
    let sample = team.sample().await;
    let console = team
        .save(
            &team.member,
            json!({
                "name": "Export \"check\"",
                "code": "select 'say \"hi\", then' as quoted, 'line one' || char(10) || 'line two' as multiline, \
                         'Zürich – 東京 – 🚀' as unicode, '' as empty, null as missing, 9007199254740993 as big \
                         union all select 'plain', 'x', 'y', 'z', 1, 2",
                "connectionId": sample,
            }),
        )
        .await;
    let id = id_of(&console);
    let path = team.consoles(&format!("/{id}/execute?format=csv"));

    let response = team.member.request(Method::POST, &path).send().await.expect("export");
    if response.status() != StatusCode::OK {
        panic!("{}: {}", response.status(), response.text().await.unwrap_or_default());
    }
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8; header=present");
    assert_eq!(headers["x-row-count"], "2");
    assert!(
        headers["content-disposition"]
            .to_str()
            .is_ok_and(|value| value.contains("filename*=UTF-8''Export%20%22check%22.csv")),
        "{headers:?}"
    );
    let bytes = response.bytes().await.expect("body");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a byte order mark for spreadsheets");
    let expected = json!([
        ["quoted", "multiline", "unicode", "empty", "missing", "big"],
        [
            "say \"hi\", then",
            "line one\nline two",
            "Zürich – 東京 – 🚀",
            "",
            "",
            "9007199254740993"
        ],
        ["plain", "x", "y", "z", "1", "2"],
    ]);
    assert_eq!(parse_csv_with_python(&bytes), expected);
    match open_csv_in_spreadsheet(&bytes) {
        Some(mut cells) => {
            // Spreadsheets keep 15 significant digits, so Calc shows 2^53 + 1 as a number that
            // ends in 0; the file itself is exact, as Python read it above.
            assert_eq!(cells[1][5], "9007199254740990");
            cells[1][5] = expected[1][5].clone();
            assert_eq!(cells, expected, "LibreOffice Calc reads every other cell back exactly");
        }
        None => eprintln!("LibreOffice is not installed; the spreadsheet check was skipped"),
    }

    let response = team
        .member
        .request(Method::POST, &team.consoles(&format!("/{id}/execute?format=ndjson")))
        .send()
        .await
        .expect("export");
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.expect("body");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["multiline"], "line one\nline two");
    assert_eq!(lines[0]["big"], "9007199254740993");
    assert!(lines[0]["missing"].is_null());

    let (status, refused) = team
        .member
        .post(&team.consoles(&format!("/{id}/execute?format=xlsx")), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    team.app.stop().await;
}

#[tokio::test]
async fn large_exports_stream_and_failures_abort() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let connection = team.connect(body_for(&postgres, "pg")).await;
    let big = team
        .save(
            &team.member,
            json!({ "name": "Big", "connectionId": connection,
                    "code": "select g, repeat('x', 100) as pad from generate_series(1, 30000) g" }),
        )
        .await;
    let response = team
        .member
        .request(
            Method::POST,
            &team.consoles(&format!("/{}/execute?format=csv", id_of(&big))),
        )
        .json(&json!({ "limit": 50000 }))
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get("content-length").is_none(),
        "a large export is streamed"
    );
    assert!(response.headers().get("x-row-count").is_none());
    let text = response.text().await.expect("the whole stream");
    assert_eq!(text.lines().count(), 30_001, "a header and every row");
    assert!(text.ends_with(&format!("30000,{}\r\n", "x".repeat(100))));

    let failing = team
        .save(
            &team.member,
            json!({ "name": "Fails late", "connectionId": connection,
                    "code": "select g, repeat('x', 100) as pad, 1 / (30000 - g) as boom from generate_series(1, 30000) g" }),
        )
        .await;
    let response = team
        .member
        .request(
            Method::POST,
            &team.consoles(&format!("/{}/execute?format=ndjson", id_of(&failing))),
        )
        .json(&json!({ "limit": 50000 }))
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), StatusCode::OK, "rows were streamed before the error");
    assert!(response.bytes().await.is_err(), "the failure aborts the transfer");
    let (_, details) = team
        .member
        .get(&team.consoles(&format!("/{}/details", id_of(&failing))))
        .await;
    assert!(
        details["data"]["stats"]["lastError"]
            .as_str()
            .is_some_and(|error| error.contains("division by zero")),
        "{details}"
    );
    postgres.drop_database().await;
    team.app.stop().await;
}

/// Returns how many statements of `text` the server is running now.
async fn running(postgres: &TestDatabase, text: &str) -> i64 {
    let output = postgres
        .run(&format!(
            "select count(*) from pg_stat_activity where state = 'active' and query = '{text}'"
        ))
        .await;
    output.result_sets[0].rows[0][0]
        .clone()
        .into_value()
        .as_str()
        .and_then(|count| count.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test]
async fn export_stops_when_client_leaves() {
    let Some(postgres) = TestDatabase::postgres().await else {
        return;
    };
    let team = Team::new(&[]).await;
    let connection = team.connect(body_for(&postgres, "pg")).await;
    let code = "select pg_sleep(30) as slept";
    let slow = team
        .save(
            &team.member,
            json!({ "name": "Slow", "connectionId": connection, "code": code }),
        )
        .await;
    let request = team
        .member
        .request(
            Method::POST,
            &team.consoles(&format!("/{}/execute?format=csv", id_of(&slow))),
        )
        .json(&json!({ "timeoutMs": 60000 }))
        .timeout(std::time::Duration::from_millis(1500))
        .send()
        .await;
    assert!(request.is_err(), "the client gave up waiting");

    let mut still = running(&postgres, code).await;
    for _ in 0..50 {
        if still == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        still = running(&postgres, code).await;
    }
    assert_eq!(still, 0, "the query stopped on the server when its client left");

    // A streamed export ends with its row count and truncation as trailers.
    let big = team
        .save(
            &team.member,
            json!({ "name": "Big", "connectionId": connection, "visibility": "workspace",
                    "code": "select g, repeat('x', 100) as pad from generate_series(1, 20000) g" }),
        )
        .await;
    let raw = raw_export(&team, &id_of(&big), r#"{"limit": 15000}"#).await;
    assert!(
        raw.contains("transfer-encoding: chunked"),
        "streamed: {}",
        &raw[..raw.len().min(600)]
    );
    assert!(
        raw.ends_with("x-row-count: 15000\r\nx-truncated: true\r\n\r\n"),
        "{}",
        &raw[raw.len() - 200..]
    );
    postgres.drop_database().await;
    team.app.stop().await;
}

/// Sends an export request over a plain TCP connection, asking for trailers, and returns the
/// whole response as text, chunk framing and trailers included.
async fn raw_export(team: &Team, console: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(&team.app.url("/")).expect("server URL");
    let address = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(80));
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let key = team.app.api_key(&team.owner, &team.workspace, "member").await;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTE: trailers\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        team.consoles(&format!("/{console}/execute?format=csv")),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response");
    String::from_utf8_lossy(&response).to_lowercase()
}
