//! Data written before a restart of the local server is there after it, including after the
//! process is killed with SIGKILL.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mako_tests::app::{Client, PASSWORD, TestApp, spawn_app_in};
use reqwest::StatusCode;
use serde_json::json;

/// Writes a user, a workspace and an API key; returns the workspace id and the key.
async fn write_data(app_base: &str, client: &Client) -> (String, String) {
    let (status, body) = client
        .post(
            "/api/auth/register",
            json!({ "email": "durable@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = client.post("/api/workspaces", json!({ "name": "Durable" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body} at {app_base}");
    let id = body["data"]["id"].as_str().expect("id").to_owned();
    let (status, body) = client
        .post(&format!("/api/workspaces/{id}/api-keys"), json!({ "name": "durable" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (id, body["data"]["key"].as_str().expect("key").to_owned())
}

/// Checks that what `write_data` wrote is readable through a fresh server.
async fn check_data(app: &TestApp, id: &str, key: &str) {
    let browser = app.client();
    let (status, body) = browser
        .post(
            "/api/auth/login",
            json!({ "email": "durable@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = browser.get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "Durable");
    let (status, _) = app.with_key(key).get(&format!("/api/workspaces/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn data_survives_a_graceful_restart() {
    let dir = tempfile::tempdir().expect("data folder");
    let first = spawn_app_in(dir.path(), &[]).await;
    let (id, key) = write_data(&first.base, &first.client()).await;
    first.stop().await;

    let second = spawn_app_in(dir.path(), &[]).await;
    check_data(&second, &id, &key).await;
}

#[tokio::test]
async fn second_server_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().expect("data folder");
    let _first = spawn_app_in(dir.path(), &[]).await;

    let mut lookup = std::collections::HashMap::new();
    lookup.insert("MAKO_ADDR".to_owned(), "127.0.0.1:0".to_owned());
    lookup.insert("MAKO_DATA_DIR".to_owned(), dir.path().display().to_string());
    let settings = mako_local::LocalSettings::from_lookup(&lookup).expect("settings");
    let second = mako_local::Application::build(settings, &lookup).await;

    let message = second.err().map(|error| format!("{error:#}")).unwrap_or_default();
    assert!(message.contains("another Mako process"), "{message}");
}

/// Starts this test binary again, running only `child_server`, on `data_dir`, with extra
/// settings.
pub fn spawn_child(data_dir: &Path, port_file: &Path, vars: &[(&str, &str)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let vars: Vec<String> = vars.iter().map(|(name, value)| format!("{name}={value}")).collect();
    Command::new(exe)
        .args(["restart::child_server", "--exact", "--ignored", "--nocapture"])
        .env("MAKO_TEST_CHILD_DATA_DIR", data_dir)
        .env("MAKO_TEST_CHILD_PORT_FILE", port_file)
        .env("MAKO_TEST_CHILD_VARS", vars.join(";"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the child server")
}

/// Waits for the child to write its address.
pub fn wait_for_address(port_file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(address) = std::fs::read_to_string(port_file)
            && address.ends_with('\n')
        {
            return address.trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the child server did not start within 30 s");
}

#[tokio::test]
async fn data_survives_kill_9() {
    let dir = tempfile::tempdir().expect("data folder");
    let data_dir = dir.path().join("data");
    let port_file = dir.path().join("address");

    let mut child = spawn_child(&data_dir, &port_file, &[]);
    let base = format!("http://{}", wait_for_address(&port_file));
    let client = Client::new(&base);
    let (id, key) = write_data(&base, &client).await;

    // SIGKILL: no shutdown code runs, so only what was committed survives.
    child.kill().expect("SIGKILL");
    child.wait().expect("reaping the child");

    let app = spawn_app_in(&data_dir, &[]).await;
    check_data(&app, &id, &key).await;
}

/// Runs the server process of the kill tests; does nothing when run on its own.
#[test]
#[ignore = "run as a child process by the kill tests"]
fn child_server() {
    let (Ok(data_dir), Ok(port_file)) = (
        std::env::var("MAKO_TEST_CHILD_DATA_DIR"),
        std::env::var("MAKO_TEST_CHILD_PORT_FILE"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut lookup = std::collections::HashMap::new();
        lookup.insert("MAKO_ADDR".to_owned(), "127.0.0.1:0".to_owned());
        lookup.insert("MAKO_DATA_DIR".to_owned(), data_dir);
        for pair in std::env::var("MAKO_TEST_CHILD_VARS").unwrap_or_default().split(';') {
            if let Some((name, value)) = pair.split_once('=') {
                lookup.insert(name.to_owned(), value.to_owned());
            }
        }
        let settings = mako_local::LocalSettings::from_lookup(&lookup).expect("settings");
        let app = mako_local::Application::build(settings, &lookup).await.expect("build");
        std::fs::write(&port_file, format!("{}\n", app.local_addr())).expect("writing the address");
        app.run_until(std::future::pending()).await.expect("serve");
    });
}
