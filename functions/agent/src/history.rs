//! Messages in and out of the model's terms.
//!
//! Requests carry messages in the API reference's `{role, content}` form or the AI SDK's
//! `UIMessage` form (`{id, role, parts}`); both are stored as `UIMessage`s. A chat's stored
//! messages become the model's turns: text, tool calls and their results.

use chrono::Utc;
use mako_core::ids::next_ulid;
use mako_core::repo::chats::{Message, MessageRole};
use mako_core::{ApiError, ApiResult};
use serde_json::{Value, json};

use crate::provider::{ToolCall, ToolResult, Turn, truncate};

/// Messages one request may carry.
pub const MAX_REQUEST_MESSAGES: usize = 200;
/// Characters of one user message.
pub const MAX_TEXT_CHARS: usize = 32_000;
/// Characters of a stored tool output given back to the model in later exchanges.
const PAST_OUTPUT_CHARS: usize = 4_000;

/// Returns a new message id.
pub fn message_id() -> String {
    format!("msg_{}", next_ulid().to_string().to_ascii_lowercase())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn invalid(index: usize, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(&format!("messages[{index}]"), message.into())
}

/// Keeps the parts this server understands, in the shape it stores them.
fn clean_part(part: &Value) -> Option<Value> {
    let kind = part.get("type")?.as_str()?;
    match kind {
        "text" => Some(json!({ "type": "text", "text": part.get("text")?.as_str()?, "state": "done" })),
        "step-start" => Some(json!({ "type": "step-start" })),
        _ if kind.starts_with("tool-") || kind == "dynamic-tool" => {
            let mut clean = serde_json::Map::new();
            for field in [
                "type",
                "toolName",
                "toolCallId",
                "state",
                "input",
                "output",
                "errorText",
            ] {
                if let Some(value) = part.get(field) {
                    clean.insert(field.into(), value.clone());
                }
            }
            clean.get("toolCallId")?.as_str()?;
            Some(Value::Object(clean))
        }
        // Reasoning, files, sources and data parts are not used by this agent.
        _ => None,
    }
}

/// Parses a request's messages into stored messages.
pub fn parse_messages(values: &[Value]) -> ApiResult<Vec<Message>> {
    if values.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "messages is empty; send at least the user's question, as {\"role\": \"user\", \"content\": \"…\"}.",
        ));
    }
    if values.len() > MAX_REQUEST_MESSAGES {
        return Err(ApiError::invalid_field(
            "messages",
            format!(
                "A request carries at most {MAX_REQUEST_MESSAGES} messages, got {}; continue a stored chat with chatId and send only the new message.",
                values.len()
            ),
        ));
    }
    let now = Utc::now();
    let mut messages = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let role = match value.get("role").and_then(Value::as_str) {
            Some("user") => MessageRole::User,
            Some("assistant") => MessageRole::Assistant,
            Some("system") => {
                return Err(invalid(
                    index,
                    "System messages are not accepted; the agent sets its own instructions.",
                ));
            }
            Some(other) => {
                return Err(invalid(
                    index,
                    format!("{other:?} is not a role; use user or assistant."),
                ));
            }
            None => return Err(invalid(index, "The message has no role; use user or assistant.")),
        };
        let parts: Vec<Value> = match (value.get("parts"), value.get("content")) {
            (Some(Value::Array(parts)), _) => parts.iter().filter_map(clean_part).collect(),
            (_, Some(Value::String(text))) => vec![json!({ "type": "text", "text": text, "state": "done" })],
            (_, Some(Value::Array(blocks))) => blocks.iter().filter_map(clean_part).collect(),
            _ => {
                return Err(invalid(
                    index,
                    "The message has neither content (a string) nor parts (an array).",
                ));
            }
        };
        let text_chars: usize = parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(|text| text.chars().count())
            .sum();
        if role == MessageRole::User && text_chars > MAX_TEXT_CHARS {
            return Err(invalid(
                index,
                format!("The message is {text_chars} characters; at most {MAX_TEXT_CHARS} are accepted."),
            ));
        }
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| valid_id(id))
            .map_or_else(message_id, str::to_owned);
        messages.push(Message {
            id,
            role,
            parts,
            metadata: Value::Null,
            created_at: now,
        });
    }
    let last = messages.len() - 1;
    if messages[last].role != MessageRole::User || text_of(&messages[last]).trim().is_empty() {
        return Err(invalid(
            last,
            "The last message must be the user's question, with text.",
        ));
    }
    Ok(messages)
}

