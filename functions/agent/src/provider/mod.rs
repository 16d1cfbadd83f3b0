//! Model providers: one streaming call of the Anthropic Messages API or of the OpenAI Chat
//! Completions API (and servers compatible with it), read as a sequence of [`StreamEvent`]s.
//!
//! Both protocols are spoken over `reqwest`. Each module turns a [`ModelRequest`] into the
//! provider's request body and parses its event stream: text deltas, tool calls assembled
//! from fragments, the stop reason and token usage, and errors sent mid-stream.

pub mod anthropic;
pub mod openai;
pub mod sse;

use std::time::Duration;

use mako_core::config::{ProviderKind, ProviderSettings};
use mako_core::ports::secrets::SecretString;
use serde::Serialize;
use serde_json::Value;

use sse::{SseMessage, SseReader};

/// A tool the model may call.
#[derive(Clone, Debug, Serialize)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of the input object.
    pub input_schema: Value,
}

/// A complete tool call, as the model made it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments; an empty object when the model sent none.
    pub input: Value,
    /// Set when the arguments were not a JSON object: the text received and why it failed.
    pub invalid: Option<String>,
}

/// The outcome of a tool call, as it is fed back to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// Text for the model: a summary of the output, or the error.
    pub content: String,
    pub is_error: bool,
}

/// One turn of the conversation sent to the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Turn {
    User(String),
    Assistant {
        text: String,
        calls: Vec<ToolCall>,
    },
    /// The results of the previous assistant turn's tool calls.
    ToolResults(Vec<ToolResult>),
}

/// One model call.
#[derive(Clone, Debug)]
pub struct ModelRequest<'a> {
    pub model: &'a str,
    pub system: &'a str,
    pub turns: &'a [Turn],
    pub tools: &'a [ToolSpec],
    pub max_tokens: u32,
}

/// Reason the model stopped, in the AI SDK's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
    ToolCalls,
    Error,
    Other,
}

/// Tokens one call read and wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

/// Event of a provider's stream, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    /// A tool call began; its arguments follow as fragments.
    ToolStart {
        id: String,
        name: String,
    },
    ToolDelta {
        id: String,
        fragment: String,
    },
    /// A tool call is complete.
    ToolCall(ToolCall),
    /// The last event of a successful call.
    Finish {
        reason: FinishReason,
        usage: Usage,
    },
}

/// Error of a provider call.
#[derive(Debug)]
pub enum ProviderError {
    /// The provider returned an error status before streaming.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// No response, or a silence within the stream, longer than the timeout.
    Timeout(Duration),
    /// The provider could not be reached, or the connection broke.
    Connect(String),
    /// The provider reported an error within the stream.
    Stream(String),
    /// The provider sent something this protocol does not allow.
    Protocol(String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Status {
                status: 429,
                message,
                retry_after,
            } => {
                write!(f, "the model provider is rate limiting requests ({message})")?;
                if let Some(secs) = retry_after {
                    write!(f, "; retry in {secs} s")?;
                }
                Ok(())
            }
            ProviderError::Status {
                status: 401 | 403,
                message,
                ..
            } => write!(
                f,
                "the model provider refused the API key ({message}); check the provider's key setting"
            ),
            ProviderError::Status { status, message, .. } => {
                write!(f, "the model provider answered HTTP {status}: {message}")
            }
            ProviderError::Timeout(limit) => write!(
                f,
                "the model provider sent nothing for {} s (MAKO_AGENT_PROVIDER_TIMEOUT_SECS)",
                limit.as_secs()
            ),
            ProviderError::Connect(message) => write!(f, "the model provider could not be reached: {message}"),
            ProviderError::Stream(message) => write!(f, "the model provider reported an error: {message}"),
            ProviderError::Protocol(message) => write!(f, "the model provider's stream is malformed: {message}"),
        }
    }
}

impl std::error::Error for ProviderError {}

/// Parses one protocol's event stream.
trait Parser: Send {
    fn feed(&mut self, message: SseMessage) -> Result<Vec<StreamEvent>, ProviderError>;
    /// The body ended; returns the last events, or an error if the stream was cut short.
    fn end(&mut self) -> Result<Vec<StreamEvent>, ProviderError>;
}

/// A configured provider with its key.
#[derive(Clone)]
pub struct Provider {
    pub kind: ProviderKind,
    base_url: url::Url,
    api_key: Option<SecretString>,
    http: reqwest::Client,
    timeout: Duration,
}

impl Provider {
    pub fn new(
        settings: &ProviderSettings,
        api_key: Option<SecretString>,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        Self {
            kind: settings.kind,
            base_url: settings.base_url.clone(),
            api_key,
            http,
            timeout,
        }
    }

