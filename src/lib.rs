//! kvchaos: a load and chaos harness for Cloudflare Workers.
//!
//! Module map:
//! - [`cli`]: command-line arguments, exit codes, printing errors once.
//! - [`scenario`]: scenario files parsed and validated into a [`scenario::Plan`].
//! - [`mockkv`]: the fault-injecting mock of Workers KV (binding protocol, REST API, control API).
//! - [`report`]: the run summary model and its writers.
//! - [`redact`]: keeps secrets out of everything written.

pub mod cli;
pub mod mockkv;
pub mod redact;
pub mod report;
pub mod scenario;
