//! `POST /api/agent/chat`: one question, answered by the agent as a stream.
//!
//! The request is checked and the user's message stored before the stream starts, so errors
//! in the request are plain JSON errors with their status. The response then streams in
//! steps. Each step is one model call: its text and tool calls are forwarded as they arrive,
//! its tools run on the server, and their results go back to the model. Steps repeat until
//! the model stops or the step limit is reached. The whole reply is stored as one assistant
//! message before the stream's last frames, so a client that reads `finish` finds it.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use futures::future::join_all;
use mako_core::auth::{Caller, WorkspaceCaller, authorize_workspace};
use mako_core::http::ApiJson;
use mako_core::ids::{InvalidId, WorkspaceId};
use mako_core::repo::Versioned;
use mako_core::repo::chats::{Chat, Chats, Message, MessageRole};
use mako_core::{ApiError, ApiResult, AppState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::history::{message_id, parse_messages, text_of, turns_of};
use crate::models::{Model, catalogue, no_provider};
use crate::provider::{
    FinishReason, ModelRequest, Provider, ProviderError, StreamEvent, ToolCall, ToolResult, Turn, Usage,
};
use crate::stream::{Emitter, Gone};
use crate::tools::{self, ToolContext};
use crate::{AGENT_ID, AgentState};

/// Attempts at a chat record write that meets a concurrent change (a rename).
const SAVE_ATTEMPTS: usize = 8;

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
    usage: Usage,
    finish: Option<FinishReason>,
    error: Option<String>,
    interrupted: bool,
    steps: u32,
    step_limit: bool,
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
        return Err(no_provider());
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
    let chats = Chats::new(&*state.app.store);
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
            let fresh = mako_chats::new_chat(&access, None);
            chats.create(&fresh).await?;
            let stored = Versioned {
                value: fresh,
                version: 1,
            };
            let chat = begin(&state.app, &access, stored, messages.clone(), &model).await?;
            (chat, messages)
        }
    };
    let turns = turns_of(&context, settings.context_bytes);

    let run = Run {
        app: state.app.clone(),
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
            answer(&run, &emitter, turns).await
        };
        let finish_reason = answer.finish.unwrap_or(FinishReason::Other);
        if let Some(error) = &answer.error {
            tracing::warn!(chat_id = %chat.value.id, model = %run.model.id, error = %error, "agent reply failed");
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
        if let Err(error) = finish(&run.app, &chat, message, answer.usage).await {
            tracing::error!(chat_id = %chat.value.id, error = ?error, "failed to store the agent's reply");
            let _ = emitter
                .send(json!({ "type": "error", "errorText": "Storing the reply in the chat failed; the server log has the details." }))
                .await;
        }
        let _ = emitter
            .send(json!({ "type": "finish", "finishReason": finish_reason, "messageMetadata": metadata }))
            .await;
        let _ = emitter.done().await;
    });
    Ok(response)
}

/// Returns how long a chat stays busy for one reply: long enough for every step to wait for
/// its model and run a query, capped at an hour.
fn busy_lease(app: &AppState) -> Duration {
    let agent = &app.config.agent;
    let step = agent.provider_timeout * 2 + agent.query_timeout;
    (step * agent.max_steps).min(Duration::from_secs(3600))
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
        updated.busy_until = Some(now + busy_lease(app));
        match chats.append(&current, updated, &new).await {
            Ok(saved) => return Ok(saved),
            Err(error) if error.is_condition_failed() => {
                current = mako_chats::load_owned(app, access, &current.value.id).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The chat kept changing while the message was stored; send it again.",
    ))
}

