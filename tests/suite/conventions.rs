//! The API's conventions: envelopes, error bodies, request ids, body limits, CORS.

use mako_tests::app::{read_json, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let (status, body) = app.client().get("/api/nope").await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "NOT_FOUND");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("/api/nope")));
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let app = spawn_app().await;
    let (status, body) = app.client().send(Method::DELETE, "/api/auth/me", None).await;

    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    let response = app
        .client()
        .request(Method::POST, "/api/auth/login")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(response).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Invalid JSON body")),
        "{body}"
    );
}

#[tokio::test]
async fn missing_field_names_the_field() {
    let app = spawn_app().await;
    let (status, body) = app
        .client()
        .post("/api/auth/login", json!({ "email": "a@example.com" }))
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("password")), "{body}");
}

#[tokio::test]
async fn non_json_body_is_a_415() {
    let app = spawn_app().await;
    let response = app
        .client()
        .request(Method::POST, "/api/auth/login")
        .header("content-type", "text/plain")
        .body("email=a")
        .send()
        .await
        .expect("request");
    let (status, body) = read_json(response).await;

    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let app = spawn_app_with(&[("MAKO_MAX_BODY_BYTES", "2048")]).await;
    let (status, body) = app
        .client()
        .post(
            "/api/auth/register",
            json!({ "email": "big@example.com", "password": "x".repeat(4000) }),
        )
        .await;

    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .client()
        .request(Method::GET, "/api/auth/me")
        .send()
        .await
        .expect("request");
    let generated = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(generated.is_some_and(|id| id.len() == 26), "a fresh ULID");

    let response = app
        .client()
        .request(Method::GET, "/api/auth/me")
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("trace-42")
    );

    let response = app
        .client()
        .request(Method::GET, "/api/auth/me")
        .header("x-request-id", "bad id with spaces and {braces}")
        .send()
        .await
        .expect("request");
    let replaced = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(replaced.len(), 26, "a malformed client id is replaced: {replaced}");
}

#[tokio::test]
async fn cors_allows_the_app_origin_only() {
    let app = spawn_app_with(&[("MAKO_APP_URL", "https://app.example.com")]).await;
    let preflight = |origin: &'static str| {
        app.client()
            .without_origin()
            .request(Method::OPTIONS, "/api/workspaces")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-csrf-token")
            .send()
    };

    let allowed = preflight("https://app.example.com").await.expect("preflight");
    let header = |name: &str| {
        allowed
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(header("access-control-allow-credentials").as_deref(), Some("true"));

    let denied = preflight("https://evil.example").await.expect("preflight");
    assert!(denied.headers().get("access-control-allow-origin").is_none());
}
