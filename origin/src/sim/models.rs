//! The models a simulated server has "pulled" and which of them are "loaded": name matching as
//! Ollama does it (case-insensitive, `:latest` implied, `library/` optional) and the
//! /api/tags and /api/ps entries, whose details are derived from the name so that a 7b q4_0
//! model looks like one to anything reading sizes or quantization levels.

use super::generate::{hash, SplitMix64};
use super::wire::rfc3339;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long a model stays loaded after its last use (Ollama's default keep_alive).
const KEEP_ALIVE: Duration = Duration::from_secs(5 * 60);
/// Context length Ollama reports for a loaded model by default.
const CONTEXT_LENGTH: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
}

#[derive(Debug, Clone)]
struct Model {
    name: String,
    key: String,
    size: u64,
    digest: String,
    details: Details,
}

#[derive(Debug, Serialize)]
pub struct TagsEntry {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    pub details: Details,
}

#[derive(Debug, Serialize)]
pub struct PsEntry {
    pub name: String,
    pub model: String,
    pub size: u64,
    pub digest: String,
    pub details: Details,
    pub expires_at: String,
    pub size_vram: u64,
    pub context_length: u64,
}

#[derive(Debug)]
pub struct Catalog {
    models: Vec<Model>,
    pulled_at: SystemTime,
    // Last use of each model, by index; a model is loaded while within KEEP_ALIVE of it.
    last_used: Mutex<Vec<Option<SystemTime>>>,
}

/// Handle of one model of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelId(usize);

