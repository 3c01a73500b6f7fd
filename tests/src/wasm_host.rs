//! A proxy-wasm host in wasmtime that plays Envoy's part for the edge filter, so the filter's
//! behaviour is asserted on the real `.wasm` without Envoy: the same ABI 0.2.1 imports, the
//! same callback order, and Envoy's rules where the filter could get them wrong (header
//! changes refused once headers went upstream, CAS on shared data, mandatory call headers,
//! local replies recorded instead of the upstream's response).
//!
//! Several [`FilterVm`]s built from one [`Cluster`] share shared data and counters, as Envoy's
//! worker threads do. Any import the filter uses that is not implemented here traps, so a new
//! host call shows up as a failing test rather than a silent success.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::{Caller, Engine, Extern, Instance, Linker, Module, Store};

const OK: i32 = 0;
const NOT_FOUND: i32 = 1;
const BAD_ARGUMENT: i32 = 2;
const CAS_MISMATCH: i32 = 8;

/// The release `.wasm`, built by `cargo build -p libriassist-filter --target wasm32-wasip1
/// --release` on first use in this test process, so a plain `cargo test` never runs a stale
/// filter (cargo makes the build a no-op when nothing changed).
pub fn filter_wasm() -> &'static PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "libriassist-filter", "--target", "wasm32-wasip1", "--release"])
            .current_dir(&root)
            .output()
            .expect("run cargo build for the filter");
        assert!(
            output.status.success(),
            "building the filter failed (is the target installed? `scripts/setup.sh step wasm_target`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        crate::process::target_dir().join("wasm32-wasip1/release/libriassist_filter.wasm")
    })
}

/// What proxy-wasm callbacks return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

/// A local reply the filter asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl LocalReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("local reply body is JSON")
    }
}

/// An outgoing `dispatch_http_call`.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub token: u32,
    pub context: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u32,
}

impl HttpCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP stream as the host sees it.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub peer: Option<String>,
    /// Envoy refuses header changes once the headers went upstream (the headers callback
    /// returned Continue, or the stream was resumed).
    pub headers_held: bool,
    pub local_reply: Option<LocalReply>,
    pub resumed: bool,
    /// Writes to the request body (`proxy_set_buffer_bytes`).
    pub body_writes: u32,
    /// Header changes the host refused, as (header, status).
    pub refused_header_changes: Vec<String>,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// State all workers share: shared data, counters, the clusters that exist.
#[derive(Default)]
pub struct ClusterState {
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    pub counters: HashMap<String, u64>,
}

/// A set of VMs that share state like Envoy's workers.
#[derive(Clone)]
pub struct Cluster {
    engine: Engine,
    module: Module,
    pub state: Arc<Mutex<ClusterState>>,
}

