//! Coalescing: identical questions asked at the same time share one generation.
//!
//! The first request for a key (scope + cache key) leads: it runs the rest of the pipeline in
//! a task of its own ([`Lead::drive`]) that records every event of the answer in the flight.
//! Requests for the same key that arrive while it runs join: each gets the answer from its
//! first token, what was generated before it joined at once, then the rest as it comes. So
//! twenty customers asking the same thing cost one generation, and none of them waits longer
//! than the first.
//!
//! Lifecycle of a flight:
//! - **starting**: the leader's task runs the semantic cache, retrieval and the backend call;
//!   joiners wait for its first token (the same wait a lone request has).
//! - **streaming**: events are appended; every subscriber reads them at its own pace.
//! - **ended**: `done` (the complete answer is handed to the completion hook, which stores it in
//!   the caches, and only then is the flight retired, so a request arriving meanwhile still
//!   joins rather than generating again), `error`, or a failure before the first token, which
//!   every joiner receives as the same HTTP error.
//!
//! The generation does not belong to the leader's connection: it runs while anyone listens. When
//! the last subscriber leaves, it is cancelled (dropping the backend stream frees the slot).

use super::{Answer, AnswerEvent, RequestContext};
use crate::backends::PoolError;
use crate::error::AppError;
use crate::metrics;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use libriassist_protocol::sse::{DoneEvent, MetaEvent};
use libriassist_protocol::{CacheLayer, ErrorCode, ErrorDetail};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::{watch, Notify};

type FlightMap = Arc<Mutex<HashMap<String, Arc<Flight>>>>;

pub struct Coalesce {
    flights: FlightMap,
    enabled: bool,
}

pub enum Coalesced {
    /// Joined a running generation: its answer (labelled `coalesced`), or the error it failed with.
    Joined(Result<Answer, AppError>),
    /// Nobody is answering this question: the caller leads, see [`Lead::drive`].
    Lead(Lead),
}

/// A complete answer, as the completion hook receives it.
#[derive(Debug, Clone)]
pub struct Completed {
    pub meta: MetaEvent,
    pub text: String,
    pub done: DoneEvent,
}

struct Flight {
    state: watch::Sender<FlightState>,
    /// Changed only under the map's lock, so "nobody listens" and "someone joins" cannot race.
    subscribers: AtomicUsize,
    abandoned: Notify,
}

#[derive(Default)]
struct FlightState {
    meta: Option<MetaEvent>,
    events: Vec<AnswerEvent>,
    /// Failed before the first token.
    failed: Option<Arc<AppError>>,
    ended: bool,
}

fn lock(map: &FlightMap) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
    // Each critical section is one map operation and a counter update; nothing can be left
    // half-done by a panic.
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Coalesce {
    /// `enabled = false`: every request leads its own flight, nobody joins.
    pub fn new(enabled: bool) -> Self {
        Coalesce {
            flights: Arc::new(Mutex::new(HashMap::new())),
            enabled,
        }
    }

    /// Generations running now (for stats).
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }

    /// Joins the flight of `key` or, when there is none, starts it.
    pub async fn run(&self, key: String, ctx: &RequestContext) -> Coalesced {
        let (flight, key, leads) = {
            let mut map = lock(&self.flights);
            match map.get(&key).filter(|_| self.enabled) {
                Some(flight) => {
                    flight.subscribers.fetch_add(1, Ordering::SeqCst);
                    (Arc::clone(flight), key, false)
                }
                None => {
                    let flight = Arc::new(Flight {
                        state: watch::Sender::new(FlightState::default()),
                        subscribers: AtomicUsize::new(1),
                        abandoned: Notify::new(),
                    });
                    // Without coalescing the flight is private: a unique key nobody looks up.
                    let key = if self.enabled {
                        key
                    } else {
                        format!("{key}\n{}", uuid::Uuid::new_v4())
                    };
                    map.insert(key.clone(), Arc::clone(&flight));
                    (flight, key, true)
                }
            }
        };
        let registration = Registration {
            flight: Arc::clone(&flight),
            flights: Arc::clone(&self.flights),
        };
        if leads {
            return Coalesced::Lead(Lead {
                flight: Some(flight),
                key,
                flights: Arc::clone(&self.flights),
                registration: Some(registration),
            });
        }
        tracing::debug!(request_id = %ctx.request_id, key = %ctx.cache_key, "joined a running generation");
        let joined = subscribe(
            flight,
            registration,
            Some(CacheLayer::Coalesced),
            ctx.received,
        )
        .await;
        if joined.is_ok() {
            metrics::cache_hit(CacheLayer::Coalesced.as_str());
        }
        Coalesced::Joined(joined)
    }
}

