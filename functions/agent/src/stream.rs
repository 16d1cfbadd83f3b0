//! The response of a chat: Server-Sent Events in the AI SDK's UI message stream format.
//!
//! Each frame is `event: <name>` and `data: <JSON chunk>` with the chunk's `type` inside the
//! JSON, so the `ai` package reads it unmodified and a plain SSE client can listen by name.
//! The name is the chunk's type, except `tool-output-available`, which plain clients know
//! as `tool-result`. The stream ends with `data: [DONE]`. Frames leave as they are made; a
//! comment line keeps the connection open through long tool calls.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

/// Frames buffered between the agent and a slow client.
const BUFFER_FRAMES: usize = 64;

/// Sends frames to the client; fails once the client is gone.
#[derive(Clone)]
pub struct Emitter {
    tx: mpsc::Sender<Bytes>,
}

/// The client went away.
#[derive(Debug)]
pub struct Gone;

/// Returns the SSE event name of a chunk type.
fn event_name(kind: &str) -> &str {
    match kind {
        "tool-output-available" => "tool-result",
        other => other,
    }
}

/// Encodes one chunk as an SSE frame.
pub fn frame(chunk: &Value) -> Bytes {
    let kind = chunk.get("type").and_then(Value::as_str).unwrap_or("message");
    Bytes::from(format!("event: {}\ndata: {chunk}\n\n", event_name(kind)))
}

impl Emitter {
    pub async fn send(&self, chunk: Value) -> Result<(), Gone> {
        self.tx.send(frame(&chunk)).await.map_err(|_| Gone)
    }

    /// Ends the stream.
    pub async fn done(&self) -> Result<(), Gone> {
        self.tx
            .send(Bytes::from_static(b"data: [DONE]\n\n"))
            .await
            .map_err(|_| Gone)
    }

    /// Completes when the client is gone.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// Returns the emitter the agent writes to and the streaming response that carries its
/// frames, with a keep-alive comment after each `keepalive` of silence.
pub fn channel(keepalive: Duration, chat_id: &str) -> (Emitter, Response) {
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER_FRAMES);
    let body = futures::stream::unfold(rx, move |mut rx| async move {
        tokio::select! {
            next = rx.recv() => next.map(|bytes| (Ok::<_, std::convert::Infallible>(bytes), rx)),
            () = tokio::time::sleep(keepalive) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), rx)),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("x-vercel-ai-ui-message-stream", HeaderValue::from_static("v1"));
    if let Ok(value) = HeaderValue::from_str(chat_id) {
        headers.insert("x-chat-id", value);
    }
    (Emitter { tx }, response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_carry_the_reference_event_names() {
        let chunk = json!({ "type": "text-delta", "id": "t", "delta": "a\nb" });
        let text = String::from_utf8(frame(&chunk).to_vec()).expect("UTF-8");
        let data = text
            .strip_prefix("event: text-delta\ndata: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one named frame");
        assert!(!data.contains('\n'), "the JSON stays on one line");
        assert_eq!(serde_json::from_str::<Value>(data).ok(), Some(chunk));
        let output = frame(&json!({ "type": "tool-output-available", "toolCallId": "c", "output": 1 }));
        assert!(output.starts_with(b"event: tool-result\ndata: "));
    }
}
