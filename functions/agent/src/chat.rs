//! `POST /api/agent/chat`: one question, answered by the agent as a stream.
//!
//! The request is checked and the user's message stored before the stream starts, so errors
//! in the request are plain JSON errors with their status. The response then streams in
//! steps. Each step is one model call: its text and tool calls are forwarded as they arrive,
//! its tools run on the server, and their results go back to the model. Steps repeat until
//! the model stops or the step limit is reached. The whole reply is stored as one assistant
//! message before the stream's last frames, so a client that reads `finish` finds it.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use futures::future::join_all;
use mako_core::auth::{Caller, WorkspaceCaller, authorize_workspace};
use mako_core::http::ApiJson;
use mako_core::ids::{InvalidId, WorkspaceId};
use mako_core::ports::StoreError;
use mako_core::repo::Versioned;
use mako_core::repo::chats::{Chat, Chats, Message, MessageRole};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::history::{message_id, parse_messages, text_of, turns_of};
use crate::models::{Model, catalogue, no_models, no_provider};
use crate::provider::{
    FinishReason, ModelRequest, Provider, ProviderError, StreamEvent, ToolCall, ToolResult, Turn, Usage,
};
use crate::stream::{Emitter, Gone};
use crate::tools::{self, ToolContext};
use crate::{AGENT_ID, AgentState};
use mako_core::config::ProviderKind;

/// Attempts at a chat record write that meets a concurrent change (a rename).
const SAVE_ATTEMPTS: usize = 8;

/// How long a chat stays busy without a renewal; the reply renews it every [`BUSY_RENEW`].
const BUSY_LEASE: Duration = Duration::from_secs(90);
const BUSY_RENEW: Duration = Duration::from_secs(30);

/// Maximum duration of a reply, below the 15 minutes a Lambda function may run.
const REPLY_DEADLINE: Duration = Duration::from_secs(14 * 60);

/// Tool calls run per step; more get an error result.
const MAX_CALLS_PER_STEP: usize = 16;

/// Bytes of text one step may stream before it is stopped.
const MAX_STEP_TEXT_BYTES: usize = 200_000;

/// Bytes one reply may keep in its stored message, below what one chat write takes.
const MAX_REPLY_BYTES: usize = 3_000_000;

/// Bytes of a tool call's input kept in the stored message.
const MAX_STORED_INPUT_BYTES: usize = 32 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChatBody {
    messages: Option<Vec<Value>>,
    chat_id: Option<String>,
    workspace_id: Option<String>,
    model: Option<String>,
    agent_id: Option<String>,
    /// Sent by the AI SDK's chat transport: its own id of the conversation, what caused
    /// the request, and the message to regenerate. Accepted and not used.
    #[serde(rename = "id")]
    _transport_id: Option<Value>,
    #[serde(rename = "trigger")]
    _trigger: Option<Value>,
    #[serde(rename = "messageId")]
    _message_id: Option<Value>,
}

/// Returns the system prompt: the agent's role, the workspace and how to use the tools.
fn system_prompt(access: &WorkspaceCaller) -> String {
    format!(
        "You are Mako, a data assistant inside a SQL client used by revenue-operations and data teams. \
         You are working in the workspace \"{workspace}\". Today is {today}.\n\
         Answer questions about the user's data by looking it up: list the connections, browse databases \
         and tables, describe the tables you need, then run read-only queries. Never guess table or column \
         names; check them first. Queries run read-only with a small row limit, so aggregate and filter in \
         the query instead of reading whole tables. Use the dialect of the connection's type (PostgreSQL, \
         MySQL, SQLite, or MongoDB shell syntax). When a query fails, read the error and fix the query.\n\
         Answer concisely, show the query you used, and give numbers from the results only. When the user \
         asks to keep a query, save it with save_console.",
        workspace = access.workspace.value.name,
        today = Utc::now().format("%Y-%m-%d"),
    )
}

/// Context of one chat reply: the caller, the model and its provider, and the limits.
struct Run {
    app: AppState,
    chat_id: mako_core::ids::ChatId,
    access: WorkspaceCaller,
    provider: Provider,
    model: Model,
    system: String,
    max_steps: u32,
    max_tokens: u32,
}