/// Counts a subscriber for as long as it listens.
struct Registration {
    flight: Arc<Flight>,
    flights: FlightMap,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _map = lock(&self.flights);
        if self.flight.subscribers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.flight.abandoned.notify_one();
        }
    }
}

/// The right (and duty) to produce the answer of a flight.
pub struct Lead {
    flight: Option<Arc<Flight>>,
    key: String,
    flights: FlightMap,
    registration: Option<Registration>,
}

impl Drop for Lead {
    /// A lead dropped without driving (the caller returned early) must not leave joiners
    /// waiting for a first token that will never come.
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            fail(
                &flight,
                AppError::Internal("the question was abandoned before it was answered".into()),
            );
            retire(&self.flights, &self.key, &flight);
        }
    }
}

impl Lead {
    /// Runs `produce` (the rest of the pipeline) in its own task, feeds every subscriber from
    /// it, and resolves with the leader's own answer at the first token. When the answer
    /// completes with `done`, `on_complete` gets it, with what `produce` returned beside it,
    /// before the flight is retired.
    ///
    /// # Errors
    /// What `produce` failed with (every joiner gets the same).
    pub async fn drive<T, P, C>(
        mut self,
        ctx: &RequestContext,
        produce: P,
        on_complete: C,
    ) -> Result<Answer, AppError>
    where
        T: Send + 'static,
        P: Future<Output = Result<(Answer, T), AppError>> + Send + 'static,
        C: FnOnce(Completed, T) -> BoxFuture<'static, ()> + Send + 'static,
    {
        let (Some(flight), Some(registration)) = (self.flight.take(), self.registration.take())
        else {
            return Err(AppError::Internal("flight already driven".into()));
        };
        let flights = Arc::clone(&self.flights);
        let key = self.key.clone();
        let driven = Arc::clone(&flight);
        let request_id = ctx.request_id.clone();
        tokio::spawn(async move {
            match produce.await {
                Err(e) => {
                    fail(&driven, e);
                    retire(&flights, &key, &driven);
                }
                Ok((answer, extra)) => {
                    if let Some(completed) = pump(&driven, &flights, answer).await {
                        on_complete(completed, extra).await;
                    }
                    retire(&flights, &key, &driven);
                }
            }
            tracing::trace!(request_id = %request_id, "flight ended");
        });
        subscribe(flight, registration, None, ctx.received).await
    }
}

/// Moves the answer's events into the flight until it ends or nobody listens any more.
/// Returns the complete answer when it ended with `done`.
async fn pump(flight: &Flight, flights: &FlightMap, answer: Answer) -> Option<Completed> {
    let Answer { meta, mut events } = answer;
    flight.state.send_modify(|s| s.meta = Some(meta.clone()));
    let mut text = String::new();
    loop {
        tokio::select! {
            event = events.next() => {
                let event = event.unwrap_or_else(|| {
                    AnswerEvent::Error(ErrorDetail::new(ErrorCode::Internal, "the answer ended unexpectedly"))
                });
                let end = match &event {
                    AnswerEvent::Token(t) => {
                        text.push_str(t);
                        None
                    }
                    AnswerEvent::Done(done) => Some(Some(done.clone())),
                    AnswerEvent::Error(_) => Some(None),
                };
                flight.state.send_modify(|s| {
                    s.events.push(event);
                    s.ended = end.is_some();
                });
                if let Some(done) = end {
                    return done.map(|done| Completed { meta, text, done });
                }
            }
            () = flight.abandoned.notified() => {
                let map = lock(flights);
                if flight.subscribers.load(Ordering::SeqCst) == 0 {
                    drop(map);
                    // Dropping `events` cancels the backend generation.
                    flight.state.send_modify(|s| s.ended = true);
                    return None;
                }
            }
        }
    }
}

fn fail(flight: &Flight, error: AppError) {
    let error = Arc::new(error);
    flight.state.send_modify(|s| {
        s.failed = Some(error);
        s.ended = true;
    });
}

/// Removes the flight from the map, unless the key already belongs to a newer flight.
fn retire(flights: &FlightMap, key: &str, flight: &Arc<Flight>) {
    let mut map = lock(flights);
    if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
        map.remove(key);
    }
}

