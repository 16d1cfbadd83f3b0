//! `mako-bench-execute`: `POST /api/execute` of a release `mako-local` against the same query
//! through the Rust driver (sqlx) directly, and a large result against `psql` copying it to
//! `/dev/null` as CSV, on the same PostgreSQL server and data in one run.
//!
//! Build both binaries, then run this one:
//!
//! ```text
//! cargo build --release -p mako-local -p mako-bench
//! target/release/mako-bench-execute [--postgres URL] [--rows N] [--requests N] [--out FILE]
//! ```
//!
//! It creates (and afterwards drops) the database `mako_bench` on the server, prints a table
//! and writes the raw numbers as JSON to `--out` (default `bench-execute.json`).

#![allow(clippy::print_stdout, reason = "a benchmark command prints its table")]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mako_bench::{Server, git_commit, measure, median, row, start_server, verdict, with_database, write_raw};
use serde_json::json;
use sqlx::Connection;

const DATABASE: &str = "mako_bench";
const SMALL_QUERY: &str = "select * from bench_small order by id";
const LARGE_QUERY: &str = "select * from bench_large";
const CONCURRENCY: usize = 32;

const USAGE: &str = "usage: mako-bench-execute [--postgres URL] [--rows N] [--requests N] [--out FILE]
  --postgres  PostgreSQL server to create the database mako_bench on
              (default: $MAKO_BENCH_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres)
  --rows      rows of the large result (default 200000)
  --requests  small queries per sequential run; the 32-client runs make twice as many (default 5000)
  --out       file for the raw numbers as JSON (default bench-execute.json)";

