//! The `/api/workspaces/{wid}/chats` route family: a member's conversations with the agent.
//!
//! A chat belongs to the member who started it (API keys act as their creator). No other
//! member can read, rename, continue or delete it, and for them it does not exist (404). Listing
//! returns the caller's chats, most recently active first, without their messages.
//! The agent (`POST /api/agent/chat`) creates chats and adds messages through this crate.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiJson, ApiPath, ApiQuery, PageParams, created, ok, ok_page, optional_json};
use mako_core::ids::{ChatId, InvalidId, UserId, WorkspaceId};
use mako_core::repo::Versioned;
use mako_core::repo::chats::{Chat, Chats, Message};
use mako_core::text::clean_name;
use mako_core::{ApiError, ApiResult, AppState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Maximum chat title length, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Characters of the first question kept in a chat's automatic title.
const AUTO_TITLE_CHARS: usize = 60;

/// Title of a chat that has no name yet.
pub const UNTITLED: &str = "New chat";

/// Builds the router of the chat routes.
pub fn router(state: AppState) -> Router {
    let base = "/api/workspaces/{wid}/chats";
    Router::new()
        .route(base, get(list).post(create))
        .route(&format!("{base}/{{id}}"), get(details).put(rename).delete(delete))
        .with_state(state)
}

/// A chat as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatView {
    pub id: ChatId,
    pub workspace_id: WorkspaceId,
    pub owner_id: UserId,
    pub title: String,
    pub model: Option<String>,
    pub message_count: u32,
    pub usage: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Value>>,
}

impl ChatView {
    pub fn new(chat: &Chat, messages: Option<Vec<Message>>) -> ChatView {
        ChatView {
            id: chat.id.clone(),
            workspace_id: chat.workspace_id.clone(),
            owner_id: chat.owner_id.clone(),
            title: chat.title.clone(),
            model: chat.model.clone(),
            message_count: chat.message_count,
            usage: json!({ "inputTokens": chat.input_tokens, "outputTokens": chat.output_tokens }),
            created_at: chat.created_at,
            updated_at: chat.updated_at,
            messages: messages.map(|messages| messages.iter().map(message_view).collect()),
        }
    }
}

