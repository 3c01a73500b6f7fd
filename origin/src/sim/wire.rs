//! Ollama's JSON, field for field: the /api/chat and /api/generate requests as Ollama decodes
//! them (unknown fields ignored, `options` type-checked the way its `Options.FromMap` does) and
//! the objects it answers with, in its field order, with durations in nanoseconds and
//! `created_at` in Go's RFC 3339 form. Clients parse these shapes, so they are the contract;
//! nothing here knows about time passing or slots.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The two generation endpoints differ only in how the text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/api/chat`: text in `message.content`.
    Chat,
    /// `/api/generate`: text in `response`.
    Generate,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatMessage {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct GenerateRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub raw: Option<bool>,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    #[serde(default)]
    pub keep_alive: Option<Value>,
}

/// Decodes a request body; errors carry the message Ollama's 400 would.
///
/// # Errors
/// "missing request body" for an empty body (Go's `io.EOF`), else the decoder's message.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("missing request body".into());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// The options the simulator acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub num_predict: Option<i64>,
}

#[derive(Clone, Copy)]
enum Kind {
    Integer,
    Float,
    Boolean,
    Strings,
}

/// Ollama's runtime and load options with their types; keys outside this list are ignored
/// (Ollama only logs them).
const OPTION_KINDS: &[(&str, Kind)] = &[
    ("num_keep", Kind::Integer),
    ("seed", Kind::Integer),
    ("num_predict", Kind::Integer),
    ("top_k", Kind::Integer),
    ("repeat_last_n", Kind::Integer),
    ("mirostat", Kind::Integer),
    ("num_ctx", Kind::Integer),
    ("num_batch", Kind::Integer),
    ("num_gpu", Kind::Integer),
    ("main_gpu", Kind::Integer),
    ("num_thread", Kind::Integer),
    ("top_p", Kind::Float),
    ("min_p", Kind::Float),
    ("typical_p", Kind::Float),
    ("tfs_z", Kind::Float),
    ("temperature", Kind::Float),
    ("repeat_penalty", Kind::Float),
    ("presence_penalty", Kind::Float),
    ("frequency_penalty", Kind::Float),
    ("mirostat_tau", Kind::Float),
    ("mirostat_eta", Kind::Float),
    ("penalize_newline", Kind::Boolean),
    ("numa", Kind::Boolean),
    ("low_vram", Kind::Boolean),
    ("vocab_only", Kind::Boolean),
    ("use_mmap", Kind::Boolean),
    ("use_mlock", Kind::Boolean),
    ("stop", Kind::Strings),
];

/// Type-checks `options` like Ollama. JSON numbers are all floats to Go, so an integer option
/// accepts 12.7 (and truncates it) and a float option accepts 1; `null` means "not set".
///
/// # Errors
/// Ollama's message, e.g. `option "temperature" must be of type float32`.
pub fn options(map: Option<&Map<String, Value>>) -> Result<Options, String> {
    let mut out = Options::default();
    let Some(map) = map else { return Ok(out) };
    for (key, value) in map {
        let Some((_, kind)) = OPTION_KINDS.iter().find(|(k, _)| k == key) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let ok = match kind {
            Kind::Integer | Kind::Float => value.is_number(),
            Kind::Boolean => value.is_boolean(),
            Kind::Strings => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
        };
        if !ok {
            let expected = match kind {
                Kind::Integer => "must be of type integer",
                Kind::Float => "must be of type float32",
                Kind::Boolean => "must be of type boolean",
                Kind::Strings if value.is_array() => "must be of an array of strings",
                Kind::Strings => "must be of type array",
            };
            return Err(format!("option {key:?} {expected}"));
        }
        if key == "num_predict" {
            // `as` saturates, which is as good as Go's conversion for absurd values.
            out.num_predict = value.as_f64().map(|n| n as i64);
        }
    }
    Ok(out)
}

/// `keep_alive` of zero (number of seconds or Go duration string) asks Ollama to unload.
pub fn keep_alive_is_zero(keep_alive: Option<&Value>) -> bool {
    match keep_alive {
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => {
            let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            !digits.is_empty() && digits.parse::<f64>().ok() == Some(0.0)
        }
        _ => false,
    }
}

