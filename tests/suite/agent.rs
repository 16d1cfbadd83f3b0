//! The agent and chats through HTTP, against local fakes of the Anthropic and OpenAI
//! streaming APIs. The tests cover the model catalogue and the UI message stream, read raw
//! by a plain SSE client and by the `ai` package under Node. Tools really run against the
//! sample database and PostgreSQL. Provider failures, disconnects and chat history follow.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mako_tests::app::Client;
use mako_tests::databases::TestDatabase;
use mako_tests::fake_models::{FakeModels, Piece, Protocol, Quirks, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::connections::{Team, body_for};

/// One frame of the stream, with the time it arrived.
#[derive(Debug, Clone)]
struct Frame {
    event: Option<String>,
    data: String,
    at: Duration,
}

impl Frame {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// A read chat response: headers, frames and comment lines.
struct Streamed {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    frames: Vec<Frame>,
    comments: usize,
    body: String,
}

impl Streamed {
    fn chunks(&self) -> Vec<Value> {
        self.frames
            .iter()
            .filter(|frame| frame.data != "[DONE]")
            .map(Frame::json)
            .collect()
    }

    fn types(&self) -> Vec<String> {
        self.frames
            .iter()
            .map(|frame| {
                if frame.data == "[DONE]" {
                    "[DONE]".to_owned()
                } else {
                    frame.kind()
                }
            })
            .collect()
    }

    fn of_type(&self, kind: &str) -> Vec<Value> {
        self.chunks()
            .into_iter()
            .filter(|chunk| chunk["type"] == kind)
            .collect()
    }

    fn finish(&self) -> Value {
        self.of_type("finish").pop().unwrap_or(Value::Null)
    }

    fn chat_id(&self) -> String {
        self.headers
            .get("x-chat-id")
            .and_then(|value| value.to_str().ok())
            .expect("the x-chat-id header")
            .to_owned()
    }
}

/// Sends a chat request and reads the raw stream as a plain SSE client, noting when each
/// frame arrived.
async fn chat_raw(client: &Client, body: Value, extra: &[(&str, &str)]) -> Streamed {
    let started = Instant::now();
    let mut request = client.request(reqwest::Method::POST, "/api/agent/chat").json(&body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let mut response = request.send().await.expect("sending the chat request");
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = String::new();
    let mut frames = Vec::new();
    let mut comments = 0;
    let mut pending = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), response.chunk())
        .await
        .expect("the stream stalled for 60 s")
        .expect("reading the stream")
    {
        let text = String::from_utf8(chunk.to_vec()).expect("UTF-8 frames");
        body.push_str(&text);
        pending.push_str(&text);
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') {
                    comments += 1;
                } else if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push(value.to_owned());
                }
            }
            if !data.is_empty() {
                frames.push(Frame {
                    event,
                    data: data.join("\n"),
                    at: started.elapsed(),
                });
            }
        }
    }
    Streamed {
        status,
        headers,
        frames,
        comments,
        body,
    }
}

/// Settings of a server that talks to `fake`.
fn provider_vars(fake: &FakeModels, protocol: Protocol) -> Vec<(&'static str, String)> {
    match protocol {
        Protocol::Anthropic => vec![
            ("MAKO_ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
            ("MAKO_ANTHROPIC_BASE_URL", fake.base_url.clone()),
        ],
        Protocol::OpenAi => vec![
            ("MAKO_OPENAI_API_KEY", "sk-openai-test".to_owned()),
            ("MAKO_OPENAI_BASE_URL", fake.base_url.clone()),
            ("MAKO_OPENAI_MODELS", "gpt-4.1,llama3.1:8b".to_owned()),
        ],
    }
}

/// Starts a team on a server with the sample database and one fake provider.
async fn team_with(protocol: Protocol, extra: &[(&str, &str)]) -> (Team, FakeModels) {
    let key = match protocol {
        Protocol::Anthropic => "sk-ant-test",
        Protocol::OpenAi => "sk-openai-test",
    };
    let fake = FakeModels::start(protocol, Some(key)).await;
    let vars = provider_vars(&fake, protocol);
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(name, value)| (*name, value.as_str())).collect();
    all.push(("MAKO_SAMPLE_DATABASE", "true"));
    all.extend_from_slice(extra);
    (Team::new(&all).await, fake)
}

fn question(team: &Team, text: &str) -> Value {
    json!({
        "messages": [{ "role": "user", "content": text }],
        "workspaceId": team.workspace,
    })
}

fn chat_path(team: &Team, rest: &str) -> String {
    format!("/api/workspaces/{}/chats{rest}", team.workspace)
}

