//! API Gateway HTTP API (payload format 2.0) events, in the shape API Gateway sends them,
//! driven through `lambda_http`'s adapter into the real routers, exactly as the Lambda
//! runtime does, with the responses serialized back into API Gateway's format.

use std::collections::HashMap;
use std::path::PathBuf;

use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Service};
use mako_core::config::Config;
use mako_core::{AppState, Ports};
use serde_json::Value;

/// One function's handler as the Lambda runtime calls it.
struct Function {
    app: axum::Router,
}

impl Function {
    fn new(router: fn(AppState) -> axum::Router, state: &AppState) -> Function {
        Function {
            app: mako_lambda::lambda_app(router(state.clone()), &state.config),
        }
    }

    /// Invokes the function with a fixture, after replacing `{{NAME}}` placeholders, and
    /// returns the API Gateway response as JSON.
    async fn invoke(&self, fixture: &str, values: &[(&str, &str)]) -> Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(fixture);
        let mut text = std::fs::read_to_string(&path).expect("reading the fixture");
        for (name, value) in values {
            text = text.replace(&format!("{{{{{name}}}}}"), value);
        }
        let mut event: Value = serde_json::from_str(&text).expect("fixture JSON");
        // A base64 body is encoded after substitution, as API Gateway would have sent it.
        if event["isBase64Encoded"] == true
            && let Some(body) = event["body"].as_str()
        {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(body)
                .expect("base64 body");
            let mut plain = String::from_utf8(decoded).expect("utf-8 body");
            for (name, value) in values {
                plain = plain.replace(&format!("{{{{{name}}}}}"), value);
            }
            event["body"] = Value::String(base64::engine::general_purpose::STANDARD.encode(plain));
        }

        let request: LambdaRequest = serde_json::from_value(event).expect("an API Gateway v2 event");
        let mut adapter = Adapter::from(self.app.clone());
        let response = adapter
            .call(LambdaEvent::new(request, Context::default()))
            .await
            .expect("the handler never fails at the Lambda level");
        serde_json::to_value(response).expect("serializing the response")
    }
}

/// State on embedded adapters with the configuration a Lambda function would read.
async fn state(vars: &[(&str, &str)]) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("data folder");
    let embedded = mako_embedded::open(dir.path(), mako_embedded::Options::default())
        .await
        .expect("adapters");
    let lookup: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let config = Config::from_lookup(&lookup).expect("config");
    let state = AppState::new(
        config,
        Ports {
            store: embedded.store.clone(),
            blobs: embedded.blobs.clone(),
            queue: embedded.queue.clone(),
            secrets: embedded.secrets.clone(),
        },
    );
    std::mem::forget(embedded);
    (state, dir)
}

