//! The plugin configuration: the JSON in Envoy's `configuration` field, parsed and validated once
//! in `on_configure`, then shared read-only by every request of that worker.
//!
//! Every field has a default so `{}` (or no configuration at all) is a working edge; unknown
//! fields are refused so a misspelt setting fails loudly at startup instead of being ignored.
//! This module does not touch Envoy: it turns bytes into a checked [`Config`] or an error text.

use crate::identity::{AddressPolicy, Cidr};
use crate::token_bucket::Limit;
use serde::Deserialize;
use std::fmt;

/// Why a configuration was refused. The message names the field and the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cache: CacheConfig,
    pub rate_limits: RateLimits,
    /// Streams one client may have open at once; `None` means no cap.
    pub max_concurrent_streams: Option<u32>,
    /// A stream slot not released within this time is considered leaked (a worker VM that
    /// crashed mid-stream never runs its release) and stops counting.
    pub stream_lease_seconds: u64,
    /// Number of shared-data slots client state is hashed into. Bounds the memory an attacker
    /// with many addresses can make the edge hold; two clients in one slot share a bucket.
    pub client_slots: u32,
    pub trusted_proxies: Vec<Cidr>,
    /// Envoy runs with `use_remote_address: true` and so appends the peer to
    /// `X-Forwarded-For` itself (see [`AddressPolicy::last_entry_is_peer`]).
    pub forwarded_for_includes_peer: bool,
    /// Envoy is the first hop (`use_remote_address: true` and no `xff_num_trusted_hops`), so
    /// the entry it appended to `X-Forwarded-For` is the client's address: without trusted
    /// proxies it is read from the headers instead of asked of Envoy (one host call fewer per
    /// request). Off by default: behind hops Envoy trusts, Envoy's own record of the client
    /// (its `source.address`) is the one to use, and the last entry is the hop in front.
    pub peer_from_forwarded_for: bool,
    pub api_key: Option<ApiKeyConfig>,
}

impl Config {
    /// How client addresses are read under this configuration.
    pub fn addresses(&self) -> AddressPolicy<'_> {
        AddressPolicy {
            trusted: &self.trusted_proxies,
            last_entry_is_peer: self.forwarded_for_includes_peer,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Envoy cluster of the origin's internal cache endpoint.
    pub cluster: String,
    /// `:authority` of the lookup call; Envoy requires one.
    pub authority: String,
    pub timeout_ms: u32,
    pub l1_ttl_seconds: u64,
    /// How long L1 remembers that the origin had no answer for a key, so that repeats of a
    /// question being answered go to the origin without a lookup call first; 0 turns it off.
    pub l1_negative_ttl_ms: u64,
    /// Slots per reply kind: L1 keeps the JSON reply and the event stream in separate slots,
    /// so it holds at most `2 * l1_slots` entries.
    pub l1_slots: u32,
    /// Larger replies are answered but not kept in L1, so one huge answer cannot crowd shared
    /// memory.
    pub l1_max_entry_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub chat: Limit,
    pub stream: Limit,
    pub other: Limit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyConfig {
    /// Lowercase header name carrying the key.
    pub header: String,
    /// SHA-256 digests (lowercase hex) of the accepted keys, so Envoy's config and its admin
    /// `/config_dump` never show a usable key.
    pub keys_sha256: Vec<String>,
    /// When false, a request without the header is identified by its address instead.
    pub required: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cache: CacheConfig::default(),
            rate_limits: RateLimits::default(),
            max_concurrent_streams: Some(DEFAULT_MAX_STREAMS),
            stream_lease_seconds: 900,
            client_slots: 65_536,
            trusted_proxies: Vec::new(),
            forwarded_for_includes_peer: true,
            peer_from_forwarded_for: false,
            api_key: None,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            cluster: "libriassist_cache".into(),
            authority: "libriassist-cache".into(),
            timeout_ms: 100,
            l1_ttl_seconds: 5,
            l1_negative_ttl_ms: 1000,
            l1_slots: 1024,
            l1_max_entry_bytes: 64 * 1024,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            chat: Limit {
                per_second: 1.0,
                burst: 10,
            },
            stream: Limit {
                per_second: 1.0,
                burst: 10,
            },
            other: Limit {
                per_second: 20.0,
                burst: 100,
            },
        }
    }
}

const DEFAULT_MAX_STREAMS: u32 = 4;

impl Config {
    /// Parses and validates the plugin configuration. Empty input (no `configuration` in
    /// Envoy) gives the defaults.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field when the bytes are not UTF-8 JSON of the documented
    /// shape, a field is unknown, or a value is out of its bounds.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ConfigError("configuration is not valid UTF-8".into()))?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        // serde would also read a struct from a JSON array; only an object is a configuration.
        if !text.trim_start().starts_with('{') {
            return Err(ConfigError(
                "configuration is not valid: expected a JSON object".into(),
            ));
        }
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|e| ConfigError(format!("configuration is not valid: {e}")))?;
        raw.check()
    }
}

