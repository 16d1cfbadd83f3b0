//! Registration, login, sessions, CSRF and rate limits, through HTTP.

use std::time::Duration;

use mako_tests::app::{PASSWORD, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn register_signs_in_and_me_returns_user() {
    let app = spawn_app().await;
    let client = app.user("Ada@Example.com").await;

    let (status, body) = client.get("/api/auth/me").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["user"]["email"], "ada@example.com");
    assert_eq!(body["data"]["user"]["name"], "Test User");
    assert_eq!(body["data"]["authMethod"], "session");
    assert!(
        body["data"]["user"].get("passwordHash").is_none(),
        "the hash is never returned"
    );
    assert!(
        body["data"]["user"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("usr_"))
    );
}

#[tokio::test]
async fn register_sets_a_safe_session_cookie() {
    let app = spawn_app().await;
    let response = app
        .client()
        .request(reqwest::Method::POST, "/api/auth/register")
        .json(&json!({ "email": "cookie@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("register");

    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(cookie.starts_with("mako_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-http local server: {cookie}");
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let app = spawn_app_with(&[("MAKO_PUBLIC_URL", "https://api.example.com")]).await;
    let response = app
        .client()
        .without_origin()
        .request(reqwest::Method::POST, "/api/auth/register")
        .json(&json!({ "email": "secure@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("register");

    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn register_rejects_duplicate_email_in_any_case() {
    let app = spawn_app().await;
    app.user("dup@example.com").await;

    let (status, body) = app
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": " DUP@example.COM ", "password": PASSWORD }),
        )
        .await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "EMAIL_TAKEN");
    assert_eq!(body["success"], false);
}

#[tokio::test]
async fn register_validates_each_field() {
    let app = spawn_app().await;
    let client = app.client();
    let cases = [
        (json!({ "email": "not-an-email", "password": PASSWORD }), "email"),
        (json!({ "email": "a@example.com", "password": "short" }), "password"),
        (
            json!({ "email": "a@example.com", "password": "x".repeat(129) }),
            "password",
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "name": "n".repeat(101) }),
            "name",
        ),
    ];
    for (request, field) in cases {
        let (status, body) = client.post("/api/auth/register", request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        assert_eq!(body["code"], "VALIDATION_ERROR", "{field}");
        assert!(body["details"][field].is_string(), "details name {field}: {body}");
    }

    let (status, body) = client
        .post(
            "/api/auth/register",
            json!({ "email": "a@example.com", "password": PASSWORD, "admin": true }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("admin")),
        "names the unknown field: {body}"
    );
}

#[tokio::test]
async fn login_with_wrong_password_is_unauthorized() {
    let app = spawn_app().await;
    app.user("login@example.com").await;

    let (status, body) = app
        .client()
        .post(
            "/api/auth/login",
            json!({ "email": "login@example.com", "password": "wrong password" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "INVALID_CREDENTIALS");

    let (status, body) = app
        .client()
        .post(
            "/api/auth/login",
            json!({ "email": "nobody@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "unknown emails look like wrong passwords"
    );
    assert_eq!(body["code"], "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn eleventh_wrong_password_is_rate_limited() {
    let app = spawn_app().await;
    app.user("target@example.com").await;
    let attacker = app.client();

    for attempt in 1..=10 {
        let (status, _) = attacker
            .post(
                "/api/auth/login",
                json!({ "email": "target@example.com", "password": format!("guess {attempt}") }),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let response = attacker
        .request(reqwest::Method::POST, "/api/auth/login")
        .json(&json!({ "email": "target@example.com", "password": "guess 11" }))
        .send()
        .await
        .expect("eleventh attempt");

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    // The sliding estimate can take up to two windows to decay.
    assert!((1..=1800).contains(&retry_after), "{retry_after}");
    let (_, body) = mako_tests::app::read_json(response).await;
    assert_eq!(body["code"], "RATE_LIMITED");

    let (status, _) = app
        .client()
        .post(
            "/api/auth/login",
            json!({ "email": "target@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits out the window"
    );
}

#[tokio::test]
async fn successful_login_resets_failure_count() {
    let app = spawn_app_with(&[("MAKO_LOGIN_FAILURES_PER_EMAIL", "3")]).await;
    app.user("reset@example.com").await;
    let client = app.client();
    let wrong = json!({ "email": "reset@example.com", "password": "wrong password" });
    let right = json!({ "email": "reset@example.com", "password": PASSWORD });

    for _ in 0..2 {
        assert_eq!(
            client.post("/api/auth/login", wrong.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(client.post("/api/auth/login", right).await.0, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(
            client.post("/api/auth/login", wrong.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        client.post("/api/auth/login", wrong).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(&[("MAKO_REGISTRATIONS_PER_ADDRESS", "2")]).await;
    app.user("one@example.com").await;
    app.user("two@example.com").await;

    let (status, body) = app
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": "three@example.com", "password": PASSWORD }),
        )
        .await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn login_rotates_the_session() {
    let app = spawn_app().await;
    let browser = app.user("rotate@example.com").await;
    let old_cookie = session_cookie(&browser, &app.base);

    let (status, _) = browser
        .post(
            "/api/auth/login",
            json!({ "email": "rotate@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_cookie = session_cookie(&browser, &app.base);
    assert_ne!(old_cookie, new_cookie);

    let replay = app
        .client()
        .request(reqwest::Method::GET, "/api/auth/me")
        .header("cookie", &old_cookie)
        .send()
        .await
        .expect("replay");
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "the pre-login session is revoked"
    );
    assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::OK);
}

/// Returns the `Cookie` header a client sends, which contains its session cookie.
fn session_cookie(client: &mako_tests::app::Client, _base: &str) -> String {
    client.cookie_header().expect("the client holds a session cookie")
}

#[tokio::test]
async fn logout_revokes_the_session_server_side() {
    let app = spawn_app().await;
    let browser = app.user("logout@example.com").await;
    let cookie = session_cookie(&browser, &app.base);

    let (status, body) = browser.post("/api/auth/logout", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let replay = app
        .client()
        .request(reqwest::Method::GET, "/api/auth/me")
        .header("cookie", &cookie)
        .send()
        .await
        .expect("replay");
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "the logged-out cookie no longer works"
    );
    let (_, body) = mako_tests::app::read_json(replay).await;
    assert_eq!(body["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn me_without_credentials_is_unauthorized() {
    let app = spawn_app().await;
    let (status, body) = app.client().get("/api/auth/me").await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("revops_")),
        "says how to authenticate: {body}"
    );
}

#[tokio::test]
async fn idle_session_expires() {
    let app = spawn_app_with(&[("MAKO_SESSION_IDLE_TIMEOUT_SECS", "2")]).await;
    let browser = app.user("idle@example.com").await;
    assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(3100)).await;

    assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn active_session_outlives_idle_timeout() {
    let app = spawn_app_with(&[("MAKO_SESSION_IDLE_TIMEOUT_SECS", "2")]).await;
    let browser = app.user("active@example.com").await;

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn session_expires_at_max_age_despite_activity() {
    let app = spawn_app_with(&[("MAKO_SESSION_MAX_AGE_SECS", "3")]).await;
    let browser = app.user("absolute@example.com").await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cookie_write_without_origin_fails_csrf() {
    let app = spawn_app().await;
    let browser = app.user("csrf@example.com").await;

    let (status, body) = browser
        .without_origin()
        .post("/api/workspaces", json!({ "name": "W" }))
        .await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "CSRF_FAILED");
}

#[tokio::test]
async fn cookie_write_from_foreign_origin_fails_csrf() {
    let app = spawn_app().await;
    let browser = app.user("foreign@example.com").await;
    let mut evil = browser.clone();
    evil.origin = Some("https://evil.example".into());

    let (status, body) = evil.post("/api/workspaces", json!({ "name": "W" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let cross_site = browser
        .without_origin()
        .request(reqwest::Method::POST, "/api/workspaces")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "name": "W" }))
        .send()
        .await
        .expect("request");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn csrf_token_header_allows_scripted_cookie_writes() {
    let app = spawn_app().await;
    let browser = app.user("token@example.com").await;
    let token = browser.csrf_token.clone().expect("csrf token from register");

    let response = browser
        .without_origin()
        .request(reqwest::Method::POST, "/api/workspaces")
        .header("x-csrf-token", &token)
        .json(&json!({ "name": "Scripted" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);

    let wrong = browser
        .without_origin()
        .request(reqwest::Method::POST, "/api/workspaces")
        .header("x-csrf-token", "not-the-token")
        .json(&json!({ "name": "Scripted" }))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cross_site_login_is_rejected() {
    let app = spawn_app().await;
    app.user("victim@example.com").await;
    let mut evil = app.client();
    evil.origin = Some("https://evil.example".into());

    let (status, body) = evil
        .post(
            "/api/auth/login",
            json!({ "email": "victim@example.com", "password": PASSWORD }),
        )
        .await;

    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "CSRF_FAILED");
}

#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_lockout() {
    let app = spawn_app().await;
    app.user("race@example.com").await;
    let guesses = (0..40).map(|i| {
        let client = app.client();
        async move {
            client
                .post(
                    "/api/auth/login",
                    json!({ "email": "race@example.com", "password": format!("guess {i}") }),
                )
                .await
                .0
        }
    });

    let statuses = futures::future::join_all(guesses).await;

    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(checked, 10, "exactly the limit is checked: {statuses:?}");
    assert_eq!(limited, 30, "{statuses:?}");
}

#[tokio::test]
async fn lowercase_bearer_scheme_is_accepted() {
    let app = spawn_app().await;
    let owner = app.user("bearer@example.com").await;
    let id = app.workspace(&owner, "Bearer").await;
    let key = app.api_key(&owner, &id, "member").await;

    let response = app
        .client()
        .without_origin()
        .request(reqwest::Method::GET, "/api/workspaces")
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .expect("request");

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn lookalike_emails_and_names_are_rejected_or_folded() {
    let app = spawn_app().await;
    app.user("ada@example.com").await;
    let client = app.client();

    let (status, body) = client
        .post(
            "/api/auth/register",
            json!({ "email": "\u{FF41}\u{FF44}\u{FF41}@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "full-width letters fold into the same address: {body}"
    );
    for email in ["ada\u{200B}@example.com", "\u{202E}ada@example.com"] {
        let (status, body) = client
            .post("/api/auth/register", json!({ "email": email, "password": PASSWORD }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{email:?}: {body}");
    }
    let (status, body) = client
        .post(
            "/api/auth/register",
            json!({ "email": "name@example.com", "password": PASSWORD, "name": "\u{202E}Ada" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
