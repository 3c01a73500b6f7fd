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
//!    The stream slot is given back when Envoy deletes the request, however it ended.
//!
//! Host calls are what a request pays for here (each one crosses between V8 and Envoy, and
//! those that return data call back into the module to allocate it), so each path makes few:
//! the request headers come in one call, the time is read only where it is used, held
//! rate-limit tokens spare the shared-data calls (see `ratelimit`), L1 keeps replies ready to
//! send, and counts wait for the tick (see `counters`). While the worker holds tokens for its
//! client, a GET passed through makes one (the headers, which also carry the peer Envoy
//! appended to `X-Forwarded-For`, with `peer_from_forwarded_for`); an L1 hit five (headers,
//! body, two clock reads, the reply; six when the worker has no fresh copy of the entry); a
//! chat request the origin had no answer for a moment ago three (headers, body, key header).

use crate::abi::{self, Action};
use crate::config::Config;
use crate::counters::{Counter, Pending};
use crate::edge_cache::{self, Lookup, L1, MAX_LOOKUP_BODY_BYTES};
use crate::host::{self, Buffer, HostStore, Level, Map};
use crate::identity::{self, identify, ClientId, Evidence};
use crate::ratelimit::{acquire_stream, check_leased, release_stream, streams_key, Leases};
use crate::reply::{self, LocalReply};
use crate::request::{self, RequestView};
use crate::route::{self, check_head, classify, RequestHead, RouteClass};
use crate::shared::{seeded, SeededMap, SharedStore};
use libriassist_protocol::headers::{CACHE_KEY, REQUEST_ID};
use libriassist_protocol::limits::MAX_BODY_BYTES;
use libriassist_protocol::{cache_key, parse_chat_request, CacheKey, CachedAnswer};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// How often a worker drops the rate-limit tokens it holds (see `ratelimit`).
const TICK_MS: u32 = 1_000;
/// Peer addresses whose client identity a worker remembers; past this it starts over.
const MAX_REMEMBERED_PEERS: usize = 1024;
/// L1 entries a worker keeps its own copy of (see `recent_l1`).
const MAX_RECENT_L1: usize = 32;
/// Request bodies whose cache key a worker remembers, and the longest it remembers.
const MAX_REMEMBERED_BODIES: usize = 256;
const MAX_REMEMBERED_BODY_BYTES: usize = 2048;
const SOURCE_ADDRESS: &[u8] = b"source\0address";

/// L1 values by (stream reply?, key).
type RecentL1 = SeededMap<(bool, CacheKey), Rc<[u8]>>;

thread_local! {
    // One VM per worker thread, one thread per VM: plain per-worker state.
    static LEASES: RefCell<Leases> = RefCell::new(Leases::default());
    static PEERS: RefCell<SeededMap<Vec<u8>, ClientId>> =
        RefCell::new(SeededMap::with_hasher(seeded(host::now_ns())));
    /// Valid chat bodies seen lately and their keys: the key is a function of the body alone,
    /// and a popular question comes back byte for byte, so it is not parsed, normalized and
    /// hashed again.
    static KEYS: RefCell<SeededMap<Vec<u8>, CacheKey>> =
        RefCell::new(SeededMap::with_hasher(seeded(host::now_ns().rotate_left(17))));
    /// This worker's copies of L1 values it read or wrote lately, by reply kind and key.
    static RECENT: RefCell<RecentL1> =
        RefCell::new(SeededMap::with_hasher(seeded(host::now_ns().rotate_left(31))));
    /// The latest time this worker read from Envoy (every read goes through `now_ns`, and the
    /// tick reads it too), for the one use that may be a tick late (see `recent_l1`).
    static LAST_READ_NS: Cell<u64> = const { Cell::new(0) };
}

/// The time, from Envoy; remembered as this worker's latest.
fn now_ns() -> u64 {
    let now = host::now_ns();
    LAST_READ_NS.with(|t| t.set(now));
    now
}

/// The time of one request, read from Envoy the first time it is asked for, if ever.
#[derive(Default)]
struct Clock(Option<u64>);

impl Clock {
    fn get(&mut self) -> u64 {
        *self.0.get_or_insert_with(now_ns)
    }
}