/// Result of the agent loop: the message parts, usage and how the reply ended.
#[derive(Default)]
struct Answer {
    parts: Vec<Value>,
    /// Bytes of `parts` as stored.
    bytes: usize,
    usage: Usage,
    finish: Option<FinishReason>,
    error: Option<String>,
    interrupted: bool,
    steps: u32,
    step_limit: bool,
    /// Tool call ids used so far, so that every call of the reply has its own.
    call_ids: HashSet<String>,
}

impl Answer {
    fn push(&mut self, part: Value) {
        self.bytes += part.to_string().len();
        self.parts.push(part);
    }

    /// Returns a tool call id that both providers accept (letters, digits, `_` and `-`) and
    /// that no earlier call of this reply has, whatever id the provider sent.
    fn unique_call_id(&mut self, raw: &str) -> String {
        let mut id: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if id.is_empty() {
            id = crate::provider::fresh_call_id();
        }
        let mut candidate = id.clone();
        let mut n = 2;
        while self.call_ids.contains(&candidate) {
            candidate = format!("{id}_{n}");
            n += 1;
        }
        self.call_ids.insert(candidate.clone());
        candidate
    }
}

/// Returns a tool name as it is stored and sent back to providers: the letters, digits, `_`
/// and `-` of the name the model sent, or `unnamed_tool`.
fn safe_tool_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect();
    if name.is_empty() {
        "unnamed_tool".to_owned()
    } else {
        name
    }
}

