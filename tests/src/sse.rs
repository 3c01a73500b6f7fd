//! A small SSE client for the tests: reads a response into events with their arrival times.

use futures::StreamExt;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: serde_json::Value,
    /// When the event was read, to check events arrive spaced rather than in one block.
    pub at: Instant,
}

/// Reads a whole SSE response into events (comments and keep-alives skipped).
pub async fn read_sse(response: reqwest::Response) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut buf = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(e) = parse_event(&block) {
                events.push(e);
            }
        }
    }
    events
}

pub fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = None;
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    let event = event?;
    let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::Null);
    Some(SseEvent {
        event,
        data,
        at: Instant::now(),
    })
}

pub async fn ask_stream(
    client: &reqwest::Client,
    origin: &str,
    question: &str,
) -> reqwest::Response {
    client
        .post(format!("{origin}/api/v1/chat/stream"))
        .json(&serde_json::json!({ "question": question }))
        .send()
        .await
        .expect("request")
}
