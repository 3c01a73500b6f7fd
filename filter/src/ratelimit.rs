//! Per-client limits held in shared data so that all Envoy workers count together: the token
//! bucket of each route class, and the number of streams a client has open.
//!
//! Both are read-modify-write under compare-and-swap (`shared::update`). One gap remains: Envoy
//! has no create-if-absent, so two workers meeting a brand-new client in the same instant can
//! each create its state, and that client gets at most one extra request per worker, once.
//!
//! When the store fails the caller lets the request through: a rate limiter that turns a host
//! hiccup into refusals would do more harm than the abuse it stops.

use crate::config::Config;
use crate::identity::ClientId;
use crate::route::RouteClass;
use crate::shared::{slot_key, update, SharedStore, StoreError};
use crate::token_bucket::{take, Bucket, Outcome};

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
    let limit = match class {
        RouteClass::Chat => config.rate_limits.chat,
        RouteClass::Stream => config.rate_limits.stream,
        RouteClass::Other => config.rate_limits.other,
    };
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
    use crate::token_bucket::Limit;

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