// === raw, as written by the operator ===

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    cache: RawCache,
    rate_limits: RawRateLimits,
    /// 0 disables the cap.
    max_concurrent_streams: Option<u32>,
    stream_lease_seconds: Option<u64>,
    client_slots: Option<u32>,
    trusted_proxies: Vec<String>,
    forwarded_for_includes_peer: Option<bool>,
    peer_from_forwarded_for: Option<bool>,
    api_key: Option<RawApiKey>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawCache {
    enabled: Option<bool>,
    cluster: Option<String>,
    authority: Option<String>,
    timeout_ms: Option<u32>,
    l1_ttl_seconds: Option<u64>,
    l1_negative_ttl_ms: Option<u64>,
    l1_slots: Option<u32>,
    l1_max_entry_bytes: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRateLimits {
    chat: Option<RawLimit>,
    stream: Option<RawLimit>,
    other: Option<RawLimit>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    per_second: f64,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    #[serde(default = "default_api_key_header")]
    header: String,
    keys_sha256: Vec<String>,
    #[serde(default = "default_true")]
    required: bool,
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

fn default_true() -> bool {
    true
}

fn bounded<T: PartialOrd + fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError(format!(
            "`{field}` is {v}; it must be between {min} and {max}"
        )));
    }
    Ok(v)
}

fn limit(field: &str, raw: Option<RawLimit>, default: Limit) -> Result<Limit, ConfigError> {
    let Some(raw) = raw else { return Ok(default) };
    if !raw.per_second.is_finite() || raw.per_second <= 0.0 || raw.per_second > 1e6 {
        return Err(ConfigError(format!(
            "`rate_limits.{field}.per_second` is {}; it must be a number above 0 and at most 1000000",
            raw.per_second
        )));
    }
    let burst = bounded(
        &format!("rate_limits.{field}.burst"),
        Some(raw.burst),
        1,
        1,
        1_000_000,
    )?;
    Ok(Limit {
        per_second: raw.per_second,
        burst,
    })
}

