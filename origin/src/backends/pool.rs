//! The backend pool: admits a generation, runs it on the least-loaded healthy backend, retries
//! it elsewhere while it has produced no token, and keeps each backend's health.
//!
//! The pool counts in-flight requests itself: Ollama exposes no queue or in-flight metric, and
//! requests beyond its slots would queue invisibly inside it. A request only goes to a backend
//! with a free slot; otherwise it waits in our FIFO admission queue, where it can still be sent to
//! whichever backend frees up first.
//!
//! Replicas of the origin share the backends: each one also knows what the others run on each
//! backend (`shared_load.rs` exchanges the counts through Redis) and leaves those slots to them.
//!
//! All bookkeeping sits behind one short-held mutex; no await happens while it is held.
//!
//! Membership can change while serving ([`Pool::reconfigure`], on a configuration reload).
//! Backends are known by their index everywhere (leases, retry exclusions, health results that
//! arrive after an await), so a removed backend is never taken out of the list: it is marked
//! retired, takes no new work, and its running generations end normally.

use super::admission::{Decision, Queue, Refusal};
use super::breaker::{self, Breaker};
use super::selection::{least_loaded, Candidate};
use super::{
    Backend, BackendError, BackendEvent, BackendKind, Completion, GenerationRequest, TokenStream,
};
use crate::metrics;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How the pool behaves; built from `BackendsConfig`.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub model: String,
    pub queue_max: usize,
    pub queue_timeout: Duration,
    pub first_token_timeout: Duration,
    pub stall_timeout: Duration,
    pub idle_token_timeout: Duration,
    pub max_attempts: usize,
    pub breaker: breaker::Settings,
}

/// Why the pool could not start a generation. Nothing was streamed to the client yet, so the
/// caller can still answer with an HTTP error or fall back to an extractive answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no healthy LLM backend is available")]
    NoBackend,
    #[error("every generation slot is busy and the waiting line is full ({0} waiting)")]
    QueueFull(usize),
    #[error("no generation slot became free within {0:?}")]
    QueueTimeout(Duration),
    #[error("generation failed: {0}")]
    Failed(#[source] BackendError),
}

struct Member {
    backend: Arc<dyn Backend>,
    capacity: usize,
}

/// What [`Pool::reconfigure`] did, by backend URL.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Membership {
    /// New, or back after a removal; they take traffic once a health check passes.
    pub added: Vec<String>,
    /// Still configured: in-flight counts, circuits and counters carry on.
    pub kept: Vec<String>,
    /// No longer configured: no new work; running generations finish.
    pub retired: Vec<String>,
}

struct Slot {
    in_flight: usize,
    /// What the other origins last reported running on this backend.
    elsewhere: usize,
    /// Requests sent to it that have not had their first token yet.
    awaiting: usize,
    /// Since when it has owed a first token without sending any: set when the first request
    /// starts waiting, moved on by every first token, cleared when nobody waits.
    owing_since: Option<Instant>,
    /// Bumped when it is ejected as stalled; the requests waiting on it move elsewhere.
    stalls: watch::Sender<u64>,
    breaker: Breaker,
    /// Result of the last active check; `None` before the first one.
    model_present: Option<bool>,
    last_pick: u64,
    served: u64,
    failures: u64,
    last_error: Option<String>,
    last_success: Option<Instant>,
    /// Removed from the configuration; kept only so indices stay valid.
    retired: bool,
}

/// What one origin tells the others: its in-flight generations per backend URL, and since when
/// the oldest request in its queue has waited for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Load {
    pub in_flight: BTreeMap<String, usize>,
    pub oldest_waiting: Option<Instant>,
}

/// A free slot goes to the oldest waiting request of all origins; within this margin (the time a
/// report takes to arrive) two heads of line count as equally old and both may take slots.
const YIELD_MARGIN: Duration = Duration::from_millis(20);
/// How long a free slot is left to another origin's older request before ours take it anyway:
/// that request may be unable to use it (it failed on that backend before, or its origin's
/// circuit for the backend is open), and a slot must never stay idle while requests wait.
const YIELD_WINDOW: Duration = Duration::from_millis(50);

/// The load one other origin reported, until it expires.
struct PeerLoad {
    load: Load,
    expires: Instant,
}

struct State {
    /// Parallel to `slots`; grows on reconfiguration, never shrinks.
    members: Vec<Member>,
    slots: Vec<Slot>,
    queue: Queue,
    picks: u64,
    /// By origin id.
    peers: HashMap<String, PeerLoad>,
    /// The oldest request waiting in another origin's queue.
    oldest_elsewhere: Option<Instant>,
    /// Since when this origin has been leaving free slots to older requests elsewhere.
    yielding_since: Option<Instant>,
}

struct Inner {
    state: Mutex<State>,
    settings: PoolSettings,
    /// Touched on every change of the bookkeeping; the load publisher waits on it.
    changed: watch::Sender<()>,
}

