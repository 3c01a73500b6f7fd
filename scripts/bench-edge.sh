#!/usr/bin/env bash
# Edge benchmark (issue 5): what the proxy-wasm filter costs inside Envoy, measured with wrk
# on loopback in one run, every number compared with a baseline measured in the same run.
#
#   hit vs direct    POST /api/v1/chat answered by the filter from its L1 cache, against
#                    Envoy's native direct_response returning the same body (the ceiling:
#                    nothing answers faster from this listener). The ceiling is asked with GET:
#                    direct_response replies before a request body is read, and HTTP/1.1 Envoy
#                    then closes the connection (one new connection per request), which would
#                    measure connection setup instead. Without a body to read the ceiling is
#                    higher, so the ratio errs against the filter.
#   hit vs direct_post  the same, against the hit's own request (POST with its body) answered
#                    by direct_response once Envoy's buffer filter has read the body: what
#                    Envoy itself costs to answer that request without the connection closing.
#   pass-through     the filter on requests it does not answer, against the same Envoy without
#                    the filter, both proxying to the same static upstream:
#                    GET /healthz (identity + rate limit, then forwarded) and
#                    POST /api/v1/chat that misses (also body validation, cache key, L1 miss,
#                    lookup call to the cache cluster answering 404, key header, forward), and
#                    the same with the filter's cache off, to tell the lookup's share, and
#                    with a question never asked before on every request (miss_first: each
#                    one parsed, normalized and hashed, and looked up at the cache cluster).
#   empty filter     for reference, the same Envoy with a proxy-wasm module that does nothing
#                    (built here from a few lines of Rust with the filter's proxy-wasm version
#                    and profile), on the ceiling route and on GET: what any Rust proxy-wasm
#                    filter costs in this Envoy before it does any work.
#   floor filter     for reference, a module that holds a chat request's headers, reads its
#                    body and then only answers it (with as many bytes as the hit) or adds a
#                    header and forwards it: the least any filter that answers from the body
#                    costs here, whatever it computes, on the hit and on the chat miss.
#   required filter  for reference, the floor plus what issue 5 requires of any filter on
#                    every request, without any logic: a read of the request headers (who
#                    asks), the delete callback (the stream cap), and on a hit a clock read
#                    and the hit's reply headers.
#
# usage: scripts/bench-edge.sh [--update-docs]
#   --update-docs        also replaces the block between `<!-- bench:edge -->` and
#                        `<!-- /bench:edge -->` in docs/BENCHMARKS.md (nothing else in the file)
#   BENCH_EDGE_ONLY      names of variants to run alone (e.g. "direct_post hit hit_floor"), for
#                        a quick look at one change: the runs are logged, no report is made
#   BENCH_EDGE_PROFILE=1 also records each run with `perf record -g` and logs where the Envoy
#                        worker's CPU went per request (`scripts/edge-profile.py`: the module's
#                        code, the host calls it made, the rest of Envoy, the kernel); perf
#                        slows Envoy down, so no report is made either
#   BENCH_EDGE_PROFILE_DIR=DIR  with BENCH_EDGE_PROFILE=1, keeps each recording in DIR as
#                        NAME.ROUND.perf, for `scripts/edge-profile.py --diff DIR A B` (where
#                        two variants differ, call path by call path)
#   BENCH_EDGE_SECONDS   length of one wrk run (default 10)
#   BENCH_EDGE_ROUNDS    rounds over all variants (default 3)
#   BENCH_EDGE_CONNECTIONS  wrk connections (default 16)
#
# Every process (Redis, simulator, origin, sixteen Envoys, wrk) is started here on 127.0.0.1,
# ended by PID on exit, and the whole run is bounded: about ROUNDS x 14 x SECONDS plus a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBRIASSIST_CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}

SECONDS_PER_RUN=${BENCH_EDGE_SECONDS:-10}
ROUNDS=${BENCH_EDGE_ROUNDS:-3}
CONNECTIONS=${BENCH_EDGE_CONNECTIONS:-16}
UPDATE_DOCS=0
PROFILE=${BENCH_EDGE_PROFILE:-0}
PROFILE_DIR=${BENCH_EDGE_PROFILE_DIR:-}
for arg in "$@"; do
    case "$arg" in
        --update-docs) UPDATE_DOCS=1 ;;
        *) echo "usage: $0 [--update-docs]" >&2; exit 2 ;;
    esac
done
COMMAND="scripts/bench-edge.sh $*"
COMMAND=${COMMAND% }

log() { printf '[bench-edge] %s\n' "$*" >&2; }

if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null || { log "BENCH_EDGE_PROFILE=1 needs perf (Debian: linux-perf)"; exit 2; }
    [ "$UPDATE_DOCS" = 0 ] || { log "BENCH_EDGE_PROFILE=1 slows Envoy down: no --update-docs"; exit 2; }
    if [ -n "$PROFILE_DIR" ]; then
        mkdir -p "$PROFILE_DIR"
        : >"$PROFILE_DIR/requests.txt"
    fi
fi

# --- tools, release builds ------------------------------------------------------------------
scripts/setup.sh step wasm_target envoy redis
if ! command -v wrk >/dev/null; then
    log "apt-get install wrk"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
cargo build -q -p libriassist-filter --target wasm32-wasip1 --release
# The origin only supplies the cached answer and the simulator; what is measured is Envoy and
# the filter. A tree where the origin does not build right now can still be measured with the
# last built binary, said loudly; the filter above is always built fresh.
if ! cargo build -q --release -p libriassist --bin libriassist; then
    [ -x target/release/libriassist ] || exit 1
    log "WARNING: the origin does not build; using the existing target/release/libriassist"