/// Timing and counts of the last object, in nanoseconds and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration: u64,
    pub eval_count: u64,
    pub eval_duration: u64,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatObject<'a> {
    model: &'a str,
    created_at: String,
    message: Message<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    done: bool,
    #[serde(flatten)]
    metrics: Option<Metrics>,
}

#[derive(Serialize)]
struct GenerateObject<'a> {
    model: &'a str,
    created_at: String,
    response: &'a str,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a [u32]>,
    #[serde(flatten)]
    metrics: Option<Metrics>,
}

/// One answer object. Token chunks have no `done_reason` and no metrics; the last object has
/// both (and, for /api/generate, `context` unless the request was raw).
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub text: &'a str,
    pub done_reason: Option<&'a str>,
    pub metrics: Option<Metrics>,
    pub context: Option<&'a [u32]>,
}

impl<'a> Object<'a> {
    pub fn chunk(endpoint: Endpoint, model: &'a str, text: &'a str) -> Self {
        Self {
            endpoint,
            model,
            text,
            done_reason: None,
            metrics: None,
            context: None,
        }
    }

    /// The object as JSON, stamped now.
    pub fn to_json(self) -> Vec<u8> {
        let created_at = rfc3339(SystemTime::now());
        let done = self.done_reason.is_some();
        let encoded = match self.endpoint {
            Endpoint::Chat => serde_json::to_vec(&ChatObject {
                model: self.model,
                created_at,
                message: Message {
                    role: "assistant",
                    content: self.text,
                },
                done_reason: self.done_reason,
                done,
                metrics: self.metrics,
            }),
            Endpoint::Generate => serde_json::to_vec(&GenerateObject {
                model: self.model,
                created_at,
                response: self.text,
                done,
                done_reason: self.done_reason,
                context: self.context,
                metrics: self.metrics,
            }),
        };
        // Strings, numbers and flags always encode; the fallback only keeps this total.
        encoded.unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The object as one NDJSON line.
    pub fn to_line(self) -> Vec<u8> {
        let mut line = self.to_json();
        line.push(b'\n');
        line
    }
}

/// Go's `time.Time` JSON form (RFC 3339, nanoseconds with trailing zeros trimmed), in UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}");
    let nanos = since.subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Ollama's error body.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::json;
    use std::fmt;
    use std::time::Duration;

