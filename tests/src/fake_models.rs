//! A fake Anthropic Messages API and OpenAI Chat Completions API for tests of the product's
//! model clients. It serves streaming requests only (`stream: true`) and speaks the real wire
//! formats: Anthropic's named server-sent events (`message_start` … `message_stop`) and
//! OpenAI's `data:` lines of `chat.completion.chunk` objects ending with `data: [DONE]`.
//!
//! Each request consumes the next scripted [`Reply`]. Requests are validated the way the real
//! services validate them (credentials, required fields, roles, tool result ids), and rejected
//! requests get the provider's JSON error body without consuming a reply.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

/// Which provider's API the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /v1/messages` and `GET /v1/models` at the server root.
    Anthropic,
    /// `POST /v1/chat/completions` and `GET /v1/models`, with `base_url` ending in `/v1`.
    OpenAi,
}

/// One scripted model response, consumed in order, one per accepted request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A `200 OK` event stream built from the pieces.
    Stream(Vec<Piece>),
    /// An HTTP error before any stream, with the provider's JSON error body. `retry_after`
    /// sets the `retry-after` header in seconds.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Sends nothing at all (no headers) until the client goes away.
    Hang,
}

/// One step of a streamed reply.
#[derive(Clone, Debug)]
pub enum Piece {
    /// One text delta.
    Text(String),
    /// A tool call whose arguments JSON text arrives split in `fragments`.
    ToolCall {
        id: String,
        name: String,
        fragments: Vec<String>,
    },
    /// A pause before the next piece. Everything before it is flushed to the client first.
    Delay(Duration),
    /// A mid-stream error in the protocol's format. The stream ends right after it, without a
    /// stop reason, `message_stop` or `[DONE]`.
    Error(String),
    /// Ends the stream as if the model reached `max_tokens`: Anthropic stop reason
    /// `max_tokens`, OpenAI finish reason `length`. Later pieces are not sent.
    MaxTokens,
}

impl Piece {
    /// Creates a text delta.
    pub fn text(text: &str) -> Piece {
        Piece::Text(text.to_owned())
    }

    /// Creates a tool call whose arguments arrive in the given fragments.
    pub fn tool_call(id: &str, name: &str, fragments: &[&str]) -> Piece {
        Piece::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            fragments: fragments.iter().map(|fragment| (*fragment).to_owned()).collect(),
        }
    }
}

/// Deviations from OpenAI's own stream that some OpenAI-compatible servers show. The default
/// has none of them. The Anthropic protocol ignores these flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Tool call chunks carry no `index`.
    pub omit_tool_index: bool,
    /// The id, name and complete arguments of a tool call arrive in one chunk.
    pub whole_call_in_one_chunk: bool,
    /// `arguments` is a JSON object instead of a string. This implies one chunk per call.
    pub arguments_as_object: bool,
    /// The chunks of consecutive tool calls (parallel calls) alternate between their indexes.
    pub interleave_tool_calls: bool,
}

/// Token counts that the fake sent in a completed stream: Anthropic's `message_delta` or
/// OpenAI's final usage chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Computes the input token count that the fake reports for a request body: its length in
/// bytes divided by 4, at least 1.
pub fn input_tokens(body: &[u8]) -> u64 {
    (body.len() as u64 / 4).max(1)
}

/// Computes the output token count that the fake reports for a reply: one per `Text` and
/// `ToolCall` piece sent before a `MaxTokens` piece.
pub fn output_tokens(pieces: &[Piece]) -> u64 {
    let sent = pieces.iter().take_while(|piece| !matches!(piece, Piece::MaxTokens));
    sent.filter(|piece| matches!(piece, Piece::Text(_) | Piece::ToolCall { .. }))
        .count() as u64
}

/// Maximum request body size, in bytes. The Anthropic Messages API documents 32 MB.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

struct Shared {
    protocol: Protocol,
    api_key: Option<String>,
    quirks: Mutex<Quirks>,
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Value>>,
    models: Mutex<Vec<String>>,
    usage: Mutex<Vec<Usage>>,
    open_streams: AtomicUsize,
    next_id: AtomicU64,
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Locks a mutex, ignoring poisoning: the data stays consistent because every critical section
/// here is a single push, pop or clone.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake model provider. Dropping it stops accepting connections.
pub struct FakeModels {
    /// Anthropic: the server root. OpenAI: the root followed by `/v1`.
    pub base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeModels {
    /// Starts the fake on 127.0.0.1 with a free port. With `api_key` set, requests must carry
    /// it (`x-api-key` for Anthropic, `Authorization: Bearer` for OpenAI).
    pub async fn start(protocol: Protocol, api_key: Option<&str>) -> FakeModels {
        let shared = Arc::new(Shared {
            protocol,
            api_key: api_key.map(str::to_owned),
            quirks: Mutex::default(),
            replies: Mutex::default(),
            requests: Mutex::default(),
            models: Mutex::default(),
            usage: Mutex::default(),
            open_streams: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        });
        let routes = match protocol {
            Protocol::Anthropic => Router::new()
                .route("/v1/messages", post(anthropic_messages))
                .route("/v1/models", get(anthropic_models)),
            Protocol::OpenAi => Router::new()
                .route("/v1/chat/completions", post(openai_chat_completions))
                .route("/v1/models", get(openai_models)),
        };
        let router = routes
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(shared.clone());

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake model server to 127.0.0.1");
        let address = listener.local_addr().expect("reading the fake model server's address");
        let base_url = match protocol {
            Protocol::Anthropic => format!("http://{address}"),
            Protocol::OpenAi => format!("http://{address}/v1"),
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeModels {
            base_url,
            shared,
            server,
        }
    }

    /// Sets the OpenAI stream quirks. Set them before pushing replies, because `push` checks
    /// the replies against them.
    pub fn with_quirks(self, quirks: Quirks) -> Self {
        *lock(&self.shared.quirks) = quirks;
        self
    }

    /// Queues a reply for the next accepted request.
    ///
    /// # Panics
    ///
    /// Panics if a `Status` reply has an invalid HTTP status, or if `arguments_as_object` is set
    /// and a tool call's fragments do not join into valid JSON.
    pub fn push(&self, reply: Reply) {
        if let Reply::Status { status, .. } = &reply {
            assert!(
                StatusCode::from_u16(*status).is_ok_and(|code| code.is_client_error() || code.is_server_error()),
                "Reply::Status needs an HTTP error status (400-599), got {status}"
            );
        }
        if lock(&self.shared.quirks).arguments_as_object
            && let Reply::Stream(pieces) = &reply
        {
            for piece in pieces {
                if let Piece::ToolCall { id, fragments, .. } = piece {
                    let arguments = fragments.concat();
                    assert!(
                        serde_json::from_str::<Value>(&arguments).is_ok(),
                        "the arguments of tool call {id} must be valid JSON with arguments_as_object, got {arguments:?}"
                    );
                }
            }
        }
        lock(&self.shared.replies).push_back(reply);
    }

    /// Sets the model ids that `GET /v1/models` lists. The default list is empty.
    pub fn set_models(&self, ids: &[&str]) {
        *lock(&self.shared.models) = ids.iter().map(|id| (*id).to_owned()).collect();
    }

    /// Returns the JSON bodies of all model requests received, in order, including rejected
    /// ones. A body that is not JSON appears as a JSON string.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.requests).clone()
    }

    /// Returns the number of queued replies that no request has consumed yet.
    pub fn pending_replies(&self) -> usize {
        lock(&self.shared.replies).len()
    }

    /// Returns the token counts of each stream that reached its usage frame, in order.
    pub fn usage(&self) -> Vec<Usage> {
        lock(&self.shared.usage).clone()
    }

    /// Returns the number of `Stream` and `Hang` replies in progress. A reply stops counting when
    /// its stream ends or when the server notices that the client has disconnected.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::SeqCst)
    }
}

impl Drop for FakeModels {
    fn drop(&mut self) {
        // Connections already accepted run on their own tasks and finish their replies.
        self.server.abort();
    }
}

/// Counts a reply as open in `Shared::open_streams` for as long as the guard lives.
struct OpenStream {
    shared: Arc<Shared>,
}

impl OpenStream {
    fn new(shared: Arc<Shared>) -> OpenStream {
        shared.open_streams.fetch_add(1, Ordering::SeqCst);
        OpenStream { shared }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.shared.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A rejected request, rendered in the provider's error format.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    /// OpenAI's `param` field.
    param: Option<String>,
    /// OpenAI's `code` field.
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }
}

/// Returns the Anthropic error type for an HTTP status, as listed in Anthropic's "Errors" page.
fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        code if code >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Returns the OpenAI error `type` and default `code` for an HTTP status.
fn openai_error_type(status: StatusCode) -> (&'static str, Option<&'static str>) {
    match status.as_u16() {
        // OpenAI names the exhausted limit in `type` ("requests" or "tokens").
        429 => ("requests", Some("rate_limit_exceeded")),
        code if code >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

fn error_response(shared: &Shared, error: &ApiError) -> Response {
    let request_id = format!("req_fake{:06}", shared.next_id());
    let (body, id_header) = match shared.protocol {
        Protocol::Anthropic => (
            json!({
                "type": "error",
                "error": { "type": anthropic_error_type(error.status), "message": error.message },
                "request_id": request_id,
            }),
            "request-id",
        ),
        Protocol::OpenAi => {
            let (kind, default_code) = openai_error_type(error.status);
            (
                json!({
                    "error": {
                        "message": error.message,
                        "type": kind,
                        "param": error.param,
                        "code": error.code.or(default_code),
                    }
                }),
                "x-request-id",
            )
        }
    };
    let mut response = (error.status, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(id_header, value);
    }
    response
}

/// Returns whether a field is absent, not a string, or an empty string.
fn is_missing_text(value: Option<&Value>) -> bool {
    value.and_then(Value::as_str).is_none_or(str::is_empty)
}

/// Stores the request body and returns it parsed, or an error for a body that is not JSON.
fn record_request(shared: &Shared, body: &[u8]) -> Result<Value, ApiError> {
    let parsed = serde_json::from_slice::<Value>(body);
    let stored = match &parsed {
        Ok(value) => value.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
    };
    lock(&shared.requests).push(stored);
    parsed.map_err(|error| ApiError::invalid(format!("The request body is not valid JSON: {error}")))
}

async fn not_found(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let message = match shared.protocol {
        Protocol::Anthropic => "Not Found".to_owned(),
        Protocol::OpenAi => format!("Invalid URL ({method} {})", uri.path()),
    };
    error_response(&shared, &ApiError::new(StatusCode::NOT_FOUND, message))
}

// --- Anthropic ---

fn check_anthropic_headers(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(key) = &shared.api_key {
        match headers.get("x-api-key").and_then(|value| value.to_str().ok()) {
            None => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "x-api-key header is required")),
            Some(provided) if provided != key => {
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid x-api-key"));
            }
            Some(_) => {}
        }
    }
    if headers.get("anthropic-version").is_none() {
        return Err(ApiError::invalid("anthropic-version: header is required"));
    }
    Ok(())
}

async fn anthropic_messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record_request(&shared, &body);
    let accepted = check_anthropic_headers(&shared, &headers).and_then(|()| {
        let request = request?;
        validate_anthropic_request(&request)?;
        Ok(request)
    });
    match accepted {
        Ok(request) => respond(shared, &request, input_tokens(&body)).await,
        Err(error) => error_response(&shared, &error),
    }
}

