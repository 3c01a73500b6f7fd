//! Who is asking: the client identity that rate limits and stream caps are counted against.
//!
//! With an API key configured, a known key is the identity and an unknown one is refused.
//! Otherwise the identity is the client's address: the peer Envoy sees, or, when that peer is
//! a proxy we trust, the address that proxy reported in `X-Forwarded-For`. Only hops we trust
//! are believed: anything a client writes in `X-Forwarded-For` itself sits to the left of the
//! first untrusted hop and is never reached. No I/O here; the glue passes header values in.

use crate::config::ApiKeyConfig;
use libriassist_protocol::{ErrorCode, ErrorDetail};
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// A stable, bounded-length name for a client, used as part of shared-data keys. Never holds
/// a raw API key. Shared, not copied: a worker hands out the identity it remembers for a peer
/// to every request from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(Rc<str>);

impl ClientId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An address block, as written in `trusted_proxies` (`10.0.0.0/8`, `::1`, `127.0.0.1/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`. `None` for anything else, including a prefix longer
    /// than the address.
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.network), ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, as dual-stack listeners report them) are
/// compared as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Reads an address as Envoy and proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]:443`.
pub fn parse_address(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    s.parse::<SocketAddr>().ok().map(|a| canonical(a.ip()))
}

/// The last entry of `X-Forwarded-For`, trimmed, whatever it holds.
pub fn last_entry(forwarded_for: &str) -> &str {
    forwarded_for.rsplit(',').next().unwrap_or_default().trim()
}

/// The last entry of `X-Forwarded-For` when it is an address: the peer, as Envoy with
/// `use_remote_address` records it (its own host address when the peer is loopback).
pub fn appended_peer(forwarded_for: &str) -> Option<&str> {
    let last = last_entry(forwarded_for);
    parse_address(last).map(|_| last)
}

/// Which `X-Forwarded-For` entries to believe.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressPolicy<'a> {
    /// Proxies whose reports are believed.
    pub trusted: &'a [Cidr],
    /// Envoy with `use_remote_address` appends its own record of the peer as the last entry
    /// (its own host address when the peer is loopback); that entry is the peer, not a hop
    /// to judge, and is skipped.
    pub last_entry_is_peer: bool,
}

/// What the request carries that identifies its client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The configured API key header's value, if present.
    pub api_key: Option<&'a [u8]>,
    /// `X-Forwarded-For`, all values joined with commas.
    pub forwarded_for: Option<&'a str>,
    /// The peer's address as Envoy knows it: its `source.address` property, or the entry it
    /// appended to `X-Forwarded-For` (see [`appended_peer`]).
    pub peer: Option<&'a str>,
}

/// Identifies the client of a request.
///
/// `check_key` is false on routes outside the API, so a browser loading static pages needs no
/// key; there the address is used.
///
/// # Errors
/// `unauthorized` when an API key is configured and the request's key is unknown, or missing
/// while keys are required.
pub fn identify(
    api_key: Option<&ApiKeyConfig>,
    addresses: &AddressPolicy<'_>,
    evidence: Evidence<'_>,
    check_key: bool,
) -> Result<ClientId, ErrorDetail> {
    if let (Some(config), true) = (api_key, check_key) {
        match evidence.api_key {
            Some(key) => {
                let digest = hex(&Sha256::digest(key));
                if config.keys_sha256.iter().any(|k| k == &digest) {
                    // A prefix of the digest is enough to tell keys apart and keeps raw keys
                    // out of shared memory.
                    return Ok(ClientId(format!("key:{}", &digest[..16]).into()));
                }
                return Err(ErrorDetail::new(
                    ErrorCode::Unauthorized,
                    "the API key is not valid",
                ));
            }
            None if config.required => {
                return Err(ErrorDetail::new(
                    ErrorCode::Unauthorized,
                    format!("an API key is required in the `{}` header", config.header),
                ));
            }
            None => {}
        }
    }
    Ok(ClientId(
        format!("ip:{}", client_address(addresses, evidence)).into(),
    ))
}

/// The client address as text: the first untrusted hop walking from the peer leftwards
/// through `X-Forwarded-For`, or `unknown` when even the peer is missing.
fn client_address(policy: &AddressPolicy<'_>, evidence: Evidence<'_>) -> String {
    let is_trusted = |ip: IpAddr| policy.trusted.iter().any(|c| c.contains(ip));
    let Some(peer) = evidence.peer.and_then(parse_address) else {
        return "unknown".into();
    };
    if !is_trusted(peer) {
        return peer.to_string();
    }
    let mut client = peer;
    if let Some(xff) = evidence.forwarded_for {
        let skip = usize::from(policy.last_entry_is_peer);
        for hop in xff.rsplit(',').skip(skip) {
            match parse_address(hop) {
                Some(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        break;
                    }
                }
                // A trusted proxy wrote something that is not an address: stop at the last
                // hop we could read rather than believe anything further left.
                None => break,
            }
        }
    }
    client.to_string()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// SHA-256 of a key as the configuration lists it; for tests and tooling.
