//! kvchaos: a load and chaos harness for Cloudflare Workers.
//!
//! Module map:
//! - [`cli`]: command-line arguments, the runtime, signals, exit codes, printing errors once.
//! - [`cron`]: cron ticks on the (accelerated) run clock and the driver that fires them.
//! - [`scenario`]: scenario files parsed and validated into a [`scenario::Plan`].
//! - [`run`]: one run end to end — setup, the session's event loop, the pure stop protocol, the
//!   journal of the history, the one summary builder; prints nothing.
//! - [`engine`]: open- and closed-loop workers, the HTTP client.
//! - [`outcome`]: how one request ended and its class (a leaf).
//! - [`metrics`]: the recorder that owns every histogram; thresholds.
//! - [`history`]: the run's event stream (`history.jsonl`).
//! - [`check`]: pure checkers of the history (cron, locks, queue), in the manner of Jepsen.
//! - [`driver`]: lock, queue and cron-status clients that feed the history through the Worker's API.
//! - [`target`]: starting and stopping what load is sent to.
//! - [`timeline`]: scheduled mock KV faults set and cleared on the run clock.
//! - [`local`]: a Worker run under miniflare, KV routed to the mock; crons; teardown.
//! - [`mockkv`]: the fault-injecting mock of Cloudflare Workers KV.
//! - [`kv`]: `kvchaos kv dump|verify|clean|restore` over the Cloudflare REST API (and R2).
//! - [`summary`]: the run summary model every report reads (a leaf; `report::model` re-exports it).
//! - [`report`]: the writers of the run summary (json, md, html, junit, hlog), compare.
//! - [`replay`]: wrangler tail / HAR captures read as a stream, `replay import`, replay phase plans.
//! - [`live`]: the snapshot live displays get once a second (through a `Monitor`), their
//!   controls, the `Interrupts`, the plain line printer.
//! - [`tui`]: the live dashboard (state, pure render, terminal loop).
//! - [`redact`]: keeps secrets out of everything written.
//! - [`rest`]: the one-request-at-a-time HTTP(S) client of REST APIs, webhooks and probes.
//! - [`watch`]: `kvchaos watch`: probes of deployed Workers, the pure alert state machine, notifiers.
//! - [`wrangler`]: a Worker's wrangler config (bindings by kind, crons, environments).
//! - [`canary`]: the chaos shim build of a Worker for a deployed canary, and its signed control.
//! - [`audit`]: static inventory of a Worker repository's KV calls (oxc), baseline and CI check.
//! - [`resources`], [`exit`]: process readings and exit codes.

pub mod audit;
pub mod canary;
pub mod check;
pub mod cli;
pub mod cron;
pub mod driver;
pub mod engine;
pub mod exit;
pub mod history;
pub mod kv;
pub mod lines;
pub mod live;
pub mod local;
pub mod merge;
pub mod metrics;
pub mod mockkv;
pub mod outcome;
pub mod redact;
pub mod replay;
pub mod report;
pub mod resources;
pub mod rest;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod target;
pub mod timeline;
pub mod tui;
pub mod watch;
pub mod wrangler;