/// The L1 value for `key` and the reply of `class`: this worker's copy while it is fresh, else
/// the shared one (then copied here). A copy is the same immutable value with the same expiry,
/// so it answers exactly what shared data would until then (a slot later taken by another key
/// or refreshed changes nothing a copy could get wrong), without the host call.
///
/// A copy that says the origin had no answer is judged by the latest time the worker read,
/// without reading `clock`, so a repeated miss costs no host call for the time. That time is
/// at most a tick old, so such an entry may outlive its TTL by as much; a stale "absent" only
/// sends a request to the origin, which looks in its own cache anyway: it can cost an edge
/// hit, never a wrong answer.
fn recent_l1(
    config: &Config,
    key: &CacheKey,
    class: RouteClass,
    clock: &mut Clock,
) -> Option<(L1, Rc<[u8]>)> {
    let id = (class == RouteClass::Stream, key.clone());
    if let Some(value) = RECENT.with(|r| r.borrow().get(&id).cloned()) {
        let last_read = LAST_READ_NS.with(Cell::get);
        match edge_cache::decode_l1(&value, key, last_read) {
            L1::Absent => return Some((L1::Absent, value)),
            // Expired by an earlier time, so expired now.
            L1::Nothing => {}
            L1::Answer => match edge_cache::decode_l1(&value, key, clock.get()) {
                L1::Nothing => {}
                found => return Some((found, value)),
            },
        }
        RECENT.with(|r| r.borrow_mut().remove(&id));
    }
    let Ok((Some(value), _)) = HostStore.get(&edge_cache::l1_key(&config.cache, key, class)) else {
        return None;
    };
    match edge_cache::decode_l1(&value, key, clock.get()) {
        L1::Nothing => None,
        found => {
            let value: Rc<[u8]> = Rc::from(value);
            remember_l1(id, value.clone());
            Some((found, value))
        }
    }
}

fn remember_l1(id: (bool, CacheKey), value: Rc<[u8]>) {
    RECENT.with(|r| {
        let mut recent = r.borrow_mut();
        if recent.len() >= MAX_RECENT_L1 && !recent.contains_key(&id) {
            recent.clear();
        }
        recent.insert(id, value);
    });
}

/// Writes an L1 value to shared data and keeps this worker's copy.
fn store_l1(config: &Config, key: &CacheKey, class: RouteClass, value: Vec<u8>) {
    // Last writer wins: any fresh copy of the answer is as good as another.
    let _ = HostStore.set(&edge_cache::l1_key(&config.cache, key, class), &value, 0);
    remember_l1((class == RouteClass::Stream, key.clone()), Rc::from(value));
}

/// The cache key of a chat body, or the error the origin would answer it with.
fn key_of(body: &[u8]) -> Result<CacheKey, libriassist_protocol::ErrorDetail> {
    if let Some(key) = KEYS.with(|k| k.borrow().get(body).cloned()) {
        return Ok(key);
    }
    let key = cache_key(&parse_chat_request(body)?);
    if body.len() <= MAX_REMEMBERED_BODY_BYTES {
        KEYS.with(|k| {
            let mut keys = k.borrow_mut();
            if keys.len() >= MAX_REMEMBERED_BODIES {
                keys.clear();
            }
            keys.insert(body.to_vec(), key.clone());
        });
    }
    Ok(key)
}

/// Once per VM, before any context: a panic (a bug; none is expected on any input) is logged
/// before the VM dies.
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        host::log(Level::Error, &format!("libriassist edge: panic: {info}"));
    }));
}

/// A worker's counters: Envoy's metric ids and the counts not yet added to them.
#[derive(Default)]
struct Metrics {
    ids: [Option<u32>; Counter::ALL.len()],
    pending: Pending,
    /// Counts wait for the tick (see `counters`); without a tick each is added at once.
    batched: bool,
}

impl Metrics {
    fn define(batched: bool) -> Metrics {
        Metrics {
            ids: Counter::ALL.map(|counter| host::define_counter(counter.name())),
            pending: Pending::default(),
            batched,
        }
    }

    fn count(&self, counter: Counter) {
        if self.batched {
            self.pending.add(counter);
        } else {
            host::increment(self.ids[counter.index()], 1);
        }
    }

    /// Adds the pending counts to Envoy's metrics.
    fn flush(&self) {
        for (counter, count) in self.pending.take() {
            host::increment(self.ids[counter.index()], count);
        }
    }
}

/// A plugin's root context on one worker: its configuration and counters.
#[derive(Default)]
pub struct EdgeRoot {
    config: Option<Rc<Config>>,
    metrics: Rc<Metrics>,
}

