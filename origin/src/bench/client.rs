//! One customer request, timed the way a customer feels it: time to the first token of the
//! answer and time to its end, and what became of it.
//!
//! Load tools time a request until its response headers. For a streamed answer that is
//! neither the wait a customer sees (the first token) nor the answer (the end of the stream),
//! so this client reads the stream itself: LibriAssist's SSE (`meta`, `token`*, `done` or
//! `error`) or, for the plain balancers, Ollama's NDJSON. It also classifies every ending, so
//! a run can prove that each request it started was answered, lost before streaming, or cut
//! after streaming began.

use futures::StreamExt;
use libriassist_protocol::sse::{MetaEvent, DONE, ERROR, META, TOKEN};
use libriassist_protocol::{CacheLayer, ErrorBody, ErrorDetail};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The API a target speaks.
#[derive(Debug, Clone, PartialEq)]
pub enum Protocol {
    /// `POST /api/v1/chat/stream`, server-sent events.
    LibriAssist,
    /// `POST /api/chat` with `stream: true`, NDJSON, as Ollama (and the simulator) serve it.
    Ollama { model: String, num_predict: u32 },
}

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub base_url: String,
    pub protocol: Protocol,
}

/// How long a customer waits before giving up.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// For the first token (includes any queueing); beyond it the customer leaves.
    pub first_token: Duration,
    /// Between two tokens once the answer streams.
    pub stall: Duration,
    /// For the whole answer; keeps every request, and so every run, bounded.
    pub total: Duration,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete answer (the `done` event or line).
    Answered,
    /// No token ever reached the customer: an HTTP error, an `error` event first, a broken
    /// connection, or a first token later than the customer's patience.
    Lost,
    /// Tokens had been shown, then the stream failed or stalled.
    Interrupted,
}

/// One request as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Seconds since the scenario's start.
    pub started_s: f64,
    pub finished_s: f64,
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
    pub outcome: Outcome,
    /// Which layer answered (LibriAssist only).
    pub layer: Option<CacheLayer>,
    /// Why it was lost or interrupted: `http_503:overloaded`, `event:backend_failed`,
    /// `first_token_deadline`, `connect`, `reset`, `stalled`, `too_slow`, `truncated`.
    pub error: Option<String>,
    pub tokens: u32,
}

/// Builds the client every simulated user shares. No global timeout: each request's
/// patience is enforced while reading, so a slow answer is measured, not cut.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Asks one question and measures it. `epoch` is the scenario's start; `client_ip` is sent as
/// `X-Forwarded-For` so the edge counts each simulated customer as its own client.
pub async fn ask(
    client: &reqwest::Client,
    target: &Target,
    question: &str,
    client_ip: &str,
    patience: Patience,
    epoch: Instant,
) -> Exchange {
    let started = Instant::now();
    let mut m = Measure {
        started,
        first_token: None,
        tokens: 0,
        layer: None,
    };
    let (outcome, error) = match tokio::time::timeout(
        patience.first_token,
        send(client, target, question, client_ip),
    )
    .await
    {
        Err(_) => (Outcome::Lost, Some("first_token_deadline".to_owned())),
        Ok(Err(e)) => (Outcome::Lost, Some(e)),
        Ok(Ok(response)) => read(response, &target.protocol, patience, &mut m).await,
    };
    let now = Instant::now();
    Exchange {
        started_s: started.duration_since(epoch).as_secs_f64(),
        finished_s: now.duration_since(epoch).as_secs_f64(),
        first_token_ms: m
            .first_token
            .map(|t| t.duration_since(started).as_secs_f64() * 1000.0),
        total_ms: now.duration_since(started).as_secs_f64() * 1000.0,
        outcome,
        layer: m.layer,
        error,
        tokens: m.tokens,
    }
}

struct Measure {
    started: Instant,
    first_token: Option<Instant>,
    tokens: u32,
    layer: Option<CacheLayer>,
}

impl Measure {
    fn token(&mut self) {
        self.first_token.get_or_insert_with(Instant::now);
        self.tokens += 1;
    }

    /// An ending that is not a complete answer, split by whether the customer saw tokens.
    fn failed(&self, reason: String) -> (Outcome, Option<String>) {
        let outcome = if self.first_token.is_some() {
            Outcome::Interrupted
        } else {
            Outcome::Lost
        };
        (outcome, Some(reason))
    }
}

