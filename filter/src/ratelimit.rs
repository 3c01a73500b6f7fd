//! Per-client limits held in shared data so that all Envoy workers count together: the token
//! bucket of each route class, and the number of streams a client has open.
//!
//! Both are read-modify-write under compare-and-swap (`shared::update`). One gap remains: Envoy
//! has no create-if-absent, so two workers meeting a brand-new client in the same instant can
//! each create its state, and that client gets at most one extra request per worker, once.
//!
//! When the store fails the caller lets the request through: a rate limiter that turns a host
//! hiccup into refusals would do more harm than the abuse it stops.
//!
//! Generous limits are not paid for with two shared-data calls on every request: a worker
//! takes a few tokens at once from the shared bucket ([`lease_size`], 1/32 of the burst, at
//! most 64, so 1 for small bursts) and spends them locally ([`check_leased`]). Every request
//! let through still spent a token taken from the one shared bucket, under compare-and-swap,
//! so the workers together never let through more than the bucket allows. Tokens a worker
//! holds are kept at most until its next tick ([`Leases::clear`], every second): a client
//! gets at most `lease_size - 1` requests per worker sooner than a single bucket would allow
//! (a few percent of its burst), and an idle client's held tokens are simply dropped.

use crate::config::Config;
use crate::identity::ClientId;
use crate::route::RouteClass;
use crate::shared::{fnv1a, slot_key, update, SeededMap, SharedStore, StoreError};
use crate::token_bucket::{take, take_up_to, Bucket, Limit, Outcome};

fn limit_of(config: &Config, class: RouteClass) -> Limit {
    match class {
        RouteClass::Chat => config.rate_limits.chat,
        RouteClass::Stream => config.rate_limits.stream,
        RouteClass::Other => config.rate_limits.other,
    }
}

/// Takes one token from the client's bucket for `class`.
///
/// # Errors
/// The store's error when shared data cannot be read or written.
pub fn check<S: SharedStore + ?Sized>(
    store: &mut S,
    config: &Config,
    class: RouteClass,
    client: &ClientId,
    now_ns: u64,
) -> Result<Outcome, StoreError> {
    let limit = limit_of(config, class);
    let key = slot_key(
        &format!("rl:{}", class.as_str()),
        client.as_str(),
        config.client_slots,
    );
    update(store, &key, |current| {
        let (bucket, outcome) = take(current.and_then(Bucket::decode), limit, now_ns);
        (Some(bucket.encode().to_vec()), outcome)
    })
}

/// Most tokens a worker takes from a shared bucket at once.
pub const MAX_LEASE: u32 = 64;
/// A lease is at most this fraction of the burst.
pub const LEASE_DIVISOR: u32 = 32;
/// Clients whose leases one worker keeps; past this the table starts over (tokens dropped).
pub const MAX_LEASED_CLIENTS: usize = 4096;

/// How many tokens a worker takes from the shared bucket at once under `limit`.
pub fn lease_size(limit: Limit) -> u32 {
    (limit.burst / LEASE_DIVISOR).clamp(1, MAX_LEASE)
}

/// Tokens this worker took from shared buckets and has not spent yet, by route class and
/// client slot.
#[derive(Debug, Default)]
pub struct Leases {
    held: SeededMap<(RouteClass, u64), u32>,
    /// One token at a time: held tokens could not be dropped on time (no tick).
    disabled: bool,
}

impl Leases {
    /// Takes one token at a time from now on.
    pub fn disable(&mut self) {
        self.disabled = true;
        self.held.clear();
    }

    /// Drops every held token (the worker's tick calls this).
    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// Tokens held for one class and slot; for tests.
    pub fn held(&self, class: RouteClass, slot: u64) -> u32 {
        self.held.get(&(class, slot)).copied().unwrap_or(0)
    }
}

/// The slot number of `client` for `class`, as [`check`] hashes it.
pub fn client_slot(config: &Config, class: RouteClass, client: &ClientId) -> u64 {
    let prefix = match class {
        RouteClass::Chat => "rl:chat",
        RouteClass::Stream => "rl:stream",
        RouteClass::Other => "rl:other",
    };
    fnv1a(&[prefix.as_bytes(), client.as_str().as_bytes()]) % u64::from(config.client_slots.max(1))
}