fn body(response: &Value) -> Value {
    let text = response["body"].as_str().unwrap_or("null");
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Returns the session token from the `cookies` field of an API Gateway v2 response.
fn session_token(response: &Value) -> String {
    response["cookies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|cookie| cookie.strip_prefix("mako_session="))
        .and_then(|rest| rest.split(';').next())
        .expect("a session cookie in the response's cookies field")
        .to_owned()
}

#[tokio::test]
async fn events_drive_auth_and_workspace_functions() {
    let (state, _dir) = state(&[]).await;
    let auth = Function::new(mako_auth::router, &state);
    let workspaces = Function::new(mako_workspaces::router, &state);

    let registered = auth
        .invoke("apigw-v2-register.json", &[("EMAIL", "lambda@example.com")])
        .await;
    assert_eq!(registered["statusCode"], 201, "{registered}");
    let cookie = registered["cookies"][0].as_str().unwrap_or_default();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "Secure behind HTTPS: {cookie}"
    );
    assert!(
        registered["headers"].get("set-cookie").is_none(),
        "payload 2.0 returns cookies separately"
    );
    assert!(registered["headers"]["x-request-id"].is_string());
    let session = session_token(&registered);

    let me = auth.invoke("apigw-v2-me.json", &[("SESSION", &session)]).await;
    assert_eq!(me["statusCode"], 200, "{me}");
    assert_eq!(body(&me)["data"]["user"]["email"], "lambda@example.com");

    let created = workspaces
        .invoke("apigw-v2-create-workspace.json", &[("SESSION", &session)])
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let workspace = body(&created)["data"]["id"].as_str().expect("workspace id").to_owned();

    let key = workspaces
        .invoke(
            "apigw-v2-create-api-key.json",
            &[("SESSION", &session), ("WORKSPACE", &workspace), ("ROLE", "viewer")],
        )
        .await;
    assert_eq!(key["statusCode"], 201, "{key}");
    let key = body(&key)["data"]["key"].as_str().expect("key").to_owned();

    let listed = workspaces
        .invoke("apigw-v2-list-workspaces-key.json", &[("KEY", &key)])
        .await;
    assert_eq!(listed["statusCode"], 200, "{listed}");
    assert_eq!(body(&listed)["data"][0]["id"], workspace.as_str());
    assert_eq!(body(&listed)["data"][0]["role"], "viewer");
}

#[tokio::test]
async fn base64_encoded_body_is_decoded() {
    let (state, _dir) = state(&[]).await;
    let auth = Function::new(mako_auth::router, &state);
    auth.invoke("apigw-v2-register.json", &[("EMAIL", "b64@example.com")])
        .await;

    let login = auth
        .invoke("apigw-v2-login-base64.json", &[("EMAIL", "b64@example.com")])
        .await;

    assert_eq!(login["statusCode"], 200, "{login}");
    assert_eq!(body(&login)["data"]["user"]["email"], "b64@example.com");
}

#[tokio::test]
async fn rate_limits_count_the_gateway_source_ip() {
    let (state, _dir) = state(&[("MAKO_REGISTRATIONS_PER_ADDRESS", "2")]).await;
    let auth = Function::new(mako_auth::router, &state);
    for email in ["ip1@example.com", "ip2@example.com"] {
        let response = auth.invoke("apigw-v2-register.json", &[("EMAIL", email)]).await;
        assert_eq!(response["statusCode"], 201);
    }

    let third = auth
        .invoke("apigw-v2-register.json", &[("EMAIL", "ip3@example.com")])
        .await;
    assert_eq!(third["statusCode"], 429, "{third}");
    assert!(third["headers"]["retry-after"].is_string());

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/apigw-v2-register.json");
    let other_ip = std::fs::read_to_string(path)
        .expect("fixture")
        .replace("198.51.100.7", "203.0.113.9");
    let other_path = _dir.path().join("other-ip.json");
    std::fs::write(&other_path, other_ip).expect("fixture copy");
    let other = Function::new(mako_auth::router, &state);
    let response = other
        .invoke(other_path.to_str().expect("path"), &[("EMAIL", "ip4@example.com")])
        .await;
    assert_eq!(
        response["statusCode"], 201,
        "another address has its own count: {response}"
    );
}

#[tokio::test]
async fn unknown_route_returns_a_json_404() {
    let (state, _dir) = state(&[]).await;
    let auth = Function::new(mako_auth::router, &state);

    let response = auth.invoke("apigw-v2-unknown-route.json", &[]).await;

    assert_eq!(response["statusCode"], 404);
    assert_eq!(body(&response)["code"], "NOT_FOUND");
}

/// Registers a user and creates a workspace through the functions; returns the session and
/// the workspace id.
async fn signed_in_workspace(state: &AppState, email: &str) -> (String, String) {
    let auth = Function::new(mako_auth::router, state);
    let workspaces = Function::new(mako_workspaces::router, state);
    let registered = auth.invoke("apigw-v2-register.json", &[("EMAIL", email)]).await;
    let session = session_token(&registered);
    let created = workspaces
        .invoke("apigw-v2-create-workspace.json", &[("SESSION", &session)])
        .await;
    let workspace = body(&created)["data"]["id"].as_str().expect("workspace id").to_owned();
    (session, workspace)
}

#[tokio::test]
async fn the_cloud_address_guard_refuses_internal_hosts() {
    let (state, _dir) = state(&[]).await;
    let (session, workspace) = signed_in_workspace(&state, "guard@example.com").await;
    let connectors = Function::new(mako_connectors::router, &state);
    let create = |host: &'static str, test: &'static str| {
        let session = session.clone();
        let workspace = workspace.clone();
        let connectors = &connectors;
        async move {
            connectors
                .invoke(
                    "apigw-v2-create-connection.json",
                    &[
                        ("SESSION", &session),
                        ("WORKSPACE", &workspace),
                        ("TYPE", "postgresql"),
                        ("HOST", host),
                        ("PORT", "5432"),
                        ("DATABASE", "postgres"),
                        ("TEST", test),
                    ],
                )
                .await
        }
    };

    for host in [
        "169.254.169.254",
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "::1",
        "fd00::1",
        "100.64.0.1",
        "0.0.0.0",
    ] {
        let response = create(host, "false").await;
        assert_eq!(response["statusCode"], 400, "{host}: {response}");
        assert_eq!(body(&response)["code"], "ADDRESS_NOT_ALLOWED", "{host}");
    }

    // A name is checked when it is resolved: saving works, connecting does not.
    let saved = create("localhost", "false").await;
    assert_eq!(saved["statusCode"], 201, "{saved}");
    let connection = body(&saved)["data"]["id"].as_str().expect("id").to_owned();
    let tested = connectors
        .invoke(
            "apigw-v2-test-connection.json",
            &[
                ("SESSION", &session),
                ("WORKSPACE", &workspace),
                ("CONNECTION", &connection),
            ],
        )
        .await;
    assert_eq!(tested["statusCode"], 400, "{tested}");
    assert_eq!(body(&tested)["code"], "ADDRESS_NOT_ALLOWED");

    let sqlite = connectors
        .invoke(
            "apigw-v2-create-connection.json",
            &[
                ("SESSION", &session),
                ("WORKSPACE", &workspace),
                ("TYPE", "sqlite"),
                ("HOST", "x"),
                ("PORT", "1"),
                ("DATABASE", "x"),
                ("TEST", "false"),
            ],
        )
        .await;
    assert_eq!(sqlite["statusCode"], 400, "SQLite is for the local server: {sqlite}");
}

#[tokio::test]
async fn an_allowed_network_is_reachable_and_execute_runs_on_lambda() {
    let Some(url) = mako_tests::services::service_address("MAKO_TEST_POSTGRES_URL", "a PostgreSQL server") else {
        return;
    };
    let url = url::Url::parse(&url).expect("PostgreSQL URL");
    let (state, _dir) = state(&[("MAKO_ALLOWED_DATABASE_NETWORKS", "127.0.0.0/8")]).await;
    let (session, workspace) = signed_in_workspace(&state, "allowed@example.com").await;
    let connectors = Function::new(mako_connectors::router, &state);
    let execute = Function::new(mako_execute::router, &state);

    let port = url.port().unwrap_or(5432).to_string();
    let created = connectors
        .invoke(
            "apigw-v2-create-connection.json",
            &[
                ("SESSION", &session),
                ("WORKSPACE", &workspace),
                ("TYPE", "postgresql"),
                ("HOST", url.host_str().unwrap_or("127.0.0.1")),
                ("PORT", &port),
                ("DATABASE", url.path().trim_start_matches('/')),
                ("TEST", "true"),
            ],
        )
        .await;
    assert_eq!(created["statusCode"], 201, "{created}");
    let connection = body(&created)["data"]["id"].as_str().expect("id").to_owned();

    let result = execute
        .invoke(
            "apigw-v2-execute.json",
            &[
                ("SESSION", &session),
                ("WORKSPACE", &workspace),
                ("CONNECTION", &connection),
                ("QUERY", "select 41 + 1 as answer, 9007199254740993::int8 as big"),
            ],
        )
        .await;
    assert_eq!(result["statusCode"], 200, "{result}");
    assert_eq!(
        body(&result)["data"]["rows"],
        serde_json::json!([[42, "9007199254740993"]])
    );
    assert_eq!(result["headers"]["content-type"], "application/json");

    // The same connection through the consoles function: save, then export by id as CSV.
    let consoles = Function::new(mako_consoles::router, &state);
    let saved = consoles
        .invoke(
            "apigw-v2-create-console.json",
            &[
                ("SESSION", &session),
                ("WORKSPACE", &workspace),
                ("CONNECTION", &connection),
            ],
        )
        .await;
    assert_eq!(saved["statusCode"], 201, "{saved}");
    let console = body(&saved)["data"]["id"].as_str().expect("id").to_owned();
    let exported = consoles
        .invoke(
            "apigw-v2-run-console-csv.json",
            &[("SESSION", &session), ("WORKSPACE", &workspace), ("CONSOLE", &console)],
        )
        .await;
    assert_eq!(exported["statusCode"], 200, "{exported}");
    assert_eq!(exported["headers"]["x-row-count"], "1");
    let csv = match exported["isBase64Encoded"].as_bool() {
        Some(true) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(exported["body"].as_str().expect("body"))
                .expect("base64 body");
            String::from_utf8(bytes).expect("UTF-8 CSV")
        }
        _ => exported["body"].as_str().expect("body").to_owned(),
    };
    assert_eq!(csv, "\u{feff}answer,text\r\n42,\"a,\"\"b\"\"\"\r\n");
}