pub(crate) async fn chat(
    State(state): State<AgentState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<Response> {
    if let Some(agent) = body.agent_id.as_deref().filter(|agent| *agent != AGENT_ID) {
        return Err(ApiError::NotFound {
            code: "AGENT_NOT_FOUND",
            message: format!(
                "There is no agent {:?}; leave agentId out or use {AGENT_ID:?}.",
                agent.chars().take(64).collect::<String>()
            ),
        });
    }
    let Some(workspace_id) = body.workspace_id.as_deref() else {
        return Err(ApiError::invalid_field("workspaceId", "workspaceId is required."));
    };
    let workspace_id: WorkspaceId = workspace_id
        .parse()
        .map_err(|error: InvalidId| ApiError::invalid_field("workspaceId", error.to_string()))?;
    let chat_id = body
        .chat_id
        .as_deref()
        .map(|id| mako_chats::parse_chat_id("chatId", id))
        .transpose()?;
    let Some(values) = body.messages.as_deref() else {
        return Err(ApiError::invalid_field(
            "messages",
            "messages is required: an array ending with the user's question.",
        ));
    };
    let mut messages = parse_messages(values)?;
    let access = authorize_workspace(&state.app, caller, &workspace_id).await?;

    let catalogue = catalogue(&state).await?;
    if catalogue.models.is_empty() {
        let settings = &state.app.config.agent;
        return Err(
            match (&catalogue.listing_problem, catalogue.provider(ProviderKind::OpenAi)) {
                (Some(problem), Some(_)) => no_models(settings, problem),
                _ => no_provider(),
            },
        );
    }
    let disabled = &access.workspace.value.disabled_models;
    let model = match body.model.as_deref() {
        Some(id) => match catalogue.find(id) {
            Some(_) if disabled.iter().any(|off| off == id) => {
                return Err(ApiError::Forbidden {
                    code: "MODEL_DISABLED",
                    message: format!(
                        "The model {id} is turned off in this workspace; pick another from GET /api/agent/models."
                    ),
                });
            }
            Some(model) => model.clone(),
            None => {
                let known: Vec<&str> = catalogue
                    .models
                    .iter()
                    .map(|model| model.id.as_str())
                    .take(20)
                    .collect();
                return Err(ApiError::invalid_field(
                    "model",
                    format!(
                        "{:?} is not an available model; use one of: {}.",
                        id.chars().take(128).collect::<String>(),
                        known.join(", ")
                    ),
                ));
            }
        },
        None => match catalogue.default_for(disabled) {
            Some(model) => model.clone(),
            None => {
                return Err(ApiError::Forbidden {
                    code: "MODEL_DISABLED",
                    message: "Every model is turned off in this workspace; an admin can turn one on with PUT /api/workspaces/{id} (disabledModels).".into(),
                });
            }
        },
    };
    let Some(provider) = catalogue.provider(model.kind).cloned() else {
        return Err(no_provider());
    };

    let settings = &state.app.config.agent;
    // The context: a stored chat's messages and the new question, or the request's messages.
    let (chat, context) = match chat_id {
        Some(id) => {
            let stored = mako_chats::load_owned(&state.app, &access, &id).await?;
            let mut context = mako_chats::messages_of(&state.app, &stored.value).await?;
            let question = messages
                .pop()
                .ok_or_else(|| ApiError::invalid_field("messages", "messages is empty."))?;
            context.push(question.clone());
            let chat = begin(&state.app, &access, stored, vec![question], &model).await?;
            (chat, context)
        }
        None => {
            // Version 0: the chat is created by the same write that stores the messages.
            let fresh = Versioned {
                value: mako_chats::new_chat(&access, None),
                version: 0,
            };
            let chat = begin(&state.app, &access, fresh, messages.clone(), &model).await?;
            (chat, messages)
        }
    };
    let turns = turns_of(&context, settings.context_bytes);

    let run = Run {
        app: state.app.clone(),
        chat_id: chat.value.id.clone(),
        system: system_prompt(&access),
        access,
        provider,
        model,
        max_steps: settings.max_steps,
        max_tokens: settings.max_tokens,
    };
    let (emitter, response) = crate::stream::channel(settings.keepalive, chat.value.id.as_str());
    tokio::spawn(async move {
        let started = Instant::now();
        let lease = tokio::spawn(keep_busy(
            run.app.clone(),
            chat.value.workspace_id.clone(),
            chat.value.id.clone(),
        ));
        let message_id = message_id();
        tracing::info!(
            workspace_id = %chat.value.workspace_id,
            chat_id = %chat.value.id,
            model = %run.model.id,
            "agent reply started"
        );
        let start = json!({
            "type": "start",
            "messageId": message_id,
            "messageMetadata": { "chatId": chat.value.id, "model": run.model.id },
        });
        let answer = if emitter.send(start).await.is_err() {
            Answer {
                interrupted: true,
                ..Answer::default()
            }
        } else {
            match tokio::time::timeout(REPLY_DEADLINE, answer(&run, &emitter, turns)).await {
                Ok(answer) => answer,
                Err(_) => {
                    let text = format!(
                        "The reply took longer than {} minutes and was stopped.",
                        REPLY_DEADLINE.as_secs() / 60
                    );
                    let _ = emitter.send(json!({ "type": "error", "errorText": text })).await;
                    Answer {
                        error: Some(text),
                        finish: Some(FinishReason::Error),
                        ..Answer::default()
                    }
                }
            }
        };
        lease.abort();
        let finish_reason = answer.finish.unwrap_or(FinishReason::Other);
        if let Some(error) = &answer.error {
            tracing::warn!(chat_id = %chat.value.id, model = %run.model.id, error = ?error, "agent reply failed");
        }
        tracing::info!(
            chat_id = %chat.value.id,
            model = %run.model.id,
            steps = answer.steps,
            input_tokens = answer.usage.input_tokens,
            output_tokens = answer.usage.output_tokens,
            finish_reason = ?finish_reason,
            interrupted = answer.interrupted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "agent reply ended"
        );
        let metadata = json!({
            "chatId": chat.value.id,
            "model": run.model.id,
            "usage": answer.usage,
            "finishReason": finish_reason,
            "steps": answer.steps,
            "stepLimitReached": answer.step_limit,
            "interrupted": answer.interrupted,
            "error": answer.error,
        });
        let message = Message {
            id: message_id,
            role: MessageRole::Assistant,
            parts: answer.parts,
            metadata: metadata.clone(),
            created_at: Utc::now(),
        };
        match finish(&run.app, &chat, message, answer.usage).await {
            Ok(Stored::Whole) => {}
            Ok(Stored::ChatDeleted) => {
                let text = "The chat was deleted while the reply was written, so the reply was not stored.";
                let _ = emitter.send(json!({ "type": "error", "errorText": text })).await;
            }
            Ok(Stored::Summary) => {
                let text =
                    "The reply was too large to keep whole, so the chat keeps its text without the tool outputs.";
                let _ = emitter.send(json!({ "type": "error", "errorText": text })).await;
            }
            Err(error) => {
                tracing::error!(chat_id = %chat.value.id, error = ?error, "failed to store the agent's reply");
                let text = "Storing the reply in the chat failed; the server log has the details.";
                let _ = emitter.send(json!({ "type": "error", "errorText": text })).await;
            }
        }
        let _ = emitter
            .send(json!({ "type": "finish", "finishReason": finish_reason, "messageMetadata": metadata }))
            .await;
        let _ = emitter.done().await;
    });
    Ok(response)
}

/// Names the key setting when the provider refused the key.
fn key_hint(error: &ProviderError, kind: ProviderKind) -> &'static str {
    match (error, kind) {
        (ProviderError::Status { status: 401 | 403, .. }, ProviderKind::Anthropic) => {
            " (MAKO_ANTHROPIC_API_KEY, or the secret anthropic-api-key)"
        }
        (ProviderError::Status { status: 401 | 403, .. }, ProviderKind::OpenAi) => {
            " (MAKO_OPENAI_API_KEY, or the secret openai-api-key)"
        }
        _ => "",
    }
}

