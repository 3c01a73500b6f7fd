//! Property tests at scale over everything the edge filter parses from the outside world:
//! request bodies, headers, forwarded-for chains, the plugin configuration, header maps from
//! the host, cache entries. Nothing may panic, and every output must be well formed.
//!
//! The native properties run the filter's pure modules (5,000 cases each by default); the
//! last one sends arbitrary requests through the real `.wasm` in the wasmtime host. Set
//! `LIBRIASSIST_FUZZ_CASES` to run more (or fewer).

use libriassist_filter::config::Config;
use libriassist_filter::edge_cache::{classify_lookup, decode_l1, Lookup};
use libriassist_filter::identity::{identify, AddressPolicy, Cidr, Evidence};
use libriassist_filter::pairs;
use libriassist_filter::reply;
use libriassist_filter::route::{check_head, classify, RequestHead};
use libriassist_filter::token_bucket::{take, Bucket, Limit};
use libriassist_protocol::{
    cache_key, normalize_question, parse_chat_request, CacheKey, ErrorBody, ErrorDetail,
};
use libriassist_tests::wasm_host::{filter_wasm, Action, Cluster, Request};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("LIBRIASSIST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// JSON-ish request bodies: mostly near-valid chat requests, with every kind of damage.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let text = "\\PC{0,80}";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        text.prop_map(|q| serde_json::to_vec(&serde_json::json!({ "question": q })).unwrap()),
        (text, text, "(user|assistant|system|)").prop_map(|(q, h, role)| {
            serde_json::to_vec(&serde_json::json!({ "question": q, "history": [{ "role": role, "content": h }], "session_id": "s" }))
                .unwrap()
        }),
        "[{}\\[\\]\":,a-z0-9 \\\\é«»\u{202F}]{0,120}".prop_map(String::into_bytes),
    ]
}

fn well_formed_error(e: &ErrorDetail) -> bool {
    let status = e.code.status();
    (400..600).contains(&status) && !e.message.is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(5_000), ..ProptestConfig::default() })]

    #[test]
    fn bodies_parse_to_a_request_or_a_documented_error(b in body()) {
        match parse_chat_request(&b) {
            Ok(request) => {
                let key = cache_key(&request);
                prop_assert!(CacheKey::parse(key.as_str()).is_some());
                let n = normalize_question(&request.question);
                prop_assert_eq!(normalize_question(&n), n.clone());
            }
            Err(e) => {
                prop_assert!(well_formed_error(&e));
                let r = reply::error(e.clone());
                let parsed: ErrorBody = serde_json::from_slice(&r.body).unwrap();
                prop_assert_eq!(parsed.error, e);
            }
        }
    }

    #[test]
    fn headers_classify_and_check_without_panicking(
        path in "\\PC{0,40}",
        method in "\\PC{0,8}",
        ct in proptest::option::of("\\PC{0,40}"),
        len in proptest::option::of("[0-9a-z ]{0,12}"),
    ) {
        let _ = classify(&path);
        let head = RequestHead { method: Some(&method), content_type: ct.as_deref(), content_length: len.as_deref() };
        if let Err(e) = check_head(head) {
            prop_assert!(matches!(e.code.status(), 405 | 413 | 415));
        }
    }

    #[test]
    fn identities_are_bounded(
        xff in proptest::option::of("[0-9a-f.:, \\[\\]]{0,80}|\\PC{0,40}"),
        peer in proptest::option::of("[0-9.:\\[\\]a-f]{0,45}|\\PC{0,20}"),
        trusted in proptest::collection::vec("[0-9./:a-f]{0,20}", 0..4),
        includes_peer in any::<bool>(),
    ) {
        let trusted: Vec<Cidr> = trusted.iter().filter_map(|c| Cidr::parse(c)).collect();
        let ev = Evidence { api_key: None, forwarded_for: xff.as_deref(), peer: peer.as_deref() };
        let policy = AddressPolicy { trusted: &trusted, last_entry_is_peer: includes_peer };
        let id = identify(None, &policy, ev, true).unwrap();
        prop_assert!(id.as_str().starts_with("ip:") && id.as_str().len() <= 48, "{}", id.as_str());
    }

    #[test]
    fn configurations_are_accepted_or_refused_with_a_reason(
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            (0u32..20_000, 0u64..400, 0u32..2_000_000, -1.0f64..2e6, 0u32..2_000_000, "[0-9./a-f:]{0,18}").prop_map(
                |(t, ttl, slots, rate, burst, cidr)| format!(
                    r#"{{"cache":{{"timeout_ms":{t},"l1_ttl_seconds":{ttl},"l1_slots":{slots}}},"rate_limits":{{"chat":{{"per_second":{rate},"burst":{burst}}}}},"trusted_proxies":["{cidr}"]}}"#
                ).into_bytes()
            ),
        ],
    ) {
        match Config::parse(&raw) {
            Ok(c) => {
                prop_assert!((1..=10_000).contains(&c.cache.timeout_ms));
                prop_assert!(c.cache.l1_slots >= 1 && c.client_slots >= 1);
                prop_assert!(c.rate_limits.chat.per_second > 0.0 && c.rate_limits.chat.burst >= 1);
            }
            Err(e) => prop_assert!(!e.0.is_empty()),
        }
    }

    #[test]
    fn host_supplied_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        status in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4)),
        now in any::<u64>(),
        rate in -1.0f64..1e7,
        burst in 0u32..10_000,
    ) {
        let _ = pairs::decode(&bytes);
        let key = CacheKey::parse(&"a".repeat(64)).unwrap();
        let _ = decode_l1(&bytes, &key, now);
        if let Lookup::Failed(reason) = classify_lookup(status.as_deref(), &bytes) {
            prop_assert!(!reason.is_empty());
        }
        let (bucket, outcome) = take(Bucket::decode(&bytes), Limit { per_second: rate, burst }, now);
        prop_assert!(bucket.tokens.is_finite());
        prop_assert!(outcome.allowed || outcome.retry_after_seconds >= 1);
    }
}