/// [`check`] spending tokens this worker already holds first; when it holds none, takes up
/// to [`lease_size`] from the shared bucket. `now_ns` is only asked for then.
///
/// # Errors
/// The store's error when shared data cannot be read or written.
pub fn check_leased<S: SharedStore + ?Sized>(
    store: &mut S,
    leases: &mut Leases,
    config: &Config,
    class: RouteClass,
    client: &ClientId,
    now_ns: impl FnOnce() -> u64,
) -> Result<Outcome, StoreError> {
    let limit = limit_of(config, class);
    let slot = client_slot(config, class, client);
    if let Some(held) = leases.held.get_mut(&(class, slot)) {
        if *held > 0 {
            *held -= 1;
            return Ok(Outcome {
                allowed: true,
                limit: limit.burst,
                remaining: *held,
                reset_seconds: 0,
                retry_after_seconds: 0,
            });
        }
    }
    let want = if leases.disabled {
        1
    } else {
        lease_size(limit)
    };
    let key = format!("libriassist:rl:{}:{slot}", class.as_str());
    let now = now_ns();
    let (outcome, granted) = update(store, &key, |current| {
        let (bucket, outcome, granted) =
            take_up_to(current.and_then(Bucket::decode), limit, now, want);
        (Some(bucket.encode().to_vec()), (outcome, granted))
    })?;
    if granted > 1 {
        if leases.held.len() >= MAX_LEASED_CLIENTS && !leases.held.contains_key(&(class, slot)) {
            leases.held.clear();
        }
        leases.held.insert((class, slot), granted - 1);
    }
    Ok(outcome)
}

/// Open streams of one slot and when the count stops being believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    open: u32,
    expires_ns: u64,
}

