//! Client for Ollama's native API: POST /api/chat (NDJSON stream), GET /api/tags.

use super::{
    get_listing, listed_or_missing, post_streaming, token, Backend, BackendError, BackendEvent,
    BackendKind, Completion, GenerationRequest, TokenStream,
};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

pub struct OllamaBackend {
    base: String,
    client: reqwest::Client,
}

impl OllamaBackend {
    pub fn new(base: &str, client: reqwest::Client) -> Self {
        OllamaBackend {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }
}

/// One NDJSON line of /api/chat. Ollama reports errors mid-stream as `{"error": "..."}`.
#[derive(Debug, Deserialize)]
struct ChatLine {
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: String,
}

#[derive(Debug, Deserialize)]
struct Tags {
    models: Vec<TagModel>,
}

#[derive(Debug, Deserialize)]
struct TagModel {
    name: String,
}

/// Ollama lists `mistral:latest` for a pull of `mistral`: compare with the implicit tag.
fn same_model(listed: &str, wanted: &str) -> bool {
    let full = |m: &str| {
        if m.contains(':') {
            m.to_owned()
        } else {
            format!("{m}:latest")
        }
    };
    full(listed) == full(wanted)
}

fn parse_line(url: &str, line: &str) -> Option<Result<BackendEvent, BackendError>> {
    if line.trim().is_empty() {
        return None;
    }
    let parsed: ChatLine = match serde_json::from_str(line) {
        Ok(p) => p,
        Err(e) => {
            return Some(Err(BackendError::Protocol {
                url: url.to_owned(),
                message: format!("bad NDJSON line: {e}"),
            }))
        }
    };
    if let Some(error) = parsed.error {
        return Some(Err(BackendError::Status {
            url: url.to_owned(),
            status: 500,
            message: error,
        }));
    }
    if parsed.done {
        return Some(Ok(BackendEvent::Done(Completion {
            prompt_tokens: parsed.prompt_eval_count,
            completion_tokens: parsed.eval_count,
            finish_reason: parsed.done_reason,
        })));
    }
    token(parsed.message.map(|m| m.content).unwrap_or_default())
}

impl Backend for OllamaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ollama
    }

    fn url(&self) -> &str {
        &self.base
    }

    fn generate(
        &self,
        request: GenerationRequest,
    ) -> BoxFuture<'_, Result<TokenStream, BackendError>> {
        Box::pin(async move {
            let body = json!({
                "model": request.model,
                "messages": request.messages,
                "stream": true,
                "options": {
                    "num_predict": request.options.num_predict,
                    "temperature": request.options.temperature,
                    "top_k": request.options.top_k,
                },
            });
            post_streaming(&self.client, &self.base, "/api/chat", &body, parse_line).await
        })
    }

    fn check_model<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let tags: Tags = get_listing(&self.client, &self.base, "/api/tags").await?;
            let listed = tags.models.iter().any(|m| same_model(&m.name, model));
            listed_or_missing(&self.base, model, listed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_ollama_docs() {
        let token = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The"},"done":false}"#;
        assert_eq!(
            parse_line("u", token).unwrap().unwrap(),
            BackendEvent::Token("The".into())
        );
        let done = r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}"#;
        assert_eq!(
            parse_line("u", done).unwrap().unwrap(),
            BackendEvent::Done(Completion {
                prompt_tokens: Some(26),
                completion_tokens: Some(282),
                finish_reason: Some("stop".into())
            })
        );
        assert!(parse_line("u", r#"{"error":"model 'x' not found"}"#)
            .unwrap()
            .is_err());
        assert!(parse_line("u", "not json").unwrap().is_err());
        assert!(parse_line("u", "").is_none());
    }

    #[test]
    fn model_names_with_implicit_tag() {
        assert!(same_model("mistral:latest", "mistral"));
        assert!(same_model(
            "mistral:7b-instruct-q4_0",
            "mistral:7b-instruct-q4_0"
        ));
        assert!(!same_model("mistral:7b", "mistral"));
    }
}
