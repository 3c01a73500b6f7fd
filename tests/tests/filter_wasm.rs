//! The edge filter's real `.wasm` driven by the wasmtime host: what Envoy would see it do,
//! without Envoy. Rate limits shared across workers, local replies in the origin's JSON shape,
//! the cache callout (hit, miss, failure, no cluster), L1, stream caps, and that the request
//! reaches the origin unchanged except for the cache-key header.

use libriassist_filter::identity::key_digest;
use libriassist_protocol::sse::TokenEvent;
use libriassist_protocol::{cache_key, CachedAnswer, ChatResponse, ErrorBody, Mode, Source};
use libriassist_tests::wasm_host::{filter_wasm, Action, Cluster, FilterVm, LocalReply, Request};

const S: u64 = 1_000_000_000;
const CHAT: &str = "/api/v1/chat";
const STREAM: &str = "/api/v1/chat/stream";

fn cluster() -> Cluster {
    Cluster::new(filter_wasm()).expect("load the filter")
}

fn vm(cluster: &Cluster, config: &str) -> FilterVm {
    let (mut vm, configured) = cluster.vm(config).expect("start a VM");
    assert!(configured, "configuration refused: {:?}", vm.logs());
    vm.set_time_ns(1_000 * S);
    vm
}

fn body(question: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "question": question })).unwrap()
}

fn key_of(question: &str) -> String {
    cache_key(&libriassist_protocol::parse_chat_request(&body(question)).unwrap()).to_string()
}

fn entry() -> CachedAnswer {
    CachedAnswer {
        answer: "Nous proposons le poche et le numérique.".into(),
        sources: vec![Source {
            id: "faq-1".into(),
            title: "Formats".into(),
            url: None,
            score: 0.9,
        }],
        model: "sim".into(),
        mode: Mode::Generated,
    }
}

/// Sends a chat request through headers and body; returns its context and the body action.
fn ask(vm: &mut FilterVm, path: &str, question: &str, peer: &str) -> (u32, Action) {
    let b = body(question);
    let ctx = vm.start(Request::chat(path, &b).peer(peer)).unwrap();
    assert_eq!(
        vm.request_headers(ctx, false).unwrap(),
        Action::Pause,
        "chat headers are held for the body"
    );
    let action = vm.request_body(ctx, &b, true).unwrap();
    (ctx, action)
}

/// The origin's cache endpoint answers the VM's first lookup with `entry()`; the reply the
/// filter then sent.
fn answered_from_the_origin_cache(vm: &mut FilterVm, ctx: u32) -> LocalReply {
    let token = vm.calls()[0].token;
    vm.http_call_response(token, Some((200, &serde_json::to_vec(&entry()).unwrap())))
        .unwrap();
    vm.stream(ctx)
        .local_reply
        .clone()
        .expect("answered at the edge")
}

fn error_code(vm: &FilterVm, ctx: u32) -> (u32, String) {
    let reply = vm.stream(ctx).local_reply.clone().expect("a local reply");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-request-id"), Some("req-1"));
    let body: ErrorBody = serde_json::from_slice(&reply.body).expect("the origin's error shape");
    (reply.status, body.error.code.as_str().to_owned())
}

fn assert_no_panic(vm: &FilterVm) {
    assert!(
        !vm.logs().iter().any(|(_, m)| m.contains("panic")),
        "{:?}",
        vm.logs()
    );
}

