//! Client for OpenAI-compatible servers (vLLM, llama.cpp llama-server, LM Studio):
//! POST /v1/chat/completions with SSE, GET /v1/models.

use super::{
    get_listing, listed_or_missing, post_streaming, token, Backend, BackendError, BackendEvent,
    BackendKind, Completion, GenerationRequest, TokenStream,
};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

pub struct OpenAiBackend {
    base: String,
    client: reqwest::Client,
}

impl OpenAiBackend {
    /// `base` is the server root (`http://host:8080`) or already ends in `/v1`.
    pub fn new(base: &str, client: reqwest::Client) -> Self {
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        OpenAiBackend {
            base: base.to_owned(),
            client,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Models {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

/// Decoder state: the finish reason and usage may come in different chunks before `[DONE]`.
#[derive(Default)]
struct Decoder {
    completion: Completion,
}

impl Decoder {
    /// One SSE line in, at most one event out. Comments, `event:` lines and blanks are skipped.
    fn line(&mut self, url: &str, line: &str) -> Option<Result<BackendEvent, BackendError>> {
        let data = line.strip_prefix("data:")?.trim();
        if data == "[DONE]" {
            return Some(Ok(BackendEvent::Done(std::mem::take(&mut self.completion))));
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                return Some(Err(BackendError::Protocol {
                    url: url.to_owned(),
                    message: format!("bad SSE data: {e}"),
                }))
            }
        };
        if let Some(usage) = chunk.usage {
            self.completion.prompt_tokens = usage.prompt_tokens;
            self.completion.completion_tokens = usage.completion_tokens;
        }
        let choice = chunk.choices.into_iter().next()?;
        if let Some(reason) = choice.finish_reason {
            self.completion.finish_reason = Some(reason);
        }
        token(choice.delta.and_then(|d| d.content).unwrap_or_default())
    }
}

impl Backend for OpenAiBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Openai
    }

    fn url(&self) -> &str {
        &self.base
    }

    fn generate(
        &self,
        request: GenerationRequest,
    ) -> BoxFuture<'_, Result<TokenStream, BackendError>> {
        Box::pin(async move {
            // max_tokens is always sent: llama-server generates without bound otherwise.
            let body = json!({
                "model": request.model,
                "messages": request.messages,
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": request.options.num_predict,
                "temperature": request.options.temperature,
                "top_k": request.options.top_k,
            });
            let mut decoder = Decoder::default();
            let decode = move |url: &str, line: &str| decoder.line(url, line);
            post_streaming(
                &self.client,
                &self.base,
                "/v1/chat/completions",
                &body,
                decode,
            )
            .await
        })
    }

    fn check_model<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let models: Models = get_listing(&self.client, &self.base, "/v1/models").await?;
            let listed = models.data.iter().any(|m| m.id == model);
            listed_or_missing(&self.base, model, listed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_llama_server_stream() {
        let mut d = Decoder::default();
        let stream = [
            r#"data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk"}"#,
            "",
            r#"data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Bon"}}],"object":"chat.completion.chunk"}"#,
            r#"data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"object":"chat.completion.chunk"}"#,
            r#"data: {"choices":[],"usage":{"completion_tokens":5,"prompt_tokens":12,"total_tokens":17}}"#,
            ": keep-alive",
            "data: [DONE]",
        ];
        let events: Vec<_> = stream
            .iter()
            .filter_map(|l| d.line("u", l))
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(
            events,
            [
                BackendEvent::Token("Bon".into()),
                BackendEvent::Done(Completion {
                    prompt_tokens: Some(12),
                    completion_tokens: Some(5),
                    finish_reason: Some("length".into())
                })
            ]
        );
        assert!(d.line("u", "data: {oops").unwrap().is_err());
    }

    #[test]
    fn base_url_with_or_without_v1() {
        let c = reqwest::Client::new();
        assert_eq!(
            OpenAiBackend::new("http://h:8080/v1/", c.clone()).url(),
            "http://h:8080"
        );
        assert_eq!(
            OpenAiBackend::new("http://h:8080", c).url(),
            "http://h:8080"
        );
    }
}