/// Cheap to clone; all clones share the same backends and counters.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// One backend as `/api/v1/backends` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendStatus {
    pub url: String,
    pub kind: BackendKind,
    pub model: String,
    pub healthy: bool,
    pub circuit: &'static str,
    pub in_flight: usize,
    /// Generations other origins reported running on this backend.
    pub in_flight_elsewhere: usize,
    pub capacity: usize,
    pub served: u64,
    pub failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_secs_ago: Option<f64>,
    /// Removed by a reload and still finishing its generations.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
}

impl Slot {
    fn new(settings: &PoolSettings) -> Slot {
        Slot {
            in_flight: 0,
            elsewhere: 0,
            awaiting: 0,
            owing_since: None,
            stalls: watch::Sender::new(0),
            breaker: Breaker::new(settings.breaker),
            model_present: None,
            last_pick: 0,
            served: 0,
            failures: 0,
            last_error: None,
            last_success: None,
            retired: false,
        }
    }

    fn healthy(&self) -> bool {
        !self.retired
            && self.model_present == Some(true)
            && !matches!(self.breaker.state(), breaker::State::Open { .. })
    }
}

impl Pool {
    /// A pool over `backends`, each with `slots` parallel slots. Backends start unchecked and
    /// take no traffic until their first health check passes (see `health::check_all`).
    pub fn new(backends: Vec<Arc<dyn Backend>>, slots: usize, settings: PoolSettings) -> Pool {
        let members: Vec<Member> = backends
            .into_iter()
            .map(|backend| Member {
                backend,
                capacity: slots,
            })
            .collect();
        for m in &members {
            metrics::backend_added(m.backend.url());
        }
        let state = State {
            slots: members.iter().map(|_| Slot::new(&settings)).collect(),
            members,
            queue: Queue::new(settings.queue_max),
            picks: 0,
            peers: HashMap::new(),
            oldest_elsewhere: None,
            yielding_since: None,
        };
        let pool = Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                settings,
                changed: watch::Sender::new(()),
            }),
        };
        pool.publish(&pool.lock());
        pool
    }

    /// Configured backends (retired ones not counted).
    pub fn len(&self) -> usize {
        self.lock().slots.iter().filter(|s| !s.retired).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes `backends` the pool's members, matched to the current ones by kind and URL. Kept
    /// backends keep their state; new ones (and removed ones that come back) start unchecked and
    /// take no traffic until a health check passes; the others are retired. Every member's
    /// capacity becomes `slots`.
    pub fn reconfigure(&self, backends: Vec<Arc<dyn Backend>>, slots: usize) -> Membership {
        let mut state = self.lock();
        let mut membership = Membership::default();
        let mut wanted = vec![false; state.members.len()];
        for backend in backends {
            let url = backend.url().to_owned();
            let same = |m: &Member| m.backend.kind() == backend.kind() && m.backend.url() == url;
            let found = (0..state.members.len()).find(|&i| !wanted[i] && same(&state.members[i]));
            match found {
                Some(i) if !state.slots[i].retired => {
                    wanted[i] = true;
                    membership.kept.push(url);
                }
                Some(i) => {
                    wanted[i] = true;
                    let slot = &mut state.slots[i];
                    slot.retired = false;
                    // It was not checked while retired: check again before it takes traffic.
                    slot.model_present = None;
                    membership.added.push(url);
                }
                None => {
                    wanted.push(true);
                    metrics::backend_added(&url);
                    let slot = Slot::new(&self.inner.settings);
                    state.members.push(Member {
                        backend,
                        capacity: slots,
                    });
                    state.slots.push(slot);
                    membership.added.push(url);
                }
            }
        }
        let State {
            members,
            slots: states,
            ..
        } = &mut *state;
        for ((member, slot), keep) in members.iter_mut().zip(states.iter_mut()).zip(wanted) {
            member.capacity = slots;
            if !keep && !slot.retired {
                slot.retired = true;
                membership.retired.push(member.backend.url().to_owned());
            }
        }
        tracing::info!(?membership, "backend pool reconfigured");
        // Waiters that only a retired backend could have served are refused now, not at timeout.
        self.dispatch(&mut state);
        membership
    }

    pub fn model(&self) -> &str {
        &self.inner.settings.model
    }

    /// Whether any backend can take work now (or after a short wait in the queue).
    pub fn any_healthy(&self) -> bool {
        self.lock().slots.iter().any(Slot::healthy)
    }

    /// Sum of the slots of healthy backends: the most generations that can run at once now.
    pub fn healthy_capacity(&self) -> usize {
        let state = self.lock();
        state
            .slots
            .iter()
            .zip(&state.members)
            .filter(|(s, _)| s.healthy())
            .map(|(_, m)| m.capacity)
            .sum()
    }

    /// Configured backends, then retired ones still finishing generations.
    pub fn snapshot(&self) -> Vec<BackendStatus> {
        let state = self.lock();
        let now = Instant::now();
        state
            .members
            .iter()
            .zip(&state.slots)
            .filter(|(_, s)| !s.retired || s.in_flight > 0)
            .map(|(m, s)| BackendStatus {
                url: m.backend.url().to_owned(),
                kind: m.backend.kind(),
                model: self.inner.settings.model.clone(),
                healthy: s.healthy(),
                circuit: s.breaker.name(),
                in_flight: s.in_flight,
                in_flight_elsewhere: s.elsewhere,
                capacity: m.capacity,
                served: s.served,
                failures: s.failures,
                last_error: s.last_error.clone(),
                last_success_secs_ago: s.last_success.map(|t| now.duration_since(t).as_secs_f64()),
                retired: s.retired,
            })
            .collect()
    }

    /// Runs `request` on the best backend. Resolves once the first token (or an immediate end)
    /// arrived; the rest streams from the returned [`Generation`]. A backend that fails before
    /// its first token is excluded and the request tried on another, up to `max_attempts`.
    ///
    /// # Errors
    /// [`PoolError::NoBackend`] when no backend is healthy, `QueueFull`/`QueueTimeout` when all
    /// slots stay busy, `Failed` with the last backend error when every attempt failed.
    pub async fn generate(&self, request: GenerationRequest) -> Result<Generation, PoolError> {
        let started = Instant::now();
        let mut tried: Vec<usize> = Vec::new();
        let mut last_error = None;
        while tried.len() < self.inner.settings.max_attempts {
            let mut lease = match self.acquire(&tried, started).await {
                Ok(lease) => lease,
                Err(PoolError::NoBackend) if last_error.is_some() => break,
                Err(e) => return Err(e),
            };
            let queue_wait = started.elapsed();
            tried.push(lease.index);
            let (backend, mut stalled) = self.begin_attempt(lease.index);
            let silent_for = |seconds: Duration| BackendError::Timeout {
                url: backend.url().to_owned(),
                seconds: seconds.as_secs_f64(),
            };
            let settings = &self.inner.settings;
            let attempt = tokio::time::timeout(
                settings.first_token_timeout,
                first_event(&*backend, request.clone()),
            );
            let outcome = tokio::select! {
                outcome = attempt => outcome.unwrap_or_else(|_| Err(silent_for(settings.first_token_timeout))),
                // Ejected as stalled while this request waited on it: try another one now
                // rather than at the first-token deadline.
                _ = stalled.changed() => Err(silent_for(settings.stall_timeout)),
            };
            self.end_attempt(lease.index, outcome.is_ok());
            let error = match outcome {
                Ok((first, rest)) => {
                    let budget = request.options.num_predict;
                    let idle = settings.idle_token_timeout;
                    return Ok(Generation {
                        backend: backend.url().to_owned(),
                        model: request.model,
                        queue_wait,
                        first_token: started.elapsed(),
                        events: guarded_stream(lease, first, rest, budget, idle),
                    });
                }
                Err(e) => e,
            };
            tracing::warn!(backend = backend.url(), error = %error, "generation failed before its first token");
            lease.fail(&error);
            if !error.is_backend_fault() {
                return Err(PoolError::Failed(error));
            }
            last_error = Some(error);
        }
        Err(last_error.map_or(PoolError::NoBackend, PoolError::Failed))
    }

    /// Reserves a slot on the least-loaded healthy backend not in `exclude`, waiting in line if
    /// all are busy (or if another origin's request has waited longer than this one, asked at
    /// `since`).
    async fn acquire(&self, exclude: &[usize], since: Instant) -> Result<Lease, PoolError> {
        let (id, rx) = {
            let mut state = self.lock();
            // With nobody waiting, a free slot is taken at once: no queue entry, so even a
            // queue bound of 0 ("never wait") admits requests while slots are free.
            if state.queue.is_empty() {
                let older_elsewhere = state.older_elsewhere(Instant::now());
                let State {
                    members,
                    slots,
                    picks,
                    ..
                } = &mut *state;
                let turn = Turn {
                    exclude,
                    since,
                    older_elsewhere,
                };
                match decide(members, slots, picks, &turn) {
                    Decision::Grant(index) => {
                        self.publish(&state);
                        return Ok(Lease {
                            pool: self.clone(),
                            index,
                            outcome: false,
                        });
                    }
                    Decision::Refuse(Refusal::NoBackend) => return Err(PoolError::NoBackend),
                    Decision::Wait | Decision::Yield => {}
                }
            }
            let queued = state.queue.push(exclude.to_vec(), since);
            let Ok((id, rx)) = queued else {
                metrics::queue_rejected("full");
                return Err(PoolError::QueueFull(state.queue.len()));
            };
            self.dispatch(&mut state);
            (id, rx)
        };
        let mut wait = Waiting {
            pool: self,
            id,
            rx,
            settled: false,
        };
        let grant =
            match tokio::time::timeout(self.inner.settings.queue_timeout, &mut wait.rx).await {
                Ok(Ok(grant)) => grant,
                // The sender lives in the queue until it sends; a closed channel means it was dropped
                // unsent, which only happens when the pool itself is going away.
                Ok(Err(_)) => Err(Refusal::NoBackend),
                Err(_) => {
                    let mut state = self.lock();
                    if state.queue.remove(id) {
                        wait.settled = true;
                        self.publish(&state);
                        metrics::queue_rejected("timeout");
                        return Err(PoolError::QueueTimeout(self.inner.settings.queue_timeout));
                    }
                    // Granted in the instant the timer fired: take the slot.
                    wait.rx.try_recv().unwrap_or(Err(Refusal::NoBackend))
                }
            };
        wait.settled = true;
        match grant {
            Ok(index) => Ok(Lease {
                pool: self.clone(),
                index,
                outcome: false,
            }),
            Err(Refusal::NoBackend) => Err(PoolError::NoBackend),
        }
    }

    /// Hands free slots to waiters in arrival order and refuses those no backend can serve.
    fn dispatch(&self, state: &mut State) {
        let mut yielded = false;
        loop {
            let undone = {
                let older_elsewhere = state.older_elsewhere(Instant::now());
                let State {
                    members,
                    slots,
                    queue,
                    picks,
                    ..
                } = &mut *state;
                queue.dispatch(|exclude, since| {
                    let turn = Turn {
                        exclude,
                        since,
                        older_elsewhere,
                    };
                    let decision = decide(members, slots, picks, &turn);
                    yielded |= matches!(decision, Decision::Yield);
                    decision
                })
            };
            if undone.is_empty() {
                break;
            }
            for i in undone {
                state.slots[i].in_flight -= 1;
            }
        }
        if !yielded {
            state.yielding_since = None;
        } else if state.yielding_since.is_none() {
            state.yielding_since = Some(Instant::now());
            // Nothing else may happen to wake the line once the window is over.
            let pool = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(YIELD_WINDOW).await;
                let mut state = pool.lock();
                pool.dispatch(&mut state);
            });
        }
        self.publish(state);
    }

    /// Counts a request as waiting for its first token from backend `index`.
    fn begin_attempt(&self, index: usize) -> (Arc<dyn Backend>, watch::Receiver<u64>) {
        let mut state = self.lock();
        let slot = &mut state.slots[index];
        slot.awaiting += 1;
        slot.owing_since.get_or_insert_with(Instant::now);
        let stalls = slot.stalls.subscribe();
        (Arc::clone(&state.members[index].backend), stalls)
    }

    /// The request's wait for a first token from `index` ended, with a token or without.
    fn end_attempt(&self, index: usize, answered: bool) {
        let mut state = self.lock();
        let slot = &mut state.slots[index];
        slot.awaiting -= 1;
        if slot.awaiting == 0 {
            slot.owing_since = None;
        } else if answered {
            slot.owing_since = Some(Instant::now());
        }
    }

    /// Ejects every backend that has owed first tokens for `stall_timeout` without sending
    /// one. A hung server keeps answering health checks; only its silence gives it away.
    /// Silence is also what a server loading its model looks like, so a backend is judged only
    /// while another healthy one could take its requests: a lone backend keeps them until the
    /// first-token deadline.
    pub(crate) fn eject_stalled(&self, now: Instant) {
        let stall = self.inner.settings.stall_timeout;
        let mut state = self.lock();
        let State { members, slots, .. } = &mut *state;
        let stalled = |slot: &Slot| {
            slot.healthy()
                && slot
                    .owing_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= stall)
        };
        let healthy = slots.iter().filter(|s| s.healthy()).count();
        let judged = slots.iter().filter(|s| stalled(s)).count();
        if judged == 0 || judged >= healthy {
            return;
        }
        for (member, slot) in members.iter().zip(slots.iter_mut()) {
            if !stalled(slot) {
                continue;
            }
            let silent = slot
                .owing_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
            let error = format!(
                "stalled: {} requests waited {:.1} s for a first token",
                slot.awaiting,
                silent.as_secs_f64()
            );
            tracing::warn!(backend = member.backend.url(), error, "backend unhealthy");
            slot.failures += 1;
            slot.last_error = Some(error);
            slot.breaker.on_failure(now, true);
            slot.stalls.send_modify(|n| *n += 1);
        }
        self.dispatch(&mut state);
    }

    /// Records an active health check of backend `index`.
    pub(crate) fn record_check(&self, index: usize, result: Result<(), BackendError>) {
        let mut state = self.lock();
        let url = state.members[index].backend.url().to_owned();
        let slot = &mut state.slots[index];
        if slot.retired {
            return;
        }
        let was_healthy = slot.healthy();
        slot.model_present = Some(result.is_ok());
        slot.breaker.on_check(Instant::now(), result.is_ok());
        if let Err(e) = &result {
            slot.last_error = Some(e.to_string());
        }
        let now_healthy = slot.healthy();
        if was_healthy != now_healthy {
            match &result {
                Ok(()) => tracing::info!(backend = url, "backend healthy"),
                Err(e) => tracing::warn!(backend = url, error = %e, "backend unhealthy"),
            }
        }
        self.dispatch(&mut state);
    }

    /// The configured (not retired) backends with their indices, for the health checker.
    pub(crate) fn members(&self) -> Vec<(usize, Arc<dyn Backend>)> {
        let state = self.lock();
        let active = state
            .members
            .iter()
            .zip(&state.slots)
            .enumerate()
            .filter(|(_, (_, s))| !s.retired);
        active
            .map(|(i, (m, _))| (i, Arc::clone(&m.backend)))
            .collect()
    }

    /// This origin's load, for the other origins.
    pub(crate) fn local_load(&self) -> Load {
        let state = self.lock();
        let in_flight = state
            .members
            .iter()
            .zip(&state.slots)
            .filter(|(_, s)| !s.retired || s.in_flight > 0)
            .map(|(m, s)| (m.backend.url().to_owned(), s.in_flight))
            .collect();
        Load {
            in_flight,
            oldest_waiting: state.queue.oldest(),
        }
    }

    /// Wakes on every change of the bookkeeping (a change may be a no-op for the load).
    pub(crate) fn changes(&self) -> watch::Receiver<()> {
        self.inner.changed.subscribe()
    }

    /// Takes in what origin `peer` runs on each backend and how long its line is, valid until
    /// `expires`.
    pub(crate) fn record_peer(&self, peer: String, load: Load, expires: Instant) {
        let mut state = self.lock();
        state.peers.insert(peer, PeerLoad { load, expires });
        self.count_elsewhere(&mut state, Instant::now());
    }

    /// Forgets reports that were not renewed in time: their origin crashed, left, or cannot
    /// reach Redis. Its load then no longer holds slots here.
    pub(crate) fn expire_peers(&self, now: Instant) {
        let mut state = self.lock();
        if state.peers.values().any(|p| p.expires <= now) {
            self.count_elsewhere(&mut state, now);
        }
    }

    fn count_elsewhere(&self, state: &mut State, now: Instant) {
        state.peers.retain(|_, p| p.expires > now);
        let State {
            members,
            slots,
            peers,
            oldest_elsewhere,
            ..
        } = &mut *state;
        for (member, slot) in members.iter().zip(slots.iter_mut()) {
            let url = member.backend.url();
            slot.elsewhere = peers
                .values()
                .filter_map(|p| p.load.in_flight.get(url))
                .sum();
        }
        *oldest_elsewhere = peers.values().filter_map(|p| p.load.oldest_waiting).min();
        // Slots the others gave back may serve our waiters now.
        self.dispatch(state);
    }

    fn backend(&self, index: usize) -> Arc<dyn Backend> {
        Arc::clone(&self.lock().members[index].backend)
    }

    fn finish(&self, index: usize, outcome: Option<Result<(), &BackendError>>) {
        let mut state = self.lock();
        let capacity = state.members[index].capacity;
        let backend = Arc::clone(&state.members[index].backend);
        let url = backend.url();
        let slot = &mut state.slots[index];
        slot.in_flight -= 1;
        match outcome {
            Some(Ok(())) => {
                slot.served += 1;
                slot.last_success = Some(Instant::now());
                slot.breaker.on_success(capacity);
                metrics::backend_request(url, "success");
            }
            Some(Err(e)) => {
                slot.failures += 1;
                slot.last_error = Some(e.to_string());
                if e.is_backend_fault() {
                    let gone = matches!(e, BackendError::Connect { .. });
                    slot.breaker.on_failure(Instant::now(), gone);
                }
                metrics::backend_request(url, "failure");
            }
            None => metrics::backend_request(url, "cancelled"),
        }
        self.dispatch(&mut state);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it; the counters are still consistent
        // (every critical section is a few assignments), so keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, state: &State) {
        for (m, s) in state.members.iter().zip(&state.slots) {
            // A retired backend's series stay in the exporter: zero capacity keeps it out of
            // the dashboard's totals.
            let capacity = if s.retired { 0 } else { m.capacity };
            metrics::backend_state(m.backend.url(), s.in_flight, capacity, s.healthy());
        }
        metrics::queue_depth(state.queue.len());
        self.inner.changed.send_replace(());
    }
}

