//! A small chat client for the tests: asks on the JSON and the streaming endpoint, and reads a
//! streamed answer into events with their arrival times.

use futures::StreamExt;
use std::time::Instant;
use tokio::task::JoinHandle;

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

/// The name of the last event, `""` when there was none.
pub fn last_event(events: &[SseEvent]) -> &str {
    events.last().map_or("", |e| e.event.as_str())
}

/// Asks `question` on the JSON endpoint of the origin at `origin`.
pub async fn ask(client: &reqwest::Client, origin: &str, question: &str) -> reqwest::Response {
    post_question(client, &format!("{origin}/api/v1/chat"), question).await
}

/// Asks `question` on the streaming endpoint of the origin at `origin`.
pub async fn ask_stream(
    client: &reqwest::Client,
    origin: &str,
    question: &str,
) -> reqwest::Response {
    post_question(client, &format!("{origin}/api/v1/chat/stream"), question).await
}

/// Asks `question` on the streaming endpoint and reads the whole answer.
pub async fn stream_events(
    client: &reqwest::Client,
    origin: &str,
    question: &str,
) -> Vec<SseEvent> {
    read_sse(ask_stream(client, origin, question).await).await
}

/// [`stream_events`] in a task of its own, so that many questions run at once.
pub fn spawn_stream(
    client: &reqwest::Client,
    origin: String,
    question: String,
) -> JoinHandle<Vec<SseEvent>> {
    let client = client.clone();
    tokio::spawn(async move { stream_events(&client, &origin, &question).await })
}

async fn post_question(client: &reqwest::Client, url: &str, question: &str) -> reqwest::Response {
    client
        .post(url)
        .json(&serde_json::json!({ "question": question }))
        .send()
        .await
        .expect("request")
}