impl Cluster {
    /// A fresh set of workers. The module is compiled once per test process: compiling it
    /// takes seconds, starting an instance microseconds.
    pub fn new(wasm: &Path) -> wasmtime::Result<Cluster> {
        static COMPILED: Mutex<Option<(PathBuf, Engine, Module)>> = Mutex::new(None);
        let mut compiled = COMPILED
            .lock()
            .map_err(|_| wasmtime::format_err!("poisoned"))?;
        let (engine, module) = match compiled.as_ref() {
            Some((path, engine, module)) if path == wasm => (engine.clone(), module.clone()),
            _ => {
                let engine = Engine::default();
                let module = Module::from_file(&engine, wasm)?;
                *compiled = Some((wasm.to_path_buf(), engine.clone(), module.clone()));
                (engine, module)
            }
        };
        Ok(Cluster {
            engine,
            module,
            state: Arc::default(),
        })
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.state
            .lock()
            .map(|s| s.counters.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Starts one VM (one Envoy worker) with the plugin configuration `config` and runs
    /// `_initialize`, the root context, `on_vm_start` and `on_configure`. The boolean is what
    /// `on_configure` answered.
    pub fn vm(&self, config: &str) -> wasmtime::Result<(FilterVm, bool)> {
        let host = Host {
            cluster: self.state.clone(),
            clusters: vec!["libriassist_cache".into()],
            plugin_config: config.as_bytes().to_vec(),
            ..Host::default()
        };
        let mut store = Store::new(&self.engine, host);
        let mut linker = Linker::new(&self.engine);
        define_imports(&mut linker)?;
        linker.define_unknown_imports_as_traps(&self.module)?;
        let instance = linker.instantiate(&mut store, &self.module)?;
        let mut vm = FilterVm {
            store,
            instance,
            root: 1,
            next_context: 2,
        };
        vm.call0("_initialize")?;
        vm.call_void("proxy_on_context_create", &[1, 0])?;
        vm.call_i32("proxy_on_vm_start", &[1, 0])?;
        let size = config.len() as i32;
        let configured = vm.call_i32("proxy_on_configure", &[1, size])? != 0;
        Ok((vm, configured))
    }
}

/// One instance of the filter: one Envoy worker thread's VM.
pub struct FilterVm {
    store: Store<Host>,
    instance: Instance,
    root: u32,
    next_context: u32,
}

/// A request to start on a VM.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub headers: Vec<(String, String)>,
    pub peer: Option<String>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), "edge.test".into()),
                ("x-request-id".into(), "req-1".into()),
            ],
            peer: Some("192.0.2.10:40000".into()),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn peer(mut self, peer: &str) -> Request {
        self.peer = Some(peer.into());
        self
    }

    /// A JSON POST with a correct content-length.
    pub fn chat(path: &str, body: &[u8]) -> Request {
        Request::new("POST", path)
            .header("content-type", "application/json")
            .header("content-length", &body.len().to_string())
    }
}

impl FilterVm {
    pub fn host(&self) -> &Host {
        self.store.data()
    }

    pub fn set_time_ns(&mut self, now: u64) {
        self.store.data_mut().now_ns = now;
    }

    pub fn logs(&self) -> &[(i32, String)] {
        &self.store.data().logs
    }

    pub fn stream(&self, context: u32) -> &Stream {
        &self.store.data().streams[&context]
    }

    pub fn calls(&self) -> &[HttpCall] {
        &self.store.data().calls
    }

    /// What Envoy does every tick period on this worker's root context.
    pub fn tick(&mut self) -> wasmtime::Result<()> {
        self.store.data_mut().current = self.root;
        let root = self.root as i32;
        self.call_void("proxy_on_tick", &[root])
    }

    /// Makes every `dispatch_http_call` fail as for an unknown cluster.
    pub fn fail_dispatch(&mut self, fail: bool) {
        self.store.data_mut().fail_dispatch = fail;
    }

    /// Creates the stream context; the next step is [`FilterVm::request_headers`].
    pub fn start(&mut self, request: Request) -> wasmtime::Result<u32> {
        let context = self.next_context;
        self.next_context += 1;
        let stream = Stream {
            request_headers: request.headers,
            peer: request.peer,
            headers_held: true,
            ..Stream::default()
        };
        self.store.data_mut().streams.insert(context, stream);
        self.store.data_mut().current = context;
        let root = self.root as i32;
        self.call_void("proxy_on_context_create", &[context as i32, root])?;
        Ok(context)
    }

    pub fn request_headers(
        &mut self,
        context: u32,
        end_of_stream: bool,
    ) -> wasmtime::Result<Action> {
        self.store.data_mut().current = context;
        let n = self.stream(context).request_headers.len() as i32;
        let action = action(self.call_i32(
            "proxy_on_request_headers",
            &[context as i32, n, end_of_stream as i32],
        )?);
        if action == Action::Continue {
            self.stream_mut(context).headers_held = false;
        }
        Ok(action)
    }