#[tokio::test]
async fn models_list_providers_and_disabled_models() {
    // No provider: an empty list, and the chat error names the settings to configure.
    let bare = Team::new(&[]).await;
    let (status, body) = bare.owner.get("/api/agent/models").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]));
    let (status, body) = bare.owner.post("/api/agent/chat", question(&bare, "hi")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "PROVIDER_NOT_CONFIGURED");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("MAKO_ANTHROPIC_API_KEY")),
        "{body}"
    );

    // Anthropic by key with its well-known models; an OpenAI-compatible server by URL only,
    // whose models are read from its /models.
    let anthropic = FakeModels::start(Protocol::Anthropic, Some("sk-ant-test")).await;
    let local = FakeModels::start(Protocol::OpenAi, None).await;
    local.set_models(&["llama3.1:8b", "qwen2.5:7b"]);
    let team = Team::new(&[
        ("MAKO_ANTHROPIC_API_KEY", "sk-ant-test"),
        ("MAKO_ANTHROPIC_BASE_URL", anthropic.base_url.as_str()),
        ("MAKO_OPENAI_BASE_URL", local.base_url.as_str()),
        ("MAKO_AGENT_DEFAULT_MODEL", "llama3.1:8b"),
    ])
    .await;
    let (status, body) = team.member.get("/api/agent/models").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let models = body["data"].as_array().expect("models").clone();
    let ids: Vec<&str> = models.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"claude-sonnet-4-20250514"), "{ids:?}");
    assert!(ids.contains(&"qwen2.5:7b"), "{ids:?}");
    let llama = models.iter().find(|m| m["id"] == "llama3.1:8b").expect("llama");
    assert_eq!(llama["provider"], "openai");
    assert_eq!(llama["default"], true);
    assert!(
        llama["capabilities"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("tools")))
    );
    let sonnet = models
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-20250514")
        .expect("sonnet");
    assert_eq!(sonnet["displayName"], "Claude Sonnet 4");
    assert_eq!(models.iter().filter(|m| m["default"] == true).count(), 1);

    // Members cannot turn models off; admins can, and the workspace's list shows it.
    let workspace = format!("/api/workspaces/{}", team.workspace);
    let (status, body) = team
        .member
        .put(&workspace, json!({ "disabledModels": ["llama3.1:8b"] }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = team
        .admin
        .put(&workspace, json!({ "disabledModels": ["llama3.1:8b", "bad\nid"] }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = team
        .admin
        .put(&workspace, json!({ "disabledModels": ["llama3.1:8b"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["disabledModels"], json!(["llama3.1:8b"]));
    let (_, body) = team
        .member
        .get(&format!("/api/agent/models?workspaceId={}", team.workspace))
        .await;
    let models = body["data"].as_array().expect("models").clone();
    let llama = models.iter().find(|m| m["id"] == "llama3.1:8b").expect("llama");
    assert_eq!(llama["enabled"], false);
    assert_eq!(llama["default"], false);
    assert_eq!(models.iter().filter(|m| m["default"] == true).count(), 1);

    let mut body = question(&team, "hi");
    body["model"] = json!("llama3.1:8b");
    let (status, answer) = team.member.post("/api/agent/chat", body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["code"], "MODEL_DISABLED");
    body["model"] = json!("no-such-model");
    let (status, answer) = team.member.post("/api/agent/chat", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("claude-sonnet-4-20250514")),
        "{answer}"
    );
}

#[tokio::test]
async fn text_reply_streams_and_is_stored() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    fake.push(Reply::Stream(vec![
        Piece::text("Hello"),
        Piece::text(", revenue "),
        Piece::text("team."),
    ]));
    let streamed = chat_raw(&team.member, question(&team, "Say hello to\nthe team"), &[]).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    let header = |name: &str| {
        streamed
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert_eq!(header("x-vercel-ai-ui-message-stream"), "v1");
    assert!(header("content-type").starts_with("text/event-stream"));
    assert!(header("cache-control").contains("no-cache"));
    assert_eq!(header("x-accel-buffering"), "no");

    assert_eq!(
        streamed.types(),
        [
            "start",
            "start-step",
            "text-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "text-end",
            "finish-step",
            "finish",
            "[DONE]"
        ]
    );
    // Every frame names its event after the chunk type, and the last frame has no name.
    for frame in &streamed.frames {
        if frame.data == "[DONE]" {
            assert_eq!(frame.event, None);
        } else {
            assert_eq!(frame.event.as_deref(), Some(frame.kind().as_str()));
        }
    }
    let text: String = streamed
        .of_type("text-delta")
        .iter()
        .filter_map(|chunk| chunk["delta"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello, revenue team.");
    let start = &streamed.of_type("start")[0];
    let chat_id = streamed.chat_id();
    assert_eq!(start["messageMetadata"]["chatId"], chat_id.as_str());
    let finish = streamed.finish();
    assert_eq!(finish["finishReason"], "stop");
    let sent = fake.usage();
    let expected_input: u64 = sent.iter().map(|usage| usage.input_tokens).sum();
    assert_eq!(finish["messageMetadata"]["usage"]["inputTokens"], expected_input);
    assert_eq!(finish["messageMetadata"]["usage"]["outputTokens"], 3);

    // The model got the question, the tools and the system prompt, as Anthropic expects them.
    let request = &fake.requests()[0];
    assert_eq!(request["model"], "claude-sonnet-4-20250514");
    assert_eq!(request["messages"][0]["content"][0]["text"], "Say hello to\nthe team");
    assert!(request["tools"].as_array().is_some_and(|tools| tools.len() == 7));
    assert!(request["system"].as_str().is_some_and(|s| s.contains("Team")));

    // The exchange is stored: the title comes from the question's first line.
    let (status, chat) = team.member.get(&chat_path(&team, &format!("/{chat_id}"))).await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    let chat = &chat["data"];
    assert_eq!(chat["title"], "Say hello to");
    assert_eq!(chat["messageCount"], 2);
    assert_eq!(chat["model"], "claude-sonnet-4-20250514");
    assert_eq!(chat["usage"]["outputTokens"], 3);
    let messages = chat["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["id"], start["messageId"]);
    let parts = messages[1]["parts"].as_array().expect("parts");
    assert_eq!(parts[0]["type"], "step-start");
    assert_eq!(parts[1]["text"], "Hello, revenue team.");
    assert_eq!(messages[1]["metadata"]["finishReason"], "stop");
}

#[tokio::test]
async fn tools_query_the_sample_database() {
    let (team, fake) = team_with(Protocol::OpenAi, &[]).await;
    let sample = team.sample_connection().await;
    let sql = "SELECT count(*) AS accounts FROM accounts";
    fake.push(Reply::Stream(vec![
        Piece::text("Let me check."),
        Piece::tool_call("call_list", "list_connections", &["{}"]),
    ]));
    fake.push(Reply::Stream(vec![Piece::tool_call(
        "call_query",
        "run_query",
        &[
            "{\"connectionId\": ",
            &format!("\"{sample}\", "),
            "\"query\": ",
            &serde_json::to_string(sql).expect("json"),
            "}",
        ],
    )]));
    fake.push(Reply::Stream(vec![Piece::text("You have customers.")]));

    let mut body = question(&team, "How many customers do we have?");
    body["model"] = json!("gpt-4.1");
    let streamed = chat_raw(&team.viewer, body, &[]).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    let types = streamed.types();
    assert_eq!(types.iter().filter(|t| *t == "start-step").count(), 3, "{types:?}");
    assert_eq!(
        types.iter().filter(|t| *t == "tool-input-start").count(),
        2,
        "{types:?}"
    );
    let result_events: Vec<&Frame> = streamed
        .frames
        .iter()
        .filter(|f| f.kind() == "tool-output-available")
        .collect();
    assert_eq!(result_events.len(), 2, "{}", streamed.body);
    assert!(result_events.iter().all(|f| f.event.as_deref() == Some("tool-result")));

    let inputs = streamed.of_type("tool-input-available");
    assert_eq!(inputs[1]["toolName"], "run_query");
    assert_eq!(inputs[1]["input"]["query"], sql);
    let outputs = streamed.of_type("tool-output-available");
    let connections = outputs[0]["output"]["connections"].as_array().expect("connections");
    assert!(connections.iter().any(|c| c["id"] == sample.as_str()));

    // The query's rows are the ones /api/execute returns.
    let (status, executed) = team
        .viewer
        .post(
            "/api/execute",
            json!({ "workspaceId": team.workspace, "connectionId": sample, "query": sql }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{executed}");
    assert_eq!(outputs[1]["output"]["rows"], executed["data"]["rows"]);
    assert_eq!(outputs[1]["output"]["columns"][0]["name"], "accounts");

    // Each tool result went back to the model with the id of its call.
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let tool_message = requests[2]["messages"]
        .as_array()
        .and_then(|messages| messages.iter().find(|m| m["tool_call_id"] == "call_query"))
        .expect("the query's result in the third request");
    let count = executed["data"]["rows"][0][0].to_string();
    let content = tool_message["content"].as_str().unwrap_or_default();
    assert!(content.contains("1 rows"), "{tool_message}");
    assert!(content.contains(count.trim_matches('"')), "{tool_message}");
    let finish = streamed.finish();
    assert_eq!(finish["finishReason"], "stop");
    assert_eq!(finish["messageMetadata"]["steps"], 3);
}

#[tokio::test]
async fn postgres_queries_run_read_only() {
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    database
        .run("CREATE TABLE deals (id int primary key, amount numeric(12,2), stage text); INSERT INTO deals VALUES (1, 1200.50, 'won'), (2, 300, 'lost'), (3, 99.99, 'won')")
        .await;
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    let connection = team.connect(body_for(&database, "Warehouse")).await;

    fake.push(Reply::Stream(vec![
        Piece::tool_call(
            "toolu_describe",
            "describe_table",
            &[&format!("{{\"connectionId\":\"{connection}\","), "\"table\":\"deals\"}"],
        ),
        Piece::tool_call(
            "toolu_write",
            "run_query",
            &[&format!(
                "{{\"connectionId\":\"{connection}\",\"query\":\"DELETE FROM deals\"}}"
            )],
        ),
    ]));
    fake.push(Reply::Stream(vec![Piece::tool_call(
        "toolu_sum",
        "run_query",
        &[
            &format!("{{\"connectionId\":\"{connection}\","),
            "\"query\":\"SELECT stage, sum(amount) AS total FROM deals GROUP BY stage ORDER BY stage\"}",
        ],
    )]));
    fake.push(Reply::Stream(vec![Piece::text("Won deals total 1300.49.")]));

    let streamed = chat_raw(&team.owner, question(&team, "What did we win?"), &[]).await;
    assert_eq!(streamed.status, StatusCode::OK, "{}", streamed.body);
    let outputs = streamed.of_type("tool-output-available");
    let describe = &outputs[0]["output"];
    let columns: Vec<&str> = describe["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["id", "amount", "stage"]);
    assert_eq!(describe["sample"]["rows"].as_array().map(Vec::len), Some(3));
    let errors = streamed.of_type("tool-output-error");
    assert_eq!(errors.len(), 1, "the DELETE is refused");
    assert_eq!(errors[0]["toolCallId"], "toolu_write");
    assert_eq!(
        outputs[1]["output"]["rows"],
        json!([["lost", "300.00"], ["won", "1300.49"]])
    );
    let remaining = database.run("SELECT count(*) FROM deals").await;
    assert_eq!(
        remaining.result_sets[0].rows[0][0],
        mako_databases::value::Cell::big_int(3)
    );

    // The refusal reached the model as an error result of its call.
    let second = &fake.requests()[1];
    let results = second["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|message| message["content"].as_array())
        .expect("tool results");
    let refused = results
        .iter()
        .find(|block| block["tool_use_id"] == "toolu_write")
        .expect("the refusal");
    assert_eq!(refused["is_error"], true);
    assert!(
        refused["content"]
            .as_str()
            .is_some_and(|c| c.contains("only allows reading")),
        "{refused}"
    );
    database.drop_database().await;
}

#[tokio::test]
async fn openai_compatible_quirks_parse() {
    let quirks = [
        Quirks {
            omit_tool_index: true,
            ..Quirks::default()
        },
        Quirks {
            whole_call_in_one_chunk: true,
            ..Quirks::default()
        },
        Quirks {
            arguments_as_object: true,
            ..Quirks::default()
        },
        Quirks {
            interleave_tool_calls: true,
            ..Quirks::default()
        },
    ];
    for quirk in quirks {
        let (team, fake) = team_with(Protocol::OpenAi, &[]).await;
        let fake = fake.with_quirks(quirk);
        let sample = team.sample_connection().await;
        // Two calls in one response (parallel tool calls), arguments in fragments.
        fake.push(Reply::Stream(vec![
            Piece::tool_call(
                "call_a",
                "list_tables",
                &["{\"connec", &format!("tionId\": \"{sample}\"}}")],
            ),
            Piece::tool_call(
                "call_b",
                "run_query",
                &[
                    &format!("{{\"connectionId\": \"{sample}\", "),
                    "\"query\": \"SELECT 40 + 2 AS answer\"}",
                ],
            ),
        ]));
        fake.push(Reply::Stream(vec![Piece::text("42.")]));
        let streamed = chat_raw(&team.member, question(&team, "tables and a sum"), &[]).await;
        assert_eq!(streamed.status, StatusCode::OK, "{quirk:?}: {}", streamed.body);
        assert!(
            streamed.of_type("tool-output-error").is_empty(),
            "{quirk:?}: {}",
            streamed.body
        );
        let outputs = streamed.of_type("tool-output-available");
        assert_eq!(outputs.len(), 2, "{quirk:?}: {}", streamed.body);
        let by_id = |id: &str| {
            outputs
                .iter()
                .find(|o| o["toolCallId"] == id)
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert!(
            by_id("call_a")["output"]["tables"]
                .as_array()
                .is_some_and(|t| t.len() > 3),
            "{quirk:?}"
        );
        let answer = by_id("call_b")["output"]["rows"][0][0].to_string();
        assert_eq!(answer.trim_matches('"'), "42", "{quirk:?}");
        assert_eq!(streamed.finish()["finishReason"], "stop", "{quirk:?}");
    }
}

#[tokio::test]
async fn provider_failures_send_error_frames() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;

    fake.push(Reply::Stream(vec![
        Piece::text("Partial"),
        Piece::Error("Overloaded".into()),
    ]));
    let streamed = chat_raw(&team.member, question(&team, "first"), &[]).await;
    assert_eq!(streamed.status, StatusCode::OK);
    let types = streamed.types();
    assert_eq!(
        &types[types.len() - 4..],
        ["error", "finish-step", "finish", "[DONE]"],
        "{types:?}"
    );
    assert!(
        types.contains(&"text-end".to_owned()),
        "the open text is closed: {types:?}"
    );
    let error = &streamed.of_type("error")[0];
    assert!(
        error["errorText"].as_str().is_some_and(|e| e.contains("Overloaded")),
        "{error}"
    );
    assert_eq!(streamed.finish()["finishReason"], "error");
    let chat_id = streamed.chat_id();

    // A rate limit is an error frame naming the wait; the chat stays usable.
    fake.push(Reply::Status {
        status: 429,
        message: "Number of request tokens has exceeded your per-minute rate limit".into(),
        retry_after: Some(17),
    });
    let mut body = question(&team, "second");
    body["chatId"] = json!(chat_id);
    let streamed = chat_raw(&team.member, body.clone(), &[]).await;
    let error = &streamed.of_type("error")[0];
    let text = error["errorText"].as_str().unwrap_or_default();
    assert!(text.contains("rate limiting"), "{text}");
    assert!(text.contains("17 s"), "{text}");

    // A wrong key is named as such.
    fake.push(Reply::Status {
        status: 401,
        message: "invalid x-api-key".into(),
        retry_after: None,
    });
    body["messages"] = json!([{ "role": "user", "content": "third" }]);
    let streamed = chat_raw(&team.member, body, &[]).await;
    let text = streamed.of_type("error")[0]["errorText"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("API key"), "{text}");

    // Every exchange is stored, the failures with their error.
    let (_, chat) = team.member.get(&chat_path(&team, &format!("/{chat_id}"))).await;
    let messages = chat["data"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    assert_eq!(messages[1]["parts"][1]["text"], "Partial");
    assert!(
        messages[1]["metadata"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Overloaded"))
    );
    assert!(
        messages[3]["metadata"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate"))
    );
}

#[tokio::test]
async fn slow_provider_times_out_with_keepalives() {
    let (team, fake) = team_with(
        Protocol::Anthropic,
        &[
            ("MAKO_AGENT_PROVIDER_TIMEOUT_SECS", "3"),
            ("MAKO_AGENT_KEEPALIVE_SECS", "1"),
        ],
    )
    .await;
    fake.push(Reply::Stream(vec![
        Piece::text("thinking"),
        Piece::Delay(Duration::from_millis(2_200)),
        Piece::text(" done"),
    ]));
    fake.push(Reply::Hang);
    let streamed = chat_raw(&team.member, question(&team, "slow"), &[]).await;
    assert!(
        streamed.comments >= 1,
        "a keep-alive during the pause: {}",
        streamed.body
    );
    assert_eq!(streamed.finish()["finishReason"], "stop");

    let started = Instant::now();
    let streamed = chat_raw(&team.member, question(&team, "hang"), &[]).await;
    let text = streamed.of_type("error")[0]["errorText"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("MAKO_AGENT_PROVIDER_TIMEOUT_SECS"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(streamed.comments >= 2, "{}", streamed.body);
}

#[tokio::test]
async fn frames_stream_despite_gzip_request() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    fake.push(Reply::Stream(vec![
        Piece::text("one"),
        Piece::Delay(Duration::from_millis(500)),
        Piece::text("two"),
        Piece::Delay(Duration::from_millis(500)),
        Piece::text("three"),
    ]));
    let streamed = chat_raw(
        &team.member,
        question(&team, "count"),
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert!(streamed.headers.get("content-encoding").is_none());
    let deltas: Vec<&Frame> = streamed.frames.iter().filter(|f| f.kind() == "text-delta").collect();
    assert_eq!(deltas.len(), 3);
    let gap1 = deltas[1].at - deltas[0].at;
    let gap2 = deltas[2].at - deltas[1].at;
    assert!(gap1 >= Duration::from_millis(350), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(350), "{gap2:?}");
}

#[tokio::test]
async fn client_disconnect_stops_the_agent() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    fake.push(Reply::Stream(vec![
        Piece::text("Working"),
        Piece::Delay(Duration::from_secs(30)),
        Piece::text(" never sent"),
    ]));
    let mut response = team
        .member
        .request(reqwest::Method::POST, "/api/agent/chat")
        .json(&question(&team, "leave early"))
        .send()
        .await
        .expect("sending");
    let chat_id = response.headers()["x-chat-id"].to_str().expect("id").to_owned();
    let mut seen = String::new();
    while !seen.contains("Working") {
        let chunk = response.chunk().await.expect("reading").expect("more frames");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(fake.open_streams(), 1);
    drop(response);

    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.open_streams() > 0 {
        assert!(Instant::now() < deadline, "the provider request is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The partial answer is stored and the chat takes the next question.
    let path = chat_path(&team, &format!("/{chat_id}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let messages = loop {
        let (_, chat) = team.member.get(&path).await;
        if chat["data"]["messageCount"] == 2 {
            break chat["data"]["messages"].clone();
        }
        assert!(Instant::now() < deadline, "the answer was not stored: {chat}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(messages[1]["metadata"]["interrupted"], true);
    assert_eq!(messages[1]["parts"][1]["text"], "Working");
    fake.push(Reply::Stream(vec![Piece::text("Back.")]));
    let mut body = question(&team, "again");
    body["chatId"] = json!(chat_id);
    let streamed = chat_raw(&team.member, body, &[]).await;
    assert_eq!(streamed.finish()["finishReason"], "stop", "{}", streamed.body);
}

#[tokio::test]
async fn step_limit_ends_tool_loops() {
    let (team, fake) = team_with(Protocol::OpenAi, &[("MAKO_AGENT_MAX_STEPS", "2")]).await;
    for index in 0..2 {
        fake.push(Reply::Stream(vec![Piece::tool_call(
            &format!("call_{index}"),
            "list_connections",
            &["{}"],
        )]));
    }
    let streamed = chat_raw(&team.member, question(&team, "loop"), &[]).await;
    let finish = streamed.finish();
    assert_eq!(finish["finishReason"], "tool-calls");
    assert_eq!(finish["messageMetadata"]["stepLimitReached"], true);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn save_console_needs_member_role() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    let sample = team.sample_connection().await;
    let save = format!(
        "{{\"name\":\"Customer count\",\"connectionId\":\"{sample}\",\"code\":\"SELECT count(*) FROM accounts\",\"description\":\"How many customers\"}}"
    );
    for _ in 0..2 {
        fake.push(Reply::Stream(vec![Piece::tool_call(
            "toolu_save",
            "save_console",
            &[&save],
        )]));
        fake.push(Reply::Stream(vec![Piece::tool_call(
            "toolu_find",
            "search_consoles",
            &["{\"text\":\"customer\"}"],
        )]));
        fake.push(Reply::Stream(vec![Piece::text("Saved.")]));
    }
    let viewer = chat_raw(&team.viewer, question(&team, "save it"), &[]).await;
    let error = &viewer.of_type("tool-output-error")[0];
    assert!(
        error["errorText"].as_str().is_some_and(|e| e.contains("viewer")),
        "{error}"
    );

    let member = chat_raw(&team.member, question(&team, "save it"), &[]).await;
    let outputs = member.of_type("tool-output-available");
    assert_eq!(outputs[0]["output"]["console"]["name"], "Customer count");
    assert_eq!(outputs[0]["output"]["console"]["visibility"], "private");
    assert_eq!(outputs[1]["output"]["consoles"][0]["name"], "Customer count");
    let (status, list) = team
        .member
        .get(&format!("/api/workspaces/{}/consoles/list", team.workspace))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["name"], "Customer count");
}

#[tokio::test]
async fn chats_are_private_and_continue() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    let base = chat_path(&team, "");

    // Create, list (newest first, paginated), rename, read.
    let (status, created) = team.member.post(&base, json!({ "title": "Pipeline review" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let first = created["data"]["id"].as_str().expect("id").to_owned();
    let (status, created) = team.member.post(&base, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["title"], "New chat");
    let second = created["data"]["id"].as_str().expect("id").to_owned();
    let (_, page) = team.member.get(&format!("{base}?limit=1")).await;
    assert_eq!(page["data"][0]["id"], second.as_str());
    assert!(page["data"][0].get("messages").is_none());
    let cursor = page["nextCursor"].as_str().expect("a next page").to_owned();
    let (_, page) = team.member.get(&format!("{base}?limit=1&cursor={cursor}")).await;
    assert_eq!(page["data"][0]["id"], first.as_str());

    // Continue the named chat: the title stays, and the model gets the earlier exchange.
    fake.push(Reply::Stream(vec![Piece::text("Forty deals are open.")]));
    fake.push(Reply::Stream(vec![Piece::text("Twelve of them are late.")]));
    let mut body = question(&team, "How many deals are open?");
    body["chatId"] = json!(first);
    let streamed = chat_raw(&team.member, body.clone(), &[]).await;
    assert_eq!(streamed.chat_id(), first);
    body["messages"] =
        json!([{ "id": "client-1", "role": "user", "parts": [{ "type": "text", "text": "Which are late?" }] }]);
    body["agentId"] = json!("mako");
    chat_raw(&team.member, body, &[]).await;
    let second_request = &fake.requests()[1];
    let texts: Vec<String> = second_request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|block| block["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        texts,
        ["How many deals are open?", "Forty deals are open.", "Which are late?"]
    );
    let (_, chat) = team.member.get(&format!("{base}/{first}")).await;
    assert_eq!(chat["data"]["title"], "Pipeline review");
    assert_eq!(chat["data"]["messageCount"], 4);
    assert_eq!(chat["data"]["messages"][2]["id"], "client-1");

    let (status, renamed) = team
        .member
        .put(&format!("{base}/{first}"), json!({ "title": "Late deals" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["data"]["title"], "Late deals");

    // No other member can read, rename, continue or delete it.
    for client in [&team.owner, &team.admin] {
        let (status, _) = client.get(&format!("{base}/{first}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = client.put(&format!("{base}/{first}"), json!({ "title": "x" })).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = client.delete(&format!("{base}/{first}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let mut body = question(&team, "peek");
        body["chatId"] = json!(first);
        let (status, _) = client.post("/api/agent/chat", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = client.get(&base).await;
        assert_eq!(list["data"], json!([]));
    }

    // Delete removes the chat and its messages.
    let (status, _) = team.member.delete(&format!("{base}/{first}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = team.member.get(&format!("{base}/{first}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let page = team
        .app
        .state
        .store
        .query(
            &mako_core::ports::Query::partition(format!("WS#{}", team.workspace))
                .begins_with(format!("CHATMSG#{first}")),
        )
        .await
        .expect("query");
    assert!(page.items.is_empty());
}

#[tokio::test]
async fn invalid_chat_requests_fail_early() {
    let (team, _fake) = team_with(Protocol::Anthropic, &[]).await;
    let anonymous = Client::new(&team.app.base);
    let (status, body) = anonymous.post("/api/agent/chat", question(&team, "hi")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let cases = [
        (
            json!({ "messages": [{ "role": "user", "content": "hi" }] }),
            StatusCode::BAD_REQUEST,
            "workspaceId",
        ),
        (
            json!({ "workspaceId": team.workspace }),
            StatusCode::BAD_REQUEST,
            "messages",
        ),
        (
            json!({ "workspaceId": team.workspace, "messages": [] }),
            StatusCode::BAD_REQUEST,
            "messages",
        ),
        (
            json!({ "workspaceId": team.workspace, "messages": [{ "role": "user", "content": "hi" }], "chatId": "nope" }),
            StatusCode::BAD_REQUEST,
            "chatId",
        ),
        (
            json!({ "workspaceId": team.workspace, "messages": [{ "role": "user", "content": "hi" }], "agentId": "other" }),
            StatusCode::NOT_FOUND,
            "AGENT_NOT_FOUND",
        ),
        (
            json!({ "workspaceId": team.workspace, "messages": [{ "role": "user", "content": "hi" }], "chatId": "chat_01jd9zzzzzzzzzzzzzzzzzzzzz" }),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            json!({ "workspaceId": team.workspace, "messages": [{ "role": "user", "content": "hi" }], "temperature": 2 }),
            StatusCode::BAD_REQUEST,
            "temperature",
        ),
    ];
    for (body, expected, needle) in cases {
        let (status, answer) = team.member.post("/api/agent/chat", body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer.to_string().contains(needle), "{body}: {answer}");
    }

    // An API key of another workspace is refused; one of this workspace may chat.
    let other_owner = team.app.user("other@team.test").await;
    let other = team.app.workspace(&other_owner, "Other").await;
    let key = team.app.api_key(&other_owner, &other, "member").await;
    let (status, answer) = team
        .app
        .with_key(&key)
        .post("/api/agent/chat", question(&team, "hi"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = team.app.with_key(&key).get(&chat_path(&team, "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

/// Path of the chat reader script, or `None` (skipped) when its packages are missing.
fn chat_reader() -> Option<PathBuf> {
    mako_tests::node_script("ai", "read-chat.mjs")
}

#[tokio::test]
async fn ai_sdk_rebuilds_stored_message() {
    let Some(script) = chat_reader() else {
        return;
    };
    let (team, fake) = team_with(Protocol::OpenAi, &[]).await;
    let sample = team.sample_connection().await;
    fake.push(Reply::Stream(vec![
        Piece::text("Counting products."),
        Piece::tool_call(
            "call_p",
            "run_query",
            &[
                &format!("{{\"connectionId\":\"{sample}\","),
                "\"query\":\"SELECT count(*) AS deals FROM opportunities\"}",
            ],
        ),
    ]));
    fake.push(Reply::Stream(vec![
        Piece::text("There are "),
        Piece::text("that many products."),
    ]));
    let key = team.app.api_key(&team.owner, &team.workspace, "member").await;
    let options = json!({
        "headers": { "Authorization": format!("Bearer {key}") },
        "body": { "workspaceId": team.workspace, "model": "gpt-4.1" },
        "messages": [{ "id": "u1", "role": "user", "parts": [{ "type": "text", "text": "How many products?" }] }],
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("options.json");
    std::fs::write(&file, options.to_string()).expect("writing options");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .arg(team.app.url("/api/agent/chat"))
        .arg(&file)
        .output()
        .await
        .expect("running node");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).expect("the reader's JSON");
    assert_eq!(read["error"], Value::Null, "{read}");
    let message = &read["message"];
    assert_eq!(message["role"], "assistant");
    let parts = message["parts"].as_array().expect("parts");
    let tool = parts
        .iter()
        .find(|p| p["type"] == "tool-run_query")
        .expect("the tool part");
    assert_eq!(tool["state"], "output-available");
    assert_eq!(tool["output"]["columns"][0]["name"], "deals");
    let text: Vec<&str> = parts
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert_eq!(text, ["Counting products.", "There are that many products."]);
    assert_eq!(message["metadata"]["model"], "gpt-4.1");

    // The stored message is the one the client rebuilt.
    let chat_id = message["metadata"]["chatId"].as_str().expect("chat id");
    let (_, chat) = team.owner.get(&chat_path(&team, &format!("/{chat_id}"))).await;
    let stored = &chat["data"]["messages"][1];
    assert_eq!(stored["id"], message["id"]);
    let kinds = |parts: &Value| -> Vec<String> {
        parts
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["type"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    assert_eq!(kinds(&stored["parts"]), kinds(&message["parts"]));
    let stored_tool = stored["parts"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["type"] == "tool-run_query"))
        .expect("stored tool");
    assert_eq!(stored_tool["output"], tool["output"]);
    assert_eq!(stored_tool["input"], tool["input"]);
    assert_eq!(chat["data"]["messages"][0]["id"], "u1");
}

#[tokio::test]
async fn mongodb_collections_are_browsed_and_queried() {
    let Some(mongo) = TestDatabase::mongodb().await else {
        return;
    };
    mongo
        .run(r#"db.orders.insertMany([{_id: 1, status: "paid", total: 120}, {_id: 2, status: "open", total: 40}, {_id: 3, status: "paid", total: 15}])"#)
        .await;
    let (team, fake) = team_with(Protocol::OpenAi, &[]).await;
    let connection = team.connect(body_for(&mongo, "Mongo")).await;
    let database = mongo.name.clone();
    fake.push(Reply::Stream(vec![
        Piece::tool_call(
            "call_tables",
            "list_tables",
            &[&format!("{{\"connectionId\":\"{connection}\",\"database\":\"{database}\"}}")],
        ),
        Piece::tool_call(
            "call_describe",
            "describe_table",
            &[&format!(
                "{{\"connectionId\":\"{connection}\",\"database\":\"{database}\",\"table\":\"orders\"}}"
            )],
        ),
        Piece::tool_call(
            "call_delete",
            "run_query",
            &[&format!(
                "{{\"connectionId\":\"{connection}\",\"database\":\"{database}\",\"query\":\"db.orders.deleteMany({{}})\"}}"
            )],
        ),
    ]));
    fake.push(Reply::Stream(vec![Piece::tool_call(
        "call_paid",
        "run_query",
        &[&format!(
            "{{\"connectionId\":\"{connection}\",\"database\":\"{database}\",\"query\":\"db.orders.find({{status: \\\"paid\\\"}}).sort({{_id: 1}})\"}}"
        )],
    )]));
    fake.push(Reply::Stream(vec![Piece::text("Two orders are paid.")]));

    let streamed = chat_raw(&team.member, question(&team, "Which orders are paid?"), &[]).await;
    assert_eq!(streamed.finish()["finishReason"], "stop", "{}", streamed.body);
    let outputs = streamed.of_type("tool-output-available");
    let output = |id: &str| {
        outputs
            .iter()
            .find(|o| o["toolCallId"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let tables = output("call_tables")["output"]["tables"].clone();
    assert!(
        tables
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "orders")),
        "{tables}"
    );
    assert_eq!(
        output("call_describe")["output"]["sample"]["rows"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let errors = streamed.of_type("tool-output-error");
    assert_eq!(errors.len(), 1, "{}", streamed.body);
    assert_eq!(errors[0]["toolCallId"], "call_delete");
    let paid = output("call_paid")["output"].clone();
    assert_eq!(paid["rowCount"], 2, "{paid}");
    let remaining = mongo.run("db.orders.countDocuments({})").await;
    assert_eq!(remaining.result_sets[0].rows.len(), 1);
    mongo.drop_database().await;
}

#[tokio::test]
async fn concurrent_questions_keep_history_consistent() {
    let (team, fake) = team_with(Protocol::Anthropic, &[]).await;
    let (_, created) = team.member.post(&chat_path(&team, ""), json!({})).await;
    let chat_id = created["data"]["id"].as_str().expect("id").to_owned();
    for _ in 0..2 {
        fake.push(Reply::Stream(vec![
            Piece::Delay(Duration::from_millis(300)),
            Piece::text("reply"),
        ]));
    }
    let ask = |text: &str| {
        let mut body = question(&team, text);
        body["chatId"] = json!(chat_id);
        team.member
            .request(reqwest::Method::POST, "/api/agent/chat")
            .json(&body)
            .send()
    };
    let (first, second) = tokio::join!(ask("first question"), ask("second question"));
    let responses = [first.expect("first"), second.expect("second")];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&409), "{statuses:?}");
    let mut winner = None;
    for response in responses {
        if response.status() == StatusCode::OK {
            winner = Some(response.text().await.expect("the stream"));
        }
    }
    assert!(winner.is_some_and(|body| body.ends_with("data: [DONE]\n\n")));

    // The stored question is the one that was answered, and the chat takes the next one.
    let (_, chat) = team.member.get(&chat_path(&team, &format!("/{chat_id}"))).await;
    let messages = chat["data"]["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 2, "{messages:?}");
    let asked = fake.requests()[0]["messages"][0]["content"][0]["text"].clone();
    assert_eq!(messages[0]["parts"][0]["text"], asked);
    assert_eq!(messages[1]["parts"][1]["text"], "reply");
    let streamed = chat_raw(&team.member, json!({ "workspaceId": team.workspace, "chatId": chat_id, "messages": [{ "role": "user", "content": "third" }] }), &[]).await;
    assert_eq!(streamed.finish()["finishReason"], "stop", "{}", streamed.body);
}

#[tokio::test]
async fn tool_calls_per_step_are_capped() {
    let (team, fake) = team_with(Protocol::OpenAi, &[]).await;
    let calls: Vec<Piece> = (0..20)
        .map(|index| Piece::tool_call(&format!("call_{index}"), "list_connections", &["{}"]))
        .collect();
    fake.push(Reply::Stream(calls));
    fake.push(Reply::Stream(vec![Piece::text("Done.")]));
    let streamed = chat_raw(&team.member, question(&team, "many"), &[]).await;
    assert_eq!(streamed.of_type("tool-output-available").len(), 16);
    let errors = streamed.of_type("tool-output-error");
    assert_eq!(errors.len(), 4);
    assert!(
        errors[0]["errorText"]
            .as_str()
            .is_some_and(|e| e.contains("at most 16")),
        "{}",
        errors[0]
    );
    assert_eq!(streamed.finish()["finishReason"], "stop");
}

#[tokio::test]
async fn unreachable_model_server_is_named() {
    // A base URL without /v1 reaches the fake's root, where /models does not exist.
    let local = FakeModels::start(Protocol::OpenAi, None).await;
    let root = local.base_url.trim_end_matches("/v1").to_owned();
    let team = Team::new(&[("MAKO_OPENAI_BASE_URL", root.as_str())]).await;
    let (status, body) = team.member.post("/api/agent/chat", question(&team, "hi")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["code"], "NO_MODELS");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("/v1"), "{message}");
    assert!(message.contains("404"), "{message}");

    // Once the server lists a model, the catalogue is read again without a restart.
    let team = Team::new(&[("MAKO_OPENAI_BASE_URL", local.base_url.as_str())]).await;
    let (status, body) = team.member.post("/api/agent/chat", question(&team, "hi")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("lists no models")),
        "{body}"
    );
    local.set_models(&["qwen2.5:7b"]);
    local.push(Reply::Stream(vec![Piece::text("Hi.")]));
    let streamed = chat_raw(&team.member, question(&team, "hi"), &[]).await;
    assert_eq!(streamed.finish()["finishReason"], "stop", "{}", streamed.body);
}
