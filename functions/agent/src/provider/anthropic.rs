//! The Anthropic Messages API (`POST /v1/messages` with `stream: true`).
//!
//! The stream is a sequence of named events: `message_start` (input tokens), then per content
//! block `content_block_start`, `content_block_delta` (`text_delta` or `input_json_delta`)
//! and `content_block_stop`, then `message_delta` (stop reason, output tokens) and
//! `message_stop`. `ping` is ignored; `error` ends the call.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::sse::SseMessage;
use super::{FinishReason, ModelRequest, Parser, ProviderError, StreamEvent, ToolCall, Turn, Usage, parse_arguments};

/// The API version this parser implements.
const API_VERSION: &str = "2023-06-01";

pub(super) fn authorize(builder: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
    let builder = builder.header("anthropic-version", API_VERSION);
    match key {
        Some(key) => builder.header("x-api-key", key),
        None => builder,
    }
}

/// Builds the request body. Consecutive turns of one role are merged, because the API wants
/// user and assistant messages to alternate and to start with a user message.
pub(super) fn body(request: &ModelRequest<'_>) -> Value {
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    for turn in request.turns {
        let (role, blocks) = match turn {
            // The API rejects text blocks that are empty or only whitespace.
            Turn::User(text) if text.trim().is_empty() => continue,
            Turn::User(text) => ("user", vec![json!({ "type": "text", "text": text })]),
            Turn::Assistant { text, calls } => {
                let mut blocks = Vec::new();
                if !text.trim().is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
                for call in calls {
                    blocks.push(json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": call.input }));
                }
                ("assistant", blocks)
            }
            Turn::ToolResults(results) => (
                "user",
                results
                    .iter()
                    .map(|result| {
                        json!({
                            "type": "tool_result",
                            "tool_use_id": result.call_id,
                            "content": result.content,
                            "is_error": result.is_error,
                        })
                    })
                    .collect(),
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some((last_role, last_blocks)) if last_role == role => last_blocks.extend(blocks),
            _ => messages.push((role.to_owned(), blocks)),
        }
    }
    if messages.first().is_some_and(|(role, _)| role == "assistant") {
        messages.insert(
            0,
            (
                "user".to_owned(),
                vec![json!({ "type": "text", "text": "(continued)" })],
            ),
        );
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|tool| json!({ "name": tool.name, "description": tool.description, "input_schema": tool.input_schema }))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": request.system,
        "messages": messages,
        "stream": true,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

/// A content block being streamed.
enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        arguments: String,
        start_input: Value,
    },
    /// A block type this agent does not use (thinking, server tools); skipped.
    Other,
}

#[derive(Default)]
pub(super) struct StreamParser {
    blocks: HashMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<String>,
    started: bool,
    stopped: bool,
}

fn field<'a>(data: &'a Value, pointer: &str) -> Option<&'a Value> {
    data.pointer(pointer)
}

fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

