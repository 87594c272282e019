//! kvchaos: a load and chaos harness for Cloudflare Workers.
//!
//! Module map:
//! - [`cli`]: command-line arguments, exit codes, printing errors once.
//! - [`scenario`]: scenario files parsed and validated into a [`scenario::Plan`].
//! - [`report`]: the run summary model and its writers.
//! - [`redact`]: keeps secrets out of everything written.

pub mod cli;
pub mod engine;
pub mod exit;
pub mod history;
pub mod live;
pub mod metrics;
pub mod redact;
pub mod report;
pub mod resources;
pub mod run;
pub mod scenario;
pub mod target;