/// Returns a stored message in the AI SDK's `UIMessage` shape, which `useChat` takes as
/// initial messages. `createdAt` is added to the metadata.
pub fn message_view(message: &Message) -> Value {
    let mut metadata = match &message.metadata {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    metadata.insert("createdAt".into(), json!(message.created_at));
    json!({
        "id": message.id,
        "role": message.role,
        "parts": message.parts,
        "metadata": metadata,
    })
}

/// Checks a title given by a person.
pub fn check_title(title: &str) -> ApiResult<String> {
    clean_name("chat title", title, MAX_TITLE_CHARS).map_err(|message| ApiError::invalid_field("title", message))
}

/// Derives a short title from a chat's first question: its first line, cut at a word
/// boundary near [`AUTO_TITLE_CHARS`] characters.
pub fn title_from(question: &str) -> String {
    // Control and formatting characters (such as right-to-left overrides) are dropped, as
    // a title set by hand may not contain them.
    let visible: String = question
        .chars()
        .filter(|c| *c == '\n' || !(c.is_control() || is_format(*c)))
        .collect();
    let line = visible
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    let line: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return UNTITLED.to_owned();
    }
    if line.chars().count() <= AUTO_TITLE_CHARS {
        return line;
    }
    let cut: String = line.chars().take(AUTO_TITLE_CHARS).collect();
    let shortened = match cut.rfind(' ') {
        Some(space) if space >= AUTO_TITLE_CHARS / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", shortened.trim_end_matches([',', ';', ':', '.', ' ']))
}

/// Returns whether a character is an invisible formatting character: zero-width ones, bidi
/// controls and the byte order mark.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Returns a new, empty chat of the caller.
pub fn new_chat(access: &WorkspaceCaller, title: Option<String>) -> Chat {
    let now = Utc::now();
    Chat {
        id: ChatId::new(),
        workspace_id: access.workspace_id().clone(),
        owner_id: access.caller.user_id().clone(),
        titled: title.is_some(),
        title: title.unwrap_or_else(|| UNTITLED.to_owned()),
        model: None,
        message_count: 0,
        input_tokens: 0,
        output_tokens: 0,
        created_at: now,
        updated_at: now,
        busy_until: None,
    }
}

/// Parses a chat id from a path or body field.
pub fn parse_chat_id(field: &str, text: &str) -> ApiResult<ChatId> {
    text.parse()
        .map_err(|error: InvalidId| ApiError::invalid_field(field, error.to_string()))
}

/// Reads a chat of the caller; other members' chats are 404 like missing ones.
pub async fn load_owned(state: &AppState, access: &WorkspaceCaller, id: &ChatId) -> ApiResult<Versioned<Chat>> {
    match Chats::new(&*state.store).get(access.workspace_id(), id).await? {
        Some(chat) if &chat.value.owner_id == access.caller.user_id() => Ok(chat),
        _ => Err(ApiError::not_found(format!(
            "Chat {id} was not found in this workspace."
        ))),
    }
}

/// Reads a chat's messages.
pub async fn messages_of(state: &AppState, chat: &Chat) -> ApiResult<Vec<Message>> {
    Ok(Chats::new(&*state.store).messages(chat).await?)
}

async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Response> {
    let limit = page.size(50, 200)?;
    let (chats, cursor) = Chats::new(&*state.store)
        .list(access.workspace_id(), access.caller.user_id(), limit, page.cursor)
        .await?;
    let views: Vec<ChatView> = chats.iter().map(|chat| ChatView::new(chat, None)).collect();
    Ok(ok_page(views, cursor))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    title: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: CreateBody = optional_json(&body)?;
    let title = body.title.as_deref().map(check_title).transpose()?;
    let chat = new_chat(&access, title);
    Chats::new(&*state.store).create(&chat).await?;
    tracing::info!(workspace_id = %chat.workspace_id, chat_id = %chat.id, "chat created");
    Ok(created(ChatView::new(&chat, Some(Vec::new()))))
}

async fn details(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_chat_id("id", &id)?;
    let chat = load_owned(&state, &access, &id).await?;
    let messages = messages_of(&state, &chat.value).await?;
    Ok(ok(ChatView::new(&chat.value, Some(messages))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RenameBody {
    title: String,
}

async fn rename(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RenameBody>,
) -> ApiResult<Response> {
    let id = parse_chat_id("id", &id)?;
    let title = check_title(&body.title)?;
    let chats = Chats::new(&*state.store);
    // Storing a reply changes the record too, so a few attempts ride over it.
    for _ in 0..10 {
        let current = load_owned(&state, &access, &id).await?;
        let mut updated = current.value.clone();
        updated.title = title.clone();
        updated.titled = true;
        updated.updated_at = Utc::now();
        match chats.save(&current, &updated).await {
            Ok(saved) => return Ok(ok(ChatView::new(&saved.value, None))),
            Err(error) if error.is_condition_failed() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        format!("Chat {id} kept changing while it was renamed; try again."),
    ))
}

async fn delete(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_chat_id("id", &id)?;
    let chats = Chats::new(&*state.store);
    for _ in 0..10 {
        let current = load_owned(&state, &access, &id).await?;
        match chats.delete(&current).await {
            Ok(()) => {
                tracing::info!(chat_id = %id, "chat deleted");
                return Ok(ok(json!({ "id": id, "deleted": true })));
            }
            Err(error) if error.is_condition_failed() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        format!("Chat {id} kept changing while it was deleted; try again."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_uses_first_line() {
        assert_eq!(
            title_from("  \n Top customers by revenue?\nthanks"),
            "Top customers by revenue?"
        );
        assert_eq!(title_from("   "), UNTITLED);
        let long = "Show me the ten customers with the highest revenue in the last quarter, grouped by region";
        let title = title_from(long);
        assert!(title.ends_with('…'), "{title}");
        assert!(title.chars().count() <= AUTO_TITLE_CHARS + 1, "{title}");
        assert!(long.starts_with(title.trim_end_matches('…')), "{title}");
        assert_eq!(title_from("\u{202e}\u{7}Revenue\u{200b} by month"), "Revenue by month");
        assert_eq!(title_from("\u{200b}\u{200b}"), UNTITLED);
        let unbroken = "x".repeat(100);
        assert_eq!(title_from(&unbroken).chars().count(), AUTO_TITLE_CHARS + 1);
    }
}