impl State {
    /// The oldest request waiting at another origin, while free slots may still be left to it.
    fn older_elsewhere(&self, now: Instant) -> Option<Instant> {
        let window_open = self
            .yielding_since
            .is_none_or(|since| now.saturating_duration_since(since) < YIELD_WINDOW);
        self.oldest_elsewhere.filter(|_| window_open)
    }
}

/// The request a slot is being decided for.
struct Turn<'a> {
    /// Backends it already failed on.
    exclude: &'a [usize],
    /// When it first asked for a slot.
    since: Instant,
    /// See [`State::older_elsewhere`].
    older_elsewhere: Option<Instant>,
}

/// Where the request of `turn` goes now: the least-loaded healthy backend with a free slot
/// (reserved here), a wait (also while another origin's request has waited longer), or a
/// refusal when no healthy backend is left to it.
fn decide(members: &[Member], slots: &mut [Slot], picks: &mut u64, turn: &Turn) -> Decision {
    let exclude = turn.exclude;
    let eligible = |i: &usize| !exclude.contains(i) && slots[*i].healthy();
    if !(0..slots.len()).any(|i| eligible(&i)) {
        return Decision::Refuse(Refusal::NoBackend);
    }
    let candidates = (0..slots.len()).filter(eligible).map(|i| Candidate {
        index: i,
        in_flight: slots[i].in_flight + slots[i].elsewhere,
        allowed: slots[i].breaker.allowed(members[i].capacity),
        last_pick: slots[i].last_pick,
    });
    let Some(i) = least_loaded(candidates) else {
        return Decision::Wait;
    };
    // Without this, each origin's releases would feed its own line: an origin holding more
    // slots would serve its customers faster than the other, whatever their wait.
    if turn
        .older_elsewhere
        .is_some_and(|oldest| oldest + YIELD_MARGIN < turn.since)
    {
        return Decision::Yield;
    }
    *picks += 1;
    slots[i].in_flight += 1;
    slots[i].last_pick = *picks;
    Decision::Grant(i)
}