    /// Delivers one body chunk; the filter sees the cumulative size, as in Envoy when it
    /// buffers.
    pub fn request_body(
        &mut self,
        context: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> wasmtime::Result<Action> {
        self.store.data_mut().current = context;
        self.stream_mut(context)
            .request_body
            .extend_from_slice(chunk);
        let size = self.stream(context).request_body.len() as i32;
        let action = action(self.call_i32(
            "proxy_on_request_body",
            &[context as i32, size, end_of_stream as i32],
        )?);
        if action == Action::Continue {
            self.stream_mut(context).headers_held = false;
        }
        Ok(action)
    }

    /// Answers the pending call `token`: `Some((status, body))`, or `None` for a reset (Envoy
    /// then reports no headers at all).
    pub fn http_call_response(
        &mut self,
        token: u32,
        response: Option<(u16, &[u8])>,
    ) -> wasmtime::Result<()> {
        let call = self
            .calls()
            .iter()
            .find(|c| c.token == token)
            .cloned()
            .expect("known token");
        let (headers, body) = match response {
            Some((status, body)) => (
                vec![
                    (":status".to_owned(), status.to_string()),
                    ("content-type".to_owned(), "application/json".to_owned()),
                ],
                body.to_vec(),
            ),
            None => (vec![], vec![]),
        };
        let (nh, nb) = (headers.len() as i32, body.len() as i32);
        self.store.data_mut().call_response = Some((headers, body));
        self.store.data_mut().current = call.context;
        let result = self.call_void(
            "proxy_on_http_call_response",
            &[call.context as i32, token as i32, nh, nb, 0],
        );
        self.store.data_mut().call_response = None;
        result
    }

    /// Ends the stream as Envoy does: access log, done, delete, each only if the module
    /// exports it (Envoy makes no call for a callback that is not exported).
    pub fn finish(&mut self, context: u32) -> wasmtime::Result<()> {
        self.store.data_mut().current = context;
        for (name, returns) in [
            ("proxy_on_log", false),
            ("proxy_on_done", true),
            ("proxy_on_delete", false),
        ] {
            if self.exports(name) {
                self.call_raw(name, &[context as i32], returns)?;
            }
        }
        Ok(())
    }

    /// Whether the module exports the function `name`.
    pub fn exports(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    fn stream_mut(&mut self, context: u32) -> &mut Stream {
        self.store
            .data_mut()
            .streams
            .get_mut(&context)
            .expect("known stream")
    }

    fn call0(&mut self, name: &str) -> wasmtime::Result<()> {
        let f = self
            .instance
            .get_typed_func::<(), ()>(&mut self.store, name)?;
        f.call(&mut self.store, ())
    }

    fn call_void(&mut self, name: &str, args: &[i32]) -> wasmtime::Result<()> {
        self.call_raw(name, args, false).map(|_| ())
    }

    fn call_i32(&mut self, name: &str, args: &[i32]) -> wasmtime::Result<i32> {
        self.call_raw(name, args, true)
    }

    fn call_raw(&mut self, name: &str, args: &[i32], returns: bool) -> wasmtime::Result<i32> {
        let f = self
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| wasmtime::format_err!("the filter does not export {name}"))?;
        let params: Vec<wasmtime::Val> = args.iter().map(|a| wasmtime::Val::I32(*a)).collect();
        let mut results = if returns {
            vec![wasmtime::Val::I32(0)]
        } else {
            vec![]
        };
        f.call(&mut self.store, &params, &mut results)?;
        Ok(results.first().and_then(|v| v.i32()).unwrap_or(0))
    }
}

fn action(code: i32) -> Action {
    if code == 0 {
        Action::Continue
    } else {
        Action::Pause
    }
}

/// Headers and body of the call response being delivered.
type CallResponse = (Vec<(String, String)>, Vec<u8>);

/// Host state of one VM.
#[derive(Default)]
pub struct Host {
    cluster: Arc<Mutex<ClusterState>>,
    clusters: Vec<String>,
    pub now_ns: u64,
    plugin_config: Vec<u8>,
    pub logs: Vec<(i32, String)>,
    pub streams: HashMap<u32, Stream>,
    current: u32,
    pub calls: Vec<HttpCall>,
    next_token: u32,
    call_response: Option<CallResponse>,
    fail_dispatch: bool,
    metric_names: HashMap<u32, String>,
}

impl Host {
    fn stream(&mut self) -> Option<&mut Stream> {
        let current = self.current;
        self.streams.get_mut(&current)
    }
}

// === memory helpers ===

fn memory(caller: &mut Caller<'_, Host>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the filter exports no memory"),
    }
}

fn read(caller: &mut Caller<'_, Host>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let data = mem.data(&caller);
    let end = start
        .checked_add(len)
        .filter(|e| *e <= data.len())
        .ok_or_else(|| wasmtime::format_err!("read out of bounds"))?;
    Ok(data[start..end].to_vec())
}

