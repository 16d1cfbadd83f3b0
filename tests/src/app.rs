//! `spawn_app()`: the full local server on a free port with a fresh data folder, and clients
//! that talk to it as a browser session or a script with an API key would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mako_core::AppState;
use mako_local::{Application, LocalSettings};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running local server.
pub struct TestApp {
    /// Base URL, such as `http://127.0.0.1:41234`.
    pub base: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts a server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a server with extra settings (`MAKO_*` variables), in a fresh data folder.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("creating a temporary data folder");
    let path = dir.path().to_owned();
    let mut app = spawn_app_in(&path, vars).await;
    app._dir = Some(dir);
    app
}

/// Starts a server on an existing data folder, which the caller keeps.
pub async fn spawn_app_in(data_dir: &Path, vars: &[(&str, &str)]) -> TestApp {
    crate::init_logging();
    let mut lookup: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    // Most tests do not need the sample database; those that do ask for it.
    lookup
        .entry("MAKO_SAMPLE_DATABASE".into())
        .or_insert_with(|| "false".into());
    lookup.insert("MAKO_ADDR".into(), "127.0.0.1:0".into());
    lookup.insert("MAKO_DATA_DIR".into(), data_dir.display().to_string());

    let settings = LocalSettings::from_lookup(&lookup).expect("local settings");
    let app = Application::build(settings, &lookup)
        .await
        .expect("building the application");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();

    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        state,
        data_dir: data_dir.to_owned(),
        shutdown: Some(shutdown),
        server: Some(server),
        _dir: None,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Returns a client with an empty cookie jar, like a new browser.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// Returns a client that authenticates with an API key.
    pub fn with_key(&self, key: &str) -> Client {
        let mut client = self.client();
        client.origin = None;
        client.bearer = Some(key.to_owned());
        client
    }

    /// Registers a user and returns a client signed in as them.
    pub async fn user(&self, email: &str) -> Client {
        let mut client = self.client();
        let (status, body) = client
            .send(
                Method::POST,
                "/api/auth/register",
                Some(json!({ "email": email, "password": PASSWORD, "name": "Test User" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "registering {email}: {body}");
        client.csrf_token = body["data"]["csrfToken"].as_str().map(str::to_owned);
        client
    }

    /// Creates a workspace as `owner` and returns its id.
    pub async fn workspace(&self, owner: &Client, name: &str) -> String {
        let (status, body) = owner.post("/api/workspaces", json!({ "name": name })).await;
        assert_eq!(status, StatusCode::CREATED, "creating workspace {name}: {body}");
        body["data"]["id"].as_str().expect("workspace id").to_owned()
    }

    /// Creates an API key in a workspace as `admin` and returns the full key.
    pub async fn api_key(&self, admin: &Client, workspace: &str, role: &str) -> String {
        let (status, body) = admin
            .post(
                &format!("/api/workspaces/{workspace}/api-keys"),
                json!({ "name": "test key", "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating an API key: {body}");
        body["data"]["key"].as_str().expect("key").to_owned()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The password every test user registers with.
pub const PASSWORD: &str = "correct horse battery";

/// An HTTP client bound to one server, as a browser session or an API-key script.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    /// The client's cookie jar.
    pub jar: Arc<Jar>,
    /// `Origin` sent with every request, as a browser on the app's own origin does.
    pub origin: Option<String>,
    pub bearer: Option<String>,
    pub csrf_token: Option<String>,
}

impl Client {
    /// Creates a client of the server at `base` with an empty cookie jar. It sends
    /// `Origin: base`, like a browser on the server's own origin.
    pub fn new(base: &str) -> Client {
        // A test that builds no other client first (each runs alone under cargo-nextest)
        // needs the TLS provider installed here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jar = Arc::new(Jar::default());
        Client {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("building an HTTP client"),
            jar,
            origin: Some(base.to_owned()),
            bearer: None,
            csrf_token: None,
        }
    }

    /// Returns the `Cookie` header this client sends to its server, if any.
    pub fn cookie_header(&self) -> Option<String> {
        let url = url::Url::parse(&self.base).expect("base URL");
        self.jar
            .cookies(&url)
            .and_then(|value| value.to_str().ok().map(str::to_owned))
    }

    /// Returns a copy with the same cookie jar and key but no `Origin` header, like a script
    /// that kept a cookie.
    pub fn without_origin(&self) -> Client {
        Client {
            origin: None,
            ..self.clone()
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(origin) = &self.origin {
            request = request.header("origin", origin);
        }
        if let Some(key) = &self.bearer {
            request = request.bearer_auth(key);
        }
        request
    }

    /// Sends a request with an optional JSON body and returns the status and JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sending the request");
        read_json(response).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }
}

/// Reads a response's status and JSON body (`null` for an empty or non-JSON body).
pub async fn read_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("reading the response body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
