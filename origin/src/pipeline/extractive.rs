//! Pipeline stage: answers without a language model, from the knowledge base alone.
//!
//! Two cases. When no backend is configured, or every backend is down or failed before its
//! first token, the customer gets the best passages themselves with their sources, marked
//! `"mode": "extractive"`, instead of an error page. And when retrieval found nothing relevant
//! enough, the customer gets the configured "I don't know" text with no source, whatever the
//! backends' state: a model given no passage would have to invent.
//!
//! Both answers stream in the same events as a generated one (`meta`, `token`*, `done`), cut
//! the way cached answers are replayed, so clients need no special case.

use super::{Answer, AnswerEvent, Passage, RequestContext};
use crate::backends::PoolError;
use crate::error::AppError;
use futures::stream::{self, StreamExt};
use libriassist_protocol::sse::{replay_pieces, DoneEvent, MetaEvent};
use libriassist_protocol::{CacheLayer, Mode, Timings};

/// The `model` of answers no language model wrote.
pub const NO_MODEL: &str = "none";

pub struct Extractive {
    max_passages: usize,
    no_answer: String,
}

/// Whether a generation failure should be answered extractively: no backend can answer now.
/// Overload (`QueueFull`, `QueueTimeout`) is not: the backends are healthy and a retry soon
/// will get a written answer, so the client is told to retry instead.
pub fn falls_back(error: &AppError) -> bool {
    matches!(
        error,
        AppError::Pool(PoolError::NoBackend | PoolError::Failed(_))
    )
}

impl Extractive {
    pub fn new(max_passages: usize, no_answer: String) -> Extractive {
        Extractive {
            max_passages: max_passages.max(1),
            no_answer,
        }
    }

    /// The best passages as the answer, each followed by its citation number.
    pub fn answer(&self, passages: &[Passage], ctx: &RequestContext) -> Answer {
        let used = &passages[..passages.len().min(self.max_passages)];
        let mut text = String::from("Voici ce que disent nos documents à ce sujet :");
        for (i, p) in used.iter().enumerate() {
            text.push_str(&format!(
                "\n\n**{}**\n{} [{}]",
                p.source.title,
                p.text.trim(),
                i + 1
            ));
        }
        let sources = used.iter().map(|p| p.source.clone()).collect();
        respond(text, sources, ctx)
    }

    /// The answer when no passage is relevant enough.
    pub fn not_found(&self, ctx: &RequestContext) -> Answer {
        respond(self.no_answer.clone(), Vec::new(), ctx)
    }
}

fn respond(
    text: String,
    sources: Vec<libriassist_protocol::Source>,
    ctx: &RequestContext,
) -> Answer {
    let meta = MetaEvent {
        sources,
        cache: CacheLayer::Miss,
        model: NO_MODEL.to_owned(),
        mode: Mode::Extractive,
    };
    let elapsed = (ctx.received.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let done = DoneEvent {
        timings: Timings {
            total_ms: elapsed,
            ttft_ms: Some(elapsed),
            ..Timings::default()
        },
        finish_reason: Some("stop".into()),
        ..DoneEvent::default()
    };
    let mut events: Vec<AnswerEvent> = replay_pieces(&text)
        .map(|p| AnswerEvent::Token(p.to_owned()))
        .collect();
    events.push(AnswerEvent::Done(done));
    Answer {
        meta,
        events: stream::iter(events).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::BackendError;
    use libriassist_protocol::{cache_key, ChatRequest, Source};
    use std::time::Instant;

    fn ctx() -> RequestContext {
        let request = ChatRequest {
            question: "q".into(),
            history: vec![],
            session_id: None,
        };
        RequestContext {
            request_id: "r".into(),
            received: Instant::now(),
            cache_key: cache_key(&request),
        }
    }

    fn passage(id: &str, title: &str, text: &str) -> Passage {
        Passage {
            source: Source {
                id: id.into(),
                title: title.into(),
                url: None,
                score: 1.0,
            },
            text: text.into(),
        }
    }

    async fn collect(answer: Answer) -> (MetaEvent, String, Vec<AnswerEvent>) {
        let events: Vec<AnswerEvent> = answer.events.collect().await;
        (answer.meta, super::super::token_text(&events), events)
    }

    #[tokio::test]
    async fn best_passages_with_sources_in_answer_events() {
        let e = Extractive::new(2, "Je ne sais pas.".into());
        let passages = [
            passage("formats", "Formats", "Poche et grand format."),
            passage("ebooks", "Numérique", "EPUB."),
            passage("x", "X", "x"),
        ];
        let (meta, text, events) = collect(e.answer(&passages, &ctx())).await;
        assert_eq!(meta.mode, Mode::Extractive);
        assert_eq!(meta.model, NO_MODEL);
        assert_eq!(
            meta.sources
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["formats", "ebooks"]
        );
        assert!(
            text.contains("**Formats**\nPoche et grand format. [1]"),
            "{text}"
        );
        assert!(
            text.contains("EPUB. [2]") && !text.contains("[3]"),
            "{text}"
        );
        assert!(events.len() > 3);
        assert!(
            matches!(events.last(), Some(AnswerEvent::Done(d)) if d.finish_reason.as_deref() == Some("stop"))
        );
    }

    #[tokio::test]
    async fn not_found_has_no_source() {
        let e = Extractive::new(1, "Je ne trouve pas cette information.".into());
        let (meta, text, _) = collect(e.not_found(&ctx())).await;
        assert!(meta.sources.is_empty());
        assert_eq!(text, "Je ne trouve pas cette information.");
    }

    #[test]
    fn falls_back_only_when_no_backend_can_answer() {
        assert!(falls_back(&AppError::Pool(PoolError::NoBackend)));
        let failed = BackendError::Connect {
            url: "u".into(),
            message: "m".into(),
        };
        assert!(falls_back(&AppError::Pool(PoolError::Failed(failed))));
        assert!(!falls_back(&AppError::Pool(PoolError::QueueFull(3))));
        assert!(!falls_back(&AppError::Draining));
    }
}
