//! Workspaces, members, roles and API keys, through HTTP, tried as each kind of caller.

use std::time::Duration;

use mako_core::ports::Query;
use mako_tests::app::{PASSWORD, spawn_app};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn creator_owns_new_workspace_and_lists_it() {
    let app = spawn_app().await;
    let owner = app.user("owner@example.com").await;

    let (status, created) = owner
        .post("/api/workspaces", json!({ "name": "Revenue Ops — EMEA" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["role"], "owner");
    assert_eq!(created["data"]["slug"], "revenue-ops-emea");
    let id = created["data"]["id"].as_str().expect("id");
    assert!(id.starts_with("ws_"));

    let (status, list) = owner.get("/api/workspaces").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["data"][0]["id"], id);
    assert_eq!(list["data"][0]["role"], "owner");
    assert!(list.get("nextCursor").is_some(), "paginated lists carry nextCursor");

    let (status, got) = owner.get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["data"]["name"], "Revenue Ops — EMEA");
}

#[tokio::test]
async fn slugs_stay_unique() {
    let app = spawn_app().await;
    let owner = app.user("slugs@example.com").await;

    let (_, first) = owner.post("/api/workspaces", json!({ "name": "Sales" })).await;
    let (_, second) = owner.post("/api/workspaces", json!({ "name": "Sales" })).await;
    assert_eq!(first["data"]["slug"], "sales");
    assert_ne!(second["data"]["slug"], "sales");
    assert!(
        second["data"]["slug"]
            .as_str()
            .is_some_and(|slug| slug.starts_with("sales-"))
    );

    let (status, body) = owner
        .post("/api/workspaces", json!({ "name": "Other", "slug": "sales" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "SLUG_TAKEN");

    let (status, body) = owner
        .post("/api/workspaces", json!({ "name": "Other", "slug": "Bad Slug" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["details"]["slug"].is_string());
}

#[tokio::test]
async fn workspace_paging_walks_every_membership() {
    let app = spawn_app().await;
    let owner = app.user("pages@example.com").await;
    for i in 0..5 {
        app.workspace(&owner, &format!("W{i}")).await;
    }

    let mut seen = Vec::new();
    let mut path = "/api/workspaces?limit=2".to_owned();
    loop {
        let (status, page) = owner.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["data"].as_array().expect("array");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|w| w["name"].as_str().unwrap_or_default().to_owned()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/workspaces?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, vec!["W0", "W1", "W2", "W3", "W4"]);

    let (status, _) = owner.get("/api/workspaces?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = owner.get("/api/workspaces?cursor=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn non_member_session_gets_forbidden() {
    let app = spawn_app().await;
    let owner = app.user("a@example.com").await;
    let stranger = app.user("b@example.com").await;
    let id = app.workspace(&owner, "Private").await;

    let (status, body) = stranger.get(&format!("/api/workspaces/{id}")).await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "NOT_A_MEMBER");
    let (_, list) = stranger.get("/api/workspaces").await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn unknown_and_malformed_workspace_ids() {
    let app = spawn_app().await;
    let user = app.user("ids@example.com").await;

    let (status, body) = user.get("/api/workspaces/ws_01jd9zzzzzzzzzzzzzzzzzzzzz").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = user.get("/api/workspaces/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("not-an-id")),
        "names the bad value: {body}"
    );
}

/// A workspace with one user of each role; returns the app, the clients and the id.
async fn team() -> (mako_tests::app::TestApp, [mako_tests::app::Client; 4], String) {
    let app = spawn_app().await;
    let owner = app.user("owner@team.test").await;
    let admin = app.user("admin@team.test").await;
    let member = app.user("member@team.test").await;
    let viewer = app.user("viewer@team.test").await;
    let id = app.workspace(&owner, "Team").await;
    for (email, role) in [
        ("admin@team.test", "admin"),
        ("member@team.test", "member"),
        ("viewer@team.test", "viewer"),
    ] {
        let (status, body) = owner
            .post(
                &format!("/api/workspaces/{id}/members"),
                json!({ "email": email, "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["role"], role);
    }
    (app, [owner, admin, member, viewer], id)
}

async fn user_id(client: &mako_tests::app::Client) -> String {
    let (_, me) = client.get("/api/auth/me").await;
    me["data"]["user"]["id"].as_str().expect("user id").to_owned()
}

#[tokio::test]
async fn members_see_their_role_and_the_member_list() {
    let (_app, [owner, admin, member, viewer], id) = team().await;

    for (client, role) in [
        (&owner, "owner"),
        (&admin, "admin"),
        (&member, "member"),
        (&viewer, "viewer"),
    ] {
        let (status, body) = client.get(&format!("/api/workspaces/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["role"], role);
    }
    let (status, list) = viewer.get(&format!("/api/workspaces/{id}/members")).await;
    assert_eq!(status, StatusCode::OK);
    let emails: Vec<&str> = list["data"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["email"].as_str())
        .collect();
    assert_eq!(emails.len(), 4, "{list}");
    assert!(emails.contains(&"viewer@team.test"));
}

#[tokio::test]
async fn rename_needs_admin() {
    let (_app, [_owner, admin, member, viewer], id) = team().await;
    let path = format!("/api/workspaces/{id}");

    for client in [&member, &viewer] {
        let (status, body) = client.put(&path, json!({ "name": "Renamed" })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "ROLE_TOO_LOW");
    }
    let (status, body) = admin
        .put(&path, json!({ "name": "Renamed", "slug": "renamed-team" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "Renamed");
    assert_eq!(body["data"]["slug"], "renamed-team");
}

#[tokio::test]
async fn slug_freed_by_rename_can_be_reused() {
    let app = spawn_app().await;
    let owner = app.user("reuse@example.com").await;
    let first = app.workspace(&owner, "Alpha").await;

    let (status, _) = owner
        .put(&format!("/api/workspaces/{first}"), json!({ "slug": "beta" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = owner
        .post("/api/workspaces", json!({ "name": "New", "slug": "alpha" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn member_management_follows_roles() {
    let (app, [owner, admin, member, viewer], id) = team().await;
    let owner_id = user_id(&owner).await;
    let viewer_id = user_id(&viewer).await;
    app.user("new@team.test").await;

    let (status, _) = member
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "new@team.test", "role": "viewer" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members cannot add members");
    let (status, _) = admin
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "new@team.test", "role": "owner" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins cannot add owners");
    let (status, body) = admin
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "new@team.test", "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = admin
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "new@team.test", "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "ALREADY_MEMBER");
    let (status, body) = admin
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "ghost@team.test", "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = admin
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "new@team.test", "role": "root" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = admin
        .put(
            &format!("/api/workspaces/{id}/members/{viewer_id}"),
            json!({ "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["role"], "member");
    let (status, _) = admin
        .put(
            &format!("/api/workspaces/{id}/members/{owner_id}"),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins cannot demote owners");
    let (status, _) = admin.delete(&format!("/api/workspaces/{id}/members/{owner_id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins cannot remove owners");
    let (status, _) = viewer.delete(&format!("/api/workspaces/{id}/members/{owner_id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn last_owner_can_be_neither_removed_nor_demoted() {
    let (_app, [owner, _admin, _member, _viewer], id) = team().await;
    let owner_id = user_id(&owner).await;

    let (status, body) = owner
        .put(
            &format!("/api/workspaces/{id}/members/{owner_id}"),
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "LAST_OWNER");

    let (status, body) = owner.delete(&format!("/api/workspaces/{id}/members/{owner_id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "LAST_OWNER");
}

#[tokio::test]
async fn second_owner_lets_the_first_leave() {
    let (_app, [owner, admin, _member, _viewer], id) = team().await;
    let owner_id = user_id(&owner).await;
    let admin_id = user_id(&admin).await;

    let (status, _) = owner
        .put(
            &format!("/api/workspaces/{id}/members/{admin_id}"),
            json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = owner.delete(&format!("/api/workspaces/{id}/members/{owner_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _) = owner.get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the former owner left");
    let (status, body) = admin.delete(&format!("/api/workspaces/{id}/members/{admin_id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "now the last owner: {body}");
}

#[tokio::test]
async fn concurrent_owner_demotions_keep_one_owner() {
    let (_app, [owner, admin, _member, _viewer], id) = team().await;
    let owner_id = user_id(&owner).await;
    let admin_id = user_id(&admin).await;
    let (status, _) = owner
        .put(
            &format!("/api/workspaces/{id}/members/{admin_id}"),
            json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Each owner demotes themselves at the same moment; at most one may succeed.
    let first_path = format!("/api/workspaces/{id}/members/{owner_id}");
    let second_path = format!("/api/workspaces/{id}/members/{admin_id}");
    let first = owner.put(&first_path, json!({ "role": "member" }));
    let second = admin.put(&second_path, json!({ "role": "member" }));
    let ((first_status, _), (second_status, _)) = tokio::join!(first, second);

    let successes = [first_status, second_status]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert_eq!(successes, 1, "{first_status} {second_status}");
    let (_, members) = owner.get(&format!("/api/workspaces/{id}/members")).await;
    let owners = members["data"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["role"] == "owner")
        .count();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn members_can_leave_on_their_own() {
    let (_app, [owner, _admin, member, _viewer], id) = team().await;
    let member_id = user_id(&member).await;

    let (status, body) = member
        .delete(&format!("/api/workspaces/{id}/members/{member_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = member.get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, members) = owner.get(&format!("/api/workspaces/{id}/members")).await;
    assert_eq!(members["data"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn only_owners_delete_workspaces() {
    let (_app, [_owner, admin, member, viewer], id) = team().await;
    for client in [&admin, &member, &viewer] {
        let (status, body) = client.delete(&format!("/api/workspaces/{id}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
}

#[tokio::test]
async fn deleting_a_workspace_removes_everything_it_owns() {
    let (app, [owner, admin, _member, _viewer], id) = team().await;
    let key = app.api_key(&admin, &id, "member").await;
    let blob = Box::pin(std::io::Cursor::new(b"artifact".to_vec()));
    app.state
        .blobs
        .put(
            &format!("ws/{id}/artifacts/one.parquet"),
            blob,
            "application/vnd.apache.parquet",
        )
        .await
        .expect("blob");

    let (status, body) = owner.delete(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(
        owner.get(&format!("/api/workspaces/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(admin.get("/api/workspaces").await.1["data"], json!([]));
    assert_eq!(
        app.with_key(&key).get(&format!("/api/workspaces/{id}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let page = app
        .state
        .store
        .query(&Query::partition(format!("WS#{id}")))
        .await
        .expect("query");
    assert!(
        page.items.is_empty(),
        "the workspace partition is empty: {:?}",
        page.items
    );
    let blob = app
        .state
        .blobs
        .head(&format!("ws/{id}/artifacts/one.parquet"))
        .await
        .expect("head");
    assert!(blob.is_none(), "the workspace's blobs are gone");
    let (status, _) = owner
        .post("/api/workspaces", json!({ "name": "Again", "slug": "team" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "the slug is free again");
}

#[tokio::test]
async fn api_key_shown_once_stored_hashed() {
    let app = spawn_app().await;
    let owner = app.user("keys@example.com").await;
    let id = app.workspace(&owner, "Keys").await;

    let (status, created) = owner
        .post(
            &format!("/api/workspaces/{id}/api-keys"),
            json!({ "name": "CI", "role": "viewer", "expiresInDays": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["data"]["key"].as_str().expect("key");
    assert!(key.starts_with("revops_"), "{key}");
    assert_eq!(key.len(), 7 + 43, "{key}");
    assert_eq!(created["data"]["prefix"], key[..12]);
    assert_eq!(created["data"]["role"], "viewer");
    assert!(created["data"]["expiresAt"].is_string());

    let (status, list) = owner.get(&format!("/api/workspaces/{id}/api-keys")).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &list["data"][0];
    assert_eq!(listed["name"], "CI");
    assert!(listed.get("key").is_none(), "{listed}");
    assert!(listed.get("hash").is_none(), "{listed}");
    assert!(
        !list.to_string().contains(&key[12..]),
        "the secret part never appears again"
    );

    let page = app
        .state
        .store
        .query(&Query::partition(format!("WS#{id}")).begins_with("APIKEY#"))
        .await
        .expect("query");
    assert!(!page.items[0].data.to_string().contains(key), "only the hash is stored");
}

#[tokio::test]
async fn api_key_authenticates_in_its_workspace() {
    let app = spawn_app().await;
    let owner = app.user("script@example.com").await;
    let id = app.workspace(&owner, "Scripts").await;
    let key = app.api_key(&owner, &id, "member").await;
    let script = app.with_key(&key);

    let (status, body) = script.get("/api/workspaces").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["id"], id.as_str());
    assert_eq!(body["data"][0]["role"], "member");
    let (status, me) = script.get("/api/auth/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["authMethod"], "apiKey");
    assert_eq!(me["data"]["apiKey"]["workspaceId"], id.as_str());

    let (_, keys) = owner.get(&format!("/api/workspaces/{id}/api-keys")).await;
    assert!(keys["data"][0]["lastUsedAt"].is_string(), "use is recorded: {keys}");
}

#[tokio::test]
async fn api_key_of_another_workspace_is_forbidden() {
    let app = spawn_app().await;
    let owner = app.user("two@example.com").await;
    let a = app.workspace(&owner, "A").await;
    let b = app.workspace(&owner, "B").await;
    let key_a = app.api_key(&owner, &a, "admin").await;

    let (status, body) = app.with_key(&key_a).get(&format!("/api/workspaces/{b}")).await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "KEY_WRONG_WORKSPACE");
    let (status, _) = app.with_key(&key_a).get(&format!("/api/workspaces/{b}/members")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn revoked_unknown_and_malformed_keys_are_unauthorized() {
    let app = spawn_app().await;
    let owner = app.user("revoke@example.com").await;
    let id = app.workspace(&owner, "Revoke").await;
    let (_, created) = owner
        .post(&format!("/api/workspaces/{id}/api-keys"), json!({ "name": "temp" }))
        .await;
    let key = created["data"]["key"].as_str().expect("key").to_owned();
    let key_id = created["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.with_key(&key).get(&format!("/api/workspaces/{id}")).await.0,
        StatusCode::OK
    );

    let (status, body) = owner.delete(&format!("/api/workspaces/{id}/api-keys/{key_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(
        app.with_key(&key).get(&format!("/api/workspaces/{id}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let unknown = format!("revops_{}", "A".repeat(43));
    assert_eq!(
        app.with_key(&unknown).get("/api/workspaces").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.with_key("sk_live_nope").get("/api/workspaces").await.0,
        StatusCode::UNAUTHORIZED
    );
    let basic = app
        .client()
        .request(reqwest::Method::GET, "/api/workspaces")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_key_is_unauthorized() {
    let app = spawn_app().await;
    let owner = app.user("expire@example.com").await;
    let id = app.workspace(&owner, "Expire").await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (status, created) = owner
        .post(
            &format!("/api/workspaces/{id}/api-keys"),
            json!({ "name": "short", "expiresAt": expires_at }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["data"]["key"].as_str().expect("key").to_owned();
    assert_eq!(app.with_key(&key).get("/api/workspaces").await.0, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_eq!(
        app.with_key(&key).get("/api/workspaces").await.0,
        StatusCode::UNAUTHORIZED
    );
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let (status, _) = owner
        .post(
            &format!("/api/workspaces/{id}/api-keys"),
            json!({ "name": "past", "expiresAt": past }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn key_stops_working_when_its_creator_leaves() {
    let (app, [owner, admin, _member, _viewer], id) = team().await;
    let key = app.api_key(&admin, &id, "member").await;
    assert_eq!(
        app.with_key(&key).get(&format!("/api/workspaces/{id}")).await.0,
        StatusCode::OK
    );

    let admin_id = user_id(&admin).await;
    let (status, _) = owner.delete(&format!("/api/workspaces/{id}/members/{admin_id}")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = app.with_key(&key).get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn key_role_is_capped_by_its_creator() {
    let (app, [owner, admin, _member, _viewer], id) = team().await;
    let key = app.api_key(&admin, &id, "admin").await;
    let admin_id = user_id(&admin).await;
    let script = app.with_key(&key);
    let (status, _) = script.get(&format!("/api/workspaces/{id}/api-keys")).await;
    assert_eq!(status, StatusCode::OK, "an admin key lists keys");

    let (status, _) = owner
        .put(
            &format!("/api/workspaces/{id}/members/{admin_id}"),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = script.get(&format!("/api/workspaces/{id}/api-keys")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, me) = script.get("/api/auth/me").await;
    assert_eq!(me["data"]["apiKey"]["role"], "viewer");
}

#[tokio::test]
async fn key_management_rules() {
    let (app, [owner, admin, member, _viewer], id) = team().await;
    let path = format!("/api/workspaces/{id}/api-keys");

    let (status, _) = member.post(&path, json!({ "name": "nope" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members cannot create keys");
    let (status, _) = member.get(&path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "members cannot list keys");
    let (status, body) = admin.post(&path, json!({ "name": "owner key", "role": "owner" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = admin.post(&path, json!({ "name": "" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let key = app.api_key(&owner, &id, "admin").await;
    let (status, body) = app
        .with_key(&key)
        .post(&path, json!({ "name": "minted by a key" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "keys cannot mint keys: {body}");
    let (status, _) = app
        .with_key(&key)
        .post("/api/workspaces", json!({ "name": "By key" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "keys cannot create workspaces");
}

#[tokio::test]
async fn password_of_new_member_still_works_after_joining() {
    let app = spawn_app().await;
    let owner = app.user("o@example.com").await;
    app.user("joiner@example.com").await;
    let id = app.workspace(&owner, "Join").await;
    owner
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "joiner@example.com", "role": "member" }),
        )
        .await;

    let joiner = app.client();
    let (status, _) = joiner
        .post(
            "/api/auth/login",
            json!({ "email": "joiner@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = joiner.get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["role"], "member");
}

#[tokio::test]
async fn viewer_key_cannot_remove_its_creator() {
    let (app, [owner, _admin, _member, _viewer], id) = team().await;
    let key = app.api_key(&owner, &id, "viewer").await;
    let owner_id = user_id(&owner).await;

    let (status, body) = app
        .with_key(&key)
        .delete(&format!("/api/workspaces/{id}/members/{owner_id}"))
        .await;

    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a key never leaves on its creator's behalf: {body}"
    );
    assert_eq!(owner.get(&format!("/api/workspaces/{id}")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn removed_members_keys_stay_revoked_after_rejoining() {
    let (app, [owner, admin, _member, _viewer], id) = team().await;
    let key = app.api_key(&admin, &id, "member").await;
    let admin_id = user_id(&admin).await;

    let (status, body) = owner.delete(&format!("/api/workspaces/{id}/members/{admin_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["revokedApiKeys"], 1);
    let (status, _) = owner
        .post(
            &format!("/api/workspaces/{id}/members"),
            json!({ "email": "admin@team.test", "role": "admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    assert_eq!(
        app.with_key(&key).get(&format!("/api/workspaces/{id}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, keys) = owner.get(&format!("/api/workspaces/{id}/api-keys")).await;
    assert_eq!(
        keys["data"],
        json!([]),
        "the removed member's key is gone from the list"
    );
}

#[tokio::test]
async fn owners_cannot_demote_each_other_at_once() {
    let (_app, [owner, admin, member, _viewer], id) = team().await;
    let owner_id = user_id(&owner).await;
    let admin_id = user_id(&admin).await;
    let member_id = user_id(&member).await;
    for target in [&admin_id, &member_id] {
        let (status, _) = owner
            .put(
                &format!("/api/workspaces/{id}/members/{target}"),
                json!({ "role": "owner" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    // Three owners; two of them demote each other at the same moment. In any serial order
    // the second demotion comes from someone who is no longer an owner.
    for _ in 0..5 {
        let first_path = format!("/api/workspaces/{id}/members/{admin_id}");
        let second_path = format!("/api/workspaces/{id}/members/{owner_id}");
        let first = owner.put(&first_path, json!({ "role": "admin" }));
        let second = admin.put(&second_path, json!({ "role": "admin" }));
        let ((first_status, _), (second_status, _)) = tokio::join!(first, second);
        let successes = [first_status, second_status]
            .iter()
            .filter(|s| **s == StatusCode::OK)
            .count();
        assert_eq!(successes, 1, "{first_status} {second_status}");

        // Restore both as owners through the third owner for the next round.
        for target in [&owner_id, &admin_id] {
            let (status, _) = member
                .put(
                    &format!("/api/workspaces/{id}/members/{target}"),
                    json!({ "role": "owner" }),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn key_cap_holds_under_parallel_creation() {
    let app = spawn_app().await;
    let owner = app.user("cap@example.com").await;
    let id = app.workspace(&owner, "Cap").await;
    let path = format!("/api/workspaces/{id}/api-keys");
    for i in 0..95 {
        let (status, _) = owner.post(&path, json!({ "name": format!("key {i}") })).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    let attempts = (0..20).map(|i| {
        let owner = owner.clone();
        let path = path.clone();
        async move {
            let (status, body) = owner.post(&path, json!({ "name": format!("burst {i}") })).await;
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    });
    let results = futures::future::join_all(attempts).await;

    let created = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = results.iter().filter(|(_, code)| code == "TOO_MANY_KEYS").count();
    assert_eq!(created, 5, "{results:?}");
    assert_eq!(refused, 15, "{results:?}");
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(cursor) => format!("{path}?cursor={cursor}"),
            None => path.clone(),
        };
        let (_, page) = owner.get(&page_path).await;
        total += page["data"].as_array().map_or(0, Vec::len);
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(total, 100);
}