pub fn key_digest(key: &[u8]) -> String {
    hex(&Sha256::digest(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    fn by_address(trusted: &[&str], xff: Option<&str>, peer: Option<&str>) -> String {
        let ev = Evidence {
            api_key: None,
            forwarded_for: xff,
            peer,
        };
        let trusted = cidrs(trusted);
        let policy = AddressPolicy {
            trusted: &trusted,
            last_entry_is_peer: false,
        };
        identify(None, &policy, ev, true)
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[test]
    fn the_appended_peer_is_the_last_entry() {
        assert_eq!(appended_peer("203.0.113.9"), Some("203.0.113.9"));
        assert_eq!(
            appended_peer("1.2.3.4, 10.0.0.1,192.0.2.7 "),
            Some("192.0.2.7")
        );
        assert_eq!(appended_peer("1.2.3.4, 2001:db8::1"), Some("2001:db8::1"));
        // Whatever a client wrote is to the left of Envoy's entry and never read.
        assert_eq!(appended_peer("evil, 192.0.2.7"), Some("192.0.2.7"));
        for not_an_address in ["", " ", "1.2.3.4,", "1.2.3.4, unknown", "999.1.1.1"] {
            assert_eq!(appended_peer(not_an_address), None, "{not_an_address:?}");
        }
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.255.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fdab::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1/12")
            .unwrap()
            .contains("10.15.0.0".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "x",
            "10.0.0.0/",
            "10.0.0.0/+1",
            "10.0.0/8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_xff_says() {
        assert_eq!(
            by_address(&[], Some("1.1.1.1"), Some("203.0.113.9:5000")),
            "ip:203.0.113.9"
        );
        assert_eq!(
            by_address(&["10.0.0.0/8"], Some("1.1.1.1"), Some("[2001:db8::1]:443")),
            "ip:2001:db8::1"
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let trusted = ["10.0.0.0/8", "127.0.0.1"];
        // Envoy appends the peer itself when use_remote_address is on.
        assert_eq!(
            by_address(
                &trusted,
                Some("6.6.6.6, 198.51.100.4, 10.0.0.2, 127.0.0.1"),
                Some("127.0.0.1:1234")
            ),
            "ip:198.51.100.4"
        );
        assert_eq!(
            by_address(&trusted, Some("198.51.100.4"), Some("10.0.0.7:80")),
            "ip:198.51.100.4"
        );
        // Only trusted hops all the way: the leftmost is the best we know.
        assert_eq!(
            by_address(&trusted, Some("10.0.0.3,10.0.0.2"), Some("127.0.0.1:9")),
            "ip:10.0.0.3"
        );
        assert_eq!(
            by_address(&trusted, None, Some("127.0.0.1:9")),
            "ip:127.0.0.1"
        );
        assert_eq!(
            by_address(&trusted, Some("garbage, 10.0.0.2"), Some("127.0.0.1:9")),
            "ip:10.0.0.2"
        );
        assert_eq!(
            by_address(&trusted, Some(""), Some("127.0.0.1:9")),
            "ip:127.0.0.1"
        );
    }

    #[test]
    fn the_entry_envoy_appends_for_the_peer_is_skipped() {
        let trusted = cidrs(&["127.0.0.1"]);
        let policy = AddressPolicy {
            trusted: &trusted,
            last_entry_is_peer: true,
        };
        let id = |xff| {
            identify(
                None,
                &policy,
                Evidence {
                    api_key: None,
                    forwarded_for: Some(xff),
                    peer: Some("127.0.0.1:9"),
                },
                true,
            )
        };
        // A loopback peer is recorded by Envoy as the host's own address.
        assert_eq!(
            id("198.51.100.7,192.0.2.2").unwrap().as_str(),
            "ip:198.51.100.7"
        );
        assert_eq!(id("192.0.2.2").unwrap().as_str(), "ip:127.0.0.1");
    }

    #[test]
    fn missing_peer_is_unknown() {
        assert_eq!(by_address(&[], None, None), "ip:unknown");
        assert_eq!(by_address(&[], None, Some("not an address")), "ip:unknown");
    }

    #[test]
    fn api_keys() {
        let config = ApiKeyConfig {
            header: "x-api-key".into(),
            keys_sha256: vec![key_digest(b"secret")],
            required: true,
        };
        let ev = |key: Option<&'static [u8]>| Evidence {
            api_key: key,
            forwarded_for: None,
            peer: Some("1.2.3.4:5"),
        };
        let none = AddressPolicy::default();
        let id = identify(Some(&config), &none, ev(Some(b"secret")), true).unwrap();
        assert!(id.as_str().starts_with("key:") && !id.as_str().contains("secret"));
        assert_eq!(
            identify(Some(&config), &none, ev(Some(b"nope")), true)
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            identify(Some(&config), &none, ev(None), true)
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            identify(Some(&config), &none, ev(None), false)
                .unwrap()
                .as_str(),
            "ip:1.2.3.4"
        );
        let optional = ApiKeyConfig {
            required: false,
            ..config
        };
        assert_eq!(
            identify(Some(&optional), &none, ev(None), true)
                .unwrap()
                .as_str(),
            "ip:1.2.3.4"
        );
        assert!(identify(Some(&optional), &none, ev(Some(b"nope")), true).is_err());
    }
}
