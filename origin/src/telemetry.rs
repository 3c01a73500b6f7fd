//! Structured logs with `tracing`. `RUST_LOG` filters (default `info`); `LIBRIASSIST_LOG_FORMAT=json`
//! switches to one JSON object per line for log shippers.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json =
        std::env::var("LIBRIASSIST_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: tests may initialise more than once in one process.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
