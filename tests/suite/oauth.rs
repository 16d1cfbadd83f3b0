//! Google and GitHub sign-in, end to end against a fake provider that speaks their formats.

use mako_core::ports::SecretString;
use mako_tests::app::{Client, TestApp, spawn_app, spawn_app_with};
use mako_tests::fake_oauth::{Account, FakeProvider, Flavor};
use reqwest::StatusCode;
use serde_json::json;

const APP_URL: &str = "http://127.0.0.1:5173/";

fn account(email: &str) -> Account {
    Account {
        subject: "4242".into(),
        email: email.into(),
        verified: true,
        name: "Grace Hopper".into(),
    }
}

/// Starts the app pointed at a fake provider, with the client secret in the secrets store.
async fn app_with(flavor: Flavor, account: Account) -> (TestApp, FakeProvider) {
    let provider = FakeProvider::start(flavor, "client-123", "secret-456", account).await;
    let mut vars: Vec<(String, String)> = provider.settings();
    vars.push(("MAKO_APP_URL".into(), APP_URL.into()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(&vars).await;
    let secret_name = match flavor {
        Flavor::Google => "google-client-secret",
        Flavor::Github => "github-client-secret",
    };
    app.state
        .secrets
        .put(secret_name, &SecretString::new("secret-456"))
        .await
        .expect("secret");
    (app, provider)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Follows the browser's path: our redirect, the provider's redirect, our callback.
async fn sign_in(app: &TestApp, browser: &Client, provider: &str) -> reqwest::Response {
    let start = browser
        .request(reqwest::Method::GET, &format!("/api/auth/{provider}"))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), StatusCode::SEE_OTHER, "redirect to the provider");
    let authorize = location(&start);
    let consent = browser.http.get(&authorize).send().await.expect("authorize");
    assert_eq!(consent.status(), StatusCode::SEE_OTHER, "provider redirects back");
    let callback = location(&consent);
    assert!(
        callback.starts_with(&app.url(&format!("/api/auth/{provider}/callback"))),
        "{callback}"
    );
    browser.http.get(&callback).send().await.expect("callback")
}

#[tokio::test]
async fn google_sign_in_creates_user_and_session() {
    let (app, _provider) = app_with(Flavor::Google, account("grace@example.com")).await;
    let browser = app.client();

    let done = sign_in(&app, &browser, "google").await;

    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), APP_URL);
    let (status, me) = browser.get("/api/auth/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["user"]["email"], "grace@example.com");
    assert_eq!(me["data"]["user"]["name"], "Grace Hopper");
}

#[tokio::test]
async fn github_sign_in_uses_the_primary_verified_email() {
    let (app, _provider) = app_with(Flavor::Github, account("Octo@Example.com")).await;
    let browser = app.client();

    let done = sign_in(&app, &browser, "github").await;

    assert_eq!(done.status(), StatusCode::FOUND);
    let (_, me) = browser.get("/api/auth/me").await;
    assert_eq!(me["data"]["user"]["email"], "octo@example.com");
}