/// Returns the text parts of a message, joined by line breaks.
pub fn text_of(message: &Message) -> String {
    message
        .parts
        .iter()
        .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Appends the turns of one assistant message: text and tool calls per step, each step's
/// calls followed by their results. Both protocols need a result for every call, so a call
/// without one (an interrupted reply) gets an error result.
fn assistant_turns(message: &Message, turns: &mut Vec<Turn>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    let mut flush = |text: &mut String, calls: &mut Vec<ToolCall>, results: &mut Vec<ToolResult>| {
        if !text.is_empty() || !calls.is_empty() {
            turns.push(Turn::Assistant {
                text: std::mem::take(text),
                calls: std::mem::take(calls),
            });
        }
        if !results.is_empty() {
            turns.push(Turn::ToolResults(std::mem::take(results)));
        }
    };
    for part in &message.parts {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "step-start" => flush(&mut text, &mut calls, &mut results),
            "text" => {
                if !calls.is_empty() {
                    flush(&mut text, &mut calls, &mut results);
                }
                if let Some(more) = part
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|more| !more.trim().is_empty())
                {
                    text.push_str(more);
                }
            }
            _ => {
                let name = kind
                    .strip_prefix("tool-")
                    .map(str::to_owned)
                    .or_else(|| part.get("toolName").and_then(Value::as_str).map(str::to_owned));
                let (Some(name), Some(id)) = (name, part.get("toolCallId").and_then(Value::as_str)) else {
                    continue;
                };
                let input = part
                    .get("input")
                    .filter(|input| input.is_object())
                    .cloned()
                    .unwrap_or(json!({}));
                calls.push(ToolCall {
                    id: id.to_owned(),
                    name,
                    input,
                    invalid: None,
                });
                let (content, is_error) = match part.get("state").and_then(Value::as_str) {
                    Some("output-available") => (
                        truncate(
                            &part.get("output").cloned().unwrap_or(Value::Null).to_string(),
                            PAST_OUTPUT_CHARS,
                        ),
                        false,
                    ),
                    Some("output-error") => (
                        part.get("errorText")
                            .and_then(Value::as_str)
                            .unwrap_or("the tool failed")
                            .to_owned(),
                        true,
                    ),
                    _ => ("The tool call was interrupted before it finished.".to_owned(), true),
                };
                results.push(ToolResult {
                    call_id: id.to_owned(),
                    content,
                    is_error,
                });
            }
        }
    }
    flush(&mut text, &mut calls, &mut results);
}

/// Size of a message as it counts against the context budget.
fn weight(message: &Message) -> usize {
    message
        .parts
        .iter()
        .map(|part| part.to_string().len().min(PAST_OUTPUT_CHARS * 2))
        .sum()
}