async fn anthropic_models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(error) = check_anthropic_headers(&shared, &headers) {
        return error_response(&shared, &error);
    }
    let ids = lock(&shared.models).clone();
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z" }))
        .collect();
    axum::Json(json!({
        "data": data,
        "has_more": false,
        "first_id": ids.first(),
        "last_id": ids.last(),
    }))
    .into_response()
}

/// Validates a Messages API request body. Error messages follow the real API's wording where known.
fn validate_anthropic_request(request: &Value) -> Result<(), ApiError> {
    let Some(request) = request.as_object() else {
        return Err(ApiError::invalid("The request body must be a JSON object"));
    };
    if is_missing_text(request.get("model")) {
        return Err(ApiError::invalid("model: Field required"));
    }
    match request.get("max_tokens") {
        None => return Err(ApiError::invalid("max_tokens: Field required")),
        Some(value) if value.as_u64().is_none_or(|tokens| tokens < 1) => {
            return Err(ApiError::invalid(
                "max_tokens: Input should be an integer greater than or equal to 1",
            ));
        }
        Some(_) => {}
    }
    if request.get("stream") != Some(&Value::Bool(true)) {
        return Err(ApiError::invalid(
            "stream: the fake model server supports only streaming requests, so stream must be true",
        ));
    }
    match request.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks))
            if blocks
                .iter()
                .all(|block| block["type"] == "text" && block["text"].is_string()) => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "system: Input should be a valid string or a list of text blocks",
            ));
        }
    }
    validate_anthropic_tools(request.get("tools"))?;

    let Some(messages) = request.get("messages") else {
        return Err(ApiError::invalid("messages: Field required"));
    };
    let Some(messages) = messages.as_array() else {
        return Err(ApiError::invalid("messages: Input should be a valid list"));
    };
    if messages.is_empty() {
        return Err(ApiError::invalid("messages: at least one message is required"));
    }
    for (index, message) in messages.iter().enumerate() {
        let is_last = index + 1 == messages.len();
        validate_anthropic_message(index, message, is_last)?;
    }
    if messages[0]["role"] != "user" {
        return Err(ApiError::invalid("messages: first message must use the \"user\" role"));
    }
    validate_anthropic_tool_pairs(messages)
}

fn validate_anthropic_tools(tools: Option<&Value>) -> Result<(), ApiError> {
    let Some(tools) = tools else {
        return Ok(());
    };
    let Some(tools) = tools.as_array() else {
        return Err(ApiError::invalid("tools: Input should be a valid list"));
    };
    for (index, tool) in tools.iter().enumerate() {
        // Server tools (web search and others) have a versioned `type` and no input schema.
        let is_custom = tool.get("type").is_none_or(|kind| kind == "custom");
        if is_missing_text(tool.get("name")) {
            return Err(ApiError::invalid(format!("tools.{index}.name: Field required")));
        }
        if is_custom && !tool["input_schema"].is_object() {
            return Err(ApiError::invalid(format!("tools.{index}.input_schema: Field required")));
        }
    }
    Ok(())
}

fn validate_anthropic_message(index: usize, message: &Value, is_last: bool) -> Result<(), ApiError> {
    let role = message["role"].as_str().unwrap_or_default();
    if role != "user" && role != "assistant" {
        return Err(ApiError::invalid(format!(
            "messages.{index}.role: Input should be 'user' or 'assistant'"
        )));
    }
    let empty_content = || {
        ApiError::invalid(format!(
            "messages.{index}: all messages must have non-empty content except for the optional final assistant message"
        ))
    };
    let may_be_empty = is_last && role == "assistant";
    match &message["content"] {
        Value::String(text) if text.is_empty() && !may_be_empty => Err(empty_content()),
        Value::String(_) => Ok(()),
        Value::Array(blocks) if blocks.is_empty() && !may_be_empty => Err(empty_content()),
        Value::Array(blocks) => {
            for (block_index, block) in blocks.iter().enumerate() {
                validate_anthropic_block(index, role, block_index, block)?;
            }
            Ok(())
        }
        Value::Null => Err(ApiError::invalid(format!("messages.{index}.content: Field required"))),
        _ => Err(ApiError::invalid(format!(
            "messages.{index}.content: Input should be a valid string or list"
        ))),
    }
}

fn validate_anthropic_block(index: usize, role: &str, block_index: usize, block: &Value) -> Result<(), ApiError> {
    let path = format!("messages.{index}.content.{block_index}");
    let kind = block["type"].as_str().unwrap_or_default();
    match kind {
        "text" => match block["text"].as_str() {
            None => Err(ApiError::invalid(format!("{path}.text: Field required"))),
            Some("") => Err(ApiError::invalid(format!(
                "{path}: text content blocks must be non-empty"
            ))),
            Some(_) => Ok(()),
        },
        "tool_use" => {
            if role != "assistant" {
                return Err(ApiError::invalid(format!(
                    "{path}: tool_use blocks are only allowed in assistant messages"
                )));
            }
            for field in ["id", "name"] {
                if is_missing_text(block.get(field)) {
                    return Err(ApiError::invalid(format!("{path}.{field}: Field required")));
                }
            }
            if !block["input"].is_object() {
                return Err(ApiError::invalid(format!(
                    "{path}.input: Input should be a valid dictionary"
                )));
            }
            Ok(())
        }
        "tool_result" => {
            if role != "user" {
                return Err(ApiError::invalid(format!(
                    "{path}: tool_result blocks are only allowed in user messages"
                )));
            }
            if !block["tool_use_id"].is_string() {
                return Err(ApiError::invalid(format!("{path}.tool_use_id: Field required")));
            }
            match &block["content"] {
                Value::Null | Value::String(_) | Value::Array(_) => Ok(()),
                _ => Err(ApiError::invalid(format!(
                    "{path}.content: Input should be a valid string or list"
                ))),
            }
        }
        "image"
        | "document"
        | "search_result"
        | "thinking"
        | "redacted_thinking"
        | "server_tool_use"
        | "web_search_tool_result"
        | "container_upload" => Ok(()),
        "" => Err(ApiError::invalid(format!("{path}.type: Field required"))),
        other => Err(ApiError::invalid(format!(
            "{path}.type: Input tag '{other}' found using 'type' does not match any of the expected tags"
        ))),
    }
}