/// Waits for the flight's first token, then streams it. `layer` overrides `meta.cache` (joiners
/// see `coalesced`; the leader keeps what its pipeline said: `miss` or `semantic`).
async fn subscribe(
    flight: Arc<Flight>,
    registration: Registration,
    layer: Option<CacheLayer>,
    received: Instant,
) -> Result<Answer, AppError> {
    let mut rx = flight.state.subscribe();
    let started = match rx
        .wait_for(|s| s.meta.is_some() || s.failed.is_some())
        .await
    {
        Ok(state) => match (&state.meta, &state.failed) {
            (_, Some(error)) => Err(replicate(error)),
            (Some(meta), None) => Ok(meta.clone()),
            (None, None) => Err(AppError::Internal("flight started without meta".into())),
        },
        Err(_) => Err(AppError::Internal("the generation task stopped".into())),
    };
    let mut meta = started?;
    if let Some(layer) = layer {
        meta.cache = layer;
        metrics::ttft(layer.as_str(), received.elapsed().as_secs_f64());
    }
    Ok(Answer {
        meta,
        events: events(rx, registration, received),
    })
}

fn events(
    mut rx: watch::Receiver<FlightState>,
    registration: Registration,
    received: Instant,
) -> BoxStream<'static, AnswerEvent> {
    async_stream::stream! {
        let _registration = registration;
        let mut next = 0;
        loop {
            let (batch, ended) = {
                let state = rx.borrow_and_update();
                (state.events.get(next..).unwrap_or_default().to_vec(), state.ended)
            };
            next += batch.len();
            for event in batch {
                match event {
                    AnswerEvent::Done(mut done) => {
                        // Each subscriber's own wait, not the leader's.
                        done.timings.total_ms = (received.elapsed().as_secs_f64() * 1e6).round() / 1e3;
                        yield AnswerEvent::Done(done);
                        return;
                    }
                    AnswerEvent::Error(detail) => {
                        yield AnswerEvent::Error(detail);
                        return;
                    }
                    token => yield token,
                }
            }
            if ended || rx.changed().await.is_err() {
                // Ended without a terminal event we have not read yet? Read once more, then give up.
                let rest: Vec<AnswerEvent> = rx.borrow().events.get(next..).unwrap_or_default().to_vec();
                if rest.is_empty() {
                    yield AnswerEvent::Error(ErrorDetail::new(ErrorCode::BackendFailed, "the answer was interrupted; please retry"));
                    return;
                }
            }
        }
    }
    .boxed()
}

