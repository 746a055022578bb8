//! The three C math functions the binary calls, `pow`, `exp` and `log`, defined here (by the
//! `libm` crate, the Rust project's port of musl's) instead of taken from glibc's libm.so.
//!
//! Why: they are all the process needs of libm (tokio's scheduler statistics call `pow` after
//! each batch of tasks, SQLite's FTS5 ranking calls `log`, the DNS resolver's round-trip average
//! `exp`), yet loading libm.so for them kept 0.6 MiB of its pages resident with 1,000 clients
//! connected: the pages around those functions and its symbol tables, which the dynamic loader
//! reads for every symbol the binary imports. With the functions defined in the binary the link
//! (`--as-needed`) leaves libm.so out; `readelf -d` on the release binary shows no libm.
//!
//! The one module where `unsafe_code` is allowed: exporting an unmangled symbol is what the lint
//! flags (it may clash with another library's); these functions do nothing unsafe.
#![allow(unsafe_code)]

/// C's `pow(x, y)`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// C's `exp(x)`.
#[unsafe(no_mangle)]
pub extern "C" fn exp(x: f64) -> f64 {
    libm::exp(x)
}

/// C's `log(x)`.
#[unsafe(no_mangle)]
pub extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}