fn blocks_of<'a>(message: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |block| block["type"] == kind)
}

/// Checks that every `tool_result` references a `tool_use` of the previous message. Then checks that
/// every `tool_use` followed by another message has a `tool_result` there, and that the
/// `tool_result` blocks come before any other content.
///
/// NOTE: a final assistant message with unanswered `tool_use` blocks is accepted, because it is
/// not known whether the real API accepts it as a prefill.
fn validate_anthropic_tool_pairs(messages: &[Value]) -> Result<(), ApiError> {
    for (index, message) in messages.iter().enumerate() {
        let previous_ids: HashSet<&str> = match index.checked_sub(1) {
            Some(previous) => blocks_of(&messages[previous], "tool_use")
                .filter_map(|block| block["id"].as_str())
                .collect(),
            None => HashSet::new(),
        };
        let blocks = message["content"].as_array().map(Vec::as_slice).unwrap_or_default();
        for (block_index, block) in blocks.iter().enumerate() {
            if block["type"] != "tool_result" {
                continue;
            }
            let id = block["tool_use_id"].as_str().unwrap_or_default();
            if !previous_ids.contains(id) {
                return Err(ApiError::invalid(format!(
                    "messages.{index}.content.{block_index}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. \
                     Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                )));
            }
        }
    }

    for (index, message) in messages.iter().enumerate() {
        let Some(next) = messages.get(index + 1) else {
            continue;
        };
        let next_blocks = next["content"].as_array().map(Vec::as_slice).unwrap_or_default();
        let leading_results: HashSet<&str> = next_blocks
            .iter()
            .take_while(|block| block["type"] == "tool_result")
            .filter_map(|block| block["tool_use_id"].as_str())
            .collect();
        let unanswered: Vec<&str> = blocks_of(message, "tool_use")
            .filter_map(|block| block["id"].as_str())
            .filter(|id| !leading_results.contains(id))
            .collect();
        if !unanswered.is_empty() {
            return Err(ApiError::invalid(format!(
                "messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. \
                 Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                unanswered.join(", ")
            )));
        }
    }
    Ok(())
}

/// Builds the event stream of an Anthropic reply.
fn anthropic_steps(pieces: &[Piece], context: &StreamContext) -> Vec<Step> {
    let mut steps = Vec::new();
    let event = |name: &str, data: Value| Step::Frame(format!("event: {name}\ndata: {data}\n\n"));

    steps.push(event(
        "message_start",
        json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_fake{:06}", context.id),
                "type": "message",
                "role": "assistant",
                "model": context.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                // The real API reports a small output count here too. The count in
                // `message_delta` is cumulative, so a client that adds both counts is wrong.
                "usage": {
                    "input_tokens": context.input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }),
    ));
    steps.push(event("ping", json!({ "type": "ping" })));

    let mut stop_reason = if pieces.iter().any(|piece| matches!(piece, Piece::ToolCall { .. })) {
        "tool_use"
    } else {
        "end_turn"
    };
    let mut block_index = 0;
    let mut text_open = false;
    let close_text = |steps: &mut Vec<Step>, text_open: &mut bool, block_index: &mut usize| {
        if *text_open {
            steps.push(event(
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": *block_index }),
            ));
            *block_index += 1;
            *text_open = false;
        }
    };

    for piece in pieces {
        match piece {
            Piece::Text(text) => {
                if !text_open {
                    steps.push(event(
                        "content_block_start",
                        json!({
                            "type": "content_block_start",
                            "index": block_index,
                            "content_block": { "type": "text", "text": "" },
                        }),
                    ));
                    text_open = true;
                }
                steps.push(event(
                    "content_block_delta",
                    json!({
                        "type": "content_block_delta",
                        "index": block_index,
                        "delta": { "type": "text_delta", "text": text },
                    }),
                ));
            }
            Piece::ToolCall { id, name, fragments } => {
                close_text(&mut steps, &mut text_open, &mut block_index);
                steps.push(event(
                    "content_block_start",
                    json!({
                        "type": "content_block_start",
                        "index": block_index,
                        "content_block": { "type": "tool_use", "id": id, "name": name, "input": {} },
                    }),
                ));
                // The real API opens each tool input with an empty fragment.
                let all_fragments = std::iter::once("").chain(fragments.iter().map(String::as_str));
                for fragment in all_fragments {
                    steps.push(event(
                        "content_block_delta",
                        json!({
                            "type": "content_block_delta",
                            "index": block_index,
                            "delta": { "type": "input_json_delta", "partial_json": fragment },
                        }),
                    ));
                }
                steps.push(event(
                    "content_block_stop",
                    json!({ "type": "content_block_stop", "index": block_index }),
                ));
                block_index += 1;
            }
            Piece::Delay(duration) => steps.push(Step::Sleep(*duration)),
            Piece::Error(message) => {
                steps.push(event(
                    "error",
                    json!({ "type": "error", "error": { "type": "overloaded_error", "message": message } }),
                ));
                return steps;
            }
            Piece::MaxTokens => {
                stop_reason = "max_tokens";
                break;
            }
        }
    }
    close_text(&mut steps, &mut text_open, &mut block_index);

    let output_tokens = output_tokens(pieces);
    steps.push(Step::Usage(Usage {
        input_tokens: context.input_tokens,
        output_tokens,
    }));
    // Recent API versions repeat the input counts in `message_delta`. They are cumulative, not
    // additional.
    steps.push(event(
        "message_delta",
        json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": {
                "input_tokens": context.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
            },
        }),
    ));
    steps.push(event("message_stop", json!({ "type": "message_stop" })));
    steps
}

// --- OpenAI ---

fn check_bearer(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &shared.api_key else {
        return Ok(());
    };
    let provided = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match provided {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header \
             using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )),
        Some(provided) if provided != key => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        )
        .with_code("invalid_api_key")),
        Some(_) => Ok(()),
    }
}

async fn openai_chat_completions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = record_request(&shared, &body);
    let accepted = check_bearer(&shared, &headers).and_then(|()| {
        let request = request?;
        validate_openai_request(&request)?;
        Ok(request)
    });
    match accepted {
        Ok(request) => respond(shared, &request, input_tokens(&body)).await,
        Err(error) => error_response(&shared, &error),
    }
}

async fn openai_models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(error) = check_bearer(&shared, &headers) {
        return error_response(&shared, &error);
    }
    let data: Vec<Value> = lock(&shared.models)
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 1_700_000_000, "owned_by": "system" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

const OPENAI_ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// Validates a Chat Completions request body. Error messages follow the real API's wording where known.
fn validate_openai_request(request: &Value) -> Result<(), ApiError> {
    let Some(request) = request.as_object() else {
        return Err(ApiError::invalid("The request body must be a JSON object"));
    };
    if is_missing_text(request.get("model")) {
        return Err(ApiError::invalid("you must provide a model parameter"));
    }
    if request.get("stream") != Some(&Value::Bool(true)) {
        return Err(ApiError::invalid(
            "The fake model server supports only streaming requests, so 'stream' must be true.",
        )
        .with_param("stream"));
    }
    if let Some(options) = request.get("stream_options")
        && !options.is_object()
    {
        return Err(
            ApiError::invalid("Invalid type for 'stream_options': expected an object.").with_param("stream_options"),
        );
    }
    validate_openai_tools(request.get("tools"))?;

    let Some(messages) = request.get("messages") else {
        return Err(ApiError::invalid("Missing required parameter: 'messages'.").with_param("messages"));
    };
    let Some(messages) = messages.as_array() else {
        return Err(ApiError::invalid("Invalid type for 'messages': expected an array.").with_param("messages"));
    };
    if messages.is_empty() {
        return Err(ApiError::invalid("[] is too short - 'messages'").with_param("messages"));
    }
    for (index, message) in messages.iter().enumerate() {
        validate_openai_message(index, message)?;
    }
    validate_openai_tool_pairs(messages)
}