/// Leaves the admission queue if the waiting request is dropped (client gone), and hands back
/// a slot granted to it in the meantime.
struct Waiting<'a> {
    pool: &'a Pool,
    id: u64,
    rx: oneshot::Receiver<super::admission::Grant>,
    /// Set once the outcome was taken; then there is nothing to undo.
    settled: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut state = self.pool.lock();
        if !state.queue.remove(self.id) {
            if let Ok(Ok(index)) = self.rx.try_recv() {
                state.slots[index].in_flight -= 1;
            }
        }
        self.pool.dispatch(&mut state);
    }
}

/// A reserved slot on one backend; released when dropped, whatever happened.
struct Lease {
    pool: Pool,
    index: usize,
    outcome: bool,
}

impl Lease {
    fn succeed(&mut self) {
        if !std::mem::replace(&mut self.outcome, true) {
            self.pool.finish(self.index, Some(Ok(())));
        }
    }

    fn fail(&mut self, error: &BackendError) {
        if !std::mem::replace(&mut self.outcome, true) {
            self.pool.finish(self.index, Some(Err(error)));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.outcome {
            // Neither success nor failure: the client went away and the stream was dropped.
            self.pool.finish(self.index, None);
        }
    }
}

/// A running generation whose first token has arrived.
pub struct Generation {
    pub backend: String,
    pub model: String,
    pub queue_wait: Duration,
    /// From the call to `generate` to the first token, queueing and retries included.
    pub first_token: Duration,
    /// The first token, the rest, then `Done` — or an error as the last item.
    pub events: BoxStream<'static, Result<BackendEvent, BackendError>>,
}

async fn first_event(
    backend: &dyn Backend,
    request: GenerationRequest,
) -> Result<(BackendEvent, TokenStream), BackendError> {
    let mut stream = backend.generate(request).await?;
    match stream.next().await {
        Some(Ok(event)) => Ok((event, stream)),
        Some(Err(e)) => Err(e),
        None => Err(BackendError::Protocol {
            url: backend.url().to_owned(),
            message: "empty response".into(),
        }),
    }
}

/// The backend stream with the pool's rules applied while it runs: the token budget is enforced
/// as tokens arrive (a backend that ignores it is cut off), a silent backend times out, a stream
/// that ends without its final line is an error, and the slot's outcome is recorded.
fn guarded_stream(
    mut lease: Lease,
    first: BackendEvent,
    mut rest: TokenStream,
    budget: u32,
    idle: Duration,
) -> BoxStream<'static, Result<BackendEvent, BackendError>> {
    let url = lease.pool.backend(lease.index).url().to_owned();
    async_stream::stream! {
        let mut tokens: u32 = 0;
        let mut next = Some(Ok(first));
        loop {
            let event = match next.take() {
                Some(event) => Some(event),
                None => match tokio::time::timeout(idle, rest.next()).await {
                    Ok(event) => event,
                    Err(_) => Some(Err(BackendError::Timeout { url: url.clone(), seconds: idle.as_secs_f64() })),
                },
            };
            match event {
                Some(Ok(BackendEvent::Token(text))) => {
                    tokens += 1;
                    yield Ok(BackendEvent::Token(text));
                    if tokens >= budget {
                        lease.succeed();
                        yield Ok(BackendEvent::Done(Completion {
                            completion_tokens: Some(tokens),
                            finish_reason: Some("length".into()),
                            ..Completion::default()
                        }));
                        break;
                    }
                }
                Some(Ok(BackendEvent::Done(completion))) => {
                    lease.succeed();
                    yield Ok(BackendEvent::Done(completion));
                    break;
                }
                Some(Err(e)) => {
                    lease.fail(&e);
                    yield Err(e);
                    break;
                }
                None => {
                    let e = BackendError::Protocol { url: url.clone(), message: "stream ended before its final message".into() };
                    lease.fail(&e);
                    yield Err(e);
                    break;
                }
            }
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;

    /// Streams one token, then ends (`finishes`) or stays silent until dropped.
    struct Fake {
        url: String,
        finishes: bool,
    }

    impl Backend for Fake {
        fn kind(&self) -> BackendKind {
            BackendKind::Ollama
        }
        fn url(&self) -> &str {
            &self.url
        }
        fn generate(
            &self,
            _request: GenerationRequest,
        ) -> BoxFuture<'_, Result<TokenStream, BackendError>> {
            let finishes = self.finishes;
            Box::pin(async move {
                let first = futures::stream::iter([Ok(BackendEvent::Token("x".into()))]);
                let rest = if finishes {
                    futures::stream::iter([Ok(BackendEvent::Done(Completion::default()))]).boxed()
                } else {
                    futures::stream::pending().boxed()
                };
                Ok(first.chain(rest).boxed())
            })
        }
        fn check_model<'a>(&'a self, _model: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Accepts generations and never answers them, while still passing health checks: a
    /// hung server.
    struct Silent(String);

    impl Backend for Silent {
        fn kind(&self) -> BackendKind {
            BackendKind::Ollama
        }
        fn url(&self) -> &str {
            &self.0
        }
        fn generate(
            &self,
            _request: GenerationRequest,
        ) -> BoxFuture<'_, Result<TokenStream, BackendError>> {
            Box::pin(futures::future::pending())
        }
        fn check_model<'a>(&'a self, _model: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn fake(url: &str, finishes: bool) -> Arc<dyn Backend> {
        Arc::new(Fake {
            url: url.into(),
            finishes,
        })
    }

    fn settings() -> PoolSettings {
        PoolSettings {
            model: "m".into(),
            queue_max: 4,
            queue_timeout: Duration::from_millis(50),
            first_token_timeout: Duration::from_secs(1),
            stall_timeout: Duration::from_millis(300),
            idle_token_timeout: Duration::from_secs(60),
            max_attempts: 2,
            breaker: breaker::Settings {
                threshold: 3,
                base_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(2),
            },
        }
    }

    fn request() -> GenerationRequest {
        let options = super::super::GenerationOptions {
            num_predict: 10,
            temperature: 0.0,
            top_k: 1,
        };
        GenerationRequest {
            model: "m".into(),
            messages: Vec::new(),
            options,
        }
    }

    fn status<'a>(pool: &'a [BackendStatus], url: &str) -> Option<&'a BackendStatus> {
        pool.iter().find(|b| b.url == url)
    }