fi
ENVOY=$LIBRIASSIST_CACHE/envoy
BIN=target/release/libriassist
WASM=target/wasm32-wasip1/release/libriassist_filter.wasm

# Reference modules: outside the workspace, with the workspace's lock file so proxy-wasm and
# its dependencies are the filter's exact versions, and the filter's release profile.
# reference_module NAME: builds target/bench-edge-NAME-filter from the Rust source on stdin
# and prints the path of its .wasm. The reference modules use no SDK and export only the
# callbacks they use, as the filter does (`filter/src/abi.rs`): Envoy calls into the VM for
# every callback a module exports, so a module exporting more would cost more than it must.
reference_module() {
    local src=target/bench-edge-$1-filter
    mkdir -p "$src/src"
    cat >"$src/Cargo.toml" <<EOF
[package]
name = "$1-filter"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[profile.release]
opt-level = 3
codegen-units = 1
strip = "debuginfo"

[workspace]
EOF
    cat >"$src/src/lib.rs" <<'EOF'
// What Envoy needs to load a module and create its contexts.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut bytes: Vec<std::mem::MaybeUninit<u8>> = Vec::with_capacity(size);
    unsafe { bytes.set_len(size) };
    Box::into_raw(bytes.into_boxed_slice()).cast::<u8>()
}
#[no_mangle]
pub extern "C" fn proxy_on_context_create(_: u32, _: u32) {}
#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_: u32, _: usize) -> u32 {
    1
}
EOF
    cat >>"$src/src/lib.rs"
    cargo build -q --release --target wasm32-wasip1 --manifest-path "$src/Cargo.toml"
    echo "$src/target/wasm32-wasip1/release/$1_filter.wasm"
}

# The empty module: what any proxy-wasm filter costs before it does any work.
EMPTY_WASM=$(reference_module empty <<'EOF'
#[no_mangle]
pub extern "C" fn proxy_on_configure(_: u32, _: usize) -> u32 {
    1
}
EOF
)