#[tokio::test]
async fn redirect_carries_pkce_and_state() {
    let (app, _provider) = app_with(Flavor::Google, account("pkce@example.com")).await;
    let start = app
        .client()
        .request(reqwest::Method::GET, "/api/auth/google")
        .send()
        .await
        .expect("start");
    let target = url::Url::parse(&location(&start)).expect("provider URL");
    let query: std::collections::HashMap<_, _> = target.query_pairs().into_owned().collect();

    assert_eq!(query.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert_eq!(query.get("code_challenge").map(String::len), Some(43));
    assert!(query.get("state").is_some_and(|s| s.len() >= 32));
    assert_eq!(query.get("client_id").map(String::as_str), Some("client-123"));
    let cookie = start
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        cookie.starts_with("mako_oauth_state=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn second_sign_in_reuses_the_linked_user() {
    let (app, _provider) = app_with(Flavor::Google, account("again@example.com")).await;
    let first = app.client();
    sign_in(&app, &first, "google").await;
    let (_, me_first) = first.get("/api/auth/me").await;

    let second = app.client();
    sign_in(&app, &second, "google").await;
    let (_, me_second) = second.get("/api/auth/me").await;

    assert_eq!(me_first["data"]["user"]["id"], me_second["data"]["user"]["id"]);
}

#[tokio::test]
async fn sign_in_links_account_retires_password() {
    let (app, _provider) = app_with(Flavor::Google, account("linked@example.com")).await;
    let squatter = app.user("linked@example.com").await;
    let (_, before) = squatter.get("/api/auth/me").await;
    let workspace = app.workspace(&squatter, "Squatted").await;
    let key = app.api_key(&squatter, &workspace, "admin").await;

    let owner = app.client();
    sign_in(&app, &owner, "google").await;
    let (_, after) = owner.get("/api/auth/me").await;

    assert_eq!(
        after["data"]["user"]["id"], before["data"]["user"]["id"],
        "linked, not duplicated"
    );
    assert_eq!(
        squatter.get("/api/auth/me").await.0,
        StatusCode::UNAUTHORIZED,
        "older sessions end"
    );
    let (status, _) = app
        .client()
        .post(
            "/api/auth/login",
            json!({ "email": "linked@example.com", "password": mako_tests::app::PASSWORD }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the unverified password no longer works"
    );
    let (status, _) = app.with_key(&key).get(&format!("/api/workspaces/{workspace}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the keys it created no longer work");
    let (status, _) = owner.get(&format!("/api/workspaces/{workspace}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the verified owner keeps the account's workspaces"
    );
}

#[tokio::test]
async fn callback_with_foreign_state_is_rejected() {
    let (app, provider) = app_with(Flavor::Google, account("csrf@example.com")).await;
    let attacker = app.client();
    let start = attacker
        .request(reqwest::Method::GET, "/api/auth/google")
        .send()
        .await
        .expect("start");
    let consent = attacker.http.get(location(&start)).send().await.expect("authorize");
    let callback = location(&consent);

    // The victim's browser follows the attacker's callback link without the state cookie.
    let victim = app.client();
    let done = victim.http.get(&callback).send().await.expect("callback");

    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&done).contains("authError=invalid_state"),
        "{}",
        location(&done)
    );
    assert_eq!(victim.get("/api/auth/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.token_requests(), 0, "no code is exchanged");
}

#[tokio::test]
async fn state_is_single_use() {
    let (app, _provider) = app_with(Flavor::Google, account("once@example.com")).await;
    let browser = app.client();
    let start = browser
        .request(reqwest::Method::GET, "/api/auth/google")
        .send()
        .await
        .expect("start");
    let state_cookie = start
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let consent = browser.http.get(location(&start)).send().await.expect("authorize");
    let callback = location(&consent);

    let first = browser.http.get(&callback).send().await.expect("first callback");
    assert_eq!(first.status(), StatusCode::FOUND);
    let replay = app
        .client()
        .http
        .get(&callback)
        .header("cookie", &state_cookie)
        .send()
        .await
        .expect("replay");

    assert!(
        location(&replay).contains("authError=invalid_state"),
        "{}",
        location(&replay)
    );
}

#[tokio::test]
async fn unverified_email_is_refused() {
    let mut unverified = account("unverified@example.com");
    unverified.verified = false;
    let (app, _provider) = app_with(Flavor::Google, unverified).await;
    let browser = app.client();

    let done = sign_in(&app, &browser, "google").await;

    assert!(
        location(&done).contains("authError=email_not_verified"),
        "{}",
        location(&done)
    );
    assert_eq!(browser.get("/api/auth/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn provider_denial_redirects_with_an_error() {
    let (app, _provider) = app_with(Flavor::Github, account("deny@example.com")).await;
    let response = app
        .client()
        .request(
            reqwest::Method::GET,
            "/api/auth/github/callback?error=access_denied&state=x",
        )
        .send()
        .await
        .expect("callback");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with(APP_URL));
    assert!(location(&response).contains("authError=provider_denied"));
}

#[tokio::test]
async fn unconfigured_provider_explains_how_to_configure() {
    let app = spawn_app().await;
    let (status, body) = app.client().get("/api/auth/google").await;

    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "PROVIDER_NOT_CONFIGURED");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("MAKO_GOOGLE_CLIENT_ID")),
        "{body}"
    );
    let (status, _) = app.client().get("/api/auth/github").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn repeated_callback_parameters_are_refused() {
    let (app, provider) = app_with(Flavor::Google, account("dup@example.com")).await;
    let response = app
        .client()
        .request(reqwest::Method::GET, "/api/auth/google/callback?code=a&code=b&state=x")
        .send()
        .await
        .expect("callback");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&response).contains("authError=invalid_callback"),
        "{}",
        location(&response)
    );
    assert_eq!(provider.token_requests(), 0);
}