    #[tokio::test]
    async fn reconfigure_keeps_state_checks_new_members_and_retires_removed_ones_after_their_work()
    {
        let pool = Pool::new(
            vec![fake("http://a", false), fake("http://b", true)],
            1,
            settings(),
        );
        crate::backends::health::check_all(&pool).await;
        // a: one endless generation; b: one finished generation.
        let running = pool.generate(request()).await.unwrap();
        assert_eq!(running.backend, "http://a");
        let mut done = pool.generate(request()).await.unwrap();
        assert_eq!(done.backend, "http://b");
        while done.events.next().await.is_some() {}

        let m = pool.reconfigure(vec![fake("http://b", true), fake("http://c", true)], 1);
        assert_eq!(
            (m.added, m.kept, m.retired),
            (
                vec!["http://c".to_owned()],
                vec!["http://b".to_owned()],
                vec!["http://a".to_owned()]
            )
        );
        assert_eq!(pool.len(), 2);
        let s = pool.snapshot();
        let a = status(&s, "http://a").unwrap();
        assert!(a.retired && !a.healthy && a.in_flight == 1, "{a:?}");
        assert_eq!(
            status(&s, "http://b").unwrap().served,
            1,
            "kept backends keep their counters"
        );
        assert!(
            !status(&s, "http://c").unwrap().healthy,
            "new backends wait for a health check"
        );
        // Only b can take work until c is checked; a retired backend is never picked.
        let on_b = pool.generate(request()).await.unwrap();
        assert_eq!(on_b.backend, "http://b");
        drop(on_b);
        crate::backends::health::check_all(&pool).await;
        assert!(status(&pool.snapshot(), "http://c").unwrap().healthy);

        drop(running);
        assert!(
            status(&pool.snapshot(), "http://a").is_none(),
            "gone once its generation ended"
        );

        let m = pool.reconfigure(
            vec![
                fake("http://a", true),
                fake("http://b", true),
                fake("http://c", true),
            ],
            2,
        );
        assert_eq!((m.added.len(), m.kept.len(), m.retired.len()), (1, 2, 0));
        assert!(
            !status(&pool.snapshot(), "http://a").unwrap().healthy,
            "a returning backend is checked again"
        );
        assert_eq!(pool.healthy_capacity(), 4, "capacity follows the new slots");
    }

