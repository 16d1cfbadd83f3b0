//! A fake Google and GitHub for sign-in tests. It speaks their real wire formats: the
//! authorization redirect, the token endpoint (form in, JSON out; GitHub reports errors with
//! status 200), Google's OpenID Connect user-info and GitHub's `/user` and `/user/emails`.
//! It checks the client credentials, the redirect URI and the PKCE S256 verifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;

/// Which provider's formats the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Google,
    Github,
}

/// The account the fake signs in as.
#[derive(Clone, Debug)]
pub struct Account {
    pub subject: String,
    pub email: String,
    pub verified: bool,
    pub name: String,
}

#[derive(Clone)]
struct Pending {
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Pending>,
    tokens: HashMap<String, ()>,
    token_requests: usize,
}

#[derive(Clone)]
struct Fake {
    flavor: Flavor,
    client_id: String,
    client_secret: String,
    account: Account,
    inner: Arc<Mutex<Inner>>,
}

/// A running fake provider.
pub struct FakeProvider {
    pub base: String,
    fake: Fake,
}

impl FakeProvider {
    pub async fn start(flavor: Flavor, client_id: &str, client_secret: &str, account: Account) -> FakeProvider {
        let fake = Fake {
            flavor,
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            account,
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(google_userinfo))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake provider");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeProvider { base, fake }
    }

    /// Settings that point the server at this fake.
    pub fn settings(&self) -> Vec<(String, String)> {
        let (prefix, user_var, user_url) = match self.fake.flavor {
            Flavor::Google => ("GOOGLE", "MAKO_GOOGLE_USERINFO_URL", format!("{}/userinfo", self.base)),
            Flavor::Github => ("GITHUB", "MAKO_GITHUB_API_URL", self.base.clone()),
        };
        vec![
            (format!("MAKO_{prefix}_CLIENT_ID"), self.fake.client_id.clone()),
            (
                format!("MAKO_{prefix}_AUTHORIZE_URL"),
                format!("{}/authorize", self.base),
            ),
            (format!("MAKO_{prefix}_TOKEN_URL"), format!("{}/token", self.base)),
            (user_var.to_owned(), user_url),
        ]
    }

    /// Number of token requests received.
    pub fn token_requests(&self) -> usize {
        self.fake
            .inner
            .lock()
            .map(|inner| inner.token_requests)
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    response_type: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
    scope: String,
}

async fn authorize(State(fake): State<Fake>, Query(query): Query<AuthorizeQuery>) -> Response {
    let scope_ok = match fake.flavor {
        Flavor::Google => query.scope.split(' ').any(|scope| scope == "email"),
        Flavor::Github => query.scope.split(' ').any(|scope| scope == "user:email"),
    };
    if query.client_id != fake.client_id
        || query.response_type != "code"
        || query.code_challenge_method != "S256"
        || !scope_ok
    {
        return (StatusCode::BAD_REQUEST, "invalid authorization request").into_response();
    }
    let code = format!("code-{}", ulid::Ulid::new());
    if let Ok(mut inner) = fake.inner.lock() {
        inner.codes.insert(
            code.clone(),
            Pending {
                challenge: query.code_challenge,
                redirect_uri: query.redirect_uri.clone(),
            },
        );
    }
    let mut target = url::Url::parse(&query.redirect_uri).expect("redirect URI");
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &query.state);
    Redirect::to(target.as_str()).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    client_secret: String,
    code_verifier: String,
}

fn token_error(fake: &Fake, error: &str, description: &str) -> Response {
    let body = Json(json!({ "error": error, "error_description": description }));
    match fake.flavor {
        Flavor::Google => (StatusCode::BAD_REQUEST, body).into_response(),
        Flavor::Github => (StatusCode::OK, body).into_response(),
    }
}

async fn token(State(fake): State<Fake>, Form(form): Form<TokenForm>) -> Response {
    let pending = {
        let Ok(mut inner) = fake.inner.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        inner.token_requests += 1;
        inner.codes.remove(&form.code)
    };
    if form.grant_type != "authorization_code" {
        return token_error(&fake, "unsupported_grant_type", "grant_type must be authorization_code");
    }
    if form.client_id != fake.client_id || form.client_secret != fake.client_secret {
        return token_error(&fake, "invalid_client", "The client credentials are invalid");
    }
    let Some(pending) = pending else {
        return token_error(&fake, "bad_verification_code", "The code is incorrect or expired.");
    };
    if pending.redirect_uri != form.redirect_uri {
        return token_error(&fake, "redirect_uri_mismatch", "The redirect_uri does not match.");
    }
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(form.code_verifier.as_bytes()));
    if challenge != pending.challenge {
        return token_error(&fake, "invalid_grant", "PKCE verification failed.");
    }

    let access_token = format!("token-{}", ulid::Ulid::new());
    if let Ok(mut inner) = fake.inner.lock() {
        inner.tokens.insert(access_token.clone(), ());
    }
    let body = match fake.flavor {
        Flavor::Google => json!({
            "access_token": access_token,
            "expires_in": 3599,
            "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
            "token_type": "Bearer",
            "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"
        }),
        Flavor::Github => {
            json!({ "access_token": access_token, "token_type": "bearer", "scope": "read:user,user:email" })
        }
    };
    Json(body).into_response()
}

fn authorized(fake: &Fake, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    fake.inner.lock().is_ok_and(|inner| inner.tokens.contains_key(token))
}

async fn google_userinfo(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if fake.flavor != Flavor::Google || !authorized(&fake, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_token" }))).into_response();
    }
    let account = &fake.account;
    Json(json!({
        "sub": account.subject,
        "name": account.name,
        "given_name": account.name,
        "picture": "https://example.invalid/photo.jpg",
        "email": account.email,
        "email_verified": account.verified
    }))
    .into_response()
}

async fn github_user(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if fake.flavor != Flavor::Github || headers.get("user-agent").is_none() || !authorized(&fake, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "message": "Bad credentials" }))).into_response();
    }
    let account = &fake.account;
    Json(json!({
        "login": "octo-test",
        "id": account.subject.parse::<u64>().unwrap_or(1),
        "node_id": "MDQ6VXNlcjE=",
        "type": "User",
        "name": account.name,
        "email": null
    }))
    .into_response()
}

async fn github_emails(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if fake.flavor != Flavor::Github || !authorized(&fake, &headers) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "message": "Bad credentials" }))).into_response();
    }
    let account = &fake.account;
    Json(json!([
        { "email": "octo@users.noreply.github.com", "primary": false, "verified": true, "visibility": null },
        { "email": account.email, "primary": true, "verified": account.verified, "visibility": "private" }
    ]))
    .into_response()
}
