//! JSON shapes of the public chat API (see DESIGN.md, "Contracts").

use serde::{Deserialize, Serialize};

/// Body of `POST /api/v1/chat` and `POST /api/v1/chat/stream`.
///
/// Unknown fields are ignored rather than refused so that clients written against a later
/// version keep working; every field we do read is validated by [`crate::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub question: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Turn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// One earlier turn of the conversation, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A passage the answer is grounded on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub score: f32,
}

/// Which layer produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheLayer {
    /// Generated for this request.
    Miss,
    /// Answered by the edge filter without reaching the origin.
    Edge,
    /// Same normalized question found in the origin's cache.
    Exact,
    /// A guarded paraphrase of a cached question.
    Semantic,
    /// Shared with an identical question that was being answered at the same time.
    Coalesced,
}

impl CacheLayer {
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheLayer::Miss => "miss",
            CacheLayer::Edge => "edge",
            CacheLayer::Exact => "exact",
            CacheLayer::Semantic => "semantic",
            CacheLayer::Coalesced => "coalesced",
        }
    }
}

/// How the answer was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Written by an LLM from the retrieved passages.
    #[default]
    Generated,
    /// No LLM could answer: the best passages themselves, marked as such.
    Extractive,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Generated => "generated",
            Mode::Extractive => "extractive",
        }
    }
}

/// Where the time went, in milliseconds. Absent fields did not apply to this answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub total_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_ms: Option<f64>,
}

/// Response of `POST /api/v1/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub answer: String,
    pub sources: Vec<Source>,
    pub cache: CacheLayer,
    pub model: String,
    #[serde(default)]
    pub mode: Mode,
    pub timings: Timings,
}

/// What a cache stores for one question, and what the origin's internal cache endpoint returns
/// to the edge: enough to replay the answer as JSON or as SSE events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAnswer {
    pub answer: String,
    pub sources: Vec<Source>,
    pub model: String,
    #[serde(default)]
    pub mode: Mode,
}

impl CachedAnswer {
    /// The public response for a replay of this entry by `layer`.
    pub fn into_response(self, layer: CacheLayer, timings: Timings) -> ChatResponse {
        ChatResponse {
            answer: self.answer,
            sources: self.sources,
            cache: layer,
            model: self.model,
            mode: self.mode,
            timings,
        }
    }
}