    #[tokio::test]
    async fn slots_another_origin_runs_are_left_to_it_until_its_report_expires() {
        let pool = Pool::new(vec![fake("http://a", false)], 2, settings());
        crate::backends::health::check_all(&pool).await;
        let later = Instant::now() + Duration::from_secs(60);
        let load = |n: usize| Load {
            in_flight: BTreeMap::from([("http://a".to_owned(), n)]),
            oldest_waiting: None,
        };

        pool.record_peer("other".into(), load(2), later);
        assert!(
            matches!(
                pool.generate(request()).await,
                Err(PoolError::QueueTimeout(_))
            ),
            "both slots are taken elsewhere"
        );

        // A slot given back elsewhere goes to the request waiting here.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.generate(request()).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        pool.record_peer("other".into(), load(1), later);
        let running = waiting.await.unwrap().unwrap();
        assert_eq!(running.backend, "http://a");
        assert_eq!(pool.local_load(), load(1));
        assert_eq!(pool.snapshot()[0].in_flight_elsewhere, 1);

        // The other origin stops reporting: its slot is free again once the report expires.
        pool.record_peer("other".into(), load(1), Instant::now());
        pool.expire_peers(Instant::now());
        assert_eq!(pool.snapshot()[0].in_flight_elsewhere, 0);
        assert!(pool.generate(request()).await.is_ok());
        drop(running);
    }