impl Streams {
    fn decode(bytes: Option<&[u8]>, now_ns: u64) -> Streams {
        let parsed = bytes.and_then(|b| {
            let open: [u8; 4] = b.get(..4)?.try_into().ok()?;
            let expires: [u8; 8] = b.get(4..12)?.try_into().ok()?;
            Some(Streams {
                open: u32::from_le_bytes(open),
                expires_ns: u64::from_le_bytes(expires),
            })
        });
        match parsed {
            Some(s) if s.expires_ns > now_ns => s,
            _ => Streams {
                open: 0,
                expires_ns: now_ns,
            },
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        out.extend_from_slice(&self.open.to_le_bytes());
        out.extend_from_slice(&self.expires_ns.to_le_bytes());
        out
    }
}

/// The shared-data key counting a client's streams.
pub fn streams_key(config: &Config, client: &ClientId) -> String {
    slot_key("streams", client.as_str(), config.client_slots)
}

/// Counts one more open stream unless the client is at its cap. `Ok(true)` when a slot was
/// taken (and must later be given back with [`release_stream`]), `Ok(false)` at the cap.
///
/// Each acquisition pushes the lease forward; a count nobody touched for the whole lease is
/// dropped, so a worker VM that died mid-stream cannot lock its clients out for good.
///
/// # Errors
/// The store's error when shared data cannot be read or written.
pub fn acquire_stream<S: SharedStore + ?Sized>(
    store: &mut S,
    key: &str,
    max: u32,
    now_ns: u64,
    lease_ns: u64,
) -> Result<bool, StoreError> {
    update(store, key, |current| {
        let s = Streams::decode(current, now_ns);
        if s.open >= max {
            return (None, false);
        }
        let next = Streams {
            open: s.open + 1,
            expires_ns: now_ns.saturating_add(lease_ns),
        };
        (Some(next.encode()), true)
    })
}

/// Gives back a stream slot taken by [`acquire_stream`].
///
/// # Errors
/// The store's error when shared data cannot be read or written.
pub fn release_stream<S: SharedStore + ?Sized>(
    store: &mut S,
    key: &str,
    now_ns: u64,
) -> Result<(), StoreError> {
    update(store, key, |current| {
        let s = Streams::decode(current, now_ns);
        if s.open == 0 {
            return (None, ());
        }
        (
            Some(
                Streams {
                    open: s.open - 1,
                    ..s
                }
                .encode(),
            ),
            (),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{identify, Evidence};
    use crate::shared::memory::MemoryStore;

    const S: u64 = 1_000_000_000;

    fn client(ip: &str) -> ClientId {
        identify(
            None,
            &Default::default(),
            Evidence {
                peer: Some(ip),
                ..Evidence::default()
            },
            true,
        )
        .unwrap()
    }

    #[test]
    fn clients_and_classes_have_their_own_buckets() {
        let mut config = Config::default();
        config.rate_limits.chat = Limit {
            per_second: 0.001,
            burst: 2,
        };
        let mut store = MemoryStore::default();
        let (a, b) = (client("10.0.0.1:1"), client("10.0.0.2:1"));
        assert!(
            check(&mut store, &config, RouteClass::Chat, &a, S)
                .unwrap()
                .allowed
        );
        assert!(
            check(&mut store, &config, RouteClass::Chat, &a, S)
                .unwrap()
                .allowed
        );
        let refused = check(&mut store, &config, RouteClass::Chat, &a, S).unwrap();
        assert!(!refused.allowed);
        assert_eq!((refused.limit, refused.remaining), (2, 0));
        assert!(
            check(&mut store, &config, RouteClass::Chat, &b, S)
                .unwrap()
                .allowed
        );
        assert!(
            check(&mut store, &config, RouteClass::Stream, &a, S)
                .unwrap()
                .allowed
        );
    }

    #[test]
    fn leases_spend_shared_tokens_and_never_more() {
        let mut config = Config::default();
        config.rate_limits.other = Limit {
            per_second: 0.001,
            burst: 320,
        };
        assert_eq!(lease_size(config.rate_limits.other), 10);
        assert_eq!(
            lease_size(Limit {
                per_second: 1.0,
                burst: 10
            }),
            1
        );
        assert_eq!(
            lease_size(Limit {
                per_second: 1.0,
                burst: 1_000_000
            }),
            MAX_LEASE
        );
        let mut store = MemoryStore::default();
        let (mut w1, mut w2) = (Leases::default(), Leases::default());
        let a = client("10.0.0.1:1");
        // Key and slot agree with the one-token check.
        let key = slot_key("rl:other", a.as_str(), config.client_slots);
        assert!(key.ends_with(&format!(":{}", client_slot(&config, RouteClass::Other, &a))));
        let mut allowed = 0;
        let mut reads = 0;
        for i in 0..400 {
            let worker = if i % 3 == 0 { &mut w1 } else { &mut w2 };
            let outcome = check_leased(&mut store, worker, &config, RouteClass::Other, &a, || {
                reads += 1;
                S
            })
            .unwrap();
            allowed += u32::from(outcome.allowed);
        }
        // Two workers: at most 9 tokens stranded in each; none created.
        assert!((320 - 18..=320).contains(&allowed), "{allowed}");
        // About 32 shared reads for the 320 tokens, then one per refused request.
        assert!(reads <= 32 + 2 + 80, "{reads}");
        let shared = Bucket::decode(&store.data[&key].0).unwrap();
        assert!(shared.tokens < 1.0);
        // Disabled, nothing is held.
        let mut w3 = Leases::default();
        w3.disable();
        let c = client("10.0.0.3:1");
        check_leased(&mut store, &mut w3, &config, RouteClass::Other, &c, || S).unwrap();
        assert_eq!(
            w3.held(
                RouteClass::Other,
                client_slot(&config, RouteClass::Other, &c)
            ),
            0
        );
        // A cleared lease table goes back to the shared bucket, which is empty.
        w1.clear();
        assert_eq!(w1.held(RouteClass::Other, 0), 0);
        let o = check_leased(&mut store, &mut w1, &config, RouteClass::Other, &a, || S).unwrap();
        assert!(!o.allowed);
        // Small bursts are never leased: every request is checked in shared data.
        config.rate_limits.other = Limit {
            per_second: 0.001,
            burst: 3,
        };
        let b = client("10.0.0.2:1");
        let statuses: Vec<bool> = (0..4)
            .map(|i| {
                let worker = if i % 2 == 0 { &mut w1 } else { &mut w2 };
                check_leased(&mut store, worker, &config, RouteClass::Other, &b, || S)
                    .unwrap()
                    .allowed
            })
            .collect();
        assert_eq!(statuses, [true, true, true, false]);
    }

    #[test]
    fn contention_is_retried() {
        let config = Config::default();
        let mut store = MemoryStore {
            conflicts: 3,
            ..MemoryStore::default()
        };
        let outcome = check(
            &mut store,
            &config,
            RouteClass::Other,
            &client("1.1.1.1:1"),
            S,
        )
        .unwrap();
        assert!(outcome.allowed);
        assert_eq!(outcome.remaining, config.rate_limits.other.burst - 1);
    }

    #[test]
    fn stream_cap_release_and_lease() {
        let mut store = MemoryStore::default();
        let key = "libriassist:streams:1";
        assert_eq!(acquire_stream(&mut store, key, 2, S, 60 * S), Ok(true));
        assert_eq!(acquire_stream(&mut store, key, 2, S, 60 * S), Ok(true));
        assert_eq!(acquire_stream(&mut store, key, 2, S, 60 * S), Ok(false));
        release_stream(&mut store, key, 2 * S).unwrap();
        assert_eq!(acquire_stream(&mut store, key, 2, 2 * S, 60 * S), Ok(true));
        // Leaked slots stop counting once the lease has run out.
        assert_eq!(
            acquire_stream(&mut store, key, 2, 100 * S, 60 * S),
            Ok(true)
        );
        // Releasing more than was taken never wraps around.
        for _ in 0..5 {
            release_stream(&mut store, key, 100 * S).unwrap();
        }
        assert_eq!(
            Streams::decode(store.data.get(key).map(|(v, _)| v.as_slice()), 100 * S).open,
            0
        );
    }
}