async fn send(
    client: &reqwest::Client,
    target: &Target,
    question: &str,
    client_ip: &str,
) -> Result<reqwest::Response, String> {
    let request = match &target.protocol {
        Protocol::LibriAssist => client
            .post(format!("{}/api/v1/chat/stream", target.base_url))
            .header("x-forwarded-for", client_ip)
            .json(&serde_json::json!({ "question": question })),
        Protocol::Ollama { model, num_predict } => client
            .post(format!("{}/api/chat", target.base_url))
            .json(&serde_json::json!({
                "model": model,
                "messages": [{ "role": "user", "content": question }],
                "stream": true,
                "options": { "num_predict": num_predict },
            })),
    };
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(format!("http_{}:{}", status.as_u16(), error_code(&body)))
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connect".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else {
        "reset".into()
    }
}

/// The `code` of a JSON error body (LibriAssist's, or Ollama's `{"error": "text"}`).
fn error_code(body: &str) -> String {
    if let Ok(e) = serde_json::from_str::<ErrorBody>(body) {
        return e.error.code.as_str().to_owned();
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("error").is_some_and(serde_json::Value::is_string) => "backend_error".into(),
        _ => "no_json".into(),
    }
}

async fn read(
    response: reqwest::Response,
    protocol: &Protocol,
    patience: Patience,
    m: &mut Measure,
) -> (Outcome, Option<String>) {
    let mut body = response.bytes_stream();
    let mut sse = SseParser::default();
    let mut lines = LineParser::default();
    loop {
        // Before the first token the customer's whole patience applies; afterwards, the stall limit.
        let wait = match m.first_token {
            None => patience.first_token.saturating_sub(m.started.elapsed()),
            Some(_) => patience.stall,
        };
        let left = patience.total.saturating_sub(m.started.elapsed());
        let chunk = match tokio::time::timeout(wait.min(left), body.next()).await {
            Err(_) if m.first_token.is_none() => {
                return (Outcome::Lost, Some("first_token_deadline".into()))
            }
            Err(_) if wait > left => return m.failed("too_slow".into()),
            Err(_) => return m.failed("stalled".into()),
            Ok(None) => return m.failed("truncated".into()),
            Ok(Some(Err(_))) => return m.failed("reset".into()),
            Ok(Some(Ok(bytes))) => bytes,
        };
        let ended = match protocol {
            Protocol::LibriAssist => sse
                .push(&chunk)
                .into_iter()
                .find_map(|event| on_sse(event, m)),
            Protocol::Ollama { .. } => lines
                .push(&chunk)
                .into_iter()
                .find_map(|line| on_ndjson(&line, m)),
        };
        if let Some(end) = ended {
            return end;
        }
    }
}

fn on_sse(event: SseEvent, m: &mut Measure) -> Option<(Outcome, Option<String>)> {
    match event.event.as_str() {
        META => {
            m.layer = serde_json::from_str::<MetaEvent>(&event.data)
                .ok()
                .map(|meta| meta.cache);
            None
        }
        TOKEN => {
            m.token();
            None
        }
        DONE => Some((Outcome::Answered, None)),
        ERROR => {
            let code = serde_json::from_str::<ErrorDetail>(&event.data)
                .map_or_else(|_| "unknown".to_owned(), |d| d.code.as_str().to_owned());
            Some(m.failed(format!("event:{code}")))
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct OllamaLine {
    #[serde(default)]
    message: Option<OllamaMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct OllamaMessage {
    #[serde(default)]
    content: String,
}

fn on_ndjson(line: &str, m: &mut Measure) -> Option<(Outcome, Option<String>)> {
    let Ok(parsed) = serde_json::from_str::<OllamaLine>(line) else {
        return Some(m.failed("bad_ndjson".into()));
    };
    if parsed.error.is_some() {
        return Some(m.failed("event:backend_error".into()));
    }
    if parsed.message.is_some_and(|msg| !msg.content.is_empty()) {
        m.token();
    }
    parsed.done.then_some((Outcome::Answered, None))
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits a byte stream into events. Network chunks do not align with events (Envoy re-chunks
/// freely), so bytes are buffered until a blank line ends an event.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_blank_line(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&block[..end]);
            let mut event = SseEvent {
                event: "message".into(),
                data: String::new(),
            };
            let mut has_field = false;
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event.event = v.trim_start().to_owned();
                    has_field = true;
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    has_field = true;
                }
            }
            // Comment-only blocks are keep-alives.
            if has_field {
                events.push(event);
            }
        }
        events
    }
}

/// Position and length of the first blank line (`\n\n` or `\r\n\r\n`).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Splits a byte stream into complete lines (NDJSON).
#[derive(Debug, Default)]
pub struct LineParser {
    buffer: Vec<u8>,
}

impl LineParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(i) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line).trim().to_owned();
            if !text.is_empty() {
                lines.push(text);
            }
        }
        lines
    }
}

