//! The proxy-wasm wire format for header maps and property paths, encoded and decoded
//! without panicking. The SDK's own decoder unwraps on non-UTF-8 bytes and short buffers; a
//! header a client controls must not be able to crash the worker.
//!
//! Map layout: `u32 count`, then `count` pairs of `u32 key_len, u32 value_len`, then each key
//! and value followed by a NUL byte. All integers little-endian.

/// Decodes a serialized header map. `None` when the bytes are not a well-formed map.
pub fn decode(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = word(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = word(4 + i * 8)?;
        let value_len = word(8 + i * 8)?;
        let key = bytes.get(data..data.checked_add(key_len)?)?.to_vec();
        data = data.checked_add(key_len)?.checked_add(1)?;
        let value = bytes.get(data..data.checked_add(value_len)?)?.to_vec();
        data = data.checked_add(value_len)?.checked_add(1)?;
        out.push((key, value));
    }
    Some(out)
}

/// Calls `f` with each pair of a serialized header map, borrowed, in order. Returns false
/// (after the pairs before the damage) when the bytes are not a well-formed map.
pub fn for_each<'a>(bytes: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let Some(count) = word(0) else { return false };
    let Some(mut data) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
        return false;
    };
    if data > bytes.len() {
        return false;
    }
    for i in 0..count {
        let pair = (|| {
            let key_len = word(4 + i * 8)?;
            let value_len = word(8 + i * 8)?;
            let key = bytes.get(data..data.checked_add(key_len)?)?;
            let value_at = data.checked_add(key_len)?.checked_add(1)?;
            let value = bytes.get(value_at..value_at.checked_add(value_len)?)?;
            data = value_at.checked_add(value_len)?.checked_add(1)?;
            Some((key, value))
        })();
        match pair {
            Some((key, value)) => f(key, value),
            None => return false,
        }
    }
    true
}

/// Encodes pairs in the layout [`decode`] reads.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let size: usize = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + v.as_ref().len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// A property path (`["source", "address"]`) as the host expects it: segments joined by NUL.
pub fn property_path(segments: &[&str]) -> Vec<u8> {
    segments.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_malformed() {
        let pairs = vec![
            (b":path".to_vec(), b"/api/v1/chat".to_vec()),
            (b"x".to_vec(), b"\xff\x00".to_vec()),
        ];
        assert_eq!(decode(&encode(&pairs)), Some(pairs.clone()));
        let mut seen = Vec::new();
        assert!(for_each(&encode(&pairs), |k, v| seen.push((k.to_vec(), v.to_vec()))));
        assert_eq!(seen, pairs);
        assert_eq!(decode(&[]), Some(vec![]));
        assert_eq!(decode(&[1, 0, 0]), None);
        assert_eq!(decode(&[255, 255, 255, 255]), None);
        assert_eq!(decode(&[1, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, b'a']), None);
        assert_eq!(property_path(&["source", "address"]), b"source\0address");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn for_each_agrees_with_decode(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut seen = Vec::new();
            let ok = for_each(&bytes, |k, v| seen.push((k.to_vec(), v.to_vec())));
            match decode(&bytes) {
                Some(pairs) => prop_assert!(ok && seen == pairs),
                None => prop_assert!(!ok),
            }
        }

        #[test]
        fn encode_decode(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..40)), 0..10)) {
            prop_assert_eq!(decode(&encode(&pairs)), Some(pairs));
        }
    }
}