fn validate_openai_tools(tools: Option<&Value>) -> Result<(), ApiError> {
    let Some(tools) = tools else {
        return Ok(());
    };
    let Some(tools) = tools.as_array() else {
        return Err(ApiError::invalid("Invalid type for 'tools': expected an array.").with_param("tools"));
    };
    for (index, tool) in tools.iter().enumerate() {
        if tool["type"] != "function" {
            return Err(
                ApiError::invalid(format!("Invalid value for 'tools[{index}].type': expected 'function'."))
                    .with_param(format!("tools[{index}].type")),
            );
        }
        if is_missing_text(tool["function"].get("name")) {
            return Err(
                ApiError::invalid(format!("Missing required parameter: 'tools[{index}].function.name'."))
                    .with_param(format!("tools[{index}].function.name")),
            );
        }
    }
    Ok(())
}

fn validate_openai_message(index: usize, message: &Value) -> Result<(), ApiError> {
    let role = message["role"].as_str().unwrap_or_default();
    if !OPENAI_ROLES.contains(&role) {
        return Err(ApiError::invalid(format!(
            "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
        ))
        .with_param(format!("messages[{index}].role")));
    }
    let missing = |field: &str| {
        ApiError::invalid(format!("Missing required parameter: 'messages[{index}].{field}'."))
            .with_param(format!("messages[{index}].{field}"))
    };
    let has_content = matches!(message["content"], Value::String(_) | Value::Array(_));
    match role {
        "assistant" => {
            let tool_calls = &message["tool_calls"];
            if !has_content && !tool_calls.is_array() {
                return Err(missing("content"));
            }
            for (call_index, call) in tool_calls.as_array().into_iter().flatten().enumerate() {
                validate_openai_tool_call(index, call_index, call)?;
            }
            Ok(())
        }
        "tool" => {
            if !message["tool_call_id"].is_string() {
                return Err(missing("tool_call_id"));
            }
            if !has_content {
                return Err(missing("content"));
            }
            Ok(())
        }
        _ if !has_content => Err(missing("content")),
        _ => Ok(()),
    }
}

fn validate_openai_tool_call(index: usize, call_index: usize, call: &Value) -> Result<(), ApiError> {
    let path = format!("messages[{index}].tool_calls[{call_index}]");
    for field in ["id", "type"] {
        if !call[field].is_string() {
            return Err(
                ApiError::invalid(format!("Missing required parameter: '{path}.{field}'."))
                    .with_param(format!("{path}.{field}")),
            );
        }
    }
    if !call["function"]["name"].is_string() {
        return Err(
            ApiError::invalid(format!("Missing required parameter: '{path}.function.name'."))
                .with_param(format!("{path}.function.name")),
        );
    }
    match &call["function"]["arguments"] {
        Value::String(_) => Ok(()),
        Value::Null => Err(
            ApiError::invalid(format!("Missing required parameter: '{path}.function.arguments'."))
                .with_param(format!("{path}.function.arguments")),
        ),
        other => Err(ApiError::invalid(format!(
            "Invalid type for '{path}.function.arguments': expected a string, but got {} instead.",
            json_type_name(other)
        ))
        .with_param(format!("{path}.function.arguments"))),
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that tool messages directly follow the assistant message whose `tool_calls` they
/// respond to, and that every tool call has a tool message before the next non-tool message.
fn validate_openai_tool_pairs(messages: &[Value]) -> Result<(), ApiError> {
    struct OpenCalls<'a> {
        assistant_index: usize,
        ids: HashSet<&'a str>,
        unanswered: Vec<&'a str>,
    }
    let unanswered_error = |open: &OpenCalls<'_>| {
        ApiError::invalid(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each \
             'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            open.unanswered.join(", ")
        ))
        .with_param(format!("messages.[{}].role", open.assistant_index))
    };

    let mut open: Option<OpenCalls<'_>> = None;
    for (index, message) in messages.iter().enumerate() {
        if message["role"] == "tool" {
            let Some(calls) = open.as_mut() else {
                return Err(ApiError::invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls'.",
                )
                .with_param(format!("messages.[{index}].role")));
            };
            let id = message["tool_call_id"].as_str().unwrap_or_default();
            if !calls.ids.contains(id) {
                return Err(ApiError::invalid(format!(
                    "Invalid parameter: 'tool_call_id' of '{id}' not found in 'tool_calls' of previous message."
                ))
                .with_param(format!("messages.[{index}].tool_call_id")));
            }
            calls.unanswered.retain(|unanswered| *unanswered != id);
            continue;
        }

        if let Some(calls) = open.take()
            && !calls.unanswered.is_empty()
        {
            return Err(unanswered_error(&calls));
        }
        let ids: Vec<&str> = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|call| call["id"].as_str())
            .collect();
        if message["role"] == "assistant" && !ids.is_empty() {
            open = Some(OpenCalls {
                assistant_index: index,
                ids: ids.iter().copied().collect(),
                unanswered: ids,
            });
        }
    }
    match open {
        Some(calls) if !calls.unanswered.is_empty() => Err(unanswered_error(&calls)),
        _ => Ok(()),
    }
}

/// Builds the chunk stream of an OpenAI reply.
fn openai_steps(pieces: &[Piece], context: &StreamContext, quirks: Quirks) -> Vec<Step> {
    let chunk = |delta: Value, finish_reason: Option<&str>| {
        let mut chunk = json!({
            "id": format!("chatcmpl-fake{:06}", context.id),
            "object": "chat.completion.chunk",
            "created": context.created,
            "model": context.model,
            "system_fingerprint": "fp_fake",
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
        });
        if context.include_usage {
            chunk["usage"] = Value::Null;
        }
        Step::Frame(format!("data: {chunk}\n\n"))
    };
    let mut steps = Vec::new();

    // OpenAI sends the role in the first chunk: alone with empty content before text, or
    // together with the first tool call.
    let first_is_tool_call = pieces
        .iter()
        .find(|piece| !matches!(piece, Piece::Delay(_)))
        .is_some_and(|piece| matches!(piece, Piece::ToolCall { .. }));
    let mut role_pending = first_is_tool_call;
    if !first_is_tool_call {
        steps.push(chunk(
            json!({ "role": "assistant", "content": "", "refusal": null }),
            None,
        ));
    }

    let mut finish_reason = if pieces.iter().any(|piece| matches!(piece, Piece::ToolCall { .. })) {
        "tool_calls"
    } else {
        "stop"
    };
    let mut tool_index = 0;
    let mut position = 0;
    while let Some(piece) = pieces.get(position) {
        match piece {
            Piece::Text(text) => {
                steps.push(chunk(json!({ "content": text }), None));
                position += 1;
            }
            Piece::ToolCall { .. } => {
                // Consecutive tool calls are parallel calls, which the interleave quirk mixes.
                let run: Vec<&Piece> = pieces[position..]
                    .iter()
                    .take_while(|piece| matches!(piece, Piece::ToolCall { .. }))
                    .collect();
                let per_call: Vec<Vec<Value>> = run
                    .iter()
                    .enumerate()
                    .map(|(offset, piece)| tool_call_entries(piece, tool_index + offset, quirks))
                    .collect();
                for entry in order_tool_call_entries(per_call, quirks.interleave_tool_calls) {
                    let mut delta = Map::new();
                    if role_pending {
                        delta.insert("role".to_owned(), json!("assistant"));
                        delta.insert("content".to_owned(), Value::Null);
                        role_pending = false;
                    }
                    delta.insert("tool_calls".to_owned(), json!([entry]));
                    steps.push(chunk(Value::Object(delta), None));
                }
                tool_index += run.len();
                position += run.len();
            }
            Piece::Delay(duration) => {
                steps.push(Step::Sleep(*duration));
                position += 1;
            }
            Piece::Error(message) => {
                let error = json!({
                    "error": { "message": message, "type": "server_error", "param": null, "code": null }
                });
                steps.push(Step::Frame(format!("data: {error}\n\n")));
                return steps;
            }
            Piece::MaxTokens => {
                finish_reason = "length";
                break;
            }
        }
    }
    steps.push(chunk(json!({}), Some(finish_reason)));

    if context.include_usage {
        let output_tokens = output_tokens(pieces);
        steps.push(Step::Usage(Usage {
            input_tokens: context.input_tokens,
            output_tokens,
        }));
        let usage_chunk = json!({
            "id": format!("chatcmpl-fake{:06}", context.id),
            "object": "chat.completion.chunk",
            "created": context.created,
            "model": context.model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": {
                "prompt_tokens": context.input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": context.input_tokens + output_tokens,
                "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
        });
        steps.push(Step::Frame(format!("data: {usage_chunk}\n\n")));
    }
    steps.push(Step::Frame("data: [DONE]\n\n".to_owned()));
    steps
}

