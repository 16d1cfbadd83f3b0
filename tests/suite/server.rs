//! The local server's own behaviour: start-up checks, file permissions, connection limits
//! and timeouts, shutdown.

use std::time::{Duration, Instant};

use mako_tests::app::spawn_app_with;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection or `within` passes; returns whether it closed.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn half_sent_headers_are_cut_off() {
    let app = spawn_app_with(&[("MAKO_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /api/auth/me HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial headers");

    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "the server closes the connection"
    );
}

#[tokio::test]
async fn silent_connections_are_closed() {
    let app = spawn_app_with(&[("MAKO_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect");

    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "a silent connection is closed"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_app_with(&[("MAKO_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /api/auth/me HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).await.expect("response");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 401"));

    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "an idle keep-alive connection is closed"
    );
}

#[tokio::test]
async fn slow_bodies_time_out() {
    let app = spawn_app_with(&[("MAKO_BODY_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head =
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("head");

    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buffer[..n]);
            if response.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;

    assert!(read.is_ok(), "the server answers or closes within the body timeout");
    let text = String::from_utf8_lossy(&response);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
}

#[tokio::test]
async fn shutdown_drops_stuck_request() {
    let app = spawn_app_with(&[("MAKO_SHUTDOWN_GRACE_SECS", "1"), ("MAKO_BODY_TIMEOUT_SECS", "600")]).await;
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let head =
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("head");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops");

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_setting_is_reported_before_binding() {
    let occupied = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = occupied.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("data folder");
    let lookup: std::collections::HashMap<String, String> = [
        ("MAKO_ADDR", addr.as_str()),
        ("MAKO_DATA_DIR", &dir.path().display().to_string()),
        ("MAKO_APP_URL", "ftp://nope"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    let settings = mako_local::LocalSettings::from_lookup(&lookup).expect("settings");
    let error = mako_local::Application::build(settings, &lookup)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();

    assert!(error.contains("MAKO_APP_URL"), "{error}");
}

#[cfg(unix)]
#[tokio::test]
async fn data_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("parent folder");
    let app = mako_tests::app::spawn_app_in(&parent.path().join("new"), &[]).await;
    app.user("private@example.com").await;

    for name in ["", "mako.db", "mako.db-wal", "secrets.json", "blobs"] {
        let path = app.data_dir.join(name);
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
}