/// Stores the reply, adds its usage to the chat and clears the busy mark.
async fn finish(app: &AppState, chat: &Versioned<Chat>, message: Message, usage: Usage) -> anyhow::Result<()> {
    let chats = Chats::new(&*app.store);
    let mut current = chat.clone();
    for _ in 0..SAVE_ATTEMPTS {
        let mut updated = current.value.clone();
        updated.input_tokens += usage.input_tokens;
        updated.output_tokens += usage.output_tokens;
        updated.updated_at = Utc::now();
        updated.busy_until = None;
        match chats.append(&current, updated, std::slice::from_ref(&message)).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_condition_failed() => {
                match chats.get(&chat.value.workspace_id, &chat.value.id).await? {
                    Some(latest) => current = latest,
                    None => {
                        tracing::info!(chat_id = %chat.value.id, "the chat was deleted during the reply, so the reply is dropped");
                        return Ok(());
                    }
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    anyhow::bail!("the chat kept changing while the reply was stored")
}

/// The text of the current step, streamed as one or more text parts.
struct TextPart {
    id: String,
    text: String,
}

/// Closes the open text part: the message keeps the text, and the client gets `text-end`.
async fn close_text(open: &mut Option<TextPart>, emitter: &Emitter, answer: &mut Answer) -> Result<(), Gone> {
    if let Some(part) = open.take() {
        answer
            .parts
            .push(json!({ "type": "text", "text": part.text, "state": "done" }));
        emitter.send(json!({ "type": "text-end", "id": part.id })).await?;
    }
    Ok(())
}

/// Keeps the open text part in the message when the client has left.
fn keep_text(open: &mut Option<TextPart>, answer: &mut Answer) -> Gone {
    if let Some(part) = open.take() {
        answer
            .parts
            .push(json!({ "type": "text", "text": part.text, "state": "done" }));
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
                emitter
                    .send(json!({ "type": "tool-input-start", "toolCallId": id, "toolName": name }))
                    .await?;
            }
            StreamEvent::ToolDelta { id, fragment } => {
                emitter
                    .send(json!({ "type": "tool-input-delta", "toolCallId": id, "inputTextDelta": fragment }))
                    .await?;
            }
            StreamEvent::ToolCall(call) => {
                close_text(&mut open, emitter, answer).await?;
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

/// Runs the tool calls of one step at once and streams each result.
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
        outcomes = join_all(calls.iter().map(|call| async {
            if let Some(why) = &call.invalid {
                return Err(format!("the call could not be read: {why}; send the arguments as a JSON object"));
            }
            tools::call(&context, &call.name, &call.input).await
        })) => outcomes,
        () = emitter.closed() => return Err(Gone),
    };
    let mut results = Vec::with_capacity(calls.len());
    for (call, outcome) in calls.iter().zip(outcomes) {
        let part_type = format!("tool-{}", call.name);
        match outcome {
            Ok(output) => {
                emitter
                    .send(json!({ "type": "tool-output-available", "toolCallId": call.id, "output": output.output }))
                    .await?;
                answer.parts.push(json!({
                    "type": part_type,
                    "toolCallId": call.id,
                    "state": "output-available",
                    "input": call.input,
                    "output": output.output,
                }));
                results.push(ToolResult {
                    call_id: call.id.clone(),
                    content: output.summary,
                    is_error: false,
                });
            }
            Err(error) => {
                tracing::info!(tool = %call.name, error = %error, "agent tool call failed");
                emitter
                    .send(json!({ "type": "tool-output-error", "toolCallId": call.id, "errorText": error }))
                    .await?;
                answer.parts.push(json!({
                    "type": part_type,
                    "toolCallId": call.id,
                    "state": "output-error",
                    "input": call.input,
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
/// reached, the provider fails or the client disconnects.
async fn answer(run: &Run, emitter: &Emitter, mut turns: Vec<Turn>) -> Answer {
    let mut answer = Answer::default();
    let outcome: Result<(), Gone> = async {
        for step in 0..run.max_steps {
            answer.steps = step + 1;
            emitter.send(json!({ "type": "start-step" })).await?;
            answer.parts.push(json!({ "type": "step-start" }));
            let (text, calls, reason) = match stream_step(run, emitter, step, &turns, &mut answer).await? {
                Ok(step) => step,
                Err(error) => {
                    let text = format!("The reply stopped because {error}.");
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
        tracing::info!(steps = answer.steps, "the client left; the agent stopped");
    }
    answer
}