struct Options {
    postgres: String,
    rows: u64,
    requests: usize,
    out: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        postgres: std::env::var("MAKO_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        rows: 200_000,
        requests: 5_000,
        out: PathBuf::from("bench-execute.json"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            bail!("{USAGE}");
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--postgres" => options.postgres = value,
            "--rows" => options.rows = value.parse().context("--rows takes a whole number")?,
            "--requests" => options.requests = value.parse().context("--requests takes a whole number")?,
            "--out" => options.out = PathBuf::from(value),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(options)
}

/// Creates the benchmark database: 10 rows for the small query and `rows` rows of eight
/// mixed columns for the large one.
async fn prepare(admin_url: &str, rows: u64) -> anyhow::Result<String> {
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop database if exists {DATABASE} with (force)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {DATABASE}")))
        .execute(&mut admin)
        .await?;
    admin.close().await?;

    let url = with_database(admin_url, DATABASE)?;
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    let setup = format!(
        "create table bench_large (
            id bigint primary key, account text not null, amount numeric(12,2), quantity integer,
            closed date, updated_at timestamptz, active boolean, score double precision);
         insert into bench_large
           select g, 'Account ' || (g % 5000), (g * 7919 % 1000000) / 100.0, g % 1000,
                  date '2020-01-01' + (g % 2000), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
                  g % 3 = 0, g / 7.0
           from generate_series(1, {rows}) g;
         create table bench_small as select * from bench_large order by id limit 10;
         alter table bench_small add primary key (id);
         analyze;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(url)
}

/// Settings of the server under test.
fn server_settings(rows: u64) -> Vec<(&'static str, String)> {
    vec![
        // As many connections to the database as the driver side gets.
        ("MAKO_DATABASE_POOL_SIZE", CONCURRENCY.to_string()),
        ("MAKO_EXECUTE_MAX_ROWS", rows.max(1000).to_string()),
        ("MAKO_EXECUTE_MAX_RESULT_BYTES", (512 * 1024 * 1024).to_string()),
    ]
}

trait Execute {
    fn execute(&self, client: &reqwest::Client, query: &str, limit: u64) -> reqwest::RequestBuilder;
}

impl Execute for Server {
    fn execute(&self, client: &reqwest::Client, query: &str, limit: u64) -> reqwest::RequestBuilder {
        client
            .post(format!("{}/api/execute", self.base))
            .bearer_auth(&self.key)
            .json(&json!({
                "workspaceId": self.workspace,
                "connectionId": self.connection,
                "query": query,
                "limit": limit,
                "timeoutMs": 120_000,
            }))
    }
}

async fn api_small(server: &Server, client: &reqwest::Client) -> anyhow::Result<()> {
    let response = server.execute(client, SMALL_QUERY, 1000).send().await?;
    if !response.status().is_success() {
        bail!("execute failed: {}", response.text().await?);
    }
    let body = response.bytes().await?;
    if body.len() < 100 {
        bail!("unexpected response: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// Requests an unknown route, which the server rejects with its JSON 404 without other
/// work. Its throughput is the cost of HTTP alone, the ceiling of any route's.
async fn api_floor(server: &Server, client: &reqwest::Client) -> anyhow::Result<()> {
    let response = client
        .get(format!("{}/api/no-such-route", server.base))
        .bearer_auth(&server.key)
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::NOT_FOUND {
        bail!("expected 404, got {}", response.status());
    }
    response.bytes().await?;
    Ok(())
}

/// Reads the connection the queries run on. That costs the API key's authentication and
/// the metadata reads of an execution, without the database.
async fn api_metadata(server: &Server, client: &reqwest::Client) -> anyhow::Result<()> {
    let response = client
        .get(format!(
            "{}/api/workspaces/{}/connectors/{}",
            server.base, server.workspace, server.connection
        ))
        .bearer_auth(&server.key)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("reading the connection failed: {}", response.text().await?);
    }
    response.bytes().await?;
    Ok(())
}

async fn driver_small(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let rows = sqlx::query(SMALL_QUERY).fetch_all(pool).await?;
    if rows.len() != 10 {
        bail!("expected 10 rows, got {}", rows.len());
    }
    Ok(())
}

/// Runs the small query with the round trips mako adds to keep executions apart. The time
/// limit and the backend's pid (for cancelling) come before it, `DISCARD ALL` after it.
async fn driver_small_isolated(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut connection = pool.acquire().await?;
    sqlx::raw_sql("SET statement_timeout = 120000; SELECT pg_backend_pid()")
        .fetch_all(&mut *connection)
        .await?;
    let rows = sqlx::query(SMALL_QUERY).fetch_all(&mut *connection).await?;
    if rows.len() != 10 {
        bail!("expected 10 rows, got {}", rows.len());
    }
    sqlx::raw_sql("DISCARD ALL").execute(&mut *connection).await?;
    Ok(())
}

/// Time to the last byte of the large result, and the bytes received.
async fn api_large(server: &Server, client: &reqwest::Client, rows: u64) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let response = server.execute(client, LARGE_QUERY, rows).send().await?;
    if !response.status().is_success() {
        bail!("execute failed: {}", response.text().await?);
    }
    let mut response = response;
    let mut bytes = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        if tail.len() > 400 {
            tail.drain(..tail.len() - 400);
        }
    }
    let elapsed = started.elapsed();
    // The last fields of the body are the row count, truncated, statement and elapsedMs.
    let tail = String::from_utf8_lossy(&tail);
    if !tail.contains(&format!("\"rowCount\":{rows},\"truncated\":false")) {
        bail!("the response does not end with {rows} untruncated rows: …{tail}");
    }
    Ok((elapsed, bytes))
}

fn psql_copy(url: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("\\copy ({LARGE_QUERY}) to '/dev/null' with csv"))
        .stdout(Stdio::null())
        .status()
        .context("running psql (install the postgresql-client package)")?;
    if !status.success() {
        bail!("psql failed: {status}");
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    // reqwest is built without a default TLS provider; the benchmark speaks plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = prepare(&options.postgres, options.rows).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONCURRENCY as u32)
        .connect(&url)
        .await?;
    let version: String = sqlx::query_scalar("show server_version").fetch_one(&pool).await?;

    // Small query: sequential, then 32 at a time, each side warmed up first.
    let server = start_server(&client, &url, &server_settings(options.rows)).await?;
    measure(500, CONCURRENCY, || api_small(&server, &client)).await?;
    measure(500, CONCURRENCY, || driver_small(&pool)).await?;
    let api_sequential = measure(options.requests, 1, || api_small(&server, &client)).await?;
    let driver_sequential = measure(options.requests, 1, || driver_small(&pool)).await?;
    let api_concurrent = measure(options.requests * 2, CONCURRENCY, || api_small(&server, &client)).await?;
    let driver_concurrent = measure(options.requests * 2, CONCURRENCY, || driver_small(&pool)).await?;
    let isolated_concurrent = measure(options.requests * 2, CONCURRENCY, || driver_small_isolated(&pool)).await?;
    let floor_concurrent = measure(options.requests * 2, CONCURRENCY, || api_floor(&server, &client)).await?;
    let metadata_concurrent = measure(options.requests * 2, CONCURRENCY, || api_metadata(&server, &client)).await?;
    drop(server);
    pool.close().await;

    // Large result: a fresh server, so its peak memory is this phase's.
    let server = start_server(&client, &url, &server_settings(options.rows)).await?;
    let mut api_times = Vec::new();
    let mut api_bytes = 0;
    let mut psql_times = Vec::new();
    for _ in 0..3 {
        let (elapsed, bytes) = api_large(&server, &client, options.rows).await?;
        api_times.push(elapsed);
        api_bytes = bytes;
        psql_times.push(psql_copy(&url)?);
    }
    let peak = server.peak_memory()?;
    drop(server);
    let api_large = median(api_times.clone());
    let psql_large = median(psql_times.clone());

    let machine = format!(
        "{} cores, PostgreSQL {version}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "\nPOST /api/execute against the Rust driver and psql — {} — commit {} — {machine}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        git_commit()
    );
    println!(
        "| {:<48} | {:>12} | {:>12} | {:>6} | unit",
        "measure", "mako", "peer", "ratio"
    );
    println!(
        "|{}|{}|{}|{}|-----",
        "-".repeat(50),
        "-".repeat(14),
        "-".repeat(14),
        "-".repeat(8)
    );
    row(
        "10 rows, sequential, p50 (peer: sqlx)",
        api_sequential.percentile(0.5),
        driver_sequential.percentile(0.5),
        "ms",
    );
    row(
        "10 rows, sequential, p99 (peer: sqlx)",
        api_sequential.percentile(0.99),
        driver_sequential.percentile(0.99),
        "ms",
    );
    row(
        "10 rows, sequential, throughput (peer: sqlx)",
        api_sequential.per_second(),
        driver_sequential.per_second(),
        "req/s",
    );
    row(
        "10 rows, 32 clients, p50 (peer: sqlx)",
        api_concurrent.percentile(0.5),
        driver_concurrent.percentile(0.5),
        "ms",
    );
    row(
        "10 rows, 32 clients, p99 (peer: sqlx)",
        api_concurrent.percentile(0.99),
        driver_concurrent.percentile(0.99),
        "ms",
    );
    row(
        "10 rows, 32 clients, throughput (peer: sqlx)",
        api_concurrent.per_second(),
        driver_concurrent.per_second(),
        "req/s",
    );
    row(
        "same, peer: sqlx with mako's isolation",
        api_concurrent.per_second(),
        isolated_concurrent.per_second(),
        "req/s",
    );
    row(
        "HTTP alone (a 404), 32 clients (peer: sqlx)",
        floor_concurrent.per_second(),
        driver_concurrent.per_second(),
        "req/s",
    );
    row(
        "GET the connection, 32 clients (peer: sqlx)",
        metadata_concurrent.per_second(),
        driver_concurrent.per_second(),
        "req/s",
    );
    row(
        &format!("{} rows x 8 columns, time (peer: psql \\copy)", options.rows),
        api_large.as_secs_f64(),
        psql_large.as_secs_f64(),
        "s",
    );
    println!(
        "| {:<48} | {:>12.1} | {:>12} | {:>6} | MB",
        "large result, server peak memory",
        peak as f64 / 1_048_576.0,
        "",
        ""
    );

    let overhead = api_sequential.percentile(0.5) - driver_sequential.percentile(0.5);
    let throughput = api_concurrent.per_second() / driver_concurrent.per_second();
    let large_ratio = api_large.as_secs_f64() / psql_large.as_secs_f64();
    let peak_mb = peak as f64 / 1_048_576.0;
    println!("\nGoals:");
    println!(
        "  p50 overhead under 1 ms:                 {overhead:.3} ms — {}",
        verdict(overhead < 1.0)
    );
    println!(
        "  at least 80% of the driver's throughput: {:.0}% — {}",
        throughput * 100.0,
        verdict(throughput >= 0.8)
    );
    println!(
        "  large result within 2x of psql:          {large_ratio:.2}x — {}",
        verdict(large_ratio <= 2.0)
    );
    println!(
        "  peak memory under 150 MB:                {peak_mb:.1} MB — {}",
        verdict(peak_mb < 150.0)
    );

    let raw = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "commit": git_commit(),
        "machine": machine,
        "small": {
            "query": SMALL_QUERY,
            "apiSequential": api_sequential.json(),
            "driverSequential": driver_sequential.json(),
            "apiConcurrent": api_concurrent.json(),
            "driverConcurrent": driver_concurrent.json(),
            "concurrency": CONCURRENCY,
            "driverIsolatedConcurrent": isolated_concurrent.json(),
            "httpAloneConcurrent": floor_concurrent.json(),
            "readConnectionConcurrent": metadata_concurrent.json(),
        },
        "large": {
            "query": LARGE_QUERY,
            "rows": options.rows,
            "apiSeconds": api_times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "psqlSeconds": psql_times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "apiBytes": api_bytes,
            "serverPeakBytes": peak,
        },
    });
    write_raw(&options.out, &raw)?;
    println!("\nRaw numbers: {}", options.out.display());

    let mut admin = sqlx::PgConnection::connect(&options.postgres).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop database if exists {DATABASE} with (force)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}