    fn endpoint(&self) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        match self.kind {
            ProviderKind::Anthropic => format!("{base}/v1/messages"),
            ProviderKind::OpenAi => format!("{base}/chat/completions"),
        }
    }

    /// Sends the request and waits for the response headers.
    pub async fn stream(&self, request: &ModelRequest<'_>) -> Result<ProviderStream, ProviderError> {
        let key = self.api_key.as_ref().map(SecretString::expose);
        let builder = self.http.post(self.endpoint()).header("accept", "text/event-stream");
        let (builder, parser): (_, Box<dyn Parser>) = match self.kind {
            ProviderKind::Anthropic => (
                anthropic::authorize(builder, key).json(&anthropic::body(request)),
                Box::new(anthropic::StreamParser::default()),
            ),
            ProviderKind::OpenAi => (
                openai::authorize(builder, key).json(&openai::body(request)),
                Box::new(openai::StreamParser::default()),
            ),
        };
        let response = match tokio::time::timeout(self.timeout, builder.send()).await {
            Err(_) => return Err(ProviderError::Timeout(self.timeout)),
            Ok(Err(error)) => return Err(ProviderError::Connect(describe_reqwest(&error))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            let body = tokio::time::timeout(self.timeout, error_body(response))
                .await
                .unwrap_or_default();
            return Err(ProviderError::Status {
                status: status.as_u16(),
                message: error_message(&body, status),
                retry_after,
            });
        }
        Ok(ProviderStream {
            response,
            reader: SseReader::default(),
            parser,
            pending: std::collections::VecDeque::new(),
            timeout: self.timeout,
            done: false,
        })
    }
}

/// Most bytes of an error response read; the rest is left unread.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// Reads the start of an error response's body.
async fn error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY_BYTES);
    body
}

/// Reads the message of a provider's JSON error body (both protocols nest it in `error`).
fn error_message(body: &[u8], status: reqwest::StatusCode) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|value| {
        value
            .pointer("/error/message")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("no details").to_owned()
        } else {
            text.to_owned()
        }
    });
    message.chars().take(500).collect()
}

/// Describes a transport error with its causes, which name the address and the reason.
fn describe_reqwest(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An open streaming response.
pub struct ProviderStream {
    response: reqwest::Response,
    reader: SseReader,
    parser: Box<dyn Parser>,
    pending: std::collections::VecDeque<StreamEvent>,
    timeout: Duration,
    done: bool,
}

impl ProviderStream {
    /// Returns the next event; `None` after [`StreamEvent::Finish`] or an error.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let chunk = match tokio::time::timeout(self.timeout, self.response.chunk()).await {
                Err(_) => return self.fail(ProviderError::Timeout(self.timeout)),
                Ok(Err(error)) => return self.fail(ProviderError::Connect(describe_reqwest(&error))),
                Ok(Ok(chunk)) => chunk,
            };
            let result = match chunk {
                Some(bytes) => self
                    .reader
                    .feed(&bytes)
                    .map_err(ProviderError::Protocol)
                    .and_then(|messages| {
                        let mut events = Vec::new();
                        for message in messages {
                            events.extend(self.parser.feed(message)?);
                        }
                        Ok(events)
                    }),
                None => {
                    self.done = true;
                    let last = self.reader.finish();
                    let mut events = Vec::new();
                    let fed = match last {
                        Some(message) => self.parser.feed(message).map(|more| events.extend(more)),
                        None => Ok(()),
                    };
                    fed.and_then(|()| self.parser.end()).map(|more| {
                        events.extend(more);
                        events
                    })
                }
            };
            match result {
                Ok(events) => {
                    for event in events {
                        let finished = matches!(event, StreamEvent::Finish { .. });
                        self.pending.push_back(event);
                        if finished {
                            self.done = true;
                            break;
                        }
                    }
                }
                Err(error) => return self.fail(error),
            }
        }
    }

    fn fail(&mut self, error: ProviderError) -> Option<Result<StreamEvent, ProviderError>> {
        self.done = true;
        self.pending.clear();
        Some(Err(error))
    }
}

/// Parses a tool call's accumulated argument text: an object, or an empty object for no text.
pub(crate) fn parse_arguments(text: &str) -> (Value, Option<String>) {
    if text.trim().is_empty() {
        return (Value::Object(Default::default()), None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => (value, None),
        Ok(other) => (
            Value::Object(Default::default()),
            Some(format!(
                "the arguments are not a JSON object: {}",
                truncate(&other.to_string(), 200)
            )),
        ),
        Err(error) => (
            Value::Object(Default::default()),
            Some(format!(
                "the arguments are not valid JSON ({error}): {}",
                truncate(text, 200)
            )),
        ),
    }
}

/// Cuts text to at most `max` characters.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push('…');
    cut
}

/// Returns a new tool call id, for servers that send none.
pub(crate) fn fresh_call_id() -> String {
    format!("call_{}", mako_core::ids::next_ulid().to_string().to_ascii_lowercase())
}