/// Sends a request with an API key straight to a function's router, as API Gateway would.
async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
    range: Option<&str>,
) -> axum::response::Response {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string())),
        None => request.body(axum::body::Body::empty()),
    }
    .expect("request");
    app.clone().oneshot(request).await.expect("the router answers")
}

async fn json_of(response: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The worker function builds a job from an SQS event as the event source mapping delivers
/// it, on DynamoDB, S3 and SQS (the emulator), and the stream route serves the file from S3:
/// small ranges through the function, large reads as a redirect to a presigned URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_function_builds_from_sqs_events_and_s3_serves_ranges() {
    let Some(endpoint) = mako_tests::services::aws_endpoint() else {
        return;
    };
    let Some(database) = mako_tests::databases::TestDatabase::postgres().await else {
        return;
    };
    database
        .run("create table wide as select g as id, md5(g::text) as a, md5((g * 7)::text) as b, md5((g * 13)::text) as c from generate_series(1, 200000) g")
        .await;
    let resources = mako_aws::provision::Resources::unique("mako-worker");
    let settings = mako_aws::provision::provision(Some(&endpoint), "us-east-1", &resources, 3)
        .await
        .expect("emulator resources");
    let adapters = mako_aws::connect(&settings).await.expect("adapters");
    let lookup: HashMap<String, String> = [("MAKO_ALLOWED_DATABASE_NETWORKS", "127.0.0.0/8")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let state = AppState::new(
        Config::from_lookup(&lookup).expect("config"),
        Ports {
            store: adapters.store.clone(),
            blobs: adapters.blobs.clone(),
            queue: adapters.queue.clone(),
            secrets: adapters.secrets.clone(),
        },
    );
    let (session, workspace) = signed_in_workspace(&state, "worker@example.com").await;
    let workspaces = Function::new(mako_workspaces::router, &state);
    let key = workspaces
        .invoke(
            "apigw-v2-create-api-key.json",
            &[("SESSION", &session), ("WORKSPACE", &workspace), ("ROLE", "admin")],
        )
        .await;
    let key = body(&key)["data"]["key"].as_str().expect("key").to_owned();

    let connectors = mako_lambda::lambda_app(mako_connectors::router(state.clone()), &state.config);
    let url = url::Url::parse(database.url.as_deref().expect("url")).expect("url");
    let created = call(
        &connectors,
        "POST",
        &format!("/api/workspaces/{workspace}/connectors"),
        &key,
        Some(serde_json::json!({ "name": "Warehouse", "type": "postgresql", "host": url.host_str(),
            "port": url.port().unwrap_or(5432), "database": url.path().trim_start_matches('/'), "username": url.username(), "tls": "disable" })),
        None,
    )
    .await;
    let created = json_of(created).await;
    let connection = created["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();

    let dashboards = mako_lambda::lambda_app(mako_dashboards::router(state.clone()), &state.config);
    let base = format!("/api/workspaces/{workspace}/dashboards");
    let dashboard = json_of(
        call(
            &dashboards,
            "POST",
            &base,
            &key,
            Some(
                serde_json::json!({ "title": "Wide", "dataSources": [{ "id": "wide", "name": "Wide",
                "connectionId": connection, "query": "select * from wide order by id" }] }),
            ),
            None,
        )
        .await,
    )
    .await;
    let id = dashboard["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{dashboard}"))
        .to_owned();
    let triggered = call(
        &dashboards,
        "POST",
        &format!("{base}/{id}/materialization/trigger"),
        &key,
        Some(serde_json::json!({ "dataSourceId": "wide" })),
        None,
    )
    .await;
    assert_eq!(triggered.status(), 202);

    // Take the message off SQS the way the event source mapping does and build the event.
    let received = adapters
        .sqs
        .client()
        .receive_message()
        .queue_url(&settings.queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(60)
        .wait_time_seconds(5)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive");
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mako-jobs.fifo",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    assert_eq!(records.len(), 1, "one job was queued");
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SQS event");
    let response = mako_worker::handle(&state, &adapters.sqs, event).await;
    assert!(response.batch_item_failures.is_empty(), "the job succeeded");

    let status = json_of(
        call(
            &dashboards,
            "GET",
            &format!("{base}/{id}/materialization/status"),
            &key,
            None,
            None,
        )
        .await,
    )
    .await;
    let entry = &status["data"]["dataSources"][0];
    assert_eq!(entry["status"], "ready", "{entry}");
    assert_eq!(entry["rowCount"], 200000);
    let size = entry["byteSize"].as_u64().expect("size");
    assert!(size > 4 * 1024 * 1024, "large enough to be redirected: {size}");

    // A small range goes through the function.
    let stream = format!("{base}/{id}/materialization/stream/wide");
    let ranged = call(&dashboards, "GET", &stream, &key, None, Some("bytes=-4")).await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes {}-{}/{size}", size - 4, size - 1).as_str()
    );
    let tail = axum::body::to_bytes(ranged.into_body(), usize::MAX)
        .await
        .expect("tail");
    assert_eq!(&tail[..], b"PAR1");

    // The whole file is a redirect to S3, which serves ranges itself.
    let whole = call(&dashboards, "GET", &stream, &key, None, None).await;
    assert_eq!(whole.status(), 307);
    let location = whole.headers()["location"].to_str().expect("location").to_owned();
    let signed = mako_tests::http_client()
        .get(&location)
        .header("range", "bytes=0-3")
        .send()
        .await
        .expect("presigned read");
    assert_eq!(signed.status(), 206);
    assert_eq!(&signed.bytes().await.expect("head")[..], b"PAR1");
    database.drop_database().await;
}

#[tokio::test]
async fn agent_function_streams_frames() {
    use futures::StreamExt;
    use mako_tests::fake_models::{FakeModels, Piece, Protocol, Reply};

    let fake = FakeModels::start(Protocol::Anthropic, Some("sk-ant-lambda")).await;
    fake.push(Reply::Stream(vec![
        Piece::text("one"),
        Piece::Delay(std::time::Duration::from_millis(500)),
        Piece::text("two"),
        Piece::Delay(std::time::Duration::from_millis(500)),
        Piece::text("three"),
    ]));
    let (state, _dir) = state(&[
        ("MAKO_ANTHROPIC_API_KEY", "sk-ant-lambda"),
        ("MAKO_ANTHROPIC_BASE_URL", fake.base_url.as_str()),
    ])
    .await;
    let (session, workspace) = signed_in_workspace(&state, "stream@example.com").await;
    let workspaces = Function::new(mako_workspaces::router, &state);
    let key = workspaces
        .invoke(
            "apigw-v2-create-api-key.json",
            &[("SESSION", &session), ("WORKSPACE", &workspace), ("ROLE", "member")],
        )
        .await;
    let key = body(&key)["data"]["key"].as_str().expect("key").to_owned();

    // The function URL event, through the adapter `run_with_streaming_response` uses.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/function-url-agent-chat.json");
    let text = std::fs::read_to_string(path)
        .expect("fixture")
        .replace("{{KEY}}", &key)
        .replace("{{WORKSPACE}}", &workspace);
    let request: LambdaRequest = serde_json::from_str(&text).expect("a function URL event");
    let app = mako_lambda::streaming_app(mako_agent::router(state.clone()), &state.config);
    let mut adapter = lambda_http::StreamAdapter::from(app);
    let started = std::time::Instant::now();
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .expect("the handler never fails at the Lambda level");
    let prelude = &response.metadata_prelude;
    assert_eq!(prelude.status_code, 200);
    assert_eq!(prelude.headers["content-type"], "text/event-stream");
    assert_eq!(prelude.headers["x-vercel-ai-ui-message-stream"], "v1");
    assert!(prelude.headers.get("content-encoding").is_none());

    let mut stream = response.stream;
    let mut delta_times = Vec::new();
    let mut all = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("a body chunk");
        let text = String::from_utf8_lossy(&chunk).into_owned();
        if text.contains("\"text-delta\"") {
            delta_times.push(started.elapsed());
        }
        all.push_str(&text);
    }
    assert!(all.ends_with("data: [DONE]\n\n"), "{all}");
    assert_eq!(delta_times.len(), 3, "each delta is its own chunk: {all}");
    let least = std::time::Duration::from_millis(350);
    assert!(delta_times[1] - delta_times[0] >= least, "{delta_times:?}");
    assert!(delta_times[2] - delta_times[1] >= least, "{delta_times:?}");
}