impl Parser for StreamParser {
    fn feed(&mut self, message: SseMessage) -> Result<Vec<StreamEvent>, ProviderError> {
        let data: Value = serde_json::from_str(&message.data).map_err(|error| {
            ProviderError::Protocol(format!(
                "an event's data is not JSON ({error}): {}",
                super::truncate(&message.data, 200)
            ))
        })?;
        // The `type` inside the data is authoritative; the `event:` name repeats it.
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(message.event.as_str());
        let mut events = Vec::new();
        match kind {
            "message_start" => {
                self.started = true;
                if let Some(tokens) = field(&data, "/message/usage/input_tokens").and_then(Value::as_u64) {
                    self.usage.input_tokens = tokens;
                }
                if let Some(tokens) = field(&data, "/message/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = tokens;
                }
            }
            "content_block_start" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                let entry = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|text| !text.is_empty())
                        {
                            events.push(StreamEvent::TextDelta(text.to_owned()));
                        }
                        Block::Text
                    }
                    Some("tool_use") => {
                        let id = block
                            .get("id")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(super::fresh_call_id);
                        let name = block.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                        events.push(StreamEvent::ToolStart {
                            id: id.clone(),
                            name: name.clone(),
                        });
                        Block::Tool {
                            id,
                            name,
                            arguments: String::new(),
                            start_input: block.get("input").cloned().unwrap_or(Value::Null),
                        }
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, entry);
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                match (delta.get("type").and_then(Value::as_str), self.blocks.get_mut(&index)) {
                    (Some("text_delta"), _) => {
                        if let Some(text) = delta.get("text").and_then(Value::as_str) {
                            events.push(StreamEvent::TextDelta(text.to_owned()));
                        }
                    }
                    (Some("input_json_delta"), Some(Block::Tool { id, arguments, .. })) => {
                        if let Some(fragment) = delta.get("partial_json").and_then(Value::as_str) {
                            arguments.push_str(fragment);
                            events.push(StreamEvent::ToolDelta {
                                id: id.clone(),
                                fragment: fragment.to_owned(),
                            });
                        }
                    }
                    (Some("input_json_delta"), _) => {
                        return Err(ProviderError::Protocol(format!(
                            "tool arguments arrived for block {index}, which is not a tool call"
                        )));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(Block::Tool {
                    id,
                    name,
                    arguments,
                    start_input,
                }) = self.blocks.remove(&index)
                {
                    let (input, invalid) = if arguments.is_empty() && start_input.is_object() {
                        (start_input, None)
                    } else {
                        parse_arguments(&arguments)
                    };
                    events.push(StreamEvent::ToolCall(ToolCall {
                        id,
                        name,
                        input,
                        invalid,
                    }));
                }
            }
            "message_delta" => {
                if let Some(reason) = field(&data, "/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(tokens) = field(&data, "/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = tokens;
                }
                if let Some(tokens) = field(&data, "/usage/input_tokens").and_then(Value::as_u64) {
                    self.usage.input_tokens = tokens;
                }
            }
            "message_stop" => {
                self.stopped = true;
                // A tool call whose block never stopped is reported as unreadable, not dropped.
                let mut open: Vec<(u64, Block)> = self.blocks.drain().collect();
                open.sort_by_key(|(index, _)| *index);
                for (_, block) in open {
                    if let Block::Tool { id, name, .. } = block {
                        events.push(StreamEvent::ToolCall(ToolCall {
                            id,
                            name,
                            input: Value::Object(Default::default()),
                            invalid: Some("the provider ended the message before the call was complete".into()),
                        }));
                    }
                }
                events.push(StreamEvent::Finish {
                    reason: finish_reason(self.stop_reason.as_deref()),
                    usage: self.usage,
                });
            }
            "error" => {
                let kind = field(&data, "/error/type").and_then(Value::as_str).unwrap_or("error");
                let text = field(&data, "/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no details");
                return Err(ProviderError::Stream(format!("{kind}: {text}")));
            }
            _ => {}
        }
        Ok(events)
    }

    fn end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if self.stopped {
            return Ok(Vec::new());
        }
        Err(ProviderError::Protocol(if self.started {
            "the stream ended before message_stop".to_owned()
        } else {
            "the response is not a Messages API event stream".to_owned()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::sse::SseReader;
    use super::super::{ToolResult, ToolSpec};
    use super::*;

    fn parse(stream: &str) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut reader = SseReader::default();
        let mut parser = StreamParser::default();
        let mut events = Vec::new();
        for message in reader.feed(stream.as_bytes()).expect("valid SSE") {
            events.extend(parser.feed(message)?);
        }
        events.extend(parser.end()?);
        Ok(events)
    }

    #[test]
    fn stream_events_parse() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"run_query\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"sql\\\": \\\"select\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" 1\\\"}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let events = parse(stream).expect("a valid stream");
        let call = events.iter().find_map(|event| match event {
            StreamEvent::ToolCall(call) => Some(call.clone()),
            _ => None,
        });
        assert_eq!(events[0], StreamEvent::TextDelta("Let me look".into()));
        assert_eq!(
            call,
            Some(ToolCall {
                id: "toolu_1".into(),
                name: "run_query".into(),
                input: json!({ "sql": "select 1" }),
                invalid: None,
            })
        );
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 25,
                    output_tokens: 89
                }
            })
        );
    }

    #[test]
    fn stream_errors_fail() {
        let error = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        match parse(error) {
            Err(ProviderError::Stream(text)) => assert_eq!(text, "overloaded_error: Overloaded"),
            other => panic!("expected a stream error, got {other:?}"),
        }
        let cut = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n";
        assert!(matches!(parse(cut), Err(ProviderError::Protocol(_))));
    }

    #[test]
    fn request_merges_same_role_turns() {
        let call = ToolCall {
            id: "toolu_1".into(),
            name: "list_connections".into(),
            input: json!({}),
            invalid: None,
        };
        let turns = vec![
            Turn::User("first".into()),
            Turn::User("second".into()),
            Turn::Assistant {
                text: String::new(),
                calls: vec![call],
            },
            Turn::ToolResults(vec![ToolResult {
                call_id: "toolu_1".into(),
                content: "[]".into(),
                is_error: false,
            }]),
        ];
        let tools = [ToolSpec {
            name: "list_connections",
            description: "Lists connections.",
            input_schema: json!({ "type": "object", "properties": {} }),
        }];
        let body = body(&ModelRequest {
            model: "claude-sonnet-4-20250514",
            system: "be brief",
            turns: &turns,
            tools: &tools,
            max_tokens: 1024,
        });
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0]["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(messages[1]["content"][0]["type"], "tool_use");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["stream"], true);
    }
}