/// A distinct private address per simulated customer, for `X-Forwarded-For`.
pub fn customer_ip(user: usize) -> String {
    let n = user + 1;
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_survive_any_chunking() {
        let stream = "event: meta\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: token\ndata: {\"text\":\"Bon\"}\n\nevent: done\r\ndata: {}\r\n\r\n";
        for split in 1..stream.len() {
            let mut p = SseParser::default();
            let mut events = p.push(&stream.as_bytes()[..split]);
            events.extend(p.push(&stream.as_bytes()[split..]));
            let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
            assert_eq!(names, ["meta", "token", "done"], "split at {split}");
            assert_eq!(events[1].data, "{\"text\":\"Bon\"}");
        }
    }

    #[test]
    fn ndjson_lines_survive_chunking() {
        let mut p = LineParser::default();
        assert!(p.push(b"{\"done\":fal").is_empty());
        assert_eq!(
            p.push(b"se}\n{\"done\":true}\n"),
            ["{\"done\":false}", "{\"done\":true}"]
        );
    }

    #[test]
    fn endings_are_classified_by_whether_tokens_were_seen() {
        let mut m = Measure {
            started: Instant::now(),
            first_token: None,
            tokens: 0,
            layer: None,
        };
        let error = SseEvent {
            event: "error".into(),
            data: r#"{"code":"overloaded","message":"x"}"#.into(),
        };
        assert_eq!(
            on_sse(error.clone(), &mut m),
            Some((Outcome::Lost, Some("event:overloaded".into())))
        );
        let meta = SseEvent {
            event: "meta".into(),
            data: r#"{"sources":[],"cache":"semantic","model":"m"}"#.into(),
        };
        assert_eq!(on_sse(meta, &mut m), None);
        assert_eq!(m.layer, Some(CacheLayer::Semantic));
        assert_eq!(
            on_sse(
                SseEvent {
                    event: "token".into(),
                    data: r#"{"text":"a"}"#.into()
                },
                &mut m
            ),
            None
        );
        assert_eq!(
            on_sse(error, &mut m).map(|e| e.0),
            Some(Outcome::Interrupted)
        );
        assert_eq!(
            on_sse(
                SseEvent {
                    event: "done".into(),
                    data: "{}".into()
                },
                &mut m
            ),
            Some((Outcome::Answered, None))
        );
    }

    #[test]
    fn ollama_lines_count_tokens_and_end_on_done() {
        let mut m = Measure {
            started: Instant::now(),
            first_token: None,
            tokens: 0,
            layer: None,
        };
        assert_eq!(
            on_ndjson(
                r#"{"message":{"role":"assistant","content":"Bon"},"done":false}"#,
                &mut m
            ),
            None
        );
        assert_eq!(m.tokens, 1);
        assert_eq!(
            on_ndjson(
                r#"{"message":{"role":"assistant","content":""},"done":true}"#,
                &mut m
            ),
            Some((Outcome::Answered, None))
        );
        assert_eq!(
            on_ndjson("not json", &mut m).map(|e| e.0),
            Some(Outcome::Interrupted)
        );
    }

    #[test]
    fn error_bodies_give_their_code() {
        assert_eq!(
            error_code(r#"{"error":{"code":"overloaded","message":"m"}}"#),
            "overloaded"
        );
        assert_eq!(error_code(r#"{"error":"server busy"}"#), "backend_error");
        assert_eq!(error_code("upstream connect error"), "no_json");
    }

    #[test]
    fn customers_get_distinct_addresses() {
        assert_eq!(customer_ip(0), "10.0.0.1");
        assert_eq!(customer_ip(299), "10.0.1.44");
        assert_ne!(customer_ip(255), customer_ip(511));
    }
}