proptest! {
    // Each case runs a request through the real filter; fewer, but through the real glue.
    #![proptest_config(ProptestConfig { cases: cases(5_000) / 10, ..ProptestConfig::default() })]

    #[test]
    fn the_wasm_filter_answers_or_forwards_any_request(
        path in prop_oneof![Just("/api/v1/chat".to_owned()), Just("/api/v1/chat/stream".to_owned()), "/\\PC{0,20}"],
        method in prop_oneof![Just("POST".to_owned()), "[A-Z]{1,7}"],
        ct in proptest::option::of(prop_oneof![Just("application/json".to_owned()), "\\PC{0,30}"]),
        xff in proptest::option::of("\\PC{0,40}"),
        b in body(),
        split in any::<prop::sample::Index>(),
        lookup in proptest::option::of((prop_oneof![Just(200u16), Just(404), Just(503)], body())),
    ) {
        thread_local! {
            static CLUSTER: Cluster = Cluster::new(filter_wasm()).expect("load the filter");
        }
        let cluster = CLUSTER.with(Clone::clone);
        let (mut vm, ok) = cluster.vm(r#"{"rate_limits":{"chat":{"per_second":1000,"burst":1000000},"stream":{"per_second":1000,"burst":1000000},"other":{"per_second":1000,"burst":1000000}}}"#).unwrap();
        prop_assert!(ok);
        let mut request = Request::new(&method, &path);
        if let Some(ct) = &ct { request = request.header("content-type", ct); }
        if let Some(xff) = &xff { request = request.header("x-forwarded-for", xff); }
        let ctx = vm.start(request).unwrap();
        let mut action = vm.request_headers(ctx, b.is_empty()).unwrap();
        if action == Action::Pause && vm.stream(ctx).local_reply.is_none() && !b.is_empty() {
            let at = split.index(b.len());
            action = vm.request_body(ctx, &b[..at], false).unwrap();
            if vm.stream(ctx).local_reply.is_none() {
                action = vm.request_body(ctx, &b[at..], true).unwrap();
            }
        }
        if let Some(call) = vm.calls().last().cloned() {
            prop_assert_eq!(action, Action::Pause);
            let response = lookup.as_ref().map(|(s, body)| (*s, body.as_slice()));
            vm.http_call_response(call.token, response).unwrap();
        }
        let stream = vm.stream(ctx).clone();
        match &stream.local_reply {
            Some(reply) if reply.status == 200 => prop_assert_eq!(reply.header("x-cache"), Some("edge")),
            Some(reply) => {
                let parsed: ErrorBody = serde_json::from_slice(&reply.body).expect("JSON error body");
                prop_assert_eq!(u32::from(parsed.error.code.status()), reply.status);
            }
            None => {
                // Forwarded: chat requests carry their key, and nothing was rewritten.
                prop_assert_eq!(stream.body_writes, 0);
                prop_assert!(stream.refused_header_changes.is_empty());
                let is_chat = libriassist_filter::route::classify(&path).is_chat();
                prop_assert_eq!(stream.header("x-libriassist-cache-key").is_some(), is_chat);
            }
        }
        vm.finish(ctx).unwrap();
        prop_assert!(!vm.logs().iter().any(|(_, m)| m.contains("panic")), "{:?}", vm.logs());
    }
}