impl EdgeRoot {
    pub fn on_configure(&mut self, size: usize) -> bool {
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
                LEASES.with(|l| l.borrow_mut().clear());
                PEERS.with(|p| p.borrow_mut().clear());
                RECENT.with(|r| r.borrow_mut().clear());
                let ticking = match host::set_tick_period(TICK_MS) {
                    Ok(()) => true,
                    Err(status) => {
                        host::log(
                            Level::Warn,
                            &format!("libriassist edge: no tick (status {status}); rate limits take one token at a time, counters count one at a time"),
                        );
                        LEASES.with(|l| l.borrow_mut().disable());
                        false
                    }
                };
                // Counts of the previous configuration are Envoy's before its counters go.
                self.metrics.flush();
                self.metrics = Rc::new(Metrics::define(ticking));
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

    pub fn on_tick(&mut self) {
        LEASES.with(|l| l.borrow_mut().clear());
        now_ns();
        self.metrics.flush();
    }

    /// The context of request `id`; without a configuration it passes through.
    pub fn new_request(&self, id: u32) -> EdgeRequest {
        EdgeRequest::new(id, self.config.clone(), self.metrics.clone())
    }

    /// The VM is going away (configuration removed, Envoy draining): count what it saw.
    pub fn on_delete(&self) {
        self.metrics.flush();
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

/// One request on one worker, from its headers to its deletion.
pub struct EdgeRequest {
    /// Envoy's context id, to route the cache lookup's answer back here.
    id: u32,
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
    /// A request that passes through untouched.
    pub fn unconfigured(id: u32) -> EdgeRequest {
        EdgeRequest::new(id, None, Rc::default())
    }

    fn new(id: u32, config: Option<Rc<Config>>, metrics: Rc<Metrics>) -> EdgeRequest {
        EdgeRequest {
            id,
            config,
            metrics,
            class: RouteClass::Other,
            client: None,
            started_ns: 0,
            request_id: None,
            state: State::PassThrough,
            key: None,
            stream_slot: None,
        }
    }

    /// Replies locally; Envoy sends the reply once the callback returns.
    fn answer(&mut self, reply: &LocalReply) -> Action {
        let sent = host::send(reply, self.request_id.as_deref());
        self.replied(sent).unwrap_or_else(|| {
            self.state = State::Forwarded;
            Action::Continue
        })
    }

    /// Takes note of a local reply: sent, the request is answered; refused by Envoy (logged),
    /// `None`, and the caller lets the request through instead.
    fn replied(&mut self, sent: Result<(), u32>) -> Option<Action> {
        match sent {
            Ok(()) => {
                self.state = State::Answered;
                Some(Action::Pause)
            }
            Err(status) => {
                host::log(
                    Level::Warn,
                    &format!(
                        "libriassist edge: local reply refused (status {status}); passing through"
                    ),
                );
                None
            }
        }
    }

    fn reject(&mut self, reply: &LocalReply) -> Action {
        self.metrics.count(Counter::Rejected);
        self.answer(reply)
    }

    fn limit(&mut self, reply: &LocalReply) -> Action {
        self.metrics.count(Counter::Limited);
        self.answer(reply)
    }

    /// The client of a request. When its identity can only come from the peer address (no
    /// trusted proxies, no API key to check), the parsed identity is remembered by address.
    fn client_of(
        config: &Config,
        view: &RequestView<'_>,
        check_key: bool,
    ) -> Result<ClientId, libriassist_protocol::ErrorDetail> {
        // A known API key identifies the client by itself, and a missing required one refuses
        // it: the peer address is then not asked for.
        let by_key = check_key
            && config
                .api_key
                .as_ref()
                .is_some_and(|k| view.api_key.is_some() || k.required);
        let by_peer_only =
            config.trusted_proxies.is_empty() && (config.api_key.is_none() || !check_key);
        // Where Envoy is the first hop it appended the peer to `X-Forwarded-For` as the last
        // entry (anything a client wrote stays to its left), so the peer costs no host call.
        let appended = (by_peer_only && config.peer_from_forwarded_for)
            .then_some(view.forwarded_for)
            .flatten()
            .map(identity::last_entry);
        let peer: Option<Cow<'_, [u8]>> = if by_key {
            None
        } else if let Some(entry) = appended {
            Some(Cow::Borrowed(entry.as_bytes()))
        } else {
            host::property(SOURCE_ADDRESS).map(Cow::Owned)
        };
        let identify_now = |peer: Option<&[u8]>| {
            let evidence = Evidence {
                api_key: view.api_key,
                forwarded_for: view.forwarded_for,
                peer: peer.and_then(|p| std::str::from_utf8(p).ok()),
            };
            identify(
                config.api_key.as_ref(),
                &config.addresses(),
                evidence,
                check_key,
            )
        };
        let peer = match peer {
            Some(peer) if by_peer_only => peer,
            other => return identify_now(other.as_deref()),
        };
        if let Some(client) = PEERS.with(|p| p.borrow().get(peer.as_ref()).cloned()) {
            return Ok(client);
        }
        // Only addresses are remembered, so an entry that is none comes here every time: it is
        // not a peer Envoy appended (a listener that is not TCP), and Envoy is asked instead.
        let peer = match appended {
            Some(entry) if identity::appended_peer(entry).is_none() => {
                match host::property(SOURCE_ADDRESS) {
                    Some(address) => Cow::Owned(address),
                    None => return identify_now(None),
                }
            }
            _ => peer,
        };
        let client = identify_now(Some(&peer))?;
        PEERS.with(|p| {
            let mut peers = p.borrow_mut();
            if peers.len() >= MAX_REMEMBERED_PEERS {
                peers.clear();
            }
            peers.insert(peer.into_owned(), client.clone());
        });
        Ok(client)
    }

    fn on_headers(&mut self, config: &Config, end_of_stream: bool) -> Action {
        let headers = host::header_pairs(Map::RequestHeaders);
        let mut view = request::read(
            headers.as_deref().unwrap_or_default(),
            config.api_key.as_ref().map(|k| k.header.as_str()),
        );
        // Headers that could not be read may still hold a client's cache key.
        view.has_cache_key |= headers.is_none();
        self.request_id = view.request_id.map(str::to_owned);
        self.class = classify(view.path);
        // Only the edge may tell the origin a key; a client's own would poison the cache.
        if view.has_cache_key {
            if let Err(status) = host::remove_header(Map::RequestHeaders, CACHE_KEY) {
                host::log(
                    Level::Warn,
                    &format!(
                        "libriassist edge: could not drop a client cache-key header (status {status})"
                    ),
                );
            }
        }
        let client = match Self::client_of(config, &view, route::needs_api_key(view.path)) {
            Ok(client) => client,
            Err(detail) => return self.reject(&reply::error(detail)),
        };
        let outcome = LEASES.with(|leases| {
            check_leased(
                &mut HostStore,
                &mut leases.borrow_mut(),
                config,
                self.class,
                &client,
                now_ns,
            )
        });
        match outcome {
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

        let head = RequestHead {
            method: view.method,
            content_type: view.content_type,
            content_length: view.content_length,
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

    /// Answers with a ready hit body: `body[edge_cache::HEADER_BYTES..]` is a template from
    /// `reply::hit_template`, completed here with the time since the request was complete.
    fn answer_hit(&mut self, config: &Config, mut body: Vec<u8>, now_ns: u64) -> Action {
        self.metrics.count(Counter::Hits);
        let elapsed_ms = now_ns.saturating_sub(self.started_ns) as f64 / 1e6;
        reply::finish_hit(self.class, &mut body, elapsed_ms);
        let sent = host::send_parts(
            200,
            reply::hit_headers(self.class),
            self.request_id.as_deref(),
            body.get(edge_cache::HEADER_BYTES..).unwrap_or_default(),
        );
        match self.replied(sent) {
            Some(action) => action,
            None => self.forward(config, false),
        }
    }

    fn on_body_complete(&mut self, config: &Config, body: &[u8]) -> Action {
        let key = match key_of(body) {
            Ok(key) => key,
            Err(detail) => return self.reject(&reply::error(detail)),
        };
        if !config.cache.enabled {
            self.key = Some(key);
            self.metrics.count(Counter::Misses);
            return self.forward(config, false);
        }
        let mut clock = Clock::default();
        let found = recent_l1(config, &key, self.class, &mut clock);
        match found {
            Some((L1::Answer, value)) => {
                // Chat replies report the time since the request was complete, as the
                // origin's do (its clock starts once it has read the body).
                self.started_ns = clock.get();
                self.key = Some(key);
                let mut body = Vec::with_capacity(value.len() + 32);
                body.extend_from_slice(&value);
                return self.answer_hit(config, body, now_ns());
            }
            Some((L1::Absent, _)) => {
                // The origin had nothing a moment ago: ask it directly.
                self.key = Some(key);
                self.metrics.count(Counter::Misses);
                return self.forward(config, false);
            }
            _ => self.started_ns = clock.get(),
        }
        let path = edge_cache::lookup_path(&key);
        self.key = Some(key);
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", config.cache.authority.as_str()),
        ];
        if let Some(id) = self.request_id.as_deref() {
            headers.push((REQUEST_ID, id));
        }
        match host::http_call(&config.cache.cluster, &headers, config.cache.timeout_ms) {
            Ok(token) => {
                abi::expect_answer(token, self.id);
                self.state = State::AwaitingCache;
                Action::Pause
            }
            Err(status) => {
                host::log(
                    Level::Warn,
                    &format!(
                        "libriassist edge: cache lookup not sent (status {status}); forwarding"
                    ),
                );
                self.metrics.count(Counter::CacheErrors);
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
            match acquire_stream(&mut HostStore, &slot, max, now_ns(), lease_ns) {
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
            self.resume();
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
            Lookup::Hit(entry) => self.on_cache_hit(config, &entry),
            Lookup::Miss => {
                if let Some(key) = &self.key {
                    let now = now_ns();
                    if let Some(value) = edge_cache::encode_absent(&config.cache, key, now) {
                        for class in [RouteClass::Chat, RouteClass::Stream] {
                            store_l1(config, key, class, value.clone());
                        }
                    }
                }
                self.metrics.count(Counter::Misses);
                self.forward(config, true);
            }
            Lookup::Failed(reason) => {
                // Debug, not warn: during a cache outage this would be one line per request;
                // the cache_errors counter is what to watch.
                host::log(
                    Level::Debug,
                    &format!("libriassist edge: {reason}; forwarding"),
                );
                self.metrics.count(Counter::CacheErrors);
                self.forward(config, true);
            }
        }
    }

    /// The origin's cache had the answer: both ready replies go to L1, this one is sent.
    fn on_cache_hit(&mut self, config: &Config, entry: &CachedAnswer) {
        let now = now_ns();
        let mut mine = None;
        for class in [RouteClass::Chat, RouteClass::Stream] {
            let template = reply::hit_template(class, entry);
            if let (Some(key), Some(template)) = (&self.key, &template) {
                if let Some(value) = edge_cache::encode_l1(&config.cache, key, template, now) {
                    store_l1(config, key, class, value);
                }
            }
            if (class == RouteClass::Stream) == (self.class == RouteClass::Stream) {
                mine = template;
            }
        }
        match mine {
            Some(template) => {
                let mut body = Vec::with_capacity(edge_cache::HEADER_BYTES + template.len() + 32);
                body.resize(edge_cache::HEADER_BYTES, 0);
                body.extend_from_slice(&template);
                if self.answer_hit(config, body, now) == Action::Continue {
                    self.resume();
                }
            }
            None => {
                self.metrics.count(Counter::Hits);
                let elapsed_ms = now.saturating_sub(self.started_ns) as f64 / 1e6;
                if self.answer(&reply::cache_hit(self.class, entry.clone(), elapsed_ms))
                    == Action::Continue
                {
                    self.forward(config, true);
                }
            }
        }
    }

    fn resume(&self) {
        if let Err(status) = host::resume_request() {
            host::log(
                Level::Error,
                &format!("libriassist edge: could not resume request (status {status})"),
            );
        }
    }

    fn release_stream_slot(&mut self) {
        if let Some(slot) = self.stream_slot.take() {
            if let Err(e) = release_stream(&mut HostStore, &slot, now_ns()) {
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

/// The callbacks `abi` routes here.
impl EdgeRequest {
    pub fn on_http_call_response(&mut self, num_headers: usize, body_size: usize) {
        if self.state != State::AwaitingCache {
            return;
        }
        if let Some(config) = self.config.clone() {
            self.on_cache_answer(&config, num_headers, body_size);
        }
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Action {
        match self.config.clone() {
            Some(config) => self.on_headers(&config, end_of_stream),
            None => Action::Continue,
        }
    }

    pub fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
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

    pub fn on_request_trailers(&mut self) -> Action {
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

    /// Envoy is done with the request, however it ended.
    pub fn on_delete(&mut self) {
        self.release_stream_slot();
    }
}