/// Renews the chat's busy mark while its reply is written, so that a server that stops
/// mid-reply leaves the chat busy for one lease at most.
async fn keep_busy(app: AppState, workspace: mako_core::ids::WorkspaceId, id: mako_core::ids::ChatId) {
    let chats = Chats::new(&*app.store);
    loop {
        tokio::time::sleep(BUSY_RENEW).await;
        let current = match chats.get(&workspace, &id).await {
            Ok(Some(current)) => current,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(chat_id = %id, error = ?error, "failed to read the chat to renew its busy mark");
                continue;
            }
        };
        let mut updated = current.value.clone();
        updated.busy_until = Some(Utc::now() + BUSY_LEASE);
        // A concurrent change (a rename) wins; the next round renews.
        if let Err(error) = chats.save(&current, &updated).await
            && !error.is_condition_failed()
        {
            tracing::warn!(chat_id = %id, error = ?error, "failed to renew the chat's busy mark");
        }
    }
}

/// Stores the new messages, names an unnamed chat after its first question, and marks the
/// chat busy until the reply is stored.
async fn begin(
    app: &AppState,
    access: &WorkspaceCaller,
    mut current: Versioned<Chat>,
    new: Vec<Message>,
    model: &Model,
) -> ApiResult<Versioned<Chat>> {
    let chats = Chats::new(&*app.store);
    let max = app.config.agent.max_chat_messages;
    for _ in 0..SAVE_ATTEMPTS {
        let now = Utc::now();
        let chat = &current.value;
        if chat.busy_until.is_some_and(|until| until > now) {
            return Err(ApiError::conflict(
                "CHAT_BUSY",
                format!(
                    "Chat {} is still answering the previous message; wait for it to finish, then send again.",
                    chat.id
                ),
            ));
        }
        if chat.message_count as usize + new.len() + 1 > max as usize {
            return Err(ApiError::conflict(
                "CHAT_FULL",
                format!(
                    "Chat {} holds {} messages and the limit is {max} (MAKO_MAX_CHAT_MESSAGES); start a new chat.",
                    chat.id, chat.message_count
                ),
            ));
        }
        let mut updated = chat.clone();
        if !updated.titled
            && updated.message_count == 0
            && let Some(first) = new.iter().find(|message| message.role == MessageRole::User)
        {
            updated.title = mako_chats::title_from(&text_of(first));
        }
        updated.model = Some(model.id.clone());
        updated.updated_at = now;
        updated.busy_until = Some(now + BUSY_LEASE);
        match chats.append(&current, updated, &new).await {
            Ok(saved) => return Ok(saved),
            Err(error) if error.is_condition_failed() => {
                current = mako_chats::load_owned(app, access, &current.value.id).await?;
            }
            Err(StoreError::InvalidRequest(reason)) => {
                return Err(ApiError::PayloadTooLarge {
                    message: format!(
                        "The messages are too large to store in the chat: {reason}. Send fewer or shorter messages."
                    ),
                });
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The chat kept changing while the message was stored; send it again.",
    ))
}

/// Outcome of storing a reply.
enum Stored {
    Whole,
    /// The reply was too large, so only its text was kept.
    Summary,
    /// The chat was deleted meanwhile, so nothing was kept.
    ChatDeleted,
}

/// Stores the reply, adds its usage to the chat and clears the busy mark. A reply the store
/// rejects as too large is stored as its text alone, so the chat never stays busy.
async fn finish(app: &AppState, chat: &Versioned<Chat>, mut message: Message, usage: Usage) -> anyhow::Result<Stored> {
    let chats = Chats::new(&*app.store);
    let mut current = chat.clone();
    let mut stored = Stored::Whole;
    for _ in 0..SAVE_ATTEMPTS {
        let mut updated = current.value.clone();
        updated.input_tokens = updated.input_tokens.saturating_add(usage.input_tokens);
        updated.output_tokens = updated.output_tokens.saturating_add(usage.output_tokens);
        updated.updated_at = Utc::now();
        updated.busy_until = None;
        match chats.append(&current, updated, std::slice::from_ref(&message)).await {
            Ok(_) => return Ok(stored),
            Err(error) if error.is_condition_failed() => {
                match chats.get(&chat.value.workspace_id, &chat.value.id).await? {
                    Some(latest) => current = latest,
                    None => {
                        tracing::info!(chat_id = %chat.value.id, "the chat was deleted during the reply, so the reply is dropped");
                        return Ok(Stored::ChatDeleted);
                    }
                }
            }
            Err(StoreError::InvalidRequest(reason)) if matches!(stored, Stored::Whole) => {
                tracing::warn!(chat_id = %chat.value.id, reason = %reason, "the reply is too large to store; keeping its text only");
                message.parts = summary_parts(&message.parts);
                message.metadata["error"] = json!(format!("The reply was too large to store whole: {reason}."));
                stored = Stored::Summary;
            }
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("the chat kept changing while the reply was stored")
}

/// Keeps a reply's text, cut to fit, and replaces its tool parts by their names.
fn summary_parts(parts: &[Value]) -> Vec<Value> {
    let mut text = String::new();
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some(kind) if kind.starts_with("tool-") => {
                text.push_str(&format!("\n[{kind} output not kept]\n"));
            }
            _ => {}
        }
    }
    let mut cut: String = text.chars().take(MAX_STEP_TEXT_BYTES / 4).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    vec![json!({ "type": "text", "text": cut, "state": "done" })]
}

/// The text of the current step, streamed as one or more text parts.
struct TextPart {
    id: String,
    text: String,
}

/// Closes the open text part: the message keeps the text, and the client gets `text-end`.
async fn close_text(open: &mut Option<TextPart>, emitter: &Emitter, answer: &mut Answer) -> Result<(), Gone> {
    if let Some(part) = open.take() {
        answer.push(json!({ "type": "text", "text": part.text, "state": "done" }));
        emitter.send(json!({ "type": "text-end", "id": part.id })).await?;
    }
    Ok(())
}

/// Keeps the open text part in the message when the client has left.
fn keep_text(open: &mut Option<TextPart>, answer: &mut Answer) -> Gone {
    if let Some(part) = open.take() {
        answer.push(json!({ "type": "text", "text": part.text, "state": "done" }));
    }
    Gone
}

/// Forwards one model call's stream to the client. Returns the step's text, its complete
/// tool calls and the finish reason.
async fn stream_step(
    run: &Run,
    emitter: &Emitter,
    step: u32,
    turns: &[Turn],
    answer: &mut Answer,
) -> Result<Result<(String, Vec<ToolCall>, FinishReason), ProviderError>, Gone> {
    let specs = tools::specs();
    let request = ModelRequest {
        model: &run.model.id,
        system: &run.system,
        turns,
        tools: &specs,
        max_tokens: run.max_tokens,
    };
    let opened = tokio::select! {
        opened = run.provider.stream(&request) => opened,
        () = emitter.closed() => return Err(Gone),
    };
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(error) => return Ok(Err(error)),
    };
    let mut open: Option<TextPart> = None;
    let mut parts = 0;
    let mut text = String::new();
    let mut calls = Vec::new();
    // The provider's call ids, and the ones this reply uses for them.
    let mut ids: HashMap<String, String> = HashMap::new();
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            () = emitter.closed() => return Err(keep_text(&mut open, answer)),
        };
        let event = match event {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                close_text(&mut open, emitter, answer).await?;
                return Ok(Err(error));
            }
            None => {
                close_text(&mut open, emitter, answer).await?;
                return Ok(Err(ProviderError::Protocol("the stream ended without a stop".into())));
            }
        };
        match event {
            StreamEvent::TextDelta(delta) => {
                if text.len() + delta.len() > MAX_STEP_TEXT_BYTES {
                    close_text(&mut open, emitter, answer).await?;
                    return Ok(Err(ProviderError::Protocol(format!(
                        "the model wrote more than {MAX_STEP_TEXT_BYTES} bytes of text in one step"
                    ))));
                }
                if open.is_none() {
                    parts += 1;
                    let id = format!("text-{step}-{parts}");
                    emitter.send(json!({ "type": "text-start", "id": id })).await?;
                    open = Some(TextPart {
                        id,
                        text: String::new(),
                    });
                }
                if let Some(part) = open.as_mut() {
                    part.text.push_str(&delta);
                    let sent = emitter
                        .send(json!({ "type": "text-delta", "id": part.id, "delta": delta }))
                        .await;
                    if sent.is_err() {
                        return Err(keep_text(&mut open, answer));
                    }
                }
                text.push_str(&delta);
            }
            StreamEvent::ToolStart { id, name } => {
                close_text(&mut open, emitter, answer).await?;
                let safe = answer.unique_call_id(&id);
                ids.insert(id, safe.clone());
                emitter
                    .send(json!({ "type": "tool-input-start", "toolCallId": safe, "toolName": safe_tool_name(&name) }))
                    .await?;
            }
            StreamEvent::ToolDelta { id, fragment } => {
                if let Some(safe) = ids.get(&id) {
                    emitter
                        .send(json!({ "type": "tool-input-delta", "toolCallId": safe, "inputTextDelta": fragment }))
                        .await?;
                }
            }
            StreamEvent::ToolCall(mut call) => {
                close_text(&mut open, emitter, answer).await?;
                call.id = match ids.get(&call.id) {
                    Some(safe) => safe.clone(),
                    None => answer.unique_call_id(&call.id),
                };
                if call.name.is_empty() {
                    call.invalid.get_or_insert_with(|| "the call names no tool".to_owned());
                }
                call.name = safe_tool_name(&call.name);
                emitter
                    .send(json!({
                        "type": "tool-input-available",
                        "toolCallId": call.id,
                        "toolName": call.name,
                        "input": call.input,
                    }))
                    .await?;
                calls.push(call);
            }
            StreamEvent::Finish { reason, usage } => {
                close_text(&mut open, emitter, answer).await?;
                answer.usage += usage;
                return Ok(Ok((text, calls, reason)));
            }
        }
    }
}

