//! Envoy shared data as a small trait, and the compare-and-swap loop every counter uses.
//!
//! Each Envoy worker thread runs its own copy of the filter; shared data is the one store they
//! all see. A read returns the value with a version (`cas`); a write with that version fails
//! with a mismatch if another worker wrote in between, and the update is recomputed from the
//! fresh value. Keys are hashed into a fixed number of slots because Envoy offers no delete:
//! a key per client would let a flood of new addresses grow the store without bound.

/// Why a shared-data operation did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another worker wrote since our read.
    CasMismatch,
    /// Any other host status; the caller fails open.
    Host(u32),
}

/// The subset of Envoy's shared-data ABI the filter uses.
pub trait SharedStore {
    /// The value and its version; `(None, 0)` when the key was never written.
    ///
    /// # Errors
    /// [`StoreError::Host`] when the host refuses the read.
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), StoreError>;

    /// Writes if the stored version is still `cas` (0 writes unconditionally).
    ///
    /// # Errors
    /// [`StoreError::CasMismatch`] when another writer came first.
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError>;
}

/// How many times an update is retried on contention before the caller gives up (and fails
/// open). Contention is per key, i.e. per client, so a few retries are plenty.
pub const MAX_ATTEMPTS: u32 = 8;

/// Reads `key`, computes the new value from the current one with `f`, and writes it back with
/// compare-and-swap, retrying on contention.
///
/// `f` returns the bytes to store (or `None` to store nothing) and the result to hand back.
///
/// # Errors
/// The last [`StoreError`] when the host fails or contention outlasts [`MAX_ATTEMPTS`].
pub fn update<S: SharedStore + ?Sized, T>(
    store: &mut S,
    key: &str,
    mut f: impl FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T),
) -> Result<T, StoreError> {
    let mut last = StoreError::CasMismatch;
    for _ in 0..MAX_ATTEMPTS {
        let (current, cas) = store.get(key)?;
        let (next, result) = f(current.as_deref());
        let Some(next) = next else { return Ok(result) };
        match store.set(key, &next, cas) {
            Ok(()) => return Ok(result),
            Err(StoreError::CasMismatch) => last = StoreError::CasMismatch,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// FNV-1a, 64 bit: stable across builds and platforms so every worker (and the wasm and
/// native builds in tests) maps a client to the same slot.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A worker's own table. foldhash reads eight bytes a step where FNV reads one, which counts
/// on the hot path: several of these tables are keyed by a whole request body, a cache key or
/// an address on every request. std's default hasher would seed itself from the host's
/// random source, an import this module does without, so each table is seeded by its maker
/// ([`seeded`]); a table whose keys a client chooses is seeded from the clock, so colliding
/// keys cannot be computed offline.
pub type SeededMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The hasher of a [`SeededMap`] started from `seed`.
pub const fn seeded(seed: u64) -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(seed)
}

/// The shared-data key of `name` in one of `slots` slots under `prefix`.
pub fn slot_key(prefix: &str, name: &str, slots: u32) -> String {
    let slot = fnv1a(&[prefix.as_bytes(), name.as_bytes()]) % u64::from(slots.max(1));
    format!("libriassist:{prefix}:{slot}")
}

/// An in-memory store for tests (here and in the cross-component fuzz tests), with optional
/// injected contention.
pub mod memory {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct MemoryStore {
        pub data: HashMap<String, (Vec<u8>, u32)>,
        /// Number of upcoming writes that fail as if another worker had written first.
        pub conflicts: u32,
        pub fail_reads: bool,
    }

    impl SharedStore for MemoryStore {
        fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), StoreError> {
            if self.fail_reads {
                return Err(StoreError::Host(10));
            }
            Ok(self
                .data
                .get(key)
                .map_or((None, 0), |(v, c)| (Some(v.clone()), *c)))
        }

        fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
            if self.conflicts > 0 {
                self.conflicts -= 1;
                // Another worker's write bumps the version.
                let entry = self.data.entry(key.to_owned()).or_insert((Vec::new(), 0));
                entry.1 += 1;
                return Err(StoreError::CasMismatch);
            }
            let entry = self.data.entry(key.to_owned()).or_insert((Vec::new(), 0));
            if cas != 0 && entry.1 != cas {
                return Err(StoreError::CasMismatch);
            }
            *entry = (value.to_vec(), entry.1 + 1);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;

    fn incr(store: &mut MemoryStore) -> Result<u8, StoreError> {
        update(store, "k", |cur| {
            let n = cur.and_then(|c| c.first().copied()).unwrap_or(0) + 1;
            (Some(vec![n]), n)
        })
    }

    #[test]
    fn retries_on_contention_then_gives_up() {
        let mut store = MemoryStore::default();
        assert_eq!(incr(&mut store), Ok(1));
        store.conflicts = MAX_ATTEMPTS - 1;
        assert_eq!(incr(&mut store), Ok(2));
        store.conflicts = MAX_ATTEMPTS;
        assert_eq!(incr(&mut store), Err(StoreError::CasMismatch));
        store.fail_reads = true;
        assert_eq!(incr(&mut store), Err(StoreError::Host(10)));
    }

    #[test]
    fn slots_are_stable_and_bounded() {
        let k = slot_key("rl:chat", "ip:1.2.3.4", 16);
        assert_eq!(k, slot_key("rl:chat", "ip:1.2.3.4", 16));
        assert!(k.starts_with("libriassist:rl:chat:"));
        let distinct: std::collections::HashSet<_> = (0..1000)
            .map(|i| slot_key("rl:chat", &format!("ip:10.0.{}.{}", i / 256, i % 256), 16))
            .collect();
        assert_eq!(distinct.len(), 16);
        assert_eq!(slot_key("p", "x", 0), slot_key("p", "y", 0));
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }
}
