//! The OpenAI Chat Completions API (`POST {base}/chat/completions` with `stream: true`), as
//! OpenAI and compatible servers (Ollama, vLLM, llama.cpp, gateways) speak it.
//!
//! Each `data:` line is a `chat.completion.chunk`, and `data: [DONE]` ends the stream. Tool
//! calls arrive as fragments keyed by `index`. Compatible servers differ, so the parser also
//! accepts fragments without an `index` (matched by `id`, or else added to the last call).
//! It accepts a whole call in one chunk, several calls reusing one index with different ids,
//! and `arguments` as a JSON object instead of a string. Usage arrives in a last chunk with
//! no choices (`stream_options.include_usage`). An error object may replace a chunk.

use serde_json::{Value, json};

use super::sse::SseMessage;
use super::{
    FinishReason, ModelRequest, Parser, ProviderError, StreamEvent, ToolCall, Turn, Usage, fresh_call_id,
    parse_arguments,
};

pub(super) fn authorize(builder: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
    match key {
        Some(key) => builder.bearer_auth(key),
        None => builder,
    }
}

pub(super) fn body(request: &ModelRequest<'_>) -> Value {
    let mut messages = vec![json!({ "role": "system", "content": request.system })];
    for turn in request.turns {
        match turn {
            Turn::User(text) => messages.push(json!({ "role": "user", "content": text })),
            Turn::Assistant { text, calls } => {
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let mut message =
                    json!({ "role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) } });
                if !calls.is_empty() {
                    message["tool_calls"] = calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": { "name": call.name, "arguments": call.input.to_string() },
                            })
                        })
                        .collect();
                }
                messages.push(message);
            }
            Turn::ToolResults(results) => {
                for result in results {
                    messages.push(json!({ "role": "tool", "tool_call_id": result.call_id, "content": result.content }));
                }
            }
        }
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": { "name": tool.name, "description": tool.description, "parameters": tool.input_schema },
                })
            })
            .collect();
    }
    body
}

/// A tool call being assembled.
struct Slot {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
    /// Whether `ToolStart` was sent (it waits for the name).
    announced: bool,
}

#[derive(Default)]
pub(super) struct StreamParser {
    slots: Vec<Slot>,
    finish: Option<FinishReason>,
    usage: Usage,
    done: bool,
    saw_chunk: bool,
}