/// `registry.ollama.ai/library/mistral` and `mistral:latest` name the same model.
fn display_name(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_prefix("registry.ollama.ai/").unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn parameter_count(name: &str) -> (String, f64) {
    for part in name.to_lowercase().split([':', '-', '/']) {
        let Some(unit) = part.chars().last() else {
            continue;
        };
        let scale = match unit {
            'b' => 1e9,
            'm' => 1e6,
            _ => continue,
        };
        let number = &part[..part.len() - 1];
        if let Ok(n) = number.parse::<f64>() {
            if n.is_finite() && n > 0.0 {
                return (part.to_uppercase(), n * scale);
            }
        }
    }
    ("7B".into(), 7e9)
}

fn quantization(name: &str) -> (String, f64) {
    let lower = name.to_lowercase();
    let tag = lower.rsplit(':').next().unwrap_or(&lower);
    for float in ["bf16", "fp16", "f16"] {
        if tag.contains(float) {
            return ("F16".into(), 16.0);
        }
    }
    let found = tag.char_indices().find_map(|(i, c)| {
        let next = tag[i + 1..].chars().next();
        (c == 'q' && next.is_some_and(|d| d.is_ascii_digit())).then(|| {
            tag[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
    });
    let level = found.unwrap_or_else(|| "q4_k_m".into()).to_uppercase();
    let bits = match level.get(..2) {
        Some("Q2") => 2.6,
        Some("Q3") => 3.4,
        Some("Q4") if level == "Q4_0" => 4.5,
        Some("Q4") => 4.85,
        Some("Q5") => 5.5,
        Some("Q6") => 6.6,
        Some("Q8") => 8.5,
        _ => 4.85,
    };
    (level, bits)
}

fn describe(name: &str) -> Model {
    let name = display_name(name);
    let key = name.to_lowercase();
    let base = key.rsplit('/').next().unwrap_or(&key);
    let base = base.split(':').next().unwrap_or(base);
    let family: String = base.chars().take_while(char::is_ascii_alphabetic).collect();
    let family = if family.is_empty() {
        "llama".into()
    } else {
        family
    };
    let (parameter_size, params) = parameter_count(&key);
    let (quantization_level, bits) = quantization(&key);
    let mut rng = SplitMix64::new(hash(0, &key));
    let digest = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
    Model {
        size: (params * bits / 8.0) as u64 + rng.below(1 << 20) as u64,
        digest,
        details: Details {
            parent_model: String::new(),
            format: "gguf".into(),
            families: vec![family.clone()],
            family,
            parameter_size,
            quantization_level,
        },
        name,
        key,
    }
}

impl Catalog {
    pub fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut models: Vec<Model> = Vec::new();
        for name in names
            .iter()
            .map(AsRef::as_ref)
            .filter(|n| !n.trim().is_empty())
        {
            let model = describe(name);
            if !models.iter().any(|m| m.key == model.key) {
                models.push(model);
            }
        }
        let count = models.len();
        Self {
            models,
            pulled_at: SystemTime::now(),
            last_used: Mutex::new(vec![None; count]),
        }
    }

    /// The model a request names, if present.
    pub fn find(&self, requested: &str) -> Option<ModelId> {
        let key = display_name(requested).to_lowercase();
        self.models.iter().position(|m| m.key == key).map(ModelId)
    }

    fn last_used(&self) -> std::sync::MutexGuard<'_, Vec<Option<SystemTime>>> {
        // A poisoned lock still holds valid timestamps.
        self.last_used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a model loaded from now on, for KEEP_ALIVE.
    pub fn touch(&self, id: ModelId) {
        if let Some(slot) = self.last_used().get_mut(id.0) {
            *slot = Some(SystemTime::now());
        }
    }

    pub fn unload(&self, id: ModelId) {
        if let Some(slot) = self.last_used().get_mut(id.0) {
            *slot = None;
        }
    }

    /// `GET /api/tags`.
    pub fn tags(&self) -> Vec<TagsEntry> {
        self.models
            .iter()
            .map(|m| TagsEntry {
                name: m.name.clone(),
                model: m.name.clone(),
                modified_at: rfc3339(self.pulled_at),
                size: m.size,
                digest: m.digest.clone(),
                details: m.details.clone(),
            })
            .collect()
    }

    /// `GET /api/ps`: models used within their keep-alive, latest expiry first.
    pub fn ps(&self) -> Vec<PsEntry> {
        let now = SystemTime::now();
        let mut loaded: Vec<(SystemTime, &Model)> = self
            .last_used()
            .iter()
            .zip(&self.models)
            .filter_map(|(used, m)| used.map(|t| (t + KEEP_ALIVE, m)))
            .filter(|(expires, _)| *expires > now)
            .collect();
        loaded.sort_by_key(|(expires, _)| std::cmp::Reverse(*expires));
        loaded
            .into_iter()
            .map(|(expires, m)| PsEntry {
                name: m.name.clone(),
                model: m.name.clone(),
                size: m.size,
                digest: m.digest.clone(),
                details: m.details.clone(),
                expires_at: rfc3339(expires),
                size_vram: m.size,
                context_length: CONTEXT_LENGTH,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_like_ollama() {
        let catalog = Catalog::new(&["mistral:7b-instruct-q4_0", "Qwen2.5"]);
        let mistral = catalog.find("mistral:7b-instruct-q4_0");
        assert!(mistral.is_some());
        assert_eq!(catalog.find("MISTRAL:7B-Instruct-Q4_0"), mistral);
        assert_eq!(catalog.find("library/mistral:7b-instruct-q4_0"), mistral);
        assert_eq!(
            catalog.find("registry.ollama.ai/library/mistral:7b-instruct-q4_0"),
            mistral
        );
        assert!(catalog.find("mistral").is_none());
        assert!(catalog.find("qwen2.5:latest").is_some());
        assert!(catalog.find("qwen2.5").is_some());
        assert!(catalog.find("").is_none());
    }

    #[test]
    fn duplicates_and_blanks_are_listed_once() {
        let catalog = Catalog::new(&["a", "a:latest", " ", "A"]);
        assert_eq!(catalog.tags().len(), 1);
        assert_eq!(catalog.tags()[0].name, "a:latest");
    }

    #[test]
    fn details_come_from_the_name() {
        let tags = Catalog::new(&["mistral:7b-instruct-q4_0", "smollm2:135m-instruct-q8_0"]).tags();
        let d = &tags[0].details;
        assert_eq!(
            (d.parameter_size.as_str(), d.quantization_level.as_str()),
            ("7B", "Q4_0")
        );
        assert_eq!(d.family, "mistral");
        assert_eq!(d.format, "gguf");
        assert!(
            (3_900_000_000..4_000_000_000).contains(&tags[0].size),
            "{}",
            tags[0].size
        );
        assert_eq!(tags[0].digest.len(), 64);
        assert!(tags[0].digest.chars().all(|c| c.is_ascii_hexdigit()));
        let d = &tags[1].details;
        assert_eq!(
            (d.parameter_size.as_str(), d.quantization_level.as_str()),
            ("135M", "Q8_0")
        );
    }

    #[test]
    fn tags_entries_have_the_documented_fields() {
        let v = serde_json::to_value(Catalog::new(&["m:1"]).tags()).unwrap_or_default();
        for field in ["name", "model", "modified_at", "size", "digest", "details"] {
            assert!(!v[0][field].is_null(), "{field}");
        }
        for field in [
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level",
        ] {
            assert!(!v[0]["details"][field].is_null(), "{field}");
        }
    }

    #[test]
    fn ps_lists_used_models_until_unloaded() {
        let catalog = Catalog::new(&["a", "b"]);
        assert!(catalog.ps().is_empty());
        let b = catalog.find("b");
        assert!(b.is_some());
        if let Some(b) = b {
            catalog.touch(b);
            let ps = catalog.ps();
            assert_eq!(ps.len(), 1);
            assert_eq!(ps[0].name, "b:latest");
            assert_eq!(ps[0].size_vram, ps[0].size);
            let v = serde_json::to_value(&ps[0]).unwrap_or_default();
            for field in ["expires_at", "size_vram", "digest", "details", "model"] {
                assert!(!v[field].is_null(), "{field}");
            }
            catalog.unload(b);
        }
        assert!(catalog.ps().is_empty());
    }
}