/// An HTTP header name as Envoy stores it: lowercase token characters only.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(':')
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
        })
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl RawConfig {
    fn check(self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let dc = &d.cache;
        let cluster = self.cache.cluster.unwrap_or_else(|| dc.cluster.clone());
        if cluster.trim().is_empty() {
            return Err(ConfigError(
                "`cache.cluster` must name an Envoy cluster".into(),
            ));
        }
        let authority = self.cache.authority.unwrap_or_else(|| dc.authority.clone());
        if authority.trim().is_empty()
            || authority
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError(
                "`cache.authority` must be a host name without spaces".into(),
            ));
        }
        let cache = CacheConfig {
            enabled: self.cache.enabled.unwrap_or(dc.enabled),
            cluster,
            authority,
            timeout_ms: bounded(
                "cache.timeout_ms",
                self.cache.timeout_ms,
                dc.timeout_ms,
                1,
                10_000,
            )?,
            l1_ttl_seconds: bounded(
                "cache.l1_ttl_seconds",
                self.cache.l1_ttl_seconds,
                dc.l1_ttl_seconds,
                0,
                300,
            )?,
            l1_negative_ttl_ms: bounded(
                "cache.l1_negative_ttl_ms",
                self.cache.l1_negative_ttl_ms,
                dc.l1_negative_ttl_ms,
                0,
                60_000,
            )?,
            l1_slots: bounded(
                "cache.l1_slots",
                self.cache.l1_slots,
                dc.l1_slots,
                1,
                1 << 20,
            )?,
            l1_max_entry_bytes: bounded(
                "cache.l1_max_entry_bytes",
                self.cache.l1_max_entry_bytes,
                dc.l1_max_entry_bytes,
                0,
                1 << 20,
            )?,
        };
        let rate_limits = RateLimits {
            chat: limit("chat", self.rate_limits.chat, d.rate_limits.chat)?,
            stream: limit("stream", self.rate_limits.stream, d.rate_limits.stream)?,
            other: limit("other", self.rate_limits.other, d.rate_limits.other)?,
        };
        let max_streams = bounded(
            "max_concurrent_streams",
            self.max_concurrent_streams,
            DEFAULT_MAX_STREAMS,
            0,
            100_000,
        )?;
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    ConfigError(format!(
                        "`trusted_proxies` entry {s:?} is not an IP address or CIDR block"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let api_key = match self.api_key {
            None => None,
            Some(raw) => {
                if !is_header_name(&raw.header) {
                    return Err(ConfigError(format!(
                        "`api_key.header` {:?} must be a lowercase HTTP header name",
                        raw.header
                    )));
                }
                if raw.keys_sha256.is_empty() {
                    return Err(ConfigError(
                        "`api_key.keys_sha256` must list at least one key digest".into(),
                    ));
                }
                if let Some(bad) = raw.keys_sha256.iter().find(|k| !is_sha256_hex(k)) {
                    return Err(ConfigError(format!(
                        "`api_key.keys_sha256` entry {bad:?} is not 64 lowercase hex digits"
                    )));
                }
                Some(ApiKeyConfig {
                    header: raw.header,
                    keys_sha256: raw.keys_sha256,
                    required: raw.required,
                })
            }
        };
        let forwarded_for_includes_peer = self
            .forwarded_for_includes_peer
            .unwrap_or(d.forwarded_for_includes_peer);
        let peer_from_forwarded_for = self
            .peer_from_forwarded_for
            .unwrap_or(d.peer_from_forwarded_for);
        if peer_from_forwarded_for && !forwarded_for_includes_peer {
            return Err(ConfigError(
                "`peer_from_forwarded_for` needs an Envoy that appends the peer: \
                 `forwarded_for_includes_peer` is false"
                    .into(),
            ));
        }
        Ok(Config {
            cache,
            rate_limits,
            max_concurrent_streams: (max_streams > 0).then_some(max_streams),
            stream_lease_seconds: bounded(
                "stream_lease_seconds",
                self.stream_lease_seconds,
                d.stream_lease_seconds,
                1,
                86_400,
            )?,
            client_slots: bounded(
                "client_slots",
                self.client_slots,
                d.client_slots,
                1,
                1 << 22,
            )?,
            trusted_proxies,
            forwarded_for_includes_peer,
            peer_from_forwarded_for,
            api_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Config::parse(json.as_bytes()).unwrap_err().0
    }

    #[test]
    fn empty_and_braces_give_defaults() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(Config::parse(b"  {} ").unwrap(), Config::default());
    }

    #[test]
    fn full_configuration() {
        let key = "a".repeat(64);
        let c = Config::parse(
            format!(
                r#"{{"cache":{{"enabled":false,"cluster":"c","authority":"cache.local","timeout_ms":20,
                 "l1_ttl_seconds":2,"l1_negative_ttl_ms":0,"l1_slots":16,"l1_max_entry_bytes":1000}},
                 "rate_limits":{{"chat":{{"per_second":0.5,"burst":3}},"other":{{"per_second":100,"burst":200}}}},
                 "max_concurrent_streams":0,"stream_lease_seconds":60,"client_slots":128,
                 "trusted_proxies":["10.0.0.0/8","::1"],"forwarded_for_includes_peer":false,
                 "api_key":{{"keys_sha256":["{key}"],"required":false}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(!c.cache.enabled);
        assert_eq!(c.cache.cluster, "c");
        assert_eq!(c.cache.l1_negative_ttl_ms, 0);
        assert_eq!(
            c.rate_limits.chat,
            Limit {
                per_second: 0.5,
                burst: 3
            }
        );
        assert_eq!(c.rate_limits.stream, RateLimits::default().stream);
        assert_eq!(c.max_concurrent_streams, None);
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(!c.addresses().last_entry_is_peer);
        assert!(Config::default().addresses().last_entry_is_peer);
        assert!(!Config::default().peer_from_forwarded_for);
        let k = c.api_key.unwrap();
        assert_eq!(k.header, "x-api-key");
        assert!(!k.required);
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(err("{").contains("not valid"));
        assert!(err(r#"{"cache":{"clutser":"x"}}"#).contains("unknown field"));
        assert!(err(r#"{"cache":{"cluster":" "}}"#).contains("cache.cluster"));
        assert!(err(r#"{"cache":{"timeout_ms":0}}"#).contains("cache.timeout_ms"));
        assert!(
            err(r#"{"cache":{"l1_negative_ttl_ms":60001}}"#).contains("cache.l1_negative_ttl_ms")
        );
        assert!(
            err(r#"{"rate_limits":{"chat":{"per_second":0,"burst":1}}}"#)
                .contains("rate_limits.chat.per_second")
        );
        assert!(
            err(r#"{"rate_limits":{"chat":{"per_second":1,"burst":0}}}"#)
                .contains("rate_limits.chat.burst")
        );
        assert!(err(r#"{"trusted_proxies":["10.0.0.0/33"]}"#).contains("trusted_proxies"));
        assert!(
            err(r#"{"forwarded_for_includes_peer":false,"peer_from_forwarded_for":true}"#)
                .contains("peer_from_forwarded_for")
        );
        assert!(err(r#"{"api_key":{"keys_sha256":[]}}"#).contains("at least one"));
        assert!(err(r#"{"api_key":{"keys_sha256":["abc"]}}"#).contains("64 lowercase hex"));
        assert!(
            err(r#"{"api_key":{"header":"X-Key","keys_sha256":[]}}"#).contains("api_key.header")
        );
        assert!(Config::parse(b"\xff").unwrap_err().0.contains("UTF-8"));
        assert!(err(r#"[]"#).contains("not valid"));
    }
}