    /// Top-level keys of a JSON object in the order they were written (a `Value` may sort
    /// them, depending on serde_json's features elsewhere in the build).
    pub(crate) fn keys_in_order(json: &[u8]) -> Vec<String> {
        struct Keys(Vec<String>);
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        impl<'de> Deserialize<'de> for Keys {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_map(KeysVisitor)
            }
        }
        serde_json::from_slice::<Keys>(json)
            .map(|k| k.0)
            .unwrap_or_default()
    }

    fn value(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or(Value::Null)
    }

    const METRICS: Metrics = Metrics {
        total_duration: 5,
        load_duration: 1,
        prompt_eval_count: 2,
        prompt_eval_duration: 3,
        eval_count: 4,
        eval_duration: 6,
    };

    #[test]
    fn chat_chunk_has_the_documented_fields_only() {
        let line = Object::chunk(Endpoint::Chat, "m:1", "Bon").to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v = value(&line);
        assert_eq!(
            keys_in_order(&line),
            ["model", "created_at", "message", "done"]
        );
        assert_eq!(v["message"], json!({"role": "assistant", "content": "Bon"}));
        assert_eq!(v["done"], false);
    }

    #[test]
    fn chat_last_line_carries_reason_and_metrics() {
        let last = Object {
            done_reason: Some("length"),
            metrics: Some(METRICS),
            ..Object::chunk(Endpoint::Chat, "m:1", "")
        };
        let line = last.to_line();
        let v = value(&line);
        assert_eq!(
            keys_in_order(&line),
            [
                "model",
                "created_at",
                "message",
                "done_reason",
                "done",
                "total_duration",
                "load_duration",
                "prompt_eval_count",
                "prompt_eval_duration",
                "eval_count",
                "eval_duration"
            ]
        );
        assert_eq!(v["done"], true);
        assert_eq!(v["done_reason"], "length");
        assert_eq!(v["eval_duration"], 6);
        assert_eq!(v["message"]["content"], "");
    }

    #[test]
    fn generate_objects_use_response_and_context() {
        let line = Object::chunk(Endpoint::Generate, "m", "Le").to_line();
        assert_eq!(
            keys_in_order(&line),
            ["model", "created_at", "response", "done"]
        );
        let ids = [1, 2, 3];
        let last = Object {
            done_reason: Some("stop"),
            metrics: Some(METRICS),
            context: Some(&ids),
            ..Object::chunk(Endpoint::Generate, "m", "")
        };
        let v = value(&last.to_json());
        assert_eq!(v["context"], json!([1, 2, 3]));
        assert_eq!(v["done_reason"], "stop");
        assert_eq!(v["prompt_eval_count"], 2);
    }

    #[test]
    fn timestamps_follow_go() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_691_177_139, 385_406_000);
        assert_eq!(rfc3339(t), "2023-08-04T19:25:39.385406Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(4_102_444_800)),
            "2100-01-01T00:00:00Z"
        );
    }

    #[test]
    fn bodies_parse_like_ollama() {
        assert_eq!(
            parse::<ChatRequest>(b"  ").err().as_deref(),
            Some("missing request body")
        );
        assert!(parse::<ChatRequest>(b"{").is_err());
        assert!(parse::<ChatRequest>(br#"{"model": 5}"#).is_err());
        assert!(parse::<ChatRequest>(br#"{"stream": "yes"}"#).is_err());
        assert!(parse::<ChatRequest>(br#"{"messages": [{"content": 1}]}"#).is_err());
        let ok: Result<ChatRequest, _> = parse(
            br#"{"model":"m","messages":[{"role":"user","content":null}],"unknown":[1],"options":null}"#,
        );
        assert!(ok.is_ok());
        let r: Result<GenerateRequest, _> = parse(br#"{"model":"m","prompt":"x","raw":true}"#);
        assert_eq!(r.ok().and_then(|r| r.raw), Some(true));
    }

    #[test]
    fn options_are_type_checked() {
        let check = |v: Value| options(v.as_object());
        assert_eq!(check(json!({})), Ok(Options::default()));
        assert_eq!(
            check(json!({"num_predict": 12.9, "temperature": 1, "top_k": 20, "stop": ["a"]})),
            Ok(Options {
                num_predict: Some(12)
            })
        );
        assert_eq!(
            check(json!({"temperature": "hot"})),
            Err(r#"option "temperature" must be of type float32"#.into())
        );
        assert_eq!(
            check(json!({"top_k": true})),
            Err(r#"option "top_k" must be of type integer"#.into())
        );
        assert!(check(json!({"stop": [1]})).is_err());
        assert!(check(json!({"stop": "x"})).is_err());
        assert!(check(json!({"use_mmap": 1})).is_err());
        assert_eq!(
            check(json!({"whatever": "x", "seed": null})),
            Ok(Options::default())
        );
        assert_eq!(
            check(json!({"num_predict": 1e300})),
            Ok(Options {
                num_predict: Some(i64::MAX)
            })
        );
    }

    #[test]
    fn keep_alive_zero_forms() {
        for zero in [json!(0), json!(0.0), json!("0"), json!("0s"), json!("0m")] {
            assert!(keep_alive_is_zero(Some(&zero)), "{zero}");
        }
        for other in [
            json!(300),
            json!("5m"),
            json!("-1"),
            json!("s"),
            json!(null),
        ] {
            assert!(!keep_alive_is_zero(Some(&other)), "{other}");
        }
        assert!(!keep_alive_is_zero(None));
    }

    #[test]
    fn error_body_is_ollamas() {
        assert_eq!(value(&error_body("x \"y\"")), json!({"error": "x \"y\""}));
    }
}