#[test]
fn configuration_is_validated_once() {
    let cluster = cluster();
    let (_, ok) = cluster.vm("").unwrap();
    assert!(ok);
    let (vm, ok) = cluster.vm(r#"{"cache":{"timeout_ms":0}}"#).unwrap();
    assert!(!ok);
    assert!(vm.logs().iter().any(|(level, m)| *level == 4
        && m.contains("configuration refused")
        && m.contains("cache.timeout_ms")));
    let (_, ok) = cluster.vm(r#"{"unknown": 1}"#).unwrap();
    assert!(!ok);
}

#[test]
fn other_routes_pass_with_the_client_key_header_removed() {
    let cluster = cluster();
    let mut vm = vm(&cluster, "{}");
    let ctx = vm
        .start(Request::new("GET", "/healthz").header("x-libriassist-cache-key", &"a".repeat(64)))
        .unwrap();
    assert_eq!(vm.request_headers(ctx, true).unwrap(), Action::Continue);
    let stream = vm.stream(ctx);
    assert!(stream.local_reply.is_none());
    assert_eq!(stream.header("x-libriassist-cache-key"), None);
    vm.finish(ctx).unwrap();
    assert_no_panic(&vm);
}

#[test]
fn rate_limit_is_shared_by_workers_and_per_client() {
    let cluster = cluster();
    let config = r#"{"rate_limits":{"other":{"per_second":1,"burst":3}}}"#;
    let (mut a, mut b) = (vm(&cluster, config), vm(&cluster, config));
    let mut statuses = Vec::new();
    for i in 0..4 {
        let worker = if i % 2 == 0 { &mut a } else { &mut b };
        let ctx = worker
            .start(Request::new("GET", "/").peer("203.0.113.5:1000"))
            .unwrap();
        worker.request_headers(ctx, true).unwrap();
        statuses.push(worker.stream(ctx).local_reply.as_ref().map(|r| r.status));
        if i == 3 {
            let reply = worker.stream(ctx).local_reply.clone().unwrap();
            assert_eq!(reply.status, 429);
            assert_eq!(reply.header("retry-after"), Some("1"));
            assert_eq!(reply.header("ratelimit-limit"), Some("3"));
            assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
            assert_eq!(reply.header("ratelimit-reset"), Some("3"));
            assert_eq!(reply.json()["error"]["code"], "rate_limited");
        }
        worker.finish(ctx).unwrap();
    }
    assert_eq!(statuses, [None, None, None, Some(429)]);
    b.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_rate_limited"), 1);

    // Another client is served meanwhile; the first one again after a refill.
    let ctx = a
        .start(Request::new("GET", "/").peer("203.0.113.6:1000"))
        .unwrap();
    assert_eq!(a.request_headers(ctx, true).unwrap(), Action::Continue);
    a.set_time_ns(1_001 * S + S / 10);
    let ctx = a
        .start(Request::new("GET", "/").peer("203.0.113.5:1000"))
        .unwrap();
    assert_eq!(a.request_headers(ctx, true).unwrap(), Action::Continue);
    assert_no_panic(&a);
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_hops() {
    let cluster = cluster();
    let config = r#"{"trusted_proxies":["127.0.0.1"],"rate_limits":{"other":{"per_second":0.01,"burst":1}}}"#;
    let mut vm = vm(&cluster, config);
    let get = |vm: &mut FilterVm, xff: &str, peer: &str| {
        let ctx = vm
            .start(
                Request::new("GET", "/")
                    .header("x-forwarded-for", xff)
                    .peer(peer),
            )
            .unwrap();
        vm.request_headers(ctx, true).unwrap();
        vm.stream(ctx).local_reply.as_ref().map(|r| r.status)
    };
    assert_eq!(get(&mut vm, "198.51.100.1, 192.0.2.2", "127.0.0.1:5"), None);
    assert_eq!(
        get(&mut vm, "198.51.100.2, 192.0.2.2", "127.0.0.1:5"),
        None,
        "another client behind the proxy"
    );
    assert_eq!(
        get(&mut vm, "198.51.100.1, 192.0.2.2", "127.0.0.1:5"),
        Some(429)
    );
    // From an untrusted peer the header is ignored: the peer itself is limited.
    assert_eq!(get(&mut vm, "198.51.100.3", "192.0.2.50:5"), None);
    assert_eq!(get(&mut vm, "198.51.100.4", "192.0.2.50:5"), Some(429));
}

#[test]
fn at_the_first_hop_the_client_is_the_peer_envoy_appended() {
    let cluster = cluster();
    let config =
        r#"{"peer_from_forwarded_for":true,"rate_limits":{"other":{"per_second":0.01,"burst":1}}}"#;
    let mut vm = vm(&cluster, config);
    // Envoy with `use_remote_address` appends the peer; what a client wrote is to its left.
    let get = |vm: &mut FilterVm, xff: Option<&str>, peer: &str| {
        let mut request = Request::new("GET", "/").peer(peer);
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        let ctx = vm.start(request).unwrap();
        vm.request_headers(ctx, true).unwrap();
        vm.stream(ctx).local_reply.as_ref().map(|r| r.status)
    };
    assert_eq!(
        get(&mut vm, Some("198.51.100.1, 192.0.2.7"), "192.0.2.7:5"),
        None
    );
    assert_eq!(
        get(&mut vm, Some("198.51.100.2, 192.0.2.7"), "192.0.2.7:6"),
        Some(429),
        "a new name written by the client changes nothing"
    );
    assert_eq!(get(&mut vm, Some("192.0.2.8"), "192.0.2.8:5"), None);
    // Without the header (a listener Envoy does not append on), Envoy is asked for the peer.
    assert_eq!(get(&mut vm, None, "192.0.2.7:7"), Some(429));
    assert_eq!(get(&mut vm, None, "192.0.2.9:7"), None);
    // A last entry that is no address is never taken for the peer, nor remembered as one.
    for port in [8, 9] {
        assert_eq!(
            get(
                &mut vm,
                Some("198.51.100.3, unknown"),
                &format!("192.0.2.7:{port}")
            ),
            Some(429)
        );
    }
    assert_no_panic(&vm);
}

#[test]
fn bad_chat_requests_get_the_origin_errors() {
    let cluster = cluster();
    let mut vm = vm(&cluster, "{}");
    let mut cases = Vec::new();

    let ctx = vm.start(Request::new("GET", CHAT)).unwrap();
    assert_eq!(vm.request_headers(ctx, true).unwrap(), Action::Pause);
    cases.push((error_code(&vm, ctx), (405, "method_not_allowed")));
    assert_eq!(
        vm.stream(ctx).local_reply.as_ref().unwrap().header("allow"),
        Some("POST")
    );

    let ctx = vm
        .start(Request::new("POST", STREAM).header("content-type", "text/plain"))
        .unwrap();
    vm.request_headers(ctx, false).unwrap();
    cases.push((error_code(&vm, ctx), (415, "unsupported_media_type")));

    let ctx = vm
        .start(
            Request::new("POST", CHAT)
                .header("content-type", "application/json")
                .header("content-length", "70000"),
        )
        .unwrap();
    vm.request_headers(ctx, false).unwrap();
    cases.push((error_code(&vm, ctx), (413, "payload_too_large")));

    // No content-length (chunked): stopped while buffering, before the whole body arrives.
    let ctx = vm
        .start(Request::new("POST", CHAT).header("content-type", "application/json"))
        .unwrap();
    assert_eq!(vm.request_headers(ctx, false).unwrap(), Action::Pause);
    let chunk = vec![b' '; 40 * 1024];
    assert_eq!(vm.request_body(ctx, &chunk, false).unwrap(), Action::Pause);
    assert!(vm.stream(ctx).local_reply.is_none());
    vm.request_body(ctx, &chunk, false).unwrap();
    cases.push((error_code(&vm, ctx), (413, "payload_too_large")));

    let ctx = vm.start(Request::chat(CHAT, b"")).unwrap();
    vm.request_headers(ctx, true).unwrap();
    cases.push((error_code(&vm, ctx), (400, "invalid_json")));

    for (raw, expected) in [
        (&b"{not json"[..], (400, "invalid_json")),
        (b"\xff\xfe", (400, "invalid_json")),
        (br#"{"question":"   "}"#, (400, "invalid_request")),
        (br#"{"question":42}"#, (400, "invalid_request")),
        (
            br#"{"question":"q","history":[{"role":"system","content":"x"}]}"#,
            (400, "invalid_request"),
        ),
    ] {
        let ctx = vm.start(Request::chat(STREAM, raw)).unwrap();
        vm.request_headers(ctx, false).unwrap();
        assert_eq!(vm.request_body(ctx, raw, true).unwrap(), Action::Pause);
        cases.push((error_code(&vm, ctx), expected));
    }
    for ((status, code), (want_status, want_code)) in cases {
        assert_eq!((status, code.as_str()), (want_status, want_code));
    }
    assert!(vm.calls().is_empty(), "nothing invalid is looked up");
    vm.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_rejected"), 10);
    assert_no_panic(&vm);
}

#[test]
fn api_keys_when_configured() {
    let cluster = cluster();
    let config = format!(
        r#"{{"api_key":{{"keys_sha256":["{}"]}}}}"#,
        key_digest(b"s3cret")
    );
    let mut vm = vm(&cluster, &config);
    let b = body("Bonjour");
    let ctx = vm
        .start(Request::chat(CHAT, &b).header("x-api-key", "wrong"))
        .unwrap();
    vm.request_headers(ctx, false).unwrap();
    assert_eq!(error_code(&vm, ctx), (401, "unauthorized".into()));
    let ctx = vm.start(Request::chat(CHAT, &b)).unwrap();
    vm.request_headers(ctx, false).unwrap();
    assert_eq!(error_code(&vm, ctx), (401, "unauthorized".into()));
    let ctx = vm
        .start(Request::chat(CHAT, &b).header("x-api-key", "s3cret"))
        .unwrap();
    assert_eq!(vm.request_headers(ctx, false).unwrap(), Action::Pause);
    assert!(vm.stream(ctx).local_reply.is_none());
    // Pages outside the API need no key.
    let ctx = vm.start(Request::new("GET", "/index.html")).unwrap();
    assert_eq!(vm.request_headers(ctx, true).unwrap(), Action::Continue);
}

/// Envoy calls into the VM only for the callbacks a module exports. The filter has nothing
/// to do with responses, so a response (each event of a stream) never enters it, nor does
/// the access log; a stream slot is given back on delete, which Envoy calls for every stream.
#[test]
fn responses_never_enter_the_filter() {
    let cluster = cluster();
    let mut vm = vm(&cluster, "{}");
    for callback in [
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_response_trailers",
        "proxy_on_log",
        "proxy_on_done",
    ] {
        assert!(!vm.exports(callback), "{callback} is exported");
    }
    for callback in [
        "proxy_on_request_headers",
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_http_call_response",
        "proxy_on_tick",
        "proxy_on_delete",
    ] {
        assert!(vm.exports(callback), "{callback} is not exported");
    }
}

#[test]
fn miss_forwards_the_untouched_request_with_its_key() {
    let cluster = cluster();
    let mut vm = vm(&cluster, r#"{"cache":{"timeout_ms":80}}"#);
    let question = "Quels formats proposez-vous ?";
    let b = body(question);
    let ctx = vm
        .start(Request::chat(CHAT, &b).header("x-libriassist-cache-key", &"0".repeat(64)))
        .unwrap();
    assert_eq!(vm.request_headers(ctx, false).unwrap(), Action::Pause);
    // The body may come in pieces; the filter waits for the end.
    assert_eq!(vm.request_body(ctx, &b[..5], false).unwrap(), Action::Pause);
    assert_eq!(vm.request_body(ctx, &b[5..], true).unwrap(), Action::Pause);

    let call = vm.calls().last().cloned().expect("a cache lookup");
    assert_eq!(call.cluster, "libriassist_cache");
    assert_eq!(call.header(":method"), Some("GET"));
    assert_eq!(
        call.header(":path"),
        Some(format!("/internal/v1/cache/{}", key_of(question)).as_str())
    );
    assert_eq!(call.header(":authority"), Some("libriassist-cache"));
    assert_eq!(call.header("x-request-id"), Some("req-1"));
    assert_eq!(call.timeout_ms, 80);

    vm.http_call_response(call.token, Some((404, b"{}")))
        .unwrap();
    let stream = vm.stream(ctx);
    assert!(stream.resumed && stream.local_reply.is_none());
    assert!(
        stream.refused_header_changes.is_empty(),
        "{:?}",
        stream.refused_header_changes
    );
    let keys: Vec<_> = stream
        .request_headers
        .iter()
        .filter(|(k, _)| k == "x-libriassist-cache-key")
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].1, key_of(question));
    // No body rewrite, so content-length still tells the truth.
    assert_eq!(stream.body_writes, 0);
    assert_eq!(stream.request_body, b);
    assert_eq!(
        stream.header("content-length"),
        Some(b.len().to_string().as_str())
    );
    vm.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_cache_misses"), 1);
    vm.finish(ctx).unwrap();
    assert_no_panic(&vm);
}

#[test]
fn hits_are_answered_at_the_edge_then_from_l1() {
    let cluster = cluster();
    let (mut a, mut b) = (vm(&cluster, "{}"), vm(&cluster, "{}"));
    let (ctx, action) = ask(&mut a, CHAT, "Quels formats proposez-vous ?", "192.0.2.1:1");
    assert_eq!(action, Action::Pause);
    let reply = answered_from_the_origin_cache(&mut a, ctx);
    assert!(!a.stream(ctx).resumed);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-cache"), Some("edge"));
    let response: ChatResponse = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(response.cache.as_str(), "edge");
    assert_eq!(response.answer, entry().answer);
    assert_eq!(response.sources, entry().sources);

    // Another worker, the same question spelt differently: L1, no callout.
    let (ctx, action) = ask(
        &mut b,
        STREAM,
        "  QUELS formats proposez-vous?",
        "192.0.2.2:1",
    );
    assert_eq!(action, Action::Pause);
    assert!(b.calls().is_empty(), "served from L1");
    let reply = b.stream(ctx).local_reply.clone().unwrap();
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.header("x-cache"), Some("edge"));
    let text = String::from_utf8(reply.body).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events[0].starts_with("event: meta\n") && events[0].contains(r#""cache":"edge""#));
    assert!(events.last().unwrap().starts_with("event: done\n"));
    let answer: String = events[1..events.len() - 1]
        .iter()
        .map(|e| {
            serde_json::from_str::<TokenEvent>(e.strip_prefix("event: token\ndata: ").unwrap())
                .unwrap()
                .text
        })
        .collect();
    assert_eq!(answer, entry().answer);
    // Each worker adds what it counted to Envoy's counters on its tick.
    assert_eq!(cluster.counter("libriassist_edge_cache_hits"), 0);
    a.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_cache_hits"), 1);
    b.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_cache_hits"), 2);

    // After the short TTL, L1 no longer answers: the origin is asked again.
    b.set_time_ns(1_010 * S);
    let (_, action) = ask(&mut b, CHAT, "Quels formats proposez-vous ?", "192.0.2.2:1");
    assert_eq!(action, Action::Pause);
    assert_eq!(b.calls().len(), 1);
    assert_no_panic(&a);
    assert_no_panic(&b);
}

#[test]
fn cache_failures_fail_open() {
    let cluster = cluster();
    let mut vm = vm(&cluster, "{}");
    let outcomes: [Option<(u16, &[u8])>; 4] = [
        None,
        Some((503, b"no healthy upstream")),
        Some((504, b"")),
        Some((200, b"{broken")),
    ];
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let (ctx, action) = ask(&mut vm, CHAT, &format!("Question {i} ?"), "192.0.2.1:1");
        assert_eq!(action, Action::Pause);
        let token = vm.calls().last().unwrap().token;
        vm.http_call_response(token, outcome).unwrap();
        let stream = vm.stream(ctx);
        assert!(stream.resumed, "case {i} forwarded");
        assert!(
            stream.local_reply.is_none(),
            "case {i} never answered with an error"
        );
        assert!(stream.header("x-libriassist-cache-key").is_some());
    }
    vm.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_cache_errors"), 4);

    // The cache cluster cannot even be called: the body callback lets the request through.
    vm.fail_dispatch(true);
    let (ctx, action) = ask(&mut vm, CHAT, "Encore une ?", "192.0.2.1:1");
    assert_eq!(action, Action::Continue);
    assert!(vm.stream(ctx).header("x-libriassist-cache-key").is_some());
    assert!(vm.stream(ctx).refused_header_changes.is_empty());
    assert_no_panic(&vm);
}

#[test]
fn concurrent_streams_are_capped_per_client_and_released() {
    let cluster = cluster();
    let mut vm = vm(
        &cluster,
        r#"{"max_concurrent_streams":1,"cache":{"enabled":false}}"#,
    );
    let (first, action) = ask(&mut vm, STREAM, "Une ?", "192.0.2.9:1");
    assert_eq!(action, Action::Continue);
    assert!(vm.stream(first).local_reply.is_none());
    let (second, _) = ask(&mut vm, STREAM, "Deux ?", "192.0.2.9:2");
    assert_eq!(error_code(&vm, second), (429, "too_many_streams".into()));
    assert_eq!(
        vm.stream(second)
            .local_reply
            .as_ref()
            .unwrap()
            .header("retry-after"),
        Some("1")
    );
    // Another client is not affected; plain chat is not a stream.
    let (other, _) = ask(&mut vm, STREAM, "Trois ?", "192.0.2.10:1");
    assert!(vm.stream(other).local_reply.is_none());
    let (chat, _) = ask(&mut vm, CHAT, "Quatre ?", "192.0.2.9:3");
    assert!(vm.stream(chat).local_reply.is_none());
    // The end of the first stream frees its slot.
    vm.finish(second).unwrap();
    vm.finish(first).unwrap();
    let (third, _) = ask(&mut vm, STREAM, "Cinq ?", "192.0.2.9:4");
    assert!(vm.stream(third).local_reply.is_none());
    assert_no_panic(&vm);
}

#[test]
fn a_key_the_origin_just_lacked_goes_straight_to_the_origin() {
    let cluster = cluster();
    let (mut a, mut b) = (vm(&cluster, "{}"), vm(&cluster, "{}"));
    let question = "Livrez-vous le samedi ?";
    let (first, action) = ask(&mut a, CHAT, question, "192.0.2.1:1");
    assert_eq!(action, Action::Pause);
    let token = a.calls()[0].token;
    a.http_call_response(token, Some((404, b"{}"))).unwrap();
    assert!(a.stream(first).resumed);

    // Repeats within the negative TTL, on any worker and either route: no lookup, forwarded
    // with the key, counted as misses.
    for (vm, path) in [(&mut a, CHAT), (&mut b, STREAM)] {
        let (ctx, action) = ask(vm, path, question, "192.0.2.2:1");
        assert_eq!(action, Action::Continue);
        let stream = vm.stream(ctx);
        assert!(stream.local_reply.is_none());
        assert_eq!(
            stream.header("x-libriassist-cache-key"),
            Some(key_of(question).as_str())
        );
    }
    assert_eq!(a.calls().len(), 1);
    assert!(b.calls().is_empty());
    a.tick().unwrap();
    b.tick().unwrap();
    assert_eq!(cluster.counter("libriassist_edge_cache_misses"), 3);

    // A second later the origin is asked again, and its answer is served. (A worker judges
    // its own copy of the entry by the time it last read, at most a tick old: here the tick's.)
    b.set_time_ns(1_001 * S + S / 10);
    b.tick().unwrap();
    let (ctx, action) = ask(&mut b, CHAT, question, "192.0.2.2:1");
    assert_eq!(action, Action::Pause);
    let reply = answered_from_the_origin_cache(&mut b, ctx);
    let response: ChatResponse = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(response.answer, entry().answer);
    assert_no_panic(&a);
    assert_no_panic(&b);
}
