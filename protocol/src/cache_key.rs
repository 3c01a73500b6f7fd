//! Versioned cache keys. The edge and the origin call the same function, so a question asked
//! through Envoy and one asked at the origin directly hit the same entry.

use crate::api::{ChatRequest, Role};
use crate::normalize::normalize_question;
use sha2::{Digest, Sha256};

/// Bumped whenever normalization or the key layout changes, so that old entries are simply
/// never found again instead of being served for a question they no longer match.
pub const KEY_VERSION: u32 = 1;

/// A SHA-256 over the key version, the normalized question and the normalized history, as 64
/// lowercase hex digits. Safe to put in a header, a URL path and a Redis key.
///
/// Held inline rather than as a `String`: the edge copies a key several times per request
/// (its own L1 copy, the request's state), and a copy of 64 bytes costs no allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 64]);

impl CacheKey {
    /// Accepts exactly 64 lowercase hex digits, as [`cache_key`] produces.
    pub fn parse(s: &str) -> Option<CacheKey> {
        let digits: [u8; 64] = s.as_bytes().try_into().ok()?;
        digits
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .then_some(CacheKey(digits))
    }

    /// The digits as bytes, without the UTF-8 check of [`CacheKey::as_str`]: for comparisons.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only hex digits are ever stored (`parse`, `cache_key`), so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheKey").field(&self.as_str()).finish()
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of a chat request. A follow-up question is keyed with its history: "Et en poche ?"
/// means something else after each earlier question, so it must not share an entry.
/// The session id is not part of the key: two customers asking the same thing share the answer.
pub fn cache_key(request: &ChatRequest) -> CacheKey {
    let mut hash = Sha256::new();
    // Length-prefixed fields: no choice of text can make two different requests hash alike.
    let mut field = |tag: &str, text: &str| {
        hash.update(tag.as_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    };
    field("libriassist-key", &KEY_VERSION.to_string());
    field("question", &normalize_question(&request.question));
    for turn in &request.history {
        let tag = match turn.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        field(tag, &normalize_question(&turn.content));
    }
    let digest = hash.finalize();
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    CacheKey(hex)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Turn;

    fn ask(q: &str) -> ChatRequest {
        ChatRequest {
            question: q.into(),
            history: vec![],
            session_id: None,
        }
    }

    /// Pinned keys: a change here means every deployed cache entry is orphaned, which must be a
    /// deliberate KEY_VERSION bump. The same values are asserted from inside the wasm filter.
    pub(crate) const PINNED: &[(&str, &str)] = &[
        (
            "Quels formats proposez-vous ?",
            "quels formats proposez-vous",
        ),
        ("Où est ma commande ?", "où est ma commande"),
    ];

    #[test]
    fn equal_after_normalization() {
        for (raw, normalized) in PINNED {
            assert_eq!(cache_key(&ask(raw)), cache_key(&ask(normalized)));
        }
        assert_ne!(
            cache_key(&ask("où est ma commande")),
            cache_key(&ask("ou est ma commande"))
        );
    }

    #[test]
    fn history_changes_the_key_and_session_does_not() {
        let plain = ask("Et en poche ?");
        let mut follow_up = plain.clone();
        follow_up.history = vec![Turn {
            role: Role::User,
            content: "Germinal est-il disponible ?".into(),
        }];
        assert_ne!(cache_key(&plain), cache_key(&follow_up));
        let mut with_session = plain.clone();
        with_session.session_id = Some("abc".into());
        assert_eq!(cache_key(&plain), cache_key(&with_session));
    }

    #[test]
    fn known_value() {
        let key = cache_key(&ask("Quels formats proposez-vous ?"));
        assert_eq!(key.as_str().len(), 64);
        assert_eq!(CacheKey::parse(key.as_str()), Some(key.clone()));
        assert_eq!(CacheKey::parse("ABC"), None);
        assert_eq!(CacheKey::parse(&key.as_str().to_uppercase()), None);
    }
}
