//! `mako-bench-materialize`: materializes a large PostgreSQL query to Parquet through a
//! release `mako-local` (trigger, worker, ready) against DuckDB copying the same query from
//! the same database to Parquet, then serves random 64 KiB ranges of the artifact through
//! the stream route against nginx serving the same file, all in one run.
//!
//! Needs Python with `duckdb==1.4.4` and `duckdb-ext-postgres` (see
//! `infra/bench-requirements.txt`) and nginx. Build both binaries, then run this one:
//!
//! ```text
//! cargo build --release -p mako-local -p mako-bench
//! target/release/mako-bench-materialize [--postgres URL] [--rows N] [--ranges N] [--python PATH] [--out FILE]
//! ```
//!
//! It creates (and afterwards drops) the database `mako_bench_parquet`, prints a table and
//! writes the raw numbers as JSON to `--out` (default `bench-materialize.json`).

#![allow(clippy::print_stdout, reason = "a benchmark command prints its table")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mako_bench::{Run, Server, call, free_port, git_commit, measure, median, row, start_server, verdict, write_raw};
use rand::RngExt;
use serde_json::{Value, json};
use sqlx::Connection;

const DATABASE: &str = "mako_bench_parquet";
const QUERY: &str = "select * from bench_wide";
const RANGE_BYTES: u64 = 64 * 1024;
const CONCURRENCY: usize = 32;
const RUNS: usize = 3;

const USAGE: &str =
    "usage: mako-bench-materialize [--postgres URL] [--rows N] [--ranges N] [--python PATH] [--out FILE]
  --postgres  PostgreSQL server to create the database mako_bench_parquet on
              (default: $MAKO_BENCH_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres)
  --rows      rows to materialize (default 5000000)
  --ranges    random 64 KiB range requests per side and run (default 10000)
  --python    Python with duckdb 1.4.4 and duckdb-ext-postgres (default: python3)
  --out       file for the raw numbers as JSON (default bench-materialize.json)";

struct Options {
    postgres: String,
    rows: u64,
    ranges: usize,
    python: String,
    out: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        postgres: std::env::var("MAKO_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        rows: 5_000_000,
        ranges: 10_000,
        python: "python3".into(),
        out: PathBuf::from("bench-materialize.json"),
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
            "--ranges" => options.ranges = value.parse().context("--ranges takes a whole number")?,
            "--python" => options.python = value,
            "--out" => options.out = PathBuf::from(value),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(options)
}

/// Creates the database with `rows` rows of eight mixed columns.
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
    let url = mako_bench::with_database(admin_url, DATABASE)?;
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    let setup = format!(
        "create table bench_wide (
            id bigint primary key, account text not null, amount numeric(12,2), quantity integer,
            closed date, updated_at timestamptz, active boolean, score double precision);
         insert into bench_wide
           select g, 'Account ' || (g % 5000), (g::bigint * 7919 % 1000000) / 100.0, g % 1000,
                  date '2020-01-01' + (g % 2000), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
                  g % 3 = 0, g / 7.0
           from generate_series(1, {rows}) g;
         analyze bench_wide;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(url)
}

