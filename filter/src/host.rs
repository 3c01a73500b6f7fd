//! Envoy's host functions, called without panicking.
//!
//! The SDK's `hostcalls` panic on any status they did not expect and unwrap UTF-8 in header
//! values; a panic kills the worker's VM (and, with FAIL_CLOSED, every later request on it).
//! These wrappers import the ABI 0.2.1 functions the filter uses and turn every status into a
//! `Result` or an `Option`, so the glue decides what a failure means (usually: carry on, fail
//! open).

use crate::pairs;
use crate::reply::LocalReply;
use crate::shared::{SharedStore, StoreError};
use std::ptr::{null, null_mut};

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const CAS_MISMATCH: u32 = 8;

/// Header maps by their ABI number.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Map {
    RequestHeaders = 0,
    HttpCallResponseHeaders = 6,
}

/// Buffers by their ABI number.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    RequestBody = 0,
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
}

/// Takes ownership of bytes the host allocated through `proxy_on_memory_allocate`.
///
/// # Safety
/// `data` must be null or point to `size` bytes the host allocated for us, returned once.
unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: `abi::proxy_on_memory_allocate` gave the host a boxed slice of exactly `size`
    // bytes.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

pub fn log(level: Level, message: &str) {
    // SAFETY: pointer and length of a live str.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Wall-clock nanoseconds; 0 if the host will not say (rate limits then see no refill).
pub fn now_ns() -> u64 {
    let mut t = 0u64;
    // SAFETY: valid out pointer.
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => t,
        _ => 0,
    }
}

pub fn buffer(kind: Buffer, start: usize, max: usize) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: valid out pointers; on OK the host hands us an allocation we now own.
    match unsafe { proxy_get_buffer_bytes(kind as u32, start, max, &mut data, &mut size) } {
        OK => Some(unsafe { owned(data, size) }),
        _ => None,
    }
}

pub fn header(map: Map, name: &str) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `buffer`.
    match unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    } {
        OK => Some(unsafe { owned(data, size) }),
        _ => None,
    }
}

/// A whole header map, serialized (see `pairs`), in one call.
pub fn header_pairs(map: Map) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `buffer`.
    match unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) } {
        OK => Some(unsafe { owned(data, size) }),
        _ => None,
    }
}

/// # Errors
/// The host status, e.g. BadArgument once the headers have gone upstream.
pub fn replace_header(map: Map, name: &str, value: &str) -> Result<(), u32> {
    // SAFETY: pointers and lengths of live strs.
    match unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    } {
        OK => Ok(()),
        status => Err(status),
    }
}

/// # Errors
/// The host status.
pub fn remove_header(map: Map, name: &str) -> Result<(), u32> {
    // SAFETY: pointer and length of a live str.
    match unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) } {
        OK | NOT_FOUND => Ok(()),
        status => Err(status),
    }
}

/// A property by its path, segments already joined by NUL (`b"source\0address"`).
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `buffer`.
    match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) } {
        OK => Some(unsafe { owned(data, size) }),
        _ => None,
    }
}

/// Shared data of this VM id, seen by every worker.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), StoreError> {
        let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
        // SAFETY: as in `buffer`.
        match unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        } {
            OK => Ok((Some(unsafe { owned(data, size) }), cas)),
            NOT_FOUND => Ok((None, 0)),
            status => Err(StoreError::Host(status)),
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), StoreError> {
        // SAFETY: pointers and lengths of live slices.
        match unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
        } {
            OK => Ok(()),
            CAS_MISMATCH => Err(StoreError::CasMismatch),
            status => Err(StoreError::Host(status)),
        }
    }
}

/// Sends `reply` instead of the upstream's response. Envoy sends it after the callback returns.
///
/// # Errors
/// The host status.
pub fn send(reply: &LocalReply, request_id: Option<&str>) -> Result<(), u32> {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    send_parts(reply.status, &headers, request_id, &reply.body)
}

/// [`send`] from its parts, for replies kept ready to send.
///
/// # Errors
/// The host status.
pub fn send_parts(
    status: u32,
    headers: &[(&str, &str)],
    request_id: Option<&str>,
    body: &[u8],
) -> Result<(), u32> {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 1);
    all.extend_from_slice(headers);
    if let Some(id) = request_id {
        all.push((libriassist_protocol::headers::REQUEST_ID, id));
    }
    let headers = pairs::encode(&all);
    let details = b"libriassist_edge";
    // SAFETY: pointers and lengths of live buffers.
    match unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            if body.is_empty() {
                null()
            } else {
                body.as_ptr()
            },
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    } {
        OK => Ok(()),
        status => Err(status),
    }
}

/// Lets a paused request go on upstream.
///
/// # Errors
/// The host status.
pub fn resume_request() -> Result<(), u32> {
    // SAFETY: no pointers.
    match unsafe { proxy_continue_stream(0) } {
        OK => Ok(()),
        status => Err(status),
    }
}

/// Asks for `on_tick` every `period_ms` on this worker's root context.
pub fn set_tick_period(period_ms: u32) -> Result<(), u32> {
    // SAFETY: no pointers.
    match unsafe { proxy_set_tick_period_milliseconds(period_ms) } {
        OK => Ok(()),
        status => Err(status),
    }
}

/// A counter; `None` if the host refuses it (counting then silently stops).
pub fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: pointer and length of a live str, valid out pointer.
    match unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), &mut id) } {
        OK => Some(id),
        _ => None,
    }
}

/// Adds `count` to a counter.
pub fn increment(id: Option<u32>, count: u64) {
    if let Some(id) = id {
        // SAFETY: no pointers.
        let _ = unsafe { proxy_increment_metric(id, i64::try_from(count).unwrap_or(i64::MAX)) };
    }
}

/// Sends a GET-like request (no body) to `cluster`; the answer comes to
/// `proxy_on_http_call_response` with the token returned.
///
/// # Errors
/// The host status, e.g. BadArgument for an unknown cluster.
pub fn http_call(cluster: &str, headers: &[(&str, &str)], timeout_ms: u32) -> Result<u32, u32> {
    let headers = pairs::encode(headers);
    let trailers = pairs::encode::<&str, &str>(&[]);
    let mut token = 0u32;
    // SAFETY: pointers and lengths of live buffers, valid out pointer.
    match unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            null(),
            0,
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    } {
        OK => Ok(token),
        status => Err(status),
    }
}

/// Makes the next host calls act on the request `context` (for callbacks on the root context).
///
/// # Errors
/// The host status, e.g. NotFound for a request that is gone.
pub fn set_effective_context(context: u32) -> Result<(), u32> {
    // SAFETY: no pointers.
    match unsafe { proxy_set_effective_context(context) } {
        OK => Ok(()),
        status => Err(status),
    }
}