/// Returns the `delta.tool_calls` entries of one tool call, one per chunk.
fn tool_call_entries(piece: &Piece, index: usize, quirks: Quirks) -> Vec<Value> {
    let Piece::ToolCall { id, name, fragments } = piece else {
        return Vec::new();
    };
    let mut entries = if quirks.whole_call_in_one_chunk || quirks.arguments_as_object {
        let text = fragments.concat();
        let arguments = if quirks.arguments_as_object {
            // `push` rejects invalid JSON when this quirk is set. Replies pushed before the
            // quirk was set fall back to the string.
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        vec![json!({
            "index": index,
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": arguments },
        })]
    } else {
        let mut entries = vec![json!({
            "index": index,
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": "" },
        })];
        entries.extend(
            fragments
                .iter()
                .map(|fragment| json!({ "index": index, "function": { "arguments": fragment } })),
        );
        entries
    };
    if quirks.omit_tool_index {
        for entry in &mut entries {
            if let Some(entry) = entry.as_object_mut() {
                entry.remove("index");
            }
        }
    }
    entries
}

/// Orders the entries of parallel tool calls: call after call, or round-robin when interleaved.
fn order_tool_call_entries(per_call: Vec<Vec<Value>>, interleave: bool) -> Vec<Value> {
    if !interleave {
        return per_call.into_iter().flatten().collect();
    }
    let mut queues: Vec<VecDeque<Value>> = per_call.into_iter().map(VecDeque::from).collect();
    let mut ordered = Vec::new();
    while queues.iter().any(|queue| !queue.is_empty()) {
        for queue in &mut queues {
            if let Some(entry) = queue.pop_front() {
                ordered.push(entry);
            }
        }
    }
    ordered
}

// --- Replies ---

/// Request facts that the stream frames repeat.
struct StreamContext {
    id: u64,
    model: String,
    input_tokens: u64,
    include_usage: bool,
    created: u64,
}

enum Step {
    /// Bytes sent as one body chunk.
    Frame(String),
    /// A pause. Everything sent before it is flushed to the client first.
    Sleep(Duration),
    /// Records the usage that the next frame reports.
    Usage(Usage),
}

async fn respond(shared: Arc<Shared>, request: &Value, input_tokens: u64) -> Response {
    let reply = lock(&shared.replies).pop_front();
    let Some(reply) = reply else {
        let error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The fake model server has no scripted reply left for this request. Push a Reply before sending it.",
        );
        return error_response(&shared, &error);
    };
    match reply {
        Reply::Status {
            status,
            message,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error_response(&shared, &ApiError::new(status, message));
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        Reply::Hang => {
            // The server drops this future when it notices that the client has disconnected.
            let _open = OpenStream::new(shared.clone());
            std::future::pending::<Response>().await
        }
        Reply::Stream(pieces) => {
            let context = StreamContext {
                id: shared.next_id(),
                model: request["model"].as_str().unwrap_or_default().to_owned(),
                input_tokens,
                include_usage: request["stream_options"]["include_usage"] == true,
                created: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|elapsed| elapsed.as_secs())
                    .unwrap_or_default(),
            };
            let steps = match shared.protocol {
                Protocol::Anthropic => anthropic_steps(&pieces, &context),
                Protocol::OpenAi => {
                    let quirks = *lock(&shared.quirks);
                    openai_steps(&pieces, &context, quirks)
                }
            };
            event_stream_response(shared, steps, context.id)
        }
    }
}