/// One build through the API: trigger, then poll until ready. Returns the wall time from the
/// trigger to the status saying ready, the status entry, and the server's peak memory.
async fn build_once(
    server: &Server,
    client: &reqwest::Client,
    dashboard: &str,
    after_revision: u64,
) -> anyhow::Result<(Duration, Value)> {
    let base = format!(
        "{}/api/workspaces/{}/dashboards/{dashboard}",
        server.base, server.workspace
    );
    let started = Instant::now();
    call(
        client
            .post(format!("{base}/materialization/trigger"))
            .bearer_auth(&server.key)
            .json(&json!({ "dataSourceId": "wide" })),
    )
    .await?;
    loop {
        let status = call(
            client
                .get(format!("{base}/materialization/status"))
                .bearer_auth(&server.key),
        )
        .await?;
        let entry = status["data"]["dataSources"][0].clone();
        if entry["status"] == "error" {
            bail!("the build failed: {entry}");
        }
        if entry["status"] == "ready" && entry["revision"].as_u64().unwrap_or(0) > after_revision {
            return Ok((started.elapsed(), entry));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// DuckDB copying the same query to ZSTD Parquet: seconds, peak memory and file size.
fn duckdb_copy(python: &str, url: &str, out: &Path) -> anyhow::Result<(Duration, u64, u64)> {
    let parsed = url::Url::parse(url)?;
    let dsn = format!(
        "host={} port={} user={} dbname={}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432),
        if parsed.username().is_empty() {
            "postgres"
        } else {
            parsed.username()
        },
        parsed.path().trim_start_matches('/')
    );
    let script = r#"
import glob, json, os, resource, sys, time
import duckdb
dsn, query, out = sys.argv[1], sys.argv[2], sys.argv[3]
found = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), '..', 'duckdb_ext', 'extensions',
                               'v' + duckdb.__version__, '*', 'postgres_scanner.duckdb_extension'))
if not found:
    sys.exit('the postgres extension for duckdb ' + duckdb.__version__ + ' is missing; pip install duckdb-ext-postgres')
con = duckdb.connect(config={'allow_unsigned_extensions': 'true'})
con.execute("SET enable_progress_bar = false")
con.execute("LOAD '" + found[0] + "'")
con.execute("ATTACH '" + dsn + "' AS pg (TYPE postgres, READ_ONLY)")
started = time.perf_counter()
con.execute("COPY (SELECT * FROM postgres_query('pg', '" + query.replace("'", "''") + "')) TO '" + out
            + "' (FORMAT parquet, COMPRESSION zstd)")
seconds = time.perf_counter() - started
print(json.dumps({'seconds': seconds, 'peakBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  'bytes': os.path.getsize(out)}))
"#;
    let output = Command::new(python)
        .args(["-c", script, &dsn, QUERY])
        .arg(out)
        .output()
        .with_context(|| format!("running {python}; install infra/bench-requirements.txt in it"))?;
    if !output.status.success() {
        bail!("DuckDB failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let result: Value = serde_json::from_slice(&output.stdout)?;
    Ok((
        Duration::from_secs_f64(result["seconds"].as_f64().unwrap_or_default()),
        result["peakBytes"].as_u64().unwrap_or_default(),
        result["bytes"].as_u64().unwrap_or_default(),
    ))
}

/// The largest file under `dir`: the artifact in the server's blob folder.
fn largest_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if best.as_ref().is_none_or(|(size, _)| meta.len() > *size) {
                best = Some((meta.len(), entry.path()));
            }
        }
    }
    best.map(|(_, path)| path).context("no artifact in the data folder")
}

/// nginx serving `file` as `/file.parquet` on a free port.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_nginx(file: &Path) -> anyhow::Result<Nginx> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root)?;
    std::fs::copy(file, root.join("file.parquet"))?;
    // nginx's workers run as an unprivileged user and must read the copy.
    use std::os::unix::fs::PermissionsExt;
    for path in [dir.path(), root.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::set_permissions(root.join("file.parquet"), std::fs::Permissions::from_mode(0o644))?;
    let port = free_port()?;
    let config = format!(
        "daemon off;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ application/vnd.apache.parquet parquet; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
",
        dir = dir.path().display(),
        root = root.display()
    );
    let config_path = dir.path().join("nginx.conf");
    std::fs::write(&config_path, config)?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&config_path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx (apt-get install nginx)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not start; see {}/error.log", dir.path().display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Nginx { child, port, _dir: dir })
}

/// One random 64 KiB range of a file of `size` bytes, checked for status and length.
async fn read_range(client: &reqwest::Client, url: &str, key: Option<&str>, size: u64) -> anyhow::Result<()> {
    let start = rand::rng().random_range(0..=size - RANGE_BYTES);
    let mut request = client
        .get(url)
        .header("range", format!("bytes={start}-{}", start + RANGE_BYTES - 1));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await?;
    if response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        bail!("expected 206, got {}", response.status());
    }
    let body = response.bytes().await?;
    if body.len() as u64 != RANGE_BYTES {
        bail!("expected {RANGE_BYTES} bytes, got {}", body.len());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!("preparing {} rows in {DATABASE}…", options.rows);
    let url = prepare(&options.postgres, options.rows).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()?;
    let settings = vec![
        ("MAKO_MATERIALIZE_MAX_ROWS", options.rows.max(1).to_string()),
        ("MAKO_MATERIALIZE_TIMEOUT_SECS", "3600".to_owned()),
        ("MAKO_WORKER_CONCURRENCY", "1".to_owned()),
    ];
    let server = start_server(&client, &url, &settings).await?;
    let dashboard = call(
        client
            .post(format!(
                "{}/api/workspaces/{}/dashboards",
                server.base, server.workspace
            ))
            .bearer_auth(&server.key)
            .json(
                &json!({ "title": "Bench", "dataSources": [{ "id": "wide", "name": "Wide",
                "connectionId": server.connection, "query": QUERY, "rowLimit": options.rows }] }),
            ),
    )
    .await?["data"]["id"]
        .as_str()
        .context("dashboard id")?
        .to_owned();
    let baseline_memory = server.peak_memory()?;

    // Alternate the two sides so that neither always runs on a warmer cache.
    let mut ours = Vec::new();
    let mut server_side = Vec::new();
    let mut theirs = Vec::new();
    let mut duckdb_peak = 0;
    let mut duckdb_bytes = 0;
    let mut entry = Value::Null;
    let peer_file = server.data.path().join("duckdb.parquet");
    for run in 0..RUNS {
        let revision = entry["revision"].as_u64().unwrap_or(0);
        let (elapsed, built) = build_once(&server, &client, &dashboard, revision).await?;
        let started: chrono::DateTime<chrono::Utc> = built["buildStartedAt"].as_str().unwrap_or_default().parse()?;
        let finished: chrono::DateTime<chrono::Utc> = built["buildFinishedAt"].as_str().unwrap_or_default().parse()?;
        server_side.push((finished - started).to_std().unwrap_or_default());
        ours.push(elapsed);
        entry = built;
        let (seconds, peak, bytes) = duckdb_copy(&options.python, &url, &peer_file)?;
        theirs.push(seconds);
        duckdb_peak = duckdb_peak.max(peak);
        duckdb_bytes = bytes;
        println!(
            "run {}: mako {:.2} s (build {:.2} s), DuckDB {:.2} s",
            run + 1,
            elapsed.as_secs_f64(),
            server_side.last().map_or(0.0, Duration::as_secs_f64),
            seconds.as_secs_f64()
        );
    }
    let peak_memory = server.peak_memory()?;
    if entry["rowCount"].as_u64() != Some(options.rows) {
        bail!("the artifact has {} rows, expected {}", entry["rowCount"], options.rows);
    }
    let size = entry["byteSize"].as_u64().context("size")?;

    let artifact = largest_file(&server.data.path().join("data/blobs/objects"))?;
    let nginx = start_nginx(&artifact).await?;
    let nginx_url = format!("http://127.0.0.1:{}/file.parquet", nginx.port);
    let stream_url = format!(
        "{}/api/workspaces/{}/dashboards/{dashboard}/materialization/stream/wide",
        server.base, server.workspace
    );
    let warm = options.ranges / 10;
    measure(warm, CONCURRENCY, || {
        read_range(&client, &stream_url, Some(&server.key), size)
    })
    .await?;
    measure(warm, CONCURRENCY, || read_range(&client, &nginx_url, None, size)).await?;
    let mut stream_runs: Vec<Run> = Vec::new();
    let mut nginx_runs: Vec<Run> = Vec::new();
    for _ in 0..RUNS {
        stream_runs.push(
            measure(options.ranges, CONCURRENCY, || {
                read_range(&client, &stream_url, Some(&server.key), size)
            })
            .await?,
        );
        nginx_runs.push(
            measure(options.ranges, CONCURRENCY, || {
                read_range(&client, &nginx_url, None, size)
            })
            .await?,
        );
    }
    let middle = |runs: &mut Vec<Run>| {
        runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
        runs.swap_remove(runs.len() / 2)
    };
    let stream = middle(&mut stream_runs);
    let peer = middle(&mut nginx_runs);

    let ours_median = median(ours.clone());
    let theirs_median = median(theirs.clone());
    let build_median = median(server_side.clone());
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!();
    println!(
        "commit {}, {} rows x 8 columns, {RUNS} runs each (medians)",
        git_commit(),
        options.rows
    );
    println!(
        "| {:<48} | {:>12} | {:>12} | {:>6} | unit",
        "measure", "mako", "peer", "ratio"
    );
    println!("|{:-<50}|{:-<14}|{:-<14}|{:-<8}|-----", "", "", "", "");
    row(
        "materialize, trigger to ready (peer: DuckDB)",
        ours_median.as_secs_f64(),
        theirs_median.as_secs_f64(),
        "s",
    );
    row(
        "materialize, build alone (peer: DuckDB)",
        build_median.as_secs_f64(),
        theirs_median.as_secs_f64(),
        "s",
    );
    row(
        "peak memory (peer: DuckDB in Python)",
        mb(peak_memory),
        mb(duckdb_peak),
        "MB",
    );
    row("Parquet file size (peer: DuckDB)", mb(size), mb(duckdb_bytes), "MB");
    row(
        "64 KiB ranges, 32 clients (peer: nginx)",
        stream.per_second(),
        peer.per_second(),
        "req/s",
    );
    row(
        "64 KiB ranges, p50 (peer: nginx)",
        stream.percentile(0.5),
        peer.percentile(0.5),
        "ms",
    );
    row(
        "64 KiB ranges, p99 (peer: nginx)",
        stream.percentile(0.99),
        peer.percentile(0.99),
        "ms",
    );
    println!();
    let faster = ours_median < theirs_median;
    let memory_ok = peak_memory < 256 * 1024 * 1024;
    let ranges_ok = stream.per_second() >= 0.8 * peer.per_second();
    println!("| goal | result |\n|---|---|");
    println!(
        "| materialize faster than DuckDB | {}: {:.2} s against {:.2} s |",
        verdict(faster),
        ours_median.as_secs_f64(),
        theirs_median.as_secs_f64()
    );
    println!(
        "| peak memory under 256 MB | {}: {:.0} MB (server baseline {:.0} MB) |",
        verdict(memory_ok),
        mb(peak_memory),
        mb(baseline_memory)
    );
    println!(
        "| ranges at least 80% of nginx | {}: {:.0}% |",
        verdict(ranges_ok),
        100.0 * stream.per_second() / peer.per_second()
    );

    let raw = json!({
        "commit": git_commit(),
        "rows": options.rows,
        "makoTriggerToReadySeconds": ours.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "makoBuildSeconds": server_side.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "duckdbSeconds": theirs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "makoPeakBytes": peak_memory,
        "makoBaselineBytes": baseline_memory,
        "duckdbPeakBytes": duckdb_peak,
        "makoFileBytes": size,
        "duckdbFileBytes": duckdb_bytes,
        "streamRanges": stream.json(),
        "nginxRanges": peer.json(),
    });
    write_raw(&options.out, &raw)?;
    drop(nginx);
    drop(server);
    let mut admin = sqlx::PgConnection::connect(&options.postgres).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop database if exists {DATABASE} with (force)"
    )))
    .execute(&mut admin)
    .await?;
    Ok(())
}