/// Runs the tool calls of one step at once and streams each result. Calls past
/// [`MAX_CALLS_PER_STEP`] get an error result without running.
async fn run_tools(
    run: &Run,
    emitter: &Emitter,
    calls: &[ToolCall],
    answer: &mut Answer,
) -> Result<Vec<ToolResult>, Gone> {
    let context = ToolContext {
        state: &run.app,
        access: &run.access,
    };
    let outcomes = tokio::select! {
        outcomes = join_all(calls.iter().enumerate().map(|(index, call)| {
            let context = &context;
            async move {
            if index >= MAX_CALLS_PER_STEP {
                return Err(format!(
                    "at most {MAX_CALLS_PER_STEP} tool calls run per step; call the others in the next step"
                ));
            }
            if let Some(why) = &call.invalid {
                return Err(format!("the call could not be read: {why}; send the arguments as a JSON object"));
            }
            tools::call(context, &call.name, &call.input).await
        }})) => outcomes,
        () = emitter.closed() => return Err(Gone),
    };
    let mut results = Vec::with_capacity(calls.len());
    for (call, outcome) in calls.iter().zip(outcomes) {
        let part_type = format!("tool-{}", call.name);
        let input_bytes = call.input.to_string().len();
        let stored_input = if input_bytes > MAX_STORED_INPUT_BYTES {
            json!({ "omitted": format!("The input was {input_bytes} bytes, too large to keep in the chat.") })
        } else {
            call.input.clone()
        };
        match outcome {
            Ok(output) => {
                emitter
                    .send(json!({ "type": "tool-output-available", "toolCallId": call.id, "output": output.output }))
                    .await?;
                answer.push(json!({
                    "type": part_type,
                    "toolCallId": call.id,
                    "state": "output-available",
                    "input": stored_input,
                    "output": output.output,
                }));
                results.push(ToolResult {
                    call_id: call.id.clone(),
                    content: output.summary,
                    is_error: false,
                });
            }
            Err(error) => {
                tracing::info!(
                    chat_id = %run.chat_id,
                    tool = ?call.name,
                    error = ?error,
                    "agent tool call failed"
                );
                emitter
                    .send(json!({ "type": "tool-output-error", "toolCallId": call.id, "errorText": error }))
                    .await?;
                answer.push(json!({
                    "type": part_type,
                    "toolCallId": call.id,
                    "state": "output-error",
                    "input": stored_input,
                    "errorText": error,
                }));
                results.push(ToolResult {
                    call_id: call.id.clone(),
                    content: error,
                    is_error: true,
                });
            }
        }
    }
    Ok(results)
}