/// Builds the model's turns from a chat's messages, newest last. Older messages are left
/// out once `budget` bytes are used, and the turns always start with a user message.
pub fn turns_of(messages: &[Message], budget: usize) -> Vec<Turn> {
    let mut start = messages.len();
    let mut used = 0;
    while start > 0 {
        let size = weight(&messages[start - 1]);
        if used + size > budget && start < messages.len() {
            break;
        }
        used += size;
        start -= 1;
    }
    while start < messages.len() && messages[start].role != MessageRole::User {
        start += 1;
    }
    let mut turns = Vec::new();
    for message in &messages[start..] {
        match message.role {
            MessageRole::User => {
                // Providers reject empty text, so a user message without any is left out.
                let text = text_of(message);
                if !text.trim().is_empty() {
                    turns.push(Turn::User(text));
                }
            }
            MessageRole::Assistant => assistant_turns(message, &mut turns),
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_forms_both_parse() {
        let messages = parse_messages(&[
            json!({ "role": "user", "content": "Top customers?" }),
            json!({ "id": "abc", "role": "assistant", "parts": [
                { "type": "step-start" },
                { "type": "text", "text": "Looking.", "state": "done" },
                { "type": "tool-run_query", "toolCallId": "c1", "state": "output-available", "input": { "query": "select 1" }, "output": { "rows": [[1]] } },
                { "type": "reasoning", "text": "hidden" },
                { "type": "step-start" },
                { "type": "text", "text": "Done." },
            ]}),
            json!({ "id": "bad id with spaces", "role": "user", "parts": [{ "type": "text", "text": "And by region?" }] }),
        ])
        .expect("valid messages");
        assert_eq!(messages[1].id, "abc");
        assert!(messages[2].id.starts_with("msg_"));
        assert_eq!(messages[1].parts.len(), 5, "the reasoning part is dropped");

        let turns = turns_of(&messages, 100_000);
        assert_eq!(turns.len(), 5, "{turns:?}");
        assert_eq!(turns[0], Turn::User("Top customers?".into()));
        let Turn::Assistant { text, calls } = &turns[1] else {
            panic!("an assistant turn: {:?}", turns[1]);
        };
        assert_eq!(text, "Looking.");
        assert_eq!(calls.len(), 1);
        let Turn::ToolResults(results) = &turns[2] else {
            panic!("tool results: {:?}", turns[2]);
        };
        assert_eq!(results[0].call_id, "c1");
        assert!(!results[0].is_error);
        assert_eq!(
            turns[3],
            Turn::Assistant {
                text: "Done.".into(),
                calls: Vec::new()
            }
        );
        assert_eq!(turns[4], Turn::User("And by region?".into()));
    }

    #[test]
    fn invalid_messages_are_named() {
        for (messages, needle) in [
            (vec![], "empty"),
            (vec![json!({ "role": "system", "content": "x" })], "System"),
            (vec![json!({ "role": "user" })], "neither"),
            (
                vec![
                    json!({ "role": "user", "content": "a" }),
                    json!({ "role": "assistant", "content": "b" }),
                ],
                "last message",
            ),
            (
                vec![json!({ "role": "user", "content": "x".repeat(MAX_TEXT_CHARS + 1) })],
                "at most",
            ),
        ] {
            let error = parse_messages(&messages).expect_err("invalid");
            assert!(error.to_string().contains(needle), "{error} should mention {needle}");
        }
    }

    #[test]
    fn context_budget_drops_old_messages() {
        let long = "x".repeat(1_000);
        let values: Vec<Value> = (0..10)
            .map(|i| json!({ "role": if i % 2 == 0 { "user" } else { "assistant" }, "content": long }))
            .chain([json!({ "role": "user", "content": "last" })])
            .collect();
        let messages = parse_messages(&values).expect("valid");
        let turns = turns_of(&messages, 3_500);
        assert!(matches!(turns.first(), Some(Turn::User(_))));
        assert_eq!(turns.last(), Some(&Turn::User("last".into())));
        assert!(turns.len() < 6, "{}", turns.len());
        // The new question is kept even when it alone is over the budget.
        assert_eq!(turns_of(&messages[10..], 1).len(), 1);
    }

    #[test]
    fn interrupted_call_gets_error_result() {
        let message = Message {
            id: "m".into(),
            role: MessageRole::Assistant,
            parts: vec![
                json!({ "type": "tool-list_connections", "toolCallId": "c", "state": "input-available", "input": {} }),
            ],
            metadata: Value::Null,
            created_at: Utc::now(),
        };
        let mut turns = Vec::new();
        assistant_turns(&message, &mut turns);
        assert!(matches!(&turns[1], Turn::ToolResults(results) if results[0].is_error));
    }
}