fn write_u32(caller: &mut Caller<'_, Host>, ptr: i32, value: u32) -> wasmtime::Result<()> {
    memory(caller)?.write(&mut *caller, ptr as u32 as usize, &value.to_le_bytes())?;
    Ok(())
}

/// Copies `bytes` into memory the filter allocates and stores pointer and size at the
/// given addresses, as a host does for every returned buffer.
fn give(
    caller: &mut Caller<'_, Host>,
    bytes: &[u8],
    ptr_out: i32,
    size_out: i32,
) -> wasmtime::Result<()> {
    let alloc = match caller.get_export("proxy_on_memory_allocate") {
        Some(Extern::Func(f)) => f.typed::<i32, i32>(&caller)?,
        _ => wasmtime::bail!("the filter exports no allocator"),
    };
    let ptr = alloc.call(&mut *caller, bytes.len() as i32)?;
    memory(caller)?.write(&mut *caller, ptr as u32 as usize, bytes)?;
    write_u32(caller, ptr_out, ptr as u32)?;
    write_u32(caller, size_out, bytes.len() as u32)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

fn decode_pairs(bytes: &[u8]) -> wasmtime::Result<Vec<(String, String)>> {
    let pairs = libriassist_filter::pairs::decode(bytes)
        .ok_or_else(|| wasmtime::format_err!("malformed header map"))?;
    Ok(pairs.into_iter().map(|(k, v)| (text(k), text(v))).collect())
}

const REQUEST_HEADERS: i32 = 0;
const CALL_RESPONSE_HEADERS: i32 = 6;

fn define_imports(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Caller<'_, Host>, level: i32, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            let message = text(read(&mut c, ptr, len)?);
            c.data_mut().logs.push((level, message));
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, Host>, out: i32| -> wasmtime::Result<i32> {
            let now = c.data().now_ns;
            memory(&mut c)?.write(&mut c, out as u32 as usize, &now.to_le_bytes())?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |_: Caller<'_, Host>, _: i32| OK,
    )?;
    linker.func_wrap("env", "proxy_done", |_: Caller<'_, Host>| OK)?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, Host>, context: i32| {
            c.data_mut().current = context as u32;
            OK
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, Host>,
         kind: i32,
         start: i32,
         max: i32,
         ptr_out: i32,
         size_out: i32|
         -> wasmtime::Result<i32> {
            let data = match kind {
                0 => c.data_mut().stream().map(|s| s.request_body.clone()),
                4 => c.data().call_response.as_ref().map(|(_, b)| b.clone()),
                6 => Some(Vec::new()),
                7 => Some(c.data().plugin_config.clone()),
                _ => None,
            };
            let Some(data) = data else {
                return Ok(NOT_FOUND);
            };
            let start = (start as u32 as usize).min(data.len());
            let end = start.saturating_add(max as u32 as usize).min(data.len());
            give(&mut c, &data[start..end], ptr_out, size_out)?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Caller<'_, Host>,
         kind: i32,
         _start: i32,
         _size: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<i32> {
            let data = read(&mut c, ptr, len)?;
            match (kind, c.data_mut().stream()) {
                (0, Some(stream)) => {
                    stream.request_body = data;
                    stream.body_writes += 1;
                    Ok(OK)
                }
                _ => Ok(BAD_ARGUMENT),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, Host>, map: i32, ptr_out: i32, size_out: i32| -> wasmtime::Result<i32> {
            let pairs = match map {
                REQUEST_HEADERS => c.data_mut().stream().map(|s| s.request_headers.clone()),
                CALL_RESPONSE_HEADERS => c.data().call_response.as_ref().map(|(h, _)| h.clone()),
                _ => None,
            };
            let Some(pairs) = pairs else {
                return Ok(NOT_FOUND);
            };
            give(
                &mut c,
                &libriassist_filter::pairs::encode(&pairs),
                ptr_out,
                size_out,
            )?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Caller<'_, Host>,
         map: i32,
         kptr: i32,
         klen: i32,
         ptr_out: i32,
         size_out: i32|
         -> wasmtime::Result<i32> {
            let key = text(read(&mut c, kptr, klen)?);
            let value =
                match map {
                    REQUEST_HEADERS => c.data_mut().stream().and_then(|s| {
                        s.request_headers
                            .iter()
                            .find(|(k, _)| *k == key)
                            .map(|(_, v)| v.clone())
                    }),
                    CALL_RESPONSE_HEADERS => c.data().call_response.as_ref().and_then(|(h, _)| {
                        h.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
                    }),
                    _ => None,
                };
            match value {
                Some(v) => {
                    give(&mut c, v.as_bytes(), ptr_out, size_out)?;
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    fn change_header(
        c: &mut Caller<'_, Host>,
        map: i32,
        key: String,
        value: Option<String>,
        add: bool,
    ) -> wasmtime::Result<i32> {
        let Some(stream) = c.data_mut().stream() else {
            return Ok(NOT_FOUND);
        };
        if map != REQUEST_HEADERS || !stream.headers_held {
            stream.refused_header_changes.push(key);
            return Ok(BAD_ARGUMENT);
        }
        if !add {
            stream.request_headers.retain(|(k, _)| *k != key);
        }
        if let Some(v) = value {
            stream.request_headers.push((key, v));
        }
        Ok(OK)
    }
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Caller<'_, Host>,
         map: i32,
         kp: i32,
         kl: i32,
         vp: i32,
         vl: i32|
         -> wasmtime::Result<i32> {
            let (k, v) = (text(read(&mut c, kp, kl)?), text(read(&mut c, vp, vl)?));
            change_header(&mut c, map, k, Some(v), false)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Caller<'_, Host>,
         map: i32,
         kp: i32,
         kl: i32,
         vp: i32,
         vl: i32|
         -> wasmtime::Result<i32> {
            let (k, v) = (text(read(&mut c, kp, kl)?), text(read(&mut c, vp, vl)?));
            change_header(&mut c, map, k, Some(v), true)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, Host>, map: i32, kp: i32, kl: i32| -> wasmtime::Result<i32> {
            let k = text(read(&mut c, kp, kl)?);
            change_header(&mut c, map, k, None, false)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, Host>,
         pp: i32,
         pl: i32,
         ptr_out: i32,
         size_out: i32|
         -> wasmtime::Result<i32> {
            let path = read(&mut c, pp, pl)?;
            let value = match path.as_slice() {
                b"source\0address" => c.data_mut().stream().and_then(|s| s.peer.clone()),
                _ => None,
            };
            match value {
                Some(v) => {
                    give(&mut c, v.as_bytes(), ptr_out, size_out)?;
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Caller<'_, Host>,
         kp: i32,
         kl: i32,
         ptr_out: i32,
         size_out: i32,
         cas_out: i32|
         -> wasmtime::Result<i32> {
            let key = text(read(&mut c, kp, kl)?);
            let entry = c
                .data()
                .cluster
                .lock()
                .map_err(|_| wasmtime::format_err!("poisoned"))?
                .shared
                .get(&key)
                .cloned();
            match entry {
                Some((value, cas)) => {
                    give(&mut c, &value, ptr_out, size_out)?;
                    write_u32(&mut c, cas_out, cas)?;
                    Ok(OK)
                }
                None => Ok(NOT_FOUND),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Caller<'_, Host>,
         kp: i32,
         kl: i32,
         vp: i32,
         vl: i32,
         cas: i32|
         -> wasmtime::Result<i32> {
            let key = text(read(&mut c, kp, kl)?);
            let value = read(&mut c, vp, vl)?;
            let mut state = c
                .data()
                .cluster
                .lock()
                .map_err(|_| wasmtime::format_err!("poisoned"))?;
            // Envoy: a non-zero cas must match the stored one; a new key ignores it.
            if let Some((_, current)) = state.shared.get(&key) {
                if cas != 0 && *current != cas as u32 {
                    return Ok(CAS_MISMATCH);
                }
            }
            state.next_cas += 1;
            let next = state.next_cas;
            state.shared.insert(key, (value, next));
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Caller<'_, Host>,
         status: i32,
         _dp: i32,
         _dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32|
         -> wasmtime::Result<i32> {
            let body = read(&mut c, bp, bl)?;
            let headers = decode_pairs(&read(&mut c, hp, hl)?)?;
            let Some(stream) = c.data_mut().stream() else {
                return Ok(NOT_FOUND);
            };
            if stream.local_reply.is_some() {
                wasmtime::bail!("a second local reply on one stream");
            }
            stream.local_reply = Some(LocalReply {
                status: status as u32,
                headers,
                body,
            });
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Caller<'_, Host>, kind: i32| -> i32 {
            match (kind, c.data_mut().stream()) {
                (0, Some(stream)) => {
                    stream.resumed = true;
                    stream.headers_held = false;
                    OK
                }
                _ => BAD_ARGUMENT,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Caller<'_, Host>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         _bp: i32,
         _bl: i32,
         _tp: i32,
         _tl: i32,
         timeout: i32,
         token_out: i32|
         -> wasmtime::Result<i32> {
            let cluster = text(read(&mut c, up, ul)?);
            let headers = decode_pairs(&read(&mut c, hp, hl)?)?;
            let has = |n: &str| headers.iter().any(|(k, v)| k == n && !v.is_empty());
            // Envoy refuses a call to an unknown cluster or without these pseudo-headers.
            if c.data().fail_dispatch
                || !c.data().clusters.contains(&cluster)
                || !(has(":method") && has(":path") && has(":authority"))
            {
                return Ok(BAD_ARGUMENT);
            }
            let host = c.data_mut();
            host.next_token += 1;
            let token = host.next_token;
            let context = host.current;
            host.calls.push(HttpCall {
                token,
                context,
                cluster,
                headers,
                timeout_ms: timeout as u32,
            });
            write_u32(&mut c, token_out, token)?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, Host>,
         kind: i32,
         np: i32,
         nl: i32,
         id_out: i32|
         -> wasmtime::Result<i32> {
            if kind != 0 {
                return Ok(BAD_ARGUMENT);
            }
            let name = text(read(&mut c, np, nl)?);
            let id = c.data().metric_names.len() as u32 + 1;
            c.data_mut().metric_names.insert(id, name.clone());
            c.data()
                .cluster
                .lock()
                .map_err(|_| wasmtime::format_err!("poisoned"))?
                .counters
                .entry(name)
                .or_insert(0);
            write_u32(&mut c, id_out, id)?;
            Ok(OK)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Caller<'_, Host>, id: i32, offset: i64| -> wasmtime::Result<i32> {
            let Some(name) = c.data().metric_names.get(&(id as u32)).cloned() else {
                return Ok(NOT_FOUND);
            };
            if offset <= 0 {
                return Ok(BAD_ARGUMENT);
            }
            *c.data()
                .cluster
                .lock()
                .map_err(|_| wasmtime::format_err!("poisoned"))?
                .counters
                .entry(name)
                .or_insert(0) += offset as u64;
            Ok(OK)
        },
    )?;
    // WASI: what Rust's std imports on wasm32-wasip1. Output goes to the log so a panic message
    // (written to stderr) shows up in assertions.
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_write",
        |mut c: Caller<'_, Host>,
         _fd: i32,
         iovs: i32,
         count: i32,
         written_out: i32|
         -> wasmtime::Result<i32> {
            let mut total = 0u32;
            let mut out = Vec::new();
            for i in 0..count {
                let iov = read(&mut c, iovs + i * 8, 8)?;
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                out.extend(read(&mut c, ptr, len)?);
                total += len as u32;
            }
            c.data_mut().logs.push((-1, text(out)));
            write_u32(&mut c, written_out, total)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "environ_sizes_get",
        |mut c: Caller<'_, Host>, n: i32, s: i32| -> wasmtime::Result<i32> {
            write_u32(&mut c, n, 0)?;
            write_u32(&mut c, s, 0)?;
            Ok(0)
        },
    )?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "environ_get",
        |_: Caller<'_, Host>, _: i32, _: i32| 0,
    )?;
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "proc_exit",
        |_: Caller<'_, Host>, code: i32| -> wasmtime::Result<()> {
            wasmtime::bail!("the filter called proc_exit({code})")
        },
    )?;
    Ok(())
}
