//! Helpers shared by the benchmark commands: a release `mako-local` child process with a
//! user, workspace, API key and connection, load generation, and the printed table.

#![allow(clippy::print_stdout, reason = "benchmark commands print their tables")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};

/// Replaces the database of a PostgreSQL URL.
pub fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("--postgres is not a URL")?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}

/// A `mako-local` process with its own data folder.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub key: String,
    pub workspace: String,
    pub connection: String,
    pub data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn server_binary() -> anyhow::Result<PathBuf> {
    let here = std::env::current_exe()?;
    let binary = here.with_file_name("mako-local");
    if !binary.exists() {
        bail!(
            "{} is missing; build it first: cargo build --release -p mako-local -p mako-bench",
            binary.display()
        );
    }
    Ok(binary)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub async fn call(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// Starts a server with extra settings and creates a user, workspace, admin API key and a
/// connection to `url`.
pub async fn start_server(client: &reqwest::Client, url: &str, settings: &[(&str, String)]) -> anyhow::Result<Server> {
    let data = tempfile::tempdir()?;
    let port = free_port()?;
    let log = std::fs::File::create(data.path().join("server.log"))?;
    let child = Command::new(server_binary()?)
        .env("MAKO_ADDR", format!("127.0.0.1:{port}"))
        .env("MAKO_DATA_DIR", data.path().join("data"))
        .env("MAKO_SAMPLE_DATABASE", "false")
        .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting mako-local")?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!(
                "mako-local did not start; see {}",
                data.path().join("server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let origin = base.clone();
    let registered = client
        .post(format!("{base}/api/auth/register"))
        .header("origin", &origin)
        .json(&json!({ "email": "bench@example.com", "password": "benchmark password 1" }))
        .send()
        .await?;
    let cookie = registered
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let registered: Value = registered.json().await?;
    let csrf = registered["data"]["csrfToken"].as_str().unwrap_or_default().to_owned();
    let session = |request: reqwest::RequestBuilder| {
        request
            .header("cookie", &cookie)
            .header("origin", &origin)
            .header("x-csrf-token", &csrf)
    };
    let workspace = call(session(client.post(format!("{base}/api/workspaces"))).json(&json!({ "name": "Bench" })))
        .await?["data"]["id"]
        .as_str()
        .context("workspace id")?
        .to_owned();
    let key = call(
        session(client.post(format!("{base}/api/workspaces/{workspace}/api-keys")))
            .json(&json!({ "name": "bench", "role": "admin" })),
    )
    .await?["data"]["key"]
        .as_str()
        .context("API key")?
        .to_owned();
    let connection = call(
        client
            .post(format!("{base}/api/workspaces/{workspace}/connectors"))
            .bearer_auth(&key)
            .json(&json!({ "name": "bench", "type": "postgresql", "connectionString": url, "test": true })),
    )
    .await?["data"]["id"]
        .as_str()
        .context("connection id")?
        .to_owned();
    Ok(Server {
        child,
        base,
        key,
        workspace,
        connection,
        data,
    })
}

impl Server {
    /// Peak resident memory of the server process so far, in bytes.
    pub fn peak_memory(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .context("no VmHWM in /proc status")?;
        let kilobytes: u64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
        Ok(kilobytes * 1024)
    }
}

/// Latencies and throughput of one run.
pub struct Run {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl Run {
    pub fn percentile(&self, fraction: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
        sorted[index].as_secs_f64() * 1000.0
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn json(&self) -> Value {
        json!({
            "requests": self.latencies.len(),
            "elapsedSeconds": self.elapsed.as_secs_f64(),
            "p50Ms": self.percentile(0.5),
            "p99Ms": self.percentile(0.99),
            "perSecond": self.per_second(),
        })
    }
}

/// Runs `requests` calls of `one`, `concurrency` at a time.
pub async fn measure<F, Fut>(requests: usize, concurrency: usize, one: F) -> anyhow::Result<Run>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let timed = futures::stream::iter(0..requests)
        .map(|_| {
            let call = one();
            async move {
                let begun = Instant::now();
                call.await.map(|()| begun.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed();
    let latencies = timed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Run { latencies, elapsed })
}

pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

pub fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub fn row(label: &str, ours: f64, theirs: f64, unit: &str) {
    println!(
        "| {label:<48} | {ours:>12.3} | {theirs:>12.3} | {:>6.2} | {unit}",
        ours / theirs
    );
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

pub fn write_raw(path: &Path, raw: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(raw)?).with_context(|| format!("writing {}", path.display()))
}