/// The same error for another joiner. `AppError` is not `Clone` (its sources are not), but each
/// variant carries what is needed to rebuild an equal one.
fn replicate(error: &AppError) -> AppError {
    match error {
        AppError::Client(d) => AppError::Client(d.clone()),
        AppError::Interrupted(d) => AppError::Interrupted(d.clone()),
        AppError::Draining => AppError::Draining,
        AppError::Internal(m) => AppError::Internal(m.clone()),
        AppError::Pool(p) => AppError::Pool(match p {
            PoolError::NoBackend => PoolError::NoBackend,
            PoolError::QueueFull(n) => PoolError::QueueFull(*n),
            PoolError::QueueTimeout(d) => PoolError::QueueTimeout(*d),
            PoolError::Failed(e) => PoolError::Failed(e.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::{cache_key, ChatRequest, Mode};
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    fn ctx(q: &str) -> RequestContext {
        let request = ChatRequest {
            question: q.into(),
            history: vec![],
            session_id: None,
        };
        RequestContext {
            request_id: "r".into(),
            received: Instant::now(),
            cache_key: cache_key(&request),
        }
    }

    fn meta() -> MetaEvent {
        MetaEvent {
            sources: vec![],
            cache: CacheLayer::Miss,
            model: "m".into(),
            mode: Mode::Generated,
        }
    }

    /// An answer whose tokens come from a channel, so the test decides when each arrives.
    fn controlled() -> (tokio::sync::mpsc::UnboundedSender<AnswerEvent>, Answer) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let events = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed();
        (
            tx,
            Answer {
                meta: meta(),
                events,
            },
        )
    }

    async fn text_of(answer: Answer) -> (String, Option<AnswerEvent>) {
        let events: Vec<AnswerEvent> = answer.events.collect().await;
        (super::super::token_text(&events), events.last().cloned())
    }

    #[tokio::test]
    async fn late_joiners_get_the_whole_answer_and_one_generation_serves_all() {
        let coalesce = Coalesce::new(true);
        let c = ctx("q");
        let Coalesced::Lead(lead) = coalesce.run("k".into(), &c).await else {
            panic!("first request leads")
        };
        let (tx, answer) = controlled();
        let produced = Arc::new(AtomicU32::new(0));
        let stored = Arc::new(Mutex::new(None));
        let (p, s) = (Arc::clone(&produced), Arc::clone(&stored));
        let leader = tokio::spawn({
            let c = c.clone();
            async move {
                lead.drive(
                    &c,
                    async move {
                        p.fetch_add(1, Ordering::SeqCst);
                        Ok((answer, 7u8))
                    },
                    move |completed, extra| {
                        Box::pin(async move {
                            *s.lock().unwrap_or_else(PoisonError::into_inner) =
                                Some((completed.text, extra));
                        })
                    },
                )
                .await
            }
        });
        tx.send(AnswerEvent::Token("Bon".into())).expect("open");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Coalesced::Joined(Ok(late)) = coalesce.run("k".into(), &c).await else {
            panic!("second request joins")
        };
        assert_eq!(late.meta.cache, CacheLayer::Coalesced);
        tx.send(AnswerEvent::Token("jour".into())).expect("open");
        tx.send(AnswerEvent::Done(DoneEvent::default()))
            .expect("open");
        let lead_answer = leader.await.expect("task").expect("answer");
        assert_eq!(lead_answer.meta.cache, CacheLayer::Miss);
        let (a, last_a) = text_of(lead_answer).await;
        let (b, last_b) = text_of(late).await;
        assert_eq!((a.as_str(), b.as_str()), ("Bonjour", "Bonjour"));
        assert!(
            matches!(last_a, Some(AnswerEvent::Done(_)))
                && matches!(last_b, Some(AnswerEvent::Done(_)))
        );
        assert_eq!(produced.load(Ordering::SeqCst), 1);
        for _ in 0..50 {
            if coalesce.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(coalesce.in_flight(), 0);
        assert_eq!(
            *stored.lock().unwrap_or_else(PoisonError::into_inner),
            Some(("Bonjour".to_owned(), 7))
        );
    }

    #[tokio::test]
    async fn a_failure_before_the_first_token_fails_every_joiner_alike() {
        let coalesce = Arc::new(Coalesce::new(true));
        let c = ctx("q");
        let Coalesced::Lead(lead) = coalesce.run("k".into(), &c).await else {
            panic!("leads")
        };
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let joiner = tokio::spawn({
            let (coalesce, c) = (Arc::clone(&coalesce), c.clone());
            async move {
                match coalesce.run("k".into(), &c).await {
                    Coalesced::Joined(result) => result.err().map(|e| e.detail().code),
                    Coalesced::Lead(_) => None,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let result = lead.drive(
            &c,
            async move {
                let _ = wait.await;
                Err::<(Answer, ()), _>(AppError::Pool(PoolError::NoBackend))
            },
            |_, ()| Box::pin(async {}),
        );
        let _ = release.send(());
        let lead_error = result.await.err().map(|e| e.detail().code);
        assert_eq!(lead_error, Some(ErrorCode::NoBackend));
        assert_eq!(joiner.await.expect("task"), Some(ErrorCode::NoBackend));
    }

    #[tokio::test]
    async fn an_interrupted_answer_ends_every_subscriber_with_an_error_and_is_not_completed() {
        let coalesce = Coalesce::new(true);
        let c = ctx("q");
        let Coalesced::Lead(lead) = coalesce.run("k".into(), &c).await else {
            panic!("leads")
        };
        let (tx, answer) = controlled();
        let completed = Arc::new(AtomicU32::new(0));
        let done = Arc::clone(&completed);
        let leader = lead.drive(&c, async move { Ok((answer, ())) }, move |_, ()| {
            Box::pin(async move {
                done.fetch_add(1, Ordering::SeqCst);
            })
        });
        tx.send(AnswerEvent::Token("Bon".into())).expect("open");
        drop(tx);
        let (text, last) = text_of(leader.await.expect("started")).await;
        assert_eq!(text, "Bon");
        assert!(matches!(last, Some(AnswerEvent::Error(_))));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(completed.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn when_everyone_leaves_the_generation_is_cancelled() {
        let coalesce = Coalesce::new(true);
        let c = ctx("q");
        let Coalesced::Lead(lead) = coalesce.run("k".into(), &c).await else {
            panic!("leads")
        };
        let (tx, answer) = controlled();
        let answer = lead
            .drive(&c, async move { Ok((answer, ())) }, |_, ()| {
                Box::pin(async {})
            })
            .await
            .expect("started");
        drop(answer);
        for _ in 0..100 {
            if tx.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(tx.is_closed(), "the backend stream was dropped");
        assert_eq!(coalesce.in_flight(), 0);
    }

    #[tokio::test]
    async fn disabled_coalescing_never_joins() {
        let coalesce = Coalesce::new(false);
        let c = ctx("q");
        let first = coalesce.run("k".into(), &c).await;
        assert!(matches!(first, Coalesced::Lead(_)));
        assert!(matches!(
            coalesce.run("k".into(), &c).await,
            Coalesced::Lead(_)
        ));
        drop(first);
    }
}
