//! The proxy-wasm ABI (0.2.1) entry points of the filter, and the context each call is for.
//!
//! Only the callbacks the filter uses are exported. Envoy makes no call for a callback the
//! module does not export (proxy-wasm-cpp-host, `ContextBase::onResponseHeaders` and the
//! others), and every call it makes enters V8, which costs about what a host call does. The
//! Rust SDK exports every callback, so each request also paid for its response headers, each
//! chunk of its response body (each event of a stream), its access log and `on_done`, none of
//! which the filter needs. What the SDK did besides (contexts by id, a callout's answer routed
//! to its request) is this module, which also never panics on an id it does not know.
//!
//! A request's stream slot is given back in `proxy_on_delete`, which Envoy calls for every
//! stream it destroys, answered, reset or failed.

use crate::glue::{self, EdgeRequest, EdgeRoot};
use crate::host;
use crate::shared::{seeded, SeededMap};
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::rc::Rc;

/// What a request callback tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

thread_local! {
    // One VM per worker thread: plain per-worker maps, keyed by the ids Envoy gives.
    static ROOTS: RefCell<SeededMap<u32, EdgeRoot>> =
        const { RefCell::new(SeededMap::with_hasher(seeded(0))) };
    /// Each request in a cell of its own, so that a callback looks it up once and the table
    /// is free while the request is busy (see `with_request`).
    static REQUESTS: RefCell<SeededMap<u32, Rc<RefCell<EdgeRequest>>>> =
        const { RefCell::new(SeededMap::with_hasher(seeded(0))) };
    /// Callout tokens and the request each answer is for.
    static CALLS: RefCell<SeededMap<u32, u32>> =
        const { RefCell::new(SeededMap::with_hasher(seeded(0))) };
}

/// Runs `f` on the request `id`; the table itself is not borrowed meanwhile, so a callback
/// the host makes during `f` (for another request, or a context created) finds it free.
/// `None` for an id it does not know, and for a callback that re-enters a request already
/// busy (as when resuming it lets Envoy pass it its body at once): it passes through.
fn with_request<T>(id: u32, f: impl FnOnce(&mut EdgeRequest) -> T) -> Option<T> {
    let request = REQUESTS.with(|r| r.borrow().get(&id).cloned())?;
    let mut request = request.try_borrow_mut().ok()?;
    Some(f(&mut request))
}

/// Runs `f` on the root context `id`, taken out of the table for the call so that nothing the
/// host might do meanwhile finds the table borrowed. Roots are called rarely (configure,
/// tick, delete), so the move costs nothing that counts.
fn with_root<T>(id: u32, f: impl FnOnce(&mut EdgeRoot) -> T) -> Option<T> {
    let mut root = ROOTS.with(|r| r.borrow_mut().remove(&id))?;
    let out = f(&mut root);
    ROOTS.with(|r| r.borrow_mut().insert(id, root));
    Some(out)
}

/// Routes the answer to callout `token` to the request `context`.
pub fn expect_answer(token: u32, context: u32) {
    CALLS.with(|c| c.borrow_mut().insert(token, context));
}

extern "C" {
    fn __wasm_call_ctors();
}

/// Run once by Envoy before any callback (a WASI reactor's entry point).
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the linker's constructor list, run once as WASI reactors require.
    unsafe { __wasm_call_ctors() };
    glue::start();
}

/// Tells Envoy which ABI the module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory for data the host hands over; `host` takes it back as a `Vec` of `size` bytes.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut bytes: Vec<MaybeUninit<u8>> = Vec::with_capacity(size);
    // SAFETY: MaybeUninit needs no initialization; the capacity is `size`.
    unsafe { bytes.set_len(size) };
    Box::into_raw(bytes.into_boxed_slice()).cast::<u8>()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(id: u32, root_id: u32) {
    if root_id == 0 {
        // Never replaces a root: its configuration and counters would be lost.
        ROOTS.with(|r| {
            r.borrow_mut().entry(id).or_default();
        });
        return;
    }
    // A request of an unknown root passes through untouched.
    let request = ROOTS
        .with(|r| r.borrow().get(&root_id).map(|root| root.new_request(id)))
        .unwrap_or_else(|| EdgeRequest::unconfigured(id));
    REQUESTS.with(|r| r.borrow_mut().insert(id, Rc::new(RefCell::new(request))));
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(id: u32, plugin_configuration_size: usize) -> u32 {
    with_root(id, |root| root.on_configure(plugin_configuration_size)).unwrap_or(false) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(id: u32) {
    with_root(id, EdgeRoot::on_tick);
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    id: u32,
    _num_headers: usize,
    end_of_stream: u32,
) -> Action {
    with_request(id, |r| r.on_request_headers(end_of_stream != 0)).unwrap_or(Action::Continue)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(id: u32, body_size: usize, end_of_stream: u32) -> Action {
    with_request(id, |r| r.on_request_body(body_size, end_of_stream != 0))
        .unwrap_or(Action::Continue)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(id: u32, _num_trailers: usize) -> Action {
    with_request(id, EdgeRequest::on_request_trailers).unwrap_or(Action::Continue)
}

/// Envoy calls this on the root context; the answer goes to the request that asked.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _root_id: u32,
    token: u32,
    num_headers: usize,
    body_size: usize,
    _num_trailers: usize,
) {
    let Some(context) = CALLS.with(|c| c.borrow_mut().remove(&token)) else {
        return;
    };
    // Host calls from here on (resume, local reply) must act on that request.
    if host::set_effective_context(context).is_ok() {
        with_request(context, |r| r.on_http_call_response(num_headers, body_size));
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(id: u32) {
    if let Some(request) = REQUESTS.with(|r| r.borrow_mut().remove(&id)) {
        // Busy only if Envoy deleted it from inside one of its own callbacks, which Envoy
        // defers to after them; its stream slot would then be freed when the lease expires.
        if let Ok(mut request) = request.try_borrow_mut() {
            request.on_delete();
        }
        // A callout still out for it will be answered to no one.
        CALLS.with(|c| c.borrow_mut().retain(|_, context| *context != id));
    } else if let Some(root) = ROOTS.with(|r| r.borrow_mut().remove(&id)) {
        root.on_delete();
    }
}
