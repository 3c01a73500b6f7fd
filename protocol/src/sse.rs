//! Server-sent events of `POST /api/v1/chat/stream`: names, payloads and the wire encoding.
//!
//! Live answers, origin cache replays and edge cache replays all produce this same sequence:
//! `meta`, then `token`*, then `done` — or `error` as the last event when a stream fails midway,
//! so a client never mistakes a truncated answer for a complete one.

use crate::api::{CacheLayer, CachedAnswer, Mode, Source, Timings};
use crate::error::ErrorDetail;
use serde::{Deserialize, Serialize};

pub const META: &str = "meta";
pub const TOKEN: &str = "token";
pub const DONE: &str = "done";
pub const ERROR: &str = "error";

/// First event: what the answer is grounded on and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaEvent {
    pub sources: Vec<Source>,
    pub cache: CacheLayer,
    pub model: String,
    #[serde(default)]
    pub mode: Mode,
}

/// A piece of the answer, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEvent {
    pub text: String,
}

/// Last event of a complete answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DoneEvent {
    pub timings: Timings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u32>,
    /// Why generation stopped: `stop` (the model ended) or `length` (the token budget ended it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// One event as it goes on the wire. `data` is a single line of JSON (serde_json never emits a
/// raw newline inside a string), so one `data:` field suffices.
pub fn encode(event: &str, data: &impl Serialize) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    format!("event: {event}\ndata: {json}\n\n")
}

/// The pieces a cached answer is replayed in: one per word with its following whitespace, so
/// a replay renders like a live answer and concatenating them gives the answer back exactly.
pub fn replay_pieces(answer: &str) -> impl Iterator<Item = &str> {
    let mut rest = answer;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let space_end = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |i| word_end + i);
        let (piece, tail) = rest.split_at(space_end);
        rest = tail;
        Some(piece)
    })
}

/// The complete event stream replaying a cached answer, as the edge sends it in one body.
pub fn encode_replay(entry: &CachedAnswer, layer: CacheLayer, timings: Timings) -> String {
    let meta = MetaEvent {
        sources: entry.sources.clone(),
        cache: layer,
        model: entry.model.clone(),
        mode: entry.mode,
    };
    let mut out = encode(META, &meta);
    for piece in replay_pieces(&entry.answer) {
        out.push_str(&encode(
            TOKEN,
            &TokenEvent {
                text: piece.to_owned(),
            },
        ));
    }
    out.push_str(&encode(
        DONE,
        &DoneEvent {
            timings,
            ..DoneEvent::default()
        },
    ));
    out
}

/// The `error` event that ends a failed stream.
pub fn encode_error(detail: &ErrorDetail) -> String {
    encode(ERROR, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_to_the_answer() {
        for answer in [
            "",
            "un",
            "Nous proposons  le poche,\net le numérique. ",
            "  début",
        ] {
            let pieces: Vec<&str> = replay_pieces(answer).collect();
            assert_eq!(pieces.concat(), answer);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(
            replay_pieces("a b  c").collect::<Vec<_>>(),
            ["a ", "b  ", "c"]
        );
    }

    #[test]
    fn replay_is_meta_tokens_done() {
        let entry = CachedAnswer {
            answer: "Oui, \"bien\" sûr.\nAu revoir".into(),
            sources: vec![],
            model: "m".into(),
            mode: Mode::Generated,
        };
        let text = encode_replay(&entry, CacheLayer::Edge, Timings::default());
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert!(events[0].starts_with("event: meta\ndata: {"));
        assert!(events[0].contains(r#""cache":"edge""#));
        assert!(events.last().unwrap().starts_with("event: done\n"));
        let mut answer = String::new();
        for event in &events[1..events.len() - 1] {
            let data = event.strip_prefix("event: token\ndata: ").unwrap();
            assert!(!data.contains('\n'));
            answer.push_str(&serde_json::from_str::<TokenEvent>(data).unwrap().text);
        }
        assert_eq!(answer, entry.answer);
    }
}
