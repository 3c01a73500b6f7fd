//! The Envoy side: proxy-wasm callbacks that read what Envoy has, call the pure modules, and
//! hand back local replies or let the request go on. No decisions are made here that a pure
//! module could make.
//!
//! Lifecycle of a chat request (Envoy's `allow_on_headers_stop_iteration` must be on):
//! 1. headers: identify, rate limit, check method / content type / declared size; then pause
//!    with the headers held, so the cache-key header can still be added once the body is read
//!    (Envoy refuses header changes after headers have gone upstream);
//! 2. body, buffered to its end: validate, derive the key, look in L1, else ask the origin's
//!    cache endpoint and pause;
//! 3. cache answer: a hit is replied here; a miss or any failure adds the key header, takes a
//!    stream slot for SSE, and resumes the request toward the origin.
//!    The stream slot is given back when Envoy logs or destroys the request.

use crate::config::Config;
use crate::edge_cache::{self, Lookup, MAX_LOOKUP_BODY_BYTES};
use crate::host::{self, Buffer, HostStore, Level, Map};
use crate::identity::{identify, ClientId, Evidence};
use crate::ratelimit::{acquire_stream, check, release_stream, streams_key};
use crate::reply::{self, LocalReply};
use crate::route::{self, check_head, classify, RequestHead, RouteClass};
use crate::shared::SharedStore;
use libriassist_protocol::headers::{CACHE_KEY, CONTENT_TYPE, REQUEST_ID};
use libriassist_protocol::limits::MAX_BODY_BYTES;
use libriassist_protocol::{cache_key, parse_chat_request, CacheKey};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    std::panic::set_hook(Box::new(|info| {
        host::log(Level::Error, &format!("libriassist edge: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| Box::new(EdgeRoot::default()));
}}

/// Counter names as defined here; Envoy shows them under its `wasmcustom` namespace.
pub const METRIC_HITS: &str = "libriassist_edge_cache_hits";
pub const METRIC_MISSES: &str = "libriassist_edge_cache_misses";
pub const METRIC_CACHE_ERRORS: &str = "libriassist_edge_cache_errors";
pub const METRIC_LIMITED: &str = "libriassist_edge_rate_limited";
pub const METRIC_REJECTED: &str = "libriassist_edge_rejected";

#[derive(Default)]
struct Metrics {
    hits: Option<u32>,
    misses: Option<u32>,
    cache_errors: Option<u32>,
    limited: Option<u32>,
    rejected: Option<u32>,
}

#[derive(Default)]
struct EdgeRoot {
    config: Option<Rc<Config>>,
    metrics: Rc<Metrics>,
}

impl Context for EdgeRoot {}

impl RootContext for EdgeRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = if size == 0 {
            Vec::new()
        } else {
            host::buffer(Buffer::PluginConfiguration, 0, size).unwrap_or_default()
        };
        match Config::parse(&bytes) {
            Ok(config) => {
                host::log(
                    Level::Info,
                    &format!(
                        "libriassist edge: configured (cache cluster {:?}, l1 ttl {} s, streams cap {:?})",
                        config.cache.cluster, config.cache.l1_ttl_seconds, config.max_concurrent_streams
                    ),
                );
                self.config = Some(Rc::new(config));
                self.metrics = Rc::new(Metrics {
                    hits: host::define_counter(METRIC_HITS),
                    misses: host::define_counter(METRIC_MISSES),
                    cache_errors: host::define_counter(METRIC_CACHE_ERRORS),
                    limited: host::define_counter(METRIC_LIMITED),
                    rejected: host::define_counter(METRIC_REJECTED),
                });
                true
            }
            Err(e) => {
                host::log(
                    Level::Error,
                    &format!("libriassist edge: configuration refused: {e}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Always a context: the SDK panics on None. Without a configuration it passes through.
        Some(Box::new(EdgeRequest {
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            class: RouteClass::Other,
            client: None,
            started_ns: 0,
            request_id: None,
            state: State::PassThrough,
            key: None,
            stream_slot: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    PassThrough,
    ReadingBody,
    AwaitingCache,
    Forwarded,
    Answered,
}

struct EdgeRequest {
    config: Option<Rc<Config>>,
    metrics: Rc<Metrics>,
    class: RouteClass,
    client: Option<ClientId>,
    started_ns: u64,
    request_id: Option<String>,
    state: State,
    key: Option<CacheKey>,
    /// The shared-data key of a stream slot this request holds.
    stream_slot: Option<String>,
}

impl EdgeRequest {
    /// Replies locally; Envoy sends the reply once the callback returns.
    fn answer(&mut self, reply: &LocalReply) -> Action {
        match host::send(reply, self.request_id.as_deref()) {
            Ok(()) => {
                self.state = State::Answered;
                Action::Pause
            }
            Err(status) => {
                host::log(
                    Level::Warn,
                    &format!(
                        "libriassist edge: local reply refused (status {status}); passing through"
                    ),
                );
                self.state = State::Forwarded;
                Action::Continue
            }
        }
    }

    fn reject(&mut self, reply: &LocalReply) -> Action {
        host::increment(self.metrics.rejected);
        self.answer(reply)
    }

    fn limit(&mut self, reply: &LocalReply) -> Action {
        host::increment(self.metrics.limited);
        self.answer(reply)
    }

    fn on_headers(&mut self, config: &Config, end_of_stream: bool) -> Action {
        self.started_ns = host::now_ns();
        self.request_id = host::header_str(Map::RequestHeaders, REQUEST_ID);
        let path = host::header_str(Map::RequestHeaders, ":path").unwrap_or_default();
        self.class = classify(&path);
        // Only the edge may tell the origin a key; a client's own would poison the cache.
        if let Err(status) = host::remove_header(Map::RequestHeaders, CACHE_KEY) {
            host::log(
                Level::Warn,
                &format!(
                    "libriassist edge: could not drop a client cache-key header (status {status})"
                ),
            );
        }

        let api_key = config
            .api_key
            .as_ref()
            .and_then(|k| host::header(Map::RequestHeaders, &k.header));
        let forwarded_for = host::header_str(Map::RequestHeaders, "x-forwarded-for");
        let peer = host::property(&["source", "address"]).and_then(|p| String::from_utf8(p).ok());
        let evidence = Evidence {
            api_key: api_key.as_deref(),
            forwarded_for: forwarded_for.as_deref(),
            peer: peer.as_deref(),
        };
        let client = match identify(
            config.api_key.as_ref(),
            &config.addresses(),
            evidence,
            route::needs_api_key(&path),
        ) {
            Ok(client) => client,
            Err(detail) => return self.reject(&reply::error(detail)),
        };
        match check(&mut HostStore, config, self.class, &client, self.started_ns) {
            Ok(outcome) if !outcome.allowed => return self.limit(&reply::rate_limited(&outcome)),
            Ok(_) => {}
            Err(e) => host::log(
                Level::Warn,
                &format!("libriassist edge: rate limit state unavailable ({e:?}); allowing"),
            ),
        }
        self.client = Some(client);
        if !self.class.is_chat() {
            return Action::Continue;
        }

        let method = host::header_str(Map::RequestHeaders, ":method");
        let content_type = host::header_str(Map::RequestHeaders, CONTENT_TYPE);
        let content_length = host::header_str(Map::RequestHeaders, "content-length");
        let head = RequestHead {
            method: method.as_deref(),
            content_type: content_type.as_deref(),
            content_length: content_length.as_deref(),
        };
        if let Err(detail) = check_head(head) {
            return self.reject(&reply::error(detail));
        }
        if end_of_stream {
            return self.on_body_complete(config, &[]);
        }
        self.state = State::ReadingBody;
        Action::Pause
    }

    fn on_body_complete(&mut self, config: &Config, body: &[u8]) -> Action {
        let request = match parse_chat_request(body) {
            Ok(request) => request,
            Err(detail) => return self.reject(&reply::error(detail)),
        };
        let key = cache_key(&request);
        self.key = Some(key.clone());
        if !config.cache.enabled {
            host::increment(self.metrics.misses);
            return self.forward(config, false);
        }
        let l1 = edge_cache::l1_key(&config.cache, &key);
        if let Ok((Some(bytes), _)) = HostStore.get(&l1) {
            if let Some(entry) = edge_cache::decode_l1(&bytes, &key, self.started_ns) {
                host::increment(self.metrics.hits);
                if self.answer(&reply::cache_hit(self.class, entry, self.elapsed_ms()))
                    == Action::Pause
                {
                    return Action::Pause;
                }
                return self.forward(config, false);
            }
        }
        let path = edge_cache::lookup_path(&key);
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", config.cache.authority.as_str()),
        ];
        if let Some(id) = self.request_id.as_deref() {
            headers.push((REQUEST_ID, id));
        }
        let timeout = Duration::from_millis(u64::from(config.cache.timeout_ms));
        match proxy_wasm::hostcalls::dispatch_http_call(
            &config.cache.cluster,
            headers,
            None,
            vec![],
            timeout,
        ) {
            Ok(_) => {
                self.state = State::AwaitingCache;
                Action::Pause
            }
            Err(status) => {
                host::log(
                    Level::Warn,
                    &format!("libriassist edge: cache lookup not sent ({status:?}); forwarding"),
                );
                host::increment(self.metrics.cache_errors);
                self.forward(config, false)
            }
        }
    }

    /// Sends the request on to the origin with its key. `resume` when the request is paused
    /// outside a callback that can simply return Continue.
    fn forward(&mut self, config: &Config, resume: bool) -> Action {
        if let Some(key) = &self.key {
            if let Err(status) = host::replace_header(Map::RequestHeaders, CACHE_KEY, key.as_str())
            {
                host::log(
                    Level::Warn,
                    &format!("libriassist edge: cache key header not set (status {status})"),
                );
            }
        }
        if let (RouteClass::Stream, Some(max), Some(client)) =
            (self.class, config.max_concurrent_streams, &self.client)
        {
            let slot = streams_key(config, client);
            let lease_ns = config.stream_lease_seconds.saturating_mul(1_000_000_000);
            match acquire_stream(&mut HostStore, &slot, max, host::now_ns(), lease_ns) {
                Ok(true) => self.stream_slot = Some(slot),
                Ok(false) => return self.limit(&reply::too_many_streams(max)),
                Err(e) => host::log(
                    Level::Warn,
                    &format!("libriassist edge: stream count unavailable ({e:?}); allowing"),
                ),
            }
        }
        self.state = State::Forwarded;
        if resume {
            if let Err(status) = host::resume_request() {
                host::log(
                    Level::Error,
                    &format!("libriassist edge: could not resume request (status {status})"),
                );
            }
        }
        Action::Continue
    }

    fn on_cache_answer(&mut self, config: &Config, num_headers: usize, body_size: usize) {
        let status = if num_headers > 0 {
            host::header(Map::HttpCallResponseHeaders, ":status")
        } else {
            None
        };
        let lookup = if body_size > MAX_LOOKUP_BODY_BYTES {
            Lookup::Failed(format!("cache entry of {body_size} bytes is too large"))
        } else {
            let body = if body_size == 0 {
                Vec::new()
            } else {
                host::buffer(Buffer::HttpCallResponseBody, 0, body_size).unwrap_or_default()
            };
            edge_cache::classify_lookup(status.as_deref(), &body)
        };
        match lookup {
            Lookup::Hit(entry) => {
                if let Some(key) = &self.key {
                    if let Some(value) =
                        edge_cache::encode_l1(&config.cache, key, &entry, host::now_ns())
                    {
                        // Last writer wins: any fresh copy of the answer is as good as another.
                        let _ = HostStore.set(&edge_cache::l1_key(&config.cache, key), &value, 0);
                    }
                }
                host::increment(self.metrics.hits);
                if self.answer(&reply::cache_hit(self.class, entry, self.elapsed_ms()))
                    == Action::Continue
                {
                    self.forward(config, true);
                }
            }
            Lookup::Miss => {
                host::increment(self.metrics.misses);
                self.forward(config, true);
            }
            Lookup::Failed(reason) => {
                // Debug, not warn: during a cache outage this would be one line per request;
                // the cache_errors counter is what to watch.
                host::log(
                    Level::Debug,
                    &format!("libriassist edge: {reason}; forwarding"),
                );
                host::increment(self.metrics.cache_errors);
                self.forward(config, true);
            }
        }
    }

    fn elapsed_ms(&self) -> f64 {
        host::now_ns().saturating_sub(self.started_ns) as f64 / 1e6
    }

    fn release_stream_slot(&mut self) {
        if let Some(slot) = self.stream_slot.take() {
            if let Err(e) = release_stream(&mut HostStore, &slot, host::now_ns()) {
                host::log(
                    Level::Warn,
                    &format!(
                        "libriassist edge: stream slot not released ({e:?}); its lease will expire"
                    ),
                );
            }
        }
    }
}

impl Context for EdgeRequest {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.state != State::AwaitingCache {
            return;
        }
        if let Some(config) = self.config.clone() {
            self.on_cache_answer(&config, num_headers, body_size);
        }
    }

    fn on_done(&mut self) -> bool {
        self.release_stream_slot();
        true
    }
}

impl HttpContext for EdgeRequest {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.config.clone() {
            Some(config) => self.on_headers(&config, end_of_stream),
            None => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.state != State::ReadingBody {
            return if self.state == State::PassThrough || self.state == State::Forwarded {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        if body_size > MAX_BODY_BYTES {
            return self.reject(&reply::error(route::too_large()));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::buffer(Buffer::RequestBody, 0, body_size).unwrap_or_default();
        self.on_body_complete(&config, &body)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body followed by trailers never comes with end_of_stream; it ends here instead.
        if self.state != State::ReadingBody {
            return Action::Continue;
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        let body = host::buffer(Buffer::RequestBody, 0, MAX_BODY_BYTES + 1).unwrap_or_default();
        if body.len() > MAX_BODY_BYTES {
            return self.reject(&reply::error(route::too_large()));
        }
        self.on_body_complete(&config, &body)
    }

    fn on_log(&mut self) {
        self.release_stream_slot();
    }
}