/// Runs the agent loop: model calls and tool runs until the model stops, the step limit is
/// reached, the reply outgrows what a chat message keeps, the provider fails or the client
/// disconnects.
async fn answer(run: &Run, emitter: &Emitter, mut turns: Vec<Turn>) -> Answer {
    let mut answer = Answer::default();
    let outcome: Result<(), Gone> = async {
        for step in 0..run.max_steps {
            answer.steps = step + 1;
            emitter.send(json!({ "type": "start-step" })).await?;
            answer.push(json!({ "type": "step-start" }));
            let (text, calls, reason) = match stream_step(run, emitter, step, &turns, &mut answer).await? {
                Ok(step) => step,
                Err(error) => {
                    let text = format!("The reply stopped because {error}{}.", key_hint(&error, run.provider.kind));
                    answer.error = Some(error.to_string());
                    answer.finish = Some(FinishReason::Error);
                    emitter.send(json!({ "type": "error", "errorText": text })).await?;
                    emitter.send(json!({ "type": "finish-step" })).await?;
                    return Ok(());
                }
            };
            answer.finish = Some(reason);
            if calls.is_empty() {
                emitter.send(json!({ "type": "finish-step" })).await?;
                return Ok(());
            }
            let results = run_tools(run, emitter, &calls, &mut answer).await?;
            emitter.send(json!({ "type": "finish-step" })).await?;
            if answer.bytes > MAX_REPLY_BYTES {
                let text = format!(
                    "The reply stopped because its tool outputs exceed {} MB, the most one chat message keeps; ask for less at once.",
                    MAX_REPLY_BYTES / 1_000_000
                );
                answer.error = Some(text.clone());
                answer.finish = Some(FinishReason::Length);
                emitter.send(json!({ "type": "error", "errorText": text })).await?;
                return Ok(());
            }
            turns.push(Turn::Assistant { text, calls });
            turns.push(Turn::ToolResults(results));
        }
        answer.step_limit = true;
        answer.finish = Some(FinishReason::ToolCalls);
        Ok(())
    }
    .await;
    if outcome.is_err() {
        answer.interrupted = true;
        answer.finish = Some(FinishReason::Other);
        tracing::info!(chat_id = %run.chat_id, steps = answer.steps, "the client disconnected, so the agent stopped");
    }
    answer
}