fn finish_reason(text: &str) -> FinishReason {
    match text {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

impl StreamParser {
    /// Finds the slot a fragment belongs to, creating one for a new call.
    fn slot_for(&mut self, index: Option<u64>, id: Option<&str>) -> usize {
        let found = match (index, id) {
            (Some(index), Some(id)) => self.slots.iter().rposition(|slot| {
                slot.index == Some(index) && (slot.id == id || !slot.announced && slot.id.is_empty())
            }),
            (Some(index), None) => self.slots.iter().rposition(|slot| slot.index == Some(index)),
            (None, Some(id)) => self.slots.iter().rposition(|slot| slot.id == id),
            (None, None) => self.slots.len().checked_sub(1),
        };
        if let Some(found) = found {
            return found;
        }
        self.slots.push(Slot {
            index,
            id: id.map(str::to_owned).unwrap_or_default(),
            name: String::new(),
            arguments: String::new(),
            announced: false,
        });
        self.slots.len() - 1
    }

    fn tool_fragment(&mut self, call: &Value, events: &mut Vec<StreamEvent>) {
        let index = call.get("index").and_then(Value::as_u64);
        let id = call.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
        let position = self.slot_for(index, id);
        let slot = &mut self.slots[position];
        if let Some(id) = id {
            slot.id = id.to_owned();
        }
        let function = call.get("function").cloned().unwrap_or(Value::Null);
        if let Some(name) = function
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            && !slot.announced
        {
            slot.name = name.to_owned();
        }
        if !slot.announced && !slot.name.is_empty() {
            if slot.id.is_empty() {
                slot.id = fresh_call_id();
            }
            slot.announced = true;
            events.push(StreamEvent::ToolStart {
                id: slot.id.clone(),
                name: slot.name.clone(),
            });
        }
        match function.get("arguments") {
            Some(Value::String(fragment)) if !fragment.is_empty() => {
                slot.arguments.push_str(fragment);
                if slot.announced {
                    events.push(StreamEvent::ToolDelta {
                        id: slot.id.clone(),
                        fragment: fragment.clone(),
                    });
                }
            }
            Some(object @ Value::Object(_)) => slot.arguments = object.to_string(),
            _ => {}
        }
    }

    /// Emits the assembled calls, once the chunk with the finish reason arrived.
    fn complete_calls(&mut self, events: &mut Vec<StreamEvent>) {
        for slot in self.slots.drain(..) {
            let id = if slot.id.is_empty() { fresh_call_id() } else { slot.id };
            if !slot.announced {
                events.push(StreamEvent::ToolStart {
                    id: id.clone(),
                    name: slot.name.clone(),
                });
            }
            let (input, mut invalid) = parse_arguments(&slot.arguments);
            if slot.name.is_empty() {
                invalid = Some("the tool call names no tool".to_owned());
            }
            events.push(StreamEvent::ToolCall(ToolCall {
                id,
                name: slot.name,
                input,
                invalid,
            }));
        }
    }
}

impl Parser for StreamParser {
    fn feed(&mut self, message: SseMessage) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut events = Vec::new();
        if message.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(events);
        }
        let data: Value = serde_json::from_str(&message.data).map_err(|error| {
            ProviderError::Protocol(format!(
                "a chunk is not JSON ({error}): {}",
                super::truncate(&message.data, 200)
            ))
        })?;
        if let Some(error) = data.get("error") {
            let text = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Err(ProviderError::Stream(super::truncate(&text, 500)));
        }
        self.saw_chunk = true;
        if let Some(usage) = data.get("usage").filter(|usage| usage.is_object()) {
            if let Some(tokens) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                self.usage.input_tokens = tokens;
            }
            if let Some(tokens) = usage.get("completion_tokens").and_then(Value::as_u64) {
                self.usage.output_tokens = tokens;
            }
        }
        let choices = data
            .get("choices")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // The request is for one choice. Other choices, if a server sends them, are ignored.
        for choice in choices
            .iter()
            .filter(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            let delta = choice.get("delta").cloned().unwrap_or(Value::Null);
            if let Some(text) = delta
                .get("content")
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
            {
                events.push(StreamEvent::TextDelta(text.to_owned()));
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.tool_fragment(call, &mut events);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish = Some(finish_reason(reason));
                self.complete_calls(&mut events);
            }
        }
        Ok(events)
    }

    fn end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut events = Vec::new();
        let reason = match self.finish {
            Some(reason) => reason,
            // Some servers close after the last chunk without a finish reason but with
            // `[DONE]`; the calls made so far are complete then.
            None if self.done => {
                let had_calls = !self.slots.is_empty();
                self.complete_calls(&mut events);
                if had_calls {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                }
            }
            None if self.saw_chunk => {
                return Err(ProviderError::Protocol(
                    "the stream ended without a finish reason".into(),
                ));
            }
            None => {
                return Err(ProviderError::Protocol(
                    "the response is not a chat completion stream".into(),
                ));
            }
        };
        events.push(StreamEvent::Finish {
            reason,
            usage: self.usage,
        });
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sse::SseReader;
    use super::*;

    fn parse(lines: &[Value]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut text = String::new();
        for line in lines {
            text.push_str(&format!("data: {line}\n\n"));
        }
        text.push_str("data: [DONE]\n\n");
        let mut reader = SseReader::default();
        let mut parser = StreamParser::default();
        let mut events = Vec::new();
        for message in reader.feed(text.as_bytes()).expect("valid SSE") {
            events.extend(parser.feed(message)?);
        }
        events.extend(parser.end()?);
        Ok(events)
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({ "object": "chat.completion.chunk", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    }

    fn calls(events: &[StreamEvent]) -> Vec<(String, String, Value)> {
        events
            .iter()
            .filter_map(|event| match event {
                StreamEvent::ToolCall(call) if call.invalid.is_none() => {
                    Some((call.id.clone(), call.name.clone(), call.input.clone()))
                }
                StreamEvent::ToolCall(call) => panic!("invalid call {call:?}"),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parallel_calls_assemble_by_index() {
        let events = parse(&[
            chunk(json!({ "role": "assistant", "content": "Checking" }), None),
            chunk(json!({ "tool_calls": [{ "index": 0, "id": "call_a", "type": "function", "function": { "name": "list_tables", "arguments": "" } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 1, "id": "call_b", "type": "function", "function": { "name": "list_connections", "arguments": "{}" } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"connectionId\":" } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": " \"conn_1\"}" } }] }), None),
            chunk(json!({}), Some("tool_calls")),
            json!({ "choices": [], "usage": { "prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52 } }),
        ])
        .expect("a valid stream");
        assert_eq!(events[0], StreamEvent::TextDelta("Checking".into()));
        assert_eq!(
            calls(&events),
            vec![
                (
                    "call_a".into(),
                    "list_tables".into(),
                    json!({ "connectionId": "conn_1" })
                ),
                ("call_b".into(), "list_connections".into(), json!({})),
            ]
        );
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 40,
                    output_tokens: 12
                }
            })
        );
    }

    #[test]
    fn compatible_server_quirks_parse() {
        // No index: fragments follow the call they continue; a new id starts a new call.
        let events = parse(&[
            chunk(
                json!({ "tool_calls": [{ "id": "a", "function": { "name": "run_query", "arguments": "{\"sql\"" } }] }),
                None,
            ),
            chunk(
                json!({ "tool_calls": [{ "function": { "arguments": ": \"select 1\"}" } }] }),
                None,
            ),
            chunk(
                json!({ "tool_calls": [{ "id": "b", "function": { "name": "list_connections", "arguments": {} } }] }),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ])
        .expect("a valid stream");
        assert_eq!(
            calls(&events),
            vec![
                ("a".into(), "run_query".into(), json!({ "sql": "select 1" })),
                ("b".into(), "list_connections".into(), json!({})),
            ]
        );

        // Whole calls in one chunk each, reusing index 0, one without an id.
        let events = parse(&[
            chunk(json!({ "tool_calls": [{ "index": 0, "id": "x", "function": { "name": "list_tables", "arguments": { "connectionId": "c" } } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 0, "id": "y", "function": { "name": "list_tables", "arguments": "{\"connectionId\":\"d\"}" } }] }), None),
            chunk(json!({}), Some("tool_calls")),
        ])
        .expect("a valid stream");
        let found = calls(&events);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].2, json!({ "connectionId": "c" }));
        assert_eq!(found[1].2, json!({ "connectionId": "d" }));
    }

    #[test]
    fn invalid_arguments_are_reported() {
        let events = parse(&[
            chunk(json!({ "tool_calls": [{ "index": 0, "function": { "name": "run_query", "arguments": "{\"sql\": " } }] }), None),
            chunk(json!({}), Some("tool_calls")),
        ])
        .expect("a valid stream");
        let call = events.iter().find_map(|event| match event {
            StreamEvent::ToolCall(call) => Some(call),
            _ => None,
        });
        let call = call.expect("the call");
        assert!(call.id.starts_with("call_"), "a fresh id: {}", call.id);
        assert!(
            call.invalid
                .as_deref()
                .is_some_and(|why| why.contains("not valid JSON"))
        );
    }

    #[test]
    fn stream_errors_fail() {
        let error = parse(&[
            chunk(json!({ "content": "Hi" }), None),
            json!({ "error": { "message": "The server is overloaded", "type": "server_error" } }),
        ]);
        assert!(matches!(error, Err(ProviderError::Stream(text)) if text == "The server is overloaded"));

        let mut parser = StreamParser::default();
        let message = SseMessage {
            event: String::new(),
            data: chunk(json!({ "content": "Hi" }), None).to_string(),
        };
        parser.feed(message).expect("a chunk");
        assert!(matches!(parser.end(), Err(ProviderError::Protocol(_))));
    }

    #[test]
    fn request_carries_tool_results() {
        let turns = vec![
            Turn::User("hi".into()),
            Turn::Assistant {
                text: String::new(),
                calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "list_connections".into(),
                    input: json!({}),
                    invalid: None,
                }],
            },
            Turn::ToolResults(vec![super::super::ToolResult {
                call_id: "c1".into(),
                content: "[]".into(),
                is_error: false,
            }]),
        ];
        let body = body(&ModelRequest {
            model: "gpt-4.1",
            system: "sys",
            turns: &turns,
            tools: &[],
            max_tokens: 100,
        });
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[2]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(messages[3]["role"], "tool");
        assert_eq!(messages[3]["tool_call_id"], "c1");
        assert!(body.get("tools").is_none());
    }
}