    #[tokio::test]
    async fn a_stalled_backend_is_ejected_and_its_waiting_requests_move_at_once() {
        let pool = Pool::new(
            vec![
                Arc::new(Silent("http://hung".into())),
                fake("http://ok", true),
            ],
            1,
            settings(),
        );
        crate::backends::health::check_all(&pool).await;
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.generate(request()).await.map(|g| g.backend) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        pool.eject_stalled(Instant::now());
        assert!(!waiting.is_finished(), "not stalled before stall_timeout");

        tokio::time::sleep(Duration::from_millis(300)).await;
        let ejected_at = Instant::now();
        pool.eject_stalled(ejected_at);
        assert_eq!(waiting.await.unwrap().unwrap(), "http://ok");
        assert!(
            ejected_at.elapsed() < Duration::from_millis(500),
            "moved before the 1 s first-token deadline"
        );
        let hung = pool.snapshot().into_iter().find(|b| b.url == "http://hung");
        let hung = hung.unwrap();
        assert!(!hung.healthy && hung.circuit == "open", "{hung:?}");
    }

    #[tokio::test]
    async fn a_lone_silent_backend_keeps_its_requests_until_the_first_token_deadline() {
        let pool = Pool::new(vec![Arc::new(Silent("http://slow".into()))], 1, settings());
        crate::backends::health::check_all(&pool).await;
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.generate(request()).await.map(|g| g.backend) }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        pool.eject_stalled(Instant::now());
        assert!(pool.any_healthy(), "nothing else could take its requests");
        assert!(matches!(
            waiting.await.unwrap(),
            Err(PoolError::Failed(BackendError::Timeout { .. }))
        ));
    }

    #[tokio::test]
    async fn a_free_slot_goes_to_the_request_that_has_waited_longest_at_any_origin() {
        let patient = PoolSettings {
            queue_timeout: Duration::from_secs(5),
            ..settings()
        };
        let pool = Pool::new(vec![fake("http://a", false)], 1, patient);
        crate::backends::health::check_all(&pool).await;
        let later = Instant::now() + Duration::from_secs(60);
        let waiting_elsewhere = |since: Option<Instant>| Load {
            in_flight: BTreeMap::new(),
            oldest_waiting: since,
        };
        let long_ago = Instant::now().checked_sub(Duration::from_secs(5)).unwrap();
        let ask = || {
            let pool = pool.clone();
            tokio::spawn(async move { pool.generate(request()).await })
        };

        pool.record_peer("other".into(), waiting_elsewhere(Some(long_ago)), later);
        let asking = ask();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !asking.is_finished() && pool.local_load().oldest_waiting.is_some(),
            "the free slot is left to the request waiting longer at the other origin"
        );
        // That request got a slot: nobody older waits any more.
        pool.record_peer("other".into(), waiting_elsewhere(None), later);
        let first = asking.await.unwrap().unwrap();
        drop(first);

        // An older request elsewhere that never takes the slot does not keep it idle.
        pool.record_peer("other".into(), waiting_elsewhere(Some(long_ago)), later);
        let asked = Instant::now();
        let second = ask().await.unwrap().unwrap();
        assert_eq!(second.backend, "http://a");
        assert!(
            asked.elapsed() >= YIELD_WINDOW,
            "left to the other origin first"
        );
        assert!(asked.elapsed() < Duration::from_secs(1));
    }
}