/// Streams the steps as a `text/event-stream` body. Each frame is a separate body chunk, and
/// the body counts as an open stream until it ends or the server drops it.
fn event_stream_response(shared: Arc<Shared>, steps: Vec<Step>, id: u64) -> Response {
    let id_header = match shared.protocol {
        Protocol::Anthropic => "request-id",
        Protocol::OpenAi => "x-request-id",
    };
    let open = OpenStream::new(shared);
    let frames = futures::stream::unfold((VecDeque::from(steps), open), |(mut steps, open)| async move {
        loop {
            match steps.pop_front()? {
                Step::Frame(frame) => return Some((Ok::<_, Infallible>(Bytes::from(frame)), (steps, open))),
                Step::Sleep(duration) => tokio::time::sleep(duration).await,
                Step::Usage(usage) => lock(&open.shared.usage).push(usage),
            }
        }
    });

    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&format!("req_fake{id:06}")) {
        headers.insert(id_header, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const KEY: &str = "test-key-123";

    fn client() -> reqwest::Client {
        crate::http_client()
    }

    fn anthropic_body() -> Value {
        json!({
            "model": "claude-test",
            "max_tokens": 1024,
            "stream": true,
            "messages": [{ "role": "user", "content": "Hello" }],
        })
    }

    fn openai_body(include_usage: bool) -> Value {
        json!({
            "model": "gpt-test",
            "stream": true,
            "stream_options": { "include_usage": include_usage },
            "messages": [{ "role": "user", "content": "Hello" }],
        })
    }

    async fn post_anthropic(fake: &FakeModels, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}/v1/messages", fake.base_url))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .expect("sending the Anthropic request")
    }

    async fn post_openai(fake: &FakeModels, body: &Value) -> reqwest::Response {
        client()
            .post(format!("{}/chat/completions", fake.base_url))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("sending the OpenAI request")
    }

    /// Splits an Anthropic stream into (event name, data) pairs, checking the frame layout.
    fn anthropic_events(text: &str) -> Vec<(String, Value)> {
        assert!(
            text.ends_with("\n\n"),
            "the stream must end with a complete frame: {text:?}"
        );
        text.split_terminator("\n\n")
            .map(|frame| {
                let (event_line, data_line) = frame.split_once('\n').expect("a frame has an event and a data line");
                let name = event_line.strip_prefix("event: ").expect("the event line");
                let data = data_line.strip_prefix("data: ").expect("the data line");
                let data: Value = serde_json::from_str(data).expect("the data line is JSON");
                assert_eq!(data["type"], name, "the data type matches the event name");
                (name.to_owned(), data)
            })
            .collect()
    }

    /// Splits an OpenAI stream into its `data:` payloads.
    fn openai_data(text: &str) -> Vec<String> {
        assert!(
            text.ends_with("\n\n"),
            "the stream must end with a complete frame: {text:?}"
        );
        text.split_terminator("\n\n")
            .map(|frame| frame.strip_prefix("data: ").expect("a data line").to_owned())
            .collect()
    }

    fn parse_chunks(data: &[String]) -> Vec<Value> {
        data.iter()
            .filter(|payload| payload.as_str() != "[DONE]")
            .map(|payload| serde_json::from_str(payload).expect("a JSON chunk"))
            .collect()
    }

    async fn wait_for_open_streams(fake: &FakeModels, expected: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while fake.open_streams() != expected {
            assert!(
                Instant::now() < deadline,
                "open_streams stayed at {} instead of {expected}",
                fake.open_streams()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn anthropic_text_stream_frames() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;
        fake.push(Reply::Stream(vec![Piece::text("Hel"), Piece::text("lo")]));
        let body = anthropic_body();

        let response = post_anthropic(&fake, &body).await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().expect("ASCII");
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let events = anthropic_events(&response.text().await.expect("reading the stream"));

        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let expected_input = input_tokens(&serde_json::to_vec(&body).expect("serializing"));
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], expected_input);
        assert_eq!(events[0].1["message"]["model"], "claude-test");
        assert_eq!(events[2].1["content_block"], json!({ "type": "text", "text": "" }));
        assert_eq!(events[3].1["delta"], json!({ "type": "text_delta", "text": "Hel" }));
        assert_eq!(events[4].1["delta"]["text"], "lo");
        assert_eq!(events[6].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(events[6].1["usage"]["output_tokens"], 2);
        assert_eq!(
            fake.usage(),
            [Usage {
                input_tokens: expected_input,
                output_tokens: 2
            }]
        );
        assert_eq!(fake.requests(), [body]);
        assert_eq!(fake.pending_replies(), 0);
    }

    #[tokio::test]
    async fn anthropic_tool_call_fragments() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;
        let fragments = ["{\"city\":", " \"Par", "is\"}"];
        fake.push(Reply::Stream(vec![
            Piece::text("Checking."),
            Piece::tool_call("toolu_1", "weather", &fragments),
        ]));

        let response = post_anthropic(&fake, &anthropic_body()).await;
        let events = anthropic_events(&response.text().await.expect("reading the stream"));

        let tool_start = events
            .iter()
            .find(|(name, data)| name == "content_block_start" && data["content_block"]["type"] == "tool_use")
            .expect("a tool_use block");
        assert_eq!(tool_start.1["index"], 1);
        assert_eq!(
            tool_start.1["content_block"],
            json!({ "type": "tool_use", "id": "toolu_1", "name": "weather", "input": {} })
        );
        let arguments: String = events
            .iter()
            .filter(|(_, data)| data["delta"]["type"] == "input_json_delta")
            .map(|(_, data)| {
                assert_eq!(data["index"], 1);
                data["delta"]["partial_json"].as_str().expect("partial_json").to_owned()
            })
            .collect();
        assert_eq!(arguments, fragments.concat());
        let stops: Vec<&Value> = events
            .iter()
            .filter(|(name, _)| name == "content_block_stop")
            .map(|(_, data)| &data["index"])
            .collect();
        assert_eq!(stops, [&json!(0), &json!(1)]);
        let message_delta = &events[events.len() - 2].1;
        assert_eq!(message_delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(message_delta["usage"]["output_tokens"], 2);
    }

    #[tokio::test]
    async fn anthropic_stream_error_event() {
        let fake = FakeModels::start(Protocol::Anthropic, None).await;
        fake.push(Reply::Stream(vec![
            Piece::text("Hi"),
            Piece::Error("Overloaded".to_owned()),
        ]));

        let response = post_anthropic(&fake, &anthropic_body()).await;
        let events = anthropic_events(&response.text().await.expect("reading the stream"));

        let (name, data) = events.last().expect("an event");
        assert_eq!(name, "error");
        assert_eq!(
            data,
            &json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } })
        );
        assert!(!events.iter().any(|(name, _)| name == "message_stop"));
        assert!(!events.iter().any(|(name, _)| name == "message_delta"));
        assert!(fake.usage().is_empty());
    }

    #[tokio::test]
    async fn anthropic_max_tokens_stop_reason() {
        let fake = FakeModels::start(Protocol::Anthropic, None).await;
        fake.push(Reply::Stream(vec![
            Piece::text("a"),
            Piece::MaxTokens,
            Piece::text("never"),
        ]));

        let response = post_anthropic(&fake, &anthropic_body()).await;
        let events = anthropic_events(&response.text().await.expect("reading the stream"));

        let texts: Vec<&Value> = events
            .iter()
            .filter_map(|(_, data)| data["delta"].get("text"))
            .collect();
        assert_eq!(texts, [&json!("a")]);
        let message_delta = &events[events.len() - 2].1;
        assert_eq!(message_delta["delta"]["stop_reason"], "max_tokens");
        assert_eq!(message_delta["usage"]["output_tokens"], 1);
    }

    #[tokio::test]
    async fn anthropic_rate_limit_retry_after() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;
        fake.push(Reply::Status {
            status: 429,
            message: "Number of requests has exceeded your rate limit".to_owned(),
            retry_after: Some(7),
        });

        let response = post_anthropic(&fake, &anthropic_body()).await;

        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert!(response.headers().contains_key("request-id"));
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(
            body["error"]["message"],
            "Number of requests has exceeded your rate limit"
        );
    }

    #[tokio::test]
    async fn anthropic_overloaded_status_type() {
        let fake = FakeModels::start(Protocol::Anthropic, None).await;
        fake.push(Reply::Status {
            status: 529,
            message: "Overloaded".to_owned(),
            retry_after: None,
        });

        let response = post_anthropic(&fake, &anthropic_body()).await;

        assert_eq!(response.status().as_u16(), 529);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["type"], "overloaded_error");
    }

    #[tokio::test]
    async fn anthropic_rejects_wrong_key() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;
        fake.push(Reply::Stream(vec![Piece::text("unused")]));

        let wrong = client()
            .post(format!("{}/v1/messages", fake.base_url))
            .header("x-api-key", "wrong")
            .header("anthropic-version", "2023-06-01")
            .json(&anthropic_body())
            .send()
            .await
            .expect("sending");
        let missing = client()
            .post(format!("{}/v1/messages", fake.base_url))
            .header("anthropic-version", "2023-06-01")
            .json(&anthropic_body())
            .send()
            .await
            .expect("sending");

        for response in [wrong, missing] {
            assert_eq!(response.status(), 401);
            let body: Value = response.json().await.expect("a JSON error body");
            assert_eq!(body["error"]["type"], "authentication_error");
        }
        assert_eq!(fake.pending_replies(), 1, "a rejected request must not consume a reply");
        assert_eq!(fake.requests().len(), 2);
    }

    #[tokio::test]
    async fn anthropic_requires_version_header() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;

        let response = client()
            .post(format!("{}/v1/messages", fake.base_url))
            .header("x-api-key", KEY)
            .json(&anthropic_body())
            .send()
            .await
            .expect("sending");

        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["message"], "anthropic-version: header is required");
    }

    #[tokio::test]
    async fn anthropic_rejects_invalid_bodies() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;
        let tool_use = json!({ "type": "tool_use", "id": "toolu_1", "name": "weather", "input": {} });
        let result_for = |id: &str| json!({ "type": "tool_result", "tool_use_id": id, "content": "sunny" });
        let with = |field: &str, value: Value| {
            let mut body = anthropic_body();
            body[field] = value;
            body
        };
        let without = |field: &str| {
            let mut body = anthropic_body();
            body.as_object_mut().expect("an object").remove(field);
            body
        };
        let cases = [
            ("missing model", without("model"), "model: Field required"),
            (
                "missing max_tokens",
                without("max_tokens"),
                "max_tokens: Field required",
            ),
            ("not streaming", with("stream", json!(false)), "stream"),
            ("empty messages", with("messages", json!([])), "at least one message"),
            (
                "system role",
                with("messages", json!([{ "role": "system", "content": "x" }])),
                "messages.0.role",
            ),
            (
                "assistant first",
                with(
                    "messages",
                    json!([{ "role": "assistant", "content": "x" }, { "role": "user", "content": "y" }]),
                ),
                "first message must use the \"user\" role",
            ),
            (
                "empty content",
                with("messages", json!([{ "role": "user", "content": "" }])),
                "non-empty content",
            ),
            (
                "content not a string or list",
                with("messages", json!([{ "role": "user", "content": 5 }])),
                "messages.0.content",
            ),
            (
                "unknown tool_use_id",
                with(
                    "messages",
                    json!([
                        { "role": "user", "content": "weather?" },
                        { "role": "assistant", "content": [tool_use] },
                        { "role": "user", "content": [result_for("toolu_other")] },
                    ]),
                ),
                "unexpected `tool_use_id`",
            ),
            (
                "tool_result without tool_use",
                with(
                    "messages",
                    json!([
                        { "role": "user", "content": "weather?" },
                        { "role": "assistant", "content": "Let me check." },
                        { "role": "user", "content": [result_for("toolu_1")] },
                    ]),
                ),
                "unexpected `tool_use_id`",
            ),
            (
                "tool_use without tool_result",
                with(
                    "messages",
                    json!([
                        { "role": "user", "content": "weather?" },
                        { "role": "assistant", "content": [tool_use] },
                        { "role": "user", "content": "and now?" },
                    ]),
                ),
                "without `tool_result` blocks immediately after",
            ),
            (
                "text before tool_result",
                with(
                    "messages",
                    json!([
                        { "role": "user", "content": "weather?" },
                        { "role": "assistant", "content": [tool_use] },
                        { "role": "user", "content": [{ "type": "text", "text": "here" }, result_for("toolu_1")] },
                    ]),
                ),
                "without `tool_result` blocks immediately after",
            ),
            (
                "tool without input_schema",
                with("tools", json!([{ "name": "weather" }])),
                "tools.0.input_schema",
            ),
        ];

        for (case, body, expected) in cases {
            let response = post_anthropic(&fake, &body).await;
            assert_eq!(response.status(), 400, "{case}");
            let error: Value = response.json().await.expect("a JSON error body");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{case}");
            let message = error["error"]["message"].as_str().expect("a message");
            assert!(message.contains(expected), "{case}: {message}");
        }
    }

    #[tokio::test]
    async fn anthropic_accepts_tool_round_trip() {
        let fake = FakeModels::start(Protocol::Anthropic, Some(KEY)).await;
        fake.push(Reply::Stream(vec![Piece::text("Sunny.")]));
        let mut body = anthropic_body();
        body["system"] = json!("Be brief.");
        body["tools"] = json!([{ "name": "weather", "input_schema": { "type": "object" } }]);
        body["messages"] = json!([
            { "role": "user", "content": [{ "type": "text", "text": "weather?" }] },
            { "role": "assistant", "content": [
                { "type": "text", "text": "Checking." },
                { "type": "tool_use", "id": "toolu_1", "name": "weather", "input": { "city": "Paris" } },
            ] },
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny" },
                { "type": "text", "text": "thanks" },
            ] },
        ]);

        let response = post_anthropic(&fake, &body).await;

        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn openai_text_stream_with_usage() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        fake.push(Reply::Stream(vec![Piece::text("Hel"), Piece::text("lo")]));
        let body = openai_body(true);

        let response = post_openai(&fake, &body).await;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().expect("ASCII");
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let data = openai_data(&response.text().await.expect("reading the stream"));

        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks = parse_chunks(&data);
        assert_eq!(chunks.len(), 5, "role, two texts, finish and usage: {chunks:?}");
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "gpt-test");
        }
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["usage"], Value::Null);
        let text: String = chunks
            .iter()
            .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello");
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
        assert_eq!(chunks[4]["choices"], json!([]));
        let expected_input = input_tokens(&serde_json::to_vec(&body).expect("serializing"));
        assert_eq!(chunks[4]["usage"]["prompt_tokens"], expected_input);
        assert_eq!(chunks[4]["usage"]["completion_tokens"], 2);
        assert_eq!(chunks[4]["usage"]["total_tokens"], expected_input + 2);
        assert_eq!(
            fake.usage(),
            [Usage {
                input_tokens: expected_input,
                output_tokens: 2
            }]
        );
    }

    #[tokio::test]
    async fn openai_tool_call_fragments() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        let fragments = ["{\"city\":", " \"Par", "is\"}"];
        fake.push(Reply::Stream(vec![Piece::tool_call("call_1", "weather", &fragments)]));

        let response = post_openai(&fake, &openai_body(false)).await;
        let data = openai_data(&response.text().await.expect("reading the stream"));

        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks = parse_chunks(&data);
        assert!(
            chunks.iter().all(|chunk| chunk.get("usage").is_none()),
            "no usage without include_usage"
        );
        let first = &chunks[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        assert_eq!(
            first["tool_calls"],
            json!([{ "index": 0, "id": "call_1", "type": "function", "function": { "name": "weather", "arguments": "" } }])
        );
        let arguments: String = chunks
            .iter()
            .filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"].as_array())
            .map(|calls| {
                assert_eq!(calls[0]["index"], 0);
                calls[0]["function"]["arguments"]
                    .as_str()
                    .expect("arguments")
                    .to_owned()
            })
            .collect();
        assert_eq!(arguments, fragments.concat());
        let last = chunks.last().expect("a finish chunk");
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        assert!(fake.usage().is_empty(), "no usage frame was sent");
    }

    fn tool_call_entries_of(chunks: &[Value]) -> Vec<Value> {
        chunks
            .iter()
            .filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"].as_array())
            .map(|calls| {
                assert_eq!(calls.len(), 1);
                calls[0].clone()
            })
            .collect()
    }

    async fn stream_with_quirks(quirks: Quirks, pieces: Vec<Piece>) -> Vec<Value> {
        let fake = FakeModels::start(Protocol::OpenAi, None).await.with_quirks(quirks);
        fake.push(Reply::Stream(pieces));
        let response = post_openai(&fake, &openai_body(false)).await;
        parse_chunks(&openai_data(&response.text().await.expect("reading the stream")))
    }

    #[tokio::test]
    async fn openai_quirk_omit_tool_index() {
        let quirks = Quirks {
            omit_tool_index: true,
            ..Quirks::default()
        };
        let chunks = stream_with_quirks(quirks, vec![Piece::tool_call("call_1", "weather", &["{}"])]).await;

        let entries = tool_call_entries_of(&chunks);
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|entry| entry.get("index").is_none()), "{entries:?}");
        assert_eq!(entries[0]["id"], "call_1");
    }

    #[tokio::test]
    async fn openai_quirk_whole_call_in_one_chunk() {
        let quirks = Quirks {
            whole_call_in_one_chunk: true,
            ..Quirks::default()
        };
        let chunks = stream_with_quirks(quirks, vec![Piece::tool_call("call_1", "weather", &["{\"a\"", ":1}"])]).await;

        let entries = tool_call_entries_of(&chunks);
        assert_eq!(
            entries,
            [
                json!({ "index": 0, "id": "call_1", "type": "function", "function": { "name": "weather", "arguments": "{\"a\":1}" } })
            ]
        );
    }

    #[tokio::test]
    async fn openai_quirk_arguments_as_object() {
        let quirks = Quirks {
            arguments_as_object: true,
            ..Quirks::default()
        };
        let chunks = stream_with_quirks(quirks, vec![Piece::tool_call("call_1", "weather", &["{\"a\"", ":1}"])]).await;

        let entries = tool_call_entries_of(&chunks);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0]["function"]["arguments"], json!({ "a": 1 }));
    }

    #[tokio::test]
    async fn openai_quirk_interleaved_calls() {
        let quirks = Quirks {
            interleave_tool_calls: true,
            ..Quirks::default()
        };
        let pieces = vec![
            Piece::tool_call("call_a", "first", &["{\"x\"", ":1}"]),
            Piece::tool_call("call_b", "second", &["{\"y\"", ":2}"]),
        ];
        let chunks = stream_with_quirks(quirks, pieces).await;

        let entries = tool_call_entries_of(&chunks);
        let indexes: Vec<&Value> = entries.iter().map(|entry| &entry["index"]).collect();
        assert_eq!(
            indexes,
            [&json!(0), &json!(1), &json!(0), &json!(1), &json!(0), &json!(1)]
        );
        for (index, expected) in [(0, "{\"x\":1}"), (1, "{\"y\":2}")] {
            let arguments: String = entries
                .iter()
                .filter(|entry| entry["index"] == index)
                .filter_map(|entry| entry["function"]["arguments"].as_str())
                .collect();
            assert_eq!(arguments, expected);
        }
        assert_eq!(entries[1]["id"], "call_b");
    }

    #[tokio::test]
    async fn openai_parallel_calls_in_order() {
        let pieces = vec![
            Piece::tool_call("call_a", "first", &["{}"]),
            Piece::tool_call("call_b", "second", &["{}"]),
        ];
        let chunks = stream_with_quirks(Quirks::default(), pieces).await;

        let entries = tool_call_entries_of(&chunks);
        let indexes: Vec<&Value> = entries.iter().map(|entry| &entry["index"]).collect();
        assert_eq!(indexes, [&json!(0), &json!(0), &json!(1), &json!(1)]);
    }

    #[tokio::test]
    async fn openai_stream_error_frame() {
        let fake = FakeModels::start(Protocol::OpenAi, None).await;
        fake.push(Reply::Stream(vec![
            Piece::text("Hi"),
            Piece::Error("The server had an error".to_owned()),
        ]));

        let response = post_openai(&fake, &openai_body(true)).await;
        let data = openai_data(&response.text().await.expect("reading the stream"));

        assert!(!data.iter().any(|payload| payload == "[DONE]"));
        let last: Value = serde_json::from_str(data.last().expect("a frame")).expect("JSON");
        assert_eq!(
            last,
            json!({ "error": { "message": "The server had an error", "type": "server_error", "param": null, "code": null } })
        );
        assert!(fake.usage().is_empty());
    }

    #[tokio::test]
    async fn openai_max_tokens_finish_reason() {
        let fake = FakeModels::start(Protocol::OpenAi, None).await;
        fake.push(Reply::Stream(vec![Piece::text("a"), Piece::MaxTokens]));

        let response = post_openai(&fake, &openai_body(true)).await;
        let chunks = parse_chunks(&openai_data(&response.text().await.expect("reading the stream")));

        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "length");
        assert_eq!(chunks[chunks.len() - 1]["usage"]["completion_tokens"], 1);
    }

    #[tokio::test]
    async fn openai_rate_limit_retry_after() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        fake.push(Reply::Status {
            status: 429,
            message: "Rate limit reached for requests".to_owned(),
            retry_after: Some(3),
        });

        let response = post_openai(&fake, &openai_body(false)).await;

        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["message"], "Rate limit reached for requests");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert!(body["error"]["type"].is_string());
    }

    #[tokio::test]
    async fn openai_rejects_wrong_key() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        fake.push(Reply::Stream(vec![Piece::text("unused")]));
        let url = format!("{}/chat/completions", fake.base_url);

        let wrong = client()
            .post(&url)
            .bearer_auth("wrong")
            .json(&openai_body(false))
            .send()
            .await
            .expect("sending");
        assert_eq!(wrong.status(), 401);
        let body: Value = wrong.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "invalid_request_error");

        let missing = client()
            .post(&url)
            .json(&openai_body(false))
            .send()
            .await
            .expect("sending");
        assert_eq!(missing.status(), 401);
        let body: Value = missing.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], Value::Null);

        assert_eq!(fake.pending_replies(), 1, "a rejected request must not consume a reply");
    }

    #[tokio::test]
    async fn openai_rejects_invalid_bodies() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        let call =
            |id: &str| json!({ "id": id, "type": "function", "function": { "name": "weather", "arguments": "{}" } });
        let with_messages = |messages: Value| {
            let mut body = openai_body(false);
            body["messages"] = messages;
            body
        };
        let mut without_model = openai_body(false);
        without_model.as_object_mut().expect("an object").remove("model");
        let mut not_streaming = openai_body(false);
        not_streaming["stream"] = json!(false);
        let cases = [
            ("missing model", without_model, "model parameter"),
            ("not streaming", not_streaming, "'stream' must be true"),
            ("empty messages", with_messages(json!([])), "too short"),
            (
                "unknown role",
                with_messages(json!([{ "role": "robot", "content": "x" }])),
                "Invalid value: 'robot'",
            ),
            (
                "tool without preceding call",
                with_messages(json!([
                    { "role": "user", "content": "x" },
                    { "role": "tool", "tool_call_id": "call_1", "content": "y" },
                ])),
                "must be a response to a preceding message with 'tool_calls'",
            ),
            (
                "unknown tool_call_id",
                with_messages(json!([
                    { "role": "user", "content": "x" },
                    { "role": "assistant", "content": null, "tool_calls": [call("call_1")] },
                    { "role": "tool", "tool_call_id": "call_2", "content": "y" },
                ])),
                "'call_2' not found",
            ),
            (
                "unanswered tool call",
                with_messages(json!([
                    { "role": "user", "content": "x" },
                    { "role": "assistant", "content": null, "tool_calls": [call("call_1"), call("call_2")] },
                    { "role": "tool", "tool_call_id": "call_1", "content": "y" },
                    { "role": "user", "content": "z" },
                ])),
                "did not have response messages: call_2",
            ),
            (
                "arguments as an object",
                with_messages(json!([
                    { "role": "user", "content": "x" },
                    { "role": "assistant", "content": null, "tool_calls": [
                        { "id": "call_1", "type": "function", "function": { "name": "weather", "arguments": {} } },
                    ] },
                    { "role": "tool", "tool_call_id": "call_1", "content": "y" },
                ])),
                "expected a string, but got an object",
            ),
        ];

        for (case, body, expected) in cases {
            let response = post_openai(&fake, &body).await;
            assert_eq!(response.status(), 400, "{case}");
            let error: Value = response.json().await.expect("a JSON error body");
            assert_eq!(error["error"]["type"], "invalid_request_error", "{case}");
            let message = error["error"]["message"].as_str().expect("a message");
            assert!(message.contains(expected), "{case}: {message}");
        }
    }

    #[tokio::test]
    async fn openai_accepts_tool_round_trip() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        fake.push(Reply::Stream(vec![Piece::text("Sunny.")]));
        let mut body = openai_body(true);
        body["tools"] =
            json!([{ "type": "function", "function": { "name": "weather", "parameters": { "type": "object" } } }]);
        body["messages"] = json!([
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "weather?" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_1", "type": "function", "function": { "name": "weather", "arguments": "{}" } },
                { "id": "call_2", "type": "function", "function": { "name": "weather", "arguments": "{}" } },
            ] },
            { "role": "tool", "tool_call_id": "call_2", "content": "rain" },
            { "role": "tool", "tool_call_id": "call_1", "content": "sun" },
        ]);

        let response = post_openai(&fake, &body).await;

        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn openai_lists_models() {
        let fake = FakeModels::start(Protocol::OpenAi, Some(KEY)).await;
        let url = format!("{}/models", fake.base_url);

        let empty: Value = client()
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("sending")
            .json()
            .await
            .expect("JSON");
        assert_eq!(empty, json!({ "object": "list", "data": [] }));

        fake.set_models(&["gpt-a", "gpt-b"]);
        let listed: Value = client()
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("sending")
            .json()
            .await
            .expect("JSON");
        assert_eq!(listed["object"], "list");
        let ids: Vec<&Value> = listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|model| &model["id"])
            .collect();
        assert_eq!(ids, [&json!("gpt-a"), &json!("gpt-b")]);
        assert_eq!(listed["data"][0]["object"], "model");

        let unauthorized = client().get(&url).send().await.expect("sending");
        assert_eq!(unauthorized.status(), 401);
    }

    #[tokio::test]
    async fn no_reply_left_is_500() {
        let fake = FakeModels::start(Protocol::OpenAi, None).await;

        let response = post_openai(&fake, &openai_body(false)).await;

        assert_eq!(response.status(), 500);
        let body: Value = response.json().await.expect("a JSON error body");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("no scripted reply")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        let fake = FakeModels::start(Protocol::Anthropic, None).await;

        let response = client()
            .post(format!("{}/v1/chat/completions", fake.base_url))
            .json(&openai_body(false))
            .send()
            .await
            .expect("sending");

        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["type"], "not_found_error");
    }

    #[tokio::test]
    async fn delay_flushes_earlier_frames() {
        let fake = FakeModels::start(Protocol::OpenAi, None).await;
        let delay = Duration::from_millis(400);
        fake.push(Reply::Stream(vec![
            Piece::text("early"),
            Piece::Delay(delay),
            Piece::text("late"),
        ]));
        let started = Instant::now();

        let mut response = post_openai(&fake, &openai_body(false)).await;
        let mut received = String::new();
        while !received.contains("early") {
            let chunk = response.chunk().await.expect("reading").expect("the stream continues");
            received.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
        let early_at = started.elapsed();
        let rest = response.text().await.expect("reading the rest");
        let late_at = started.elapsed();

        assert!(early_at < delay, "the text before the delay arrived after {early_at:?}");
        assert!(!received.contains("late"));
        assert!(rest.contains("late"));
        assert!(
            late_at >= delay,
            "the text after the delay arrived after only {late_at:?}"
        );
    }

    #[tokio::test]
    async fn hang_closes_when_client_leaves() {
        let fake = FakeModels::start(Protocol::Anthropic, None).await;
        fake.push(Reply::Hang);
        let url = format!("{}/v1/messages", fake.base_url);

        let request = tokio::spawn(async move {
            client()
                .post(url)
                .header("anthropic-version", "2023-06-01")
                .json(&anthropic_body())
                .send()
                .await
        });
        wait_for_open_streams(&fake, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!request.is_finished(), "a hanging reply must send no headers");
        request.abort();

        wait_for_open_streams(&fake, 0).await;
    }

    #[tokio::test]
    async fn slow_stream_closes_when_client_leaves() {
        let fake = FakeModels::start(Protocol::OpenAi, None).await;
        let mut pieces = vec![Piece::text("first")];
        for _ in 0..100 {
            pieces.push(Piece::Delay(Duration::from_millis(50)));
            pieces.push(Piece::text("more"));
        }
        fake.push(Reply::Stream(pieces));

        let mut response = post_openai(&fake, &openai_body(false)).await;
        let first = response.chunk().await.expect("reading").expect("a first chunk");
        assert!(!first.is_empty());
        assert_eq!(fake.open_streams(), 1);
        drop(response);

        wait_for_open_streams(&fake, 0).await;
    }

    #[tokio::test]
    async fn finished_stream_is_not_open() {
        let fake = FakeModels::start(Protocol::Anthropic, None).await;
        fake.push(Reply::Stream(vec![Piece::text("done")]));

        let response = post_anthropic(&fake, &anthropic_body()).await;
        let _ = response.text().await.expect("reading the stream");

        wait_for_open_streams(&fake, 0).await;
    }
}