# The floor module: the least a filter that decides from the request body does. It holds the
# headers and reads the whole body, then either answers with a JSON body of as many bytes as
# its configuration says, or (any other configuration) adds one header and lets the request
# go on. No identity, limits, validation, key or cache: besides Envoy's callbacks, only the
# two host calls every filter answering from the body makes. Its configuration may add, as
# "BYTES CLOCK_READS HEADER_READS MEMORY_KB FUNCTIONS HIT_HEADERS", work before it answers:
# clock reads and reads of the request headers (one `proxy_get_header_map_pairs` each), a
# pass over MEMORY_KB of its own memory (one write per 64-byte line), calls to FUNCTIONS
# distinct functions (at most 128; as much code run as the filter's own on a hit), and
# (HIT_HEADERS 1) the hit's reply headers and details instead of a content type alone.
FLOOR_SRC=$(cat <<'EOF'
use std::cell::RefCell;
use std::ptr::null_mut;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_buffer_bytes(kind: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_send_local_response(status: u32, details: *const u8, details_size: usize, body: *const u8,
        body_size: usize, headers: *const u8, headers_size: usize, grpc_status: i32) -> u32;
    fn proxy_replace_header_map_value(map: u32, key: *const u8, key_size: usize, value: *const u8, value_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// What the configuration adds before a hit is answered (see the comment above the module).
#[derive(Clone, Copy)]
struct Knobs {
    clock_reads: u32,
    header_reads: u32,
    memory_kb: usize,
    functions: usize,
    hit_headers: bool,
}

thread_local! {
    static REPLY: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    static KNOBS: std::cell::Cell<Knobs> = const { std::cell::Cell::new(Knobs {
        clock_reads: 0, header_reads: 0, memory_kb: 0, functions: 0, hit_headers: false }) };
    static MEMORY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

// Distinct code per constant: 128 functions the optimizer cannot merge.
#[inline(never)]
fn step<const I: u64>(x: u64) -> u64 {
    let mut y = x ^ I.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for k in 0..3u64 {
        y = y.rotate_left(((k + I) % 63) as u32).wrapping_mul((I << 1) | 1) ^ (y >> (I % 31 + 1));
    }
    y
}
macro_rules! steps { ($($i:literal)*) => { [$(step::<$i> as fn(u64) -> u64),*] } }
static STEPS: [fn(u64) -> u64; 128] = steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
    21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51
    52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82
    83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109
    110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127);

fn extra_work(knobs: Knobs) {
    for _ in 0..knobs.clock_reads {
        let mut time = 0u64;
        unsafe { proxy_get_current_time_nanoseconds(&mut time) };
    }
    for _ in 0..knobs.header_reads {
        let (mut data, mut len) = (null_mut(), 0usize);
        if unsafe { proxy_get_header_map_pairs(0, &mut data, &mut len) } == 0 && !data.is_null() {
            drop(unsafe { Vec::from_raw_parts(data, len, len) });
        }
    }
    if knobs.memory_kb > 0 {
        MEMORY.with(|m| {
            let mut m = m.borrow_mut();
            m.resize(knobs.memory_kb * 1024, 1);
            let mut sum = 0u8;
            for i in (0..m.len()).step_by(64) {
                sum = sum.wrapping_add(m[i]);
                m[i] = sum;
            }
        });
    }
    let mut x = 1u64;
    for f in STEPS.iter().take(knobs.functions) {
        x = f(std::hint::black_box(x));
    }
    std::hint::black_box(x);
}

fn buffer(kind: u32, size: usize) -> Vec<u8> {
    let (mut data, mut len) = (null_mut(), 0usize);
    if unsafe { proxy_get_buffer_bytes(kind, 0, size, &mut data, &mut len) } != 0 || data.is_null() {
        return Vec::new();
    }
    unsafe { Vec::from_raw_parts(data, len, len) }
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_: u32, size: usize) -> u32 {
    let config = buffer(7, size);
    let mut words = std::str::from_utf8(&config).unwrap_or("").split_whitespace();
    let bytes = words.next().and_then(|w| w.parse::<usize>().ok());
    let mut count = || words.next().and_then(|w| w.parse::<usize>().ok()).unwrap_or(0);
    let knobs = Knobs {
        clock_reads: count() as u32,
        header_reads: count() as u32,
        memory_kb: count(),
        functions: count(),
        hit_headers: count() == 1,
    };
    KNOBS.with(|k| k.set(knobs));
    REPLY.with(|r| {
        *r.borrow_mut() = bytes.map(|n| {
            let mut body = b"{\"answer\":\"".to_vec();
            body.resize(n.saturating_sub(2).max(body.len()), b'x');
            body.extend_from_slice(b"\"}");
            body
        })
    });
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_: u32, _: usize, end_of_stream: u32) -> u32 {
    (end_of_stream == 0) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(_: u32, size: usize, end_of_stream: u32) -> u32 {
    if end_of_stream == 0 {
        return 1;
    }
    let body = buffer(0, size);
    let knobs = KNOBS.with(|k| k.get());
    extra_work(knobs);
    REPLY.with(|r| match r.borrow().as_ref() {
        Some(reply) if !body.is_empty() => {
            // The headers in the ABI's pairs format: a count, the sizes, then each name and
            // value followed by a NUL.
            let pairs: &[(&[u8], &[u8])] = if knobs.hit_headers {
                &[(b"content-type", b"application/json"), (b"x-cache", b"edge"),
                  (b"x-request-id", b"6a0d5c3e-1b7f-4b8e-9d3c-2f1e0a9b8c7d")]
            } else {
                &[(b"content-type", b"application/json")]
            };
            let mut headers = (pairs.len() as u32).to_le_bytes().to_vec();
            for (k, v) in pairs {
                headers.extend_from_slice(&(k.len() as u32).to_le_bytes());
                headers.extend_from_slice(&(v.len() as u32).to_le_bytes());
            }
            for (k, v) in pairs {
                headers.extend_from_slice(k);
                headers.push(0);
                headers.extend_from_slice(v);
                headers.push(0);
            }
            let details: &[u8] = if knobs.hit_headers { b"libriassist_edge" } else { b"" };
            unsafe {
                proxy_send_local_response(200, details.as_ptr(), details.len(), reply.as_ptr(),
                    reply.len(), headers.as_ptr(), headers.len(), -1)
            };
            1
        }
        _ => {
            let (k, v) = (&b"x-floor"[..], &b"1"[..]);
            unsafe { proxy_replace_header_map_value(0, k.as_ptr(), k.len(), v.as_ptr(), v.len()) };
            0
        }
    })
}
EOF
)
FLOOR_WASM=$(reference_module floor <<<"$FLOOR_SRC")
# The required floor: the floor exporting the delete callback too, which Envoy then makes for
# every stream, as it does for the filter (whose per-client cap on concurrent streams needs to
# know when a stream ends, however it ends).
REQUIRED_WASM=$(reference_module required <<EOF
$FLOOR_SRC
#[no_mangle]
pub extern "C" fn proxy_on_delete(_: u32) {}
EOF
)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/libriassist-bench-edge.XXXXXX")
PIDS=()
# The Envoy under test by admin port, for perf.
declare -A ENVOY_PID
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME STDOUT CMD...: a child on its own, remembered for cleanup.
start() {
    local name=$1 out=$2
    shift 2
    "$@" </dev/null >"$out" 2>"$TMP/$name.err" &
    PIDS+=($!)
}

# wait_http URL STATUS SECONDS
wait_http() {
    local i code
    for ((i = 0; i < $3 * 10; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)
        [ "$code" = "$2" ] && return 0
        sleep 0.1
    done
    log "$1 did not answer $2 within $3 s"
    return 1
}

# --- Envoy configurations ---------------------------------------------------------------------
shopt -u patsub_replacement 2>/dev/null || true

# render LISTEN ADMIN ORIGIN CACHE FILTER_CONFIG [WASM]: envoy/envoy.template.yaml with these
# values (the filter module unless WASM is given).
render() {
    local text
    text=$(<envoy/envoy.template.yaml)
    text=${text//'${LISTEN_PORT}'/$1}
    text=${text//'${ADMIN_PORT}'/$2}
    text=${text//'${ORIGIN_PORT}'/$3}
    text=${text//'${CACHE_PORT}'/$4}
    text=${text//'${WASM_PATH}'/${6:-$WASM}}
    text=${text//'${FILTER_CONFIG}'/$5}
    if grep -q '\${' <<<"$text"; then
        log "envoy/envoy.template.yaml has a variable this script does not know:"
        grep -n '\${' <<<"$text" >&2
        exit 1
    fi
    printf '%s\n' "$text"
}

# The same listener without the filter: its http_filters entry is dropped, the router stays.
without_filter() {
    awk '
        /^ *- name: envoy\.filters\.http\.wasm$/ { skip = 1; n++ }
        skip && /^ *- name: envoy\.filters\.http\.router$/ { skip = 0 }
        !skip { print }
        END { if (n != 1) exit 3 }
    ' || { log "no wasm filter entry found in the template: update without_filter"; exit 1; }
}

# Envoy's buffer filter before the router: the whole request body is read before routing.
with_buffer_filter() {
    awk '
        /^ *- name: envoy\.filters\.http\.router$/ && !done {
            ind = substr($0, 1, index($0, "- name:") - 1)
            print ind "- name: envoy.filters.http.buffer"
            print ind "  typed_config:"
            print ind "    \"@type\": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
            print ind "    max_request_bytes: 65536"
            done = 1
        }
        { print }
        END { if (!done) exit 3 }
    ' || { log "no router entry found in the template: update with_buffer_filter"; exit 1; }
}

# A first route answering PATH with the file BODY, as the hit does (200, JSON).
with_direct_route() {
    awk -v path="$1" -v body="$2" '
        /^ *routes:$/ && !done {
            print
            ind = substr($0, 1, index($0, "routes:") - 1)
            print ind "- match: { path: " path " }"
            print ind "  direct_response:"
            print ind "    status: 200"
            print ind "    body: { filename: " body " }"
            print ind "  response_headers_to_add:"
            print ind "  - header: { key: content-type, value: application/json }"
            print ind "    append_action: OVERWRITE_IF_EXISTS_OR_ADD"
            done = 1
            next
        }
        { print }
        END { if (!done) exit 3 }
    ' || { log "no routes: list found in the template: update with_direct_route"; exit 1; }
}

# start_envoy NAME CONFIG ADMIN_PORT
start_envoy() {
    # One worker: wrk takes the other core, so throughput is the proxy's cost per request.
    # Access logs (stdout) are formatted as in production but not kept.
    start "$1" /dev/null "$ENVOY" -c "$2" --concurrency 1 --disable-hot-restart -l warning
    ENVOY_PID[$3]=$!
    if ! wait_http "http://127.0.0.1:$3/ready" 200 30; then
        cat "$TMP/$1.err" >&2
        exit 1
    fi
}

# The load generator's single address is one client: the limits are lifted so it is never
# limited, but every request still goes through the rate-limit check in shared data.
LIFTED='"rate_limits":{"chat":{"per_second":1000000,"burst":1000000},"stream":{"per_second":1000000,"burst":1000000},"other":{"per_second":1000000,"burst":1000000}},"max_concurrent_streams":4,"peer_from_forwarded_for":true'
FILTER_CONFIG='{"cache":{"cluster":"libriassist_cache","timeout_ms":100,"l1_ttl_seconds":5},'$LIFTED'}'
NO_LOOKUP_CONFIG='{"cache":{"enabled":false},'$LIFTED'}'

# --- processes ----------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $LOAD_BEFORE"

REDIS_PORT=$(free_port)
start redis /dev/null redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
SIM_PORT=$(free_port)
# A fast simulator: the answer only has to exist once, in the cache; its length is that of a
# typical answer (about 1 KB of JSON at the edge).
start sim /dev/null "$BIN" sim --listen "127.0.0.1:$SIM_PORT" --slots 4 --ttft-ms 10 \
    --tokens-per-sec 0 --answer-tokens 120
wait_http "http://127.0.0.1:$SIM_PORT/api/version" 200 20
ORIGIN_PORT=$(free_port)
start origin /dev/null env RUST_LOG=warn LIBRIASSIST_LISTEN="127.0.0.1:$ORIGIN_PORT" \
    OLLAMA_URLS="http://127.0.0.1:$SIM_PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
    "$BIN" serve
wait_http "http://127.0.0.1:$ORIGIN_PORT/readyz" 200 120 || { cat "$TMP/origin.err" >&2; exit 1; }

# The static upstream of the pass-through variants: a second Envoy answering everything from
# direct_response (200 for the API and /healthz, 404 for cache lookups, as the origin answers
# an unknown key). Fixed cost per request, and none of the origin's work, so the difference
# between the two proxies is the filter's. The buffer filter makes it read a POST body before
# answering: a direct_response sent before the body is in makes Envoy close the connection,
# and every forwarded chat request would then pay for a new upstream connection.
UP_PORT=$(free_port)
UP_ADMIN=$(free_port)
cat >"$TMP/upstream.yaml" <<EOF
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $UP_ADMIN } }
static_resources:
  listeners:
  - name: upstream
    address: { socket_address: { address: 127.0.0.1, port_value: $UP_PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            virtual_hosts:
            - name: upstream
              domains: ["*"]
              routes:
              - match: { prefix: /internal/ }
                direct_response:
                  status: 404
                  body: { inline_string: '{"error":{"code":"not_found","message":"no such cache entry"}}' }
              - match: { prefix: / }
                direct_response:
                  status: 200
                  body: { inline_string: '{"status":"ok"}' }
            response_headers_to_add:
            - header: { key: content-type, value: application/json }
              append_action: OVERWRITE_IF_EXISTS_OR_ADD
          http_filters:
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
EOF
start_envoy upstream "$TMP/upstream.yaml" "$UP_ADMIN"

QUESTION='Quels formats de livres proposez-vous ?'
MISS_QUESTION='Livrez-vous en Belgique le samedi ?'
CHAT_BODY=$(printf '{"question":"%s"}' "$QUESTION")
MISS_BODY=$(printf '{"question":"%s"}' "$MISS_QUESTION")

# The answer is generated once by the origin, which stores it in its exact cache (Redis).
curl -sf --max-time 30 -o /dev/null -H 'content-type: application/json' -d "$CHAT_BODY" \
    "http://127.0.0.1:$ORIGIN_PORT/api/v1/chat" || { log "the origin did not answer"; exit 1; }

# edge: the filter in front of the real origin, whose cache endpoint fills L1.
EDGE_PORT=$(free_port)
EDGE_ADMIN=$(free_port)
render "$EDGE_PORT" "$EDGE_ADMIN" "$ORIGIN_PORT" "$ORIGIN_PORT" "$FILTER_CONFIG" >"$TMP/edge.yaml"
start_envoy edge "$TMP/edge.yaml" "$EDGE_ADMIN"

hit_body="$TMP/hit-body.json"
for ((i = 0; i < 100; i++)); do
    cache=$(curl -s --max-time 5 -o "$hit_body" -D - -H 'content-type: application/json' \
        -d "$CHAT_BODY" "http://127.0.0.1:$EDGE_PORT/api/v1/chat" |
        tr -d '\r' | sed -n 's/^x-cache: //Ip')
    [ "$cache" = edge ] && break
    sleep 0.1
done
[ "$cache" = edge ] || { log "no edge hit for the cached question"; cat "$TMP/edge.err" >&2; exit 1; }
HIT_BYTES=$(stat -c %s "$hit_body")

# plain: the same listener without the filter, proxying to the static upstream, plus the
# direct_response route answering the hit's body.
direct_body="$TMP/direct-body.json"
cp "$hit_body" "$direct_body"
PLAIN_PORT=$(free_port)
PLAIN_ADMIN=$(free_port)
render "$PLAIN_PORT" "$PLAIN_ADMIN" "$UP_PORT" "$UP_PORT" "$FILTER_CONFIG" |
    without_filter | with_direct_route /bench/direct "$direct_body" >"$TMP/plain.yaml"
start_envoy plain "$TMP/plain.yaml" "$PLAIN_ADMIN"
# Admin ports of the Envoys in front of the static upstream (see the health wait below).
FRONTS=("$PLAIN_ADMIN")

# direct_post: the same without the filter, answering the hit's own request (POST
# /api/v1/chat with its body) from direct_response once Envoy's buffer filter has read the
# body, so the connection stays open (see the ceiling above).
POST_PORT=$(free_port)
POST_ADMIN=$(free_port)
render "$POST_PORT" "$POST_ADMIN" "$UP_PORT" "$UP_PORT" "$FILTER_CONFIG" |
    without_filter | with_buffer_filter | with_direct_route /api/v1/chat "$direct_body" >"$TMP/post.yaml"
start_envoy direct_post "$TMP/post.yaml" "$POST_ADMIN"
FRONTS+=("$POST_ADMIN")

# upstream_envoy NAME VAR CONFIG [WASM]: the deployed listener in front of the static
# upstream, with the filter (or the module WASM) configured with CONFIG; its ports go to
# VAR_PORT and VAR_ADMIN.
upstream_envoy() {
    local port admin
    port=$(free_port)
    admin=$(free_port)
    render "$port" "$admin" "$UP_PORT" "$UP_PORT" "$3" "${4:-}" >"$TMP/$1.yaml"
    start_envoy "$1" "$TMP/$1.yaml" "$admin"
    FRONTS+=("$admin")
    printf -v "$2_PORT" %s "$port"
    printf -v "$2_ADMIN" %s "$admin"
}

# filtered: the template as deployed; first: the same for questions never asked before, in an
# Envoy of its own so that their tens of thousands of keys do not fill the memory of the one
# measured on repeats; no lookup: the filter's cache off (validation and key, no lookup call).
upstream_envoy filtered FILT "$FILTER_CONFIG"
upstream_envoy first FRST "$FILTER_CONFIG"
upstream_envoy nolookup NOLK "$NO_LOOKUP_CONFIG"

# empty: the deployed listener with the empty module in the filter's place, plus the
# direct_response route.
EMPTY_PORT=$(free_port)
EMPTY_ADMIN=$(free_port)
render "$EMPTY_PORT" "$EMPTY_ADMIN" "$UP_PORT" "$UP_PORT" "$FILTER_CONFIG" "$EMPTY_WASM" |
    with_direct_route /bench/direct "$direct_body" >"$TMP/empty.yaml"
start_envoy empty "$TMP/empty.yaml" "$EMPTY_ADMIN"
FRONTS+=("$EMPTY_ADMIN")

# floor: the deployed listener with the floor module in the filter's place, answering chat
# requests with a body the size of the hit's; floor_forward: the same module forwarding them.
upstream_envoy floor FLOOR "$HIT_BYTES" "$FLOOR_WASM"
upstream_envoy floor_forward FLFW forward "$FLOOR_WASM"
# required: the least any filter meeting issue 5 does on top of the floor. On a hit: one read of
# the request headers (who asks), one clock read (the time the reply reports, and the L1 TTL),
# the hit's reply headers, and the delete callback (the stream cap). On a chat miss: the
# headers and the delete callback.
upstream_envoy required REQ "$HIT_BYTES 1 1 0 0 1" "$REQUIRED_WASM"
upstream_envoy required_forward REQFW "forward 0 1" "$REQUIRED_WASM"
# The floor answering hits after four clock reads, one read of the request headers, a pass
# over 128 KB of its memory, 128 distinct functions, or with the hit's reply headers: run only
# when named in BENCH_EDGE_ONLY (see EXTRA_VARIANTS).
upstream_envoy floor_clock FLCK "$HIT_BYTES 4 0" "$FLOOR_WASM"
upstream_envoy floor_headers FLHD "$HIT_BYTES 0 1" "$FLOOR_WASM"
upstream_envoy floor_memory FLMEM "$HIT_BYTES 0 0 128" "$FLOOR_WASM"
upstream_envoy floor_code FLCODE "$HIT_BYTES 0 0 0 128" "$FLOOR_WASM"
upstream_envoy floor_reply FLREP "$HIT_BYTES 0 0 0 0 1" "$FLOOR_WASM"

# The proxies must see the upstream healthy before it gets traffic.
for admin in "${FRONTS[@]}"; do
    healthy=0
    for ((i = 0; i < 100; i++)); do
        if curl -s --max-time 1 "http://127.0.0.1:$admin/clusters" |
            grep -q '^libriassist_origin::.*::health_flags::healthy$'; then
            healthy=1
            break
        fi
        sleep 0.1
    done
    [ "$healthy" = 1 ] || { log "the Envoy with admin port $admin never saw the upstream healthy"; exit 1; }
done

DIRECT_BYTES=$(curl -s --max-time 5 "http://127.0.0.1:$PLAIN_PORT/bench/direct" | wc -c)

# --- variants -----------------------------------------------------------------------------------
# wrk scripts: the request, and one machine-readable line at the end.
lua_done='
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.0f %.0f %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end'
lua_post() {
    printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n%s\n' \
        "'$1'" "$lua_done"
}
lua_post "$CHAT_BODY" >"$TMP/hit.lua"
lua_post "$MISS_BODY" >"$TMP/miss.lua"
# A question no one asked before on every request: the run's start time and a count make it
# new to the filter's memory of bodies and keys, to L1 and to the cache endpoint.
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"
local run, n = os.time(), 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format(%s, run, n))
end
%s\n' "'{\"question\":\"$MISS_QUESTION (%d-%d)\"}'" "$lua_done" >"$TMP/first.lua"
printf '%s\n' "$lua_done" >"$TMP/get.lua"

# name|url|script|admin port of the Envoy under test
VARIANTS=(
    "direct|http://127.0.0.1:$PLAIN_PORT/bench/direct|get|$PLAIN_ADMIN"
    "direct_empty|http://127.0.0.1:$EMPTY_PORT/bench/direct|get|$EMPTY_ADMIN"
    "direct_post|http://127.0.0.1:$POST_PORT/api/v1/chat|hit|$POST_ADMIN"
    "hit|http://127.0.0.1:$EDGE_PORT/api/v1/chat|hit|$EDGE_ADMIN"
    "hit_floor|http://127.0.0.1:$FLOOR_PORT/api/v1/chat|hit|$FLOOR_ADMIN"
    "hit_required|http://127.0.0.1:$REQ_PORT/api/v1/chat|hit|$REQ_ADMIN"
    "get_plain|http://127.0.0.1:$PLAIN_PORT/healthz|get|$PLAIN_ADMIN"
    "get_empty|http://127.0.0.1:$EMPTY_PORT/healthz|get|$EMPTY_ADMIN"
    "get_filter|http://127.0.0.1:$FILT_PORT/healthz|get|$FILT_ADMIN"
    "miss_plain|http://127.0.0.1:$PLAIN_PORT/api/v1/chat|miss|$PLAIN_ADMIN"
    "miss_filter|http://127.0.0.1:$FILT_PORT/api/v1/chat|miss|$FILT_ADMIN"
    "miss_first|http://127.0.0.1:$FRST_PORT/api/v1/chat|first|$FRST_ADMIN"
    "miss_nolookup|http://127.0.0.1:$NOLK_PORT/api/v1/chat|miss|$NOLK_ADMIN"
    "miss_floor|http://127.0.0.1:$FLFW_PORT/api/v1/chat|miss|$FLFW_ADMIN"
    "miss_required|http://127.0.0.1:$REQFW_PORT/api/v1/chat|miss|$REQFW_ADMIN"
)
# For a closer look at a change, the floor answering hits after: four clock reads (what a clock
# read costs); one read of the request headers (the least a filter that must know who asks
# and what costs); a pass over 128 KB of its memory; 128 distinct functions; or with the
# hit's reply headers. Run only when named in BENCH_EDGE_ONLY.
EXTRA_VARIANTS=(
    "hit_floor_memory128|http://127.0.0.1:$FLMEM_PORT/api/v1/chat|hit|$FLMEM_ADMIN"
    "hit_floor_code128|http://127.0.0.1:$FLCODE_PORT/api/v1/chat|hit|$FLCODE_ADMIN"
    "hit_floor_reply|http://127.0.0.1:$FLREP_PORT/api/v1/chat|hit|$FLREP_ADMIN"
    "hit_floor_clock4|http://127.0.0.1:$FLCK_PORT/api/v1/chat|hit|$FLCK_ADMIN"
    "hit_floor_headers|http://127.0.0.1:$FLHD_PORT/api/v1/chat|hit|$FLHD_ADMIN"
)

# BENCH_EDGE_ONLY="NAME ...": only these variants, for a quick look; no report.
if [ -n "${BENCH_EDGE_ONLY:-}" ]; then
    [ "$UPDATE_DOCS" = 0 ] || { log "BENCH_EDGE_ONLY measures only some variants: no --update-docs"; exit 2; }
    selected=()
    for v in "${VARIANTS[@]}" "${EXTRA_VARIANTS[@]}"; do
        case " $BENCH_EDGE_ONLY " in *" ${v%%|*} "*) selected+=("$v") ;; esac
    done
    [ "${#selected[@]}" -gt 0 ] || { log "BENCH_EDGE_ONLY names no variant"; exit 2; }
    VARIANTS=("${selected[@]}")
fi

# envoy_stat ADMIN NAME: one counter of Envoy's /stats, 0 when absent (no filter).
envoy_stat() {
    local v
    v=$(curl -s --max-time 2 "http://127.0.0.1:$1/stats?filter=^$2\$" | sed -n "s/^$2: //p" | head -1)
    echo "${v:-0}"
}
# The counters read around each run: edge hits, edge misses, connections the listener
# accepted (wrk keeps its connections open, so a variant that makes Envoy close them shows
# here), lookup calls the filter made, and connections the static upstream accepted (likewise
# for the proxy's pool).
COUNTERS=(wasmcustom.libriassist_edge_cache_hits wasmcustom.libriassist_edge_cache_misses
    http.public.downstream_cx_total cluster.libriassist_cache.upstream_rq_total)
counters() {
    local c
    for c in "${COUNTERS[@]}"; do printf '%s ' "$(envoy_stat "$1" "$c")"; done
    envoy_stat "$UP_ADMIN" http.upstream.downstream_cx_total
}

run_wrk() { # run_wrk URL SCRIPT SECONDS
    wrk -t1 -c"$CONNECTIONS" -d"${3}s" --timeout 2s -s "$TMP/$2.lua" "$1" | sed -n 's/^RESULT //p'
}

log "warm-up"
for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name url script admin <<<"$v"
    run_wrk "$url" "$script" 2 >/dev/null
done

RESULTS="$TMP/results"
: >"$RESULTS"
for ((round = 1; round <= ROUNDS; round++)); do
    for v in "${VARIANTS[@]}"; do
        IFS='|' read -r name url script admin <<<"$v"
        read -r -a before <<<"$(counters "$admin")"
        if [ "$PROFILE" = 1 ]; then
            perf record -q -F 4000 -g -p "${ENVOY_PID[$admin]}" -o "$TMP/$name.$round.perf" \
                -- sleep "$SECONDS_PER_RUN" >/dev/null 2>&1 &
            perf_pid=$!
        fi
        line=$(run_wrk "$url" "$script" "$SECONDS_PER_RUN")
        [ -n "$line" ] || { log "wrk gave no result for $name"; exit 1; }
        if [ "$PROFILE" = 1 ]; then
            wait "$perf_pid" || true
            read -r samples module host envoy kernel all < <(scripts/edge-profile.py \
                "$TMP/$name.$round.perf" "${line%% *}") || true
            if [ -n "$PROFILE_DIR" ]; then
                cp "$TMP/$name.$round.perf" "$PROFILE_DIR/"
                echo "$name.$round ${line%% *}" >>"$PROFILE_DIR/requests.txt"
            fi
            log "round $round $name: worker CPU per request ${all:-?} us: module ${module:-?}, host calls ${host:-?}, rest of Envoy ${envoy:-?}, kernel ${kernel:-?} ($samples samples)"
        fi
        # The filter adds its counts to Envoy's on its 1 s tick: wait for the last one.
        sleep 1.5
        read -r -a after <<<"$(counters "$admin")"
        deltas=""
        for i in "${!before[@]}"; do deltas+=" $((after[i] - before[i]))"; done
        echo "$name $round $line$deltas" >>"$RESULTS"
        log "round $round $name: $(awk '{printf "%.0f req/s, p50 %.2f ms, p99 %.2f ms", $3 / ($4 / 1e6), $5 / 1e3, $6 / 1e3}' <<<"$name $round $line")"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "${BENCH_EDGE_ONLY:-}" ] || [ "$PROFILE" = 1 ]; then
    log "load average after: $LOAD_AFTER; a partial or profiled run: no report"
    exit 0
fi

# --- report -------------------------------------------------------------------------------------
# Fields of $RESULTS: name round requests duration_us p50_us p99_us non2xx socket_errors hits
# misses connections lookups upstream_connections
REPORT="$TMP/report.md"
awk -v rounds="$ROUNDS" -v secs="$SECONDS_PER_RUN" -v conns="$CONNECTIONS" \
    -v variants="$(for v in "${VARIANTS[@]}"; do printf '%s ' "${v%%|*}"; done)" \
    -v hit_bytes="$HIT_BYTES" -v direct_bytes="$DIRECT_BYTES" \
    -v load_before="$LOAD_BEFORE" -v load_after="$LOAD_AFTER" \
    -v envoy="$("$ENVOY" --version | sed -n 's/.*version: [0-9a-f]*\/\([0-9.]*\)\/.*/\1/p')" \
    -v date="$(date -u +%Y-%m-%d)" -v cores="$(nproc)" -v command="$COMMAND" '
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lo(list,    n, a, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
function hi(list,    n, a, i, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
{
    rps = $3 / ($4 / 1e6)
    r[$1, $2] = rps
    RPS[$1] = RPS[$1] " " rps; P50[$1] = P50[$1] " " $5 / 1e3; P99[$1] = P99[$1] " " $6 / 1e3
    REQ[$1] += $3; BAD[$1] += $7 + $8; HITS[$1] += $9; MISSES[$1] += $10; CX[$1] += $11; LOOKUPS[$1] += $12; UPCX[$1] += $13
}
# Per round, the throughput of NAME as a percentage of that of BASE ("share") or the
# percentage it loses against it ("overhead").
function ratios(name, base, kind,    list, i, x) {
    list = ""
    for (i = 1; i <= rounds; i++) {
        x = 100 * r[name, i] / r[base, i]
        list = list " " (kind == "share" ? x : 100 - x)
    }
    return list
}
function share(name, base) { return median(ratios(name, base, "share")) }
function row(name, what, base, kind,    list, m, text) {
    if (base == "") text = "baseline"
    else {
        list = ratios(name, base, kind)
        m = median(list)
        text = sprintf("%s %.1f%% (rounds %.1f to %.1f)", kind == "share" ? "throughput" : "overhead", m, lo(list), hi(list))
        RESULT[name] = m
    }
    printf "| %s | %s | %.0f | %.2f | %.2f | %s |\n", name, what, median(RPS[name]), median(P50[name]), median(P99[name]), text
}
END {
    printf "Run %s: `%s`; %s cores, load average %s before, %s after; Envoy %s with one worker; ", date, command, cores, load_before, load_after, envoy
    count = split(variants, names, " ")
    printf "wrk 1 thread, %s connections, %s s per run, %s rounds of the %d variants in turn (medians below).\n\n", conns, secs, rounds, count
    print "| variant | what | req/s | p50 ms | p99 ms | vs baseline |"
    print "|---|---|---:|---:|---:|---|"
    row("direct", "no filter, GET answered by `direct_response` with the cached answer (" direct_bytes " B): the ceiling", "", "")
    row("direct_empty", "reference: the same through an empty proxy-wasm module", "direct", "share")
    row("direct_post", "no filter, the hit'"'"'s own POST /api/v1/chat answered by `direct_response` once Envoy'"'"'s buffer filter has read its body: the same-request ceiling", "direct", "share")
    row("hit", "filter, POST /api/v1/chat answered from L1 (" hit_bytes " B, `x-cache: edge`)", "direct", "share")
    row("hit_floor", "reference: the same POST answered by the floor module (reads the body, replies " hit_bytes " B, nothing else)", "direct", "share")
    row("hit_required", "reference: the floor plus what the issue requires of every hit (a read of the request headers, a clock read, the reply headers, the delete callback)", "direct", "share")
    row("get_plain", "no filter, GET /healthz proxied to the static upstream", "", "")
    row("get_empty", "reference: the same through an empty proxy-wasm module", "get_plain", "overhead")
    row("get_filter", "filter, GET /healthz passed through", "get_plain", "overhead")
    row("miss_plain", "no filter, POST /api/v1/chat proxied to the static upstream", "", "")
    row("miss_filter", "filter, POST /api/v1/chat missed (lookup answered 404) and forwarded", "miss_plain", "overhead")
    row("miss_first", "filter, POST /api/v1/chat with a question never asked before, a new one each request (parsed, normalized, hashed, looked up: 404) and forwarded", "miss_plain", "overhead")
    row("miss_nolookup", "filter with its cache off, POST /api/v1/chat validated and forwarded", "miss_plain", "overhead")
    row("miss_floor", "reference: the floor module on the same POST (reads the body, adds a header, forwards)", "miss_plain", "overhead")
    row("miss_required", "reference: the floor plus what the issue requires of every chat request (a read of the request headers, the delete callback)", "miss_plain", "overhead")
    print ""
    post = share("hit", "direct_post")
    printf "Goals: edge hits %.1f%% of direct_response throughput on GET (goal >= 70%%: %s), %.1f%% of direct_response on the same POST (%s); ", RESULT["hit"], (RESULT["hit"] >= 70 ? "met" : "MISSED"), post, (post >= 70 ? "met" : "MISSED")
    printf "pass-through overhead %.1f%% on GET (goal <= 15%%: %s), %.1f%% on chat misses (%s), ", RESULT["get_filter"], (RESULT["get_filter"] <= 15 ? "met" : "MISSED"), RESULT["miss_filter"], (RESULT["miss_filter"] <= 15 ? "met" : "MISSED")
    printf "%.1f%% on chat requests without the lookup call (%s); a question asked for the first time, which pays the lookup call, %.1f%%. ", RESULT["miss_nolookup"], (RESULT["miss_nolookup"] <= 15 ? "met" : "MISSED"), RESULT["miss_first"]
    printf "The floor module, which does nothing but read the body: %.1f%% of direct_response on GET and %.1f%% of it on the same POST for hits, %.1f%% overhead on chat misses. ", RESULT["hit_floor"], share("hit_floor", "direct_post"), RESULT["miss_floor"]
    printf "The floor plus what the issue requires of every request, with no logic: %.1f%% and %.1f%% for hits, %.1f%% overhead on chat misses.\n", RESULT["hit_required"], share("hit_required", "direct_post"), RESULT["miss_required"]
    print ""
    printf "Checks: the filter counted %d edge hits for %d hit requests completed, %d misses for %d miss requests (the excess: requests in flight when wrk stopped); ", HITS["hit"], REQ["hit"], MISSES["miss_filter"], REQ["miss_filter"]
    bad = 0; for (n in BAD) bad += BAD[n]
    printf "%d responses were not 2xx or failed at the socket; connections the proxy accepted per run (wrk opens %d):", bad, conns
    for (i = 1; i <= count; i++) printf "%s %s %.0f", (i > 1 ? "," : ""), names[i], CX[names[i]] / rounds
    printf "; lookup calls per run: hit %.0f, miss_filter %.0f, miss_first %.0f for %.0f requests", LOOKUPS["hit"] / rounds, LOOKUPS["miss_filter"] / rounds, LOOKUPS["miss_first"] / rounds, REQ["miss_first"] / rounds
    printf "; connections the static upstream accepted per run:"
    for (i = 1; i <= count; i++) printf "%s %s %.0f", (i > 1 ? "," : ""), names[i], UPCX[names[i]] / rounds
    print "."
}' "$RESULTS" >"$REPORT"

cat "$REPORT"

if [ "$UPDATE_DOCS" = 1 ]; then
    docs=docs/BENCHMARKS.md
    # Read just before writing and replaced in one rename: other sections change meanwhile.
    awk -v report="$REPORT" '
        $0 == "<!-- bench:edge -->" { print; while ((getline l < report) > 0) print l; skip = 1; found++; next }
        $0 == "<!-- /bench:edge -->" { skip = 0; closed++ }
        !skip { print }
        END { if (found != 1 || closed != 1) exit 3 }
    ' "$docs" >"$docs.bench-edge-tmp" && mv "$docs.bench-edge-tmp" "$docs" || {
        rm -f "$docs.bench-edge-tmp"
        log "$docs has no <!-- bench:edge --> ... <!-- /bench:edge --> block; left unchanged"
        exit 1
    }
    log "updated the edge block of $docs"
fi
