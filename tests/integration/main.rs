//! Integration tests: the whole tool driven in-process against real servers on 127.0.0.1:0.

mod answers;
mod audit;
mod canary;
mod cli;
mod differential;
mod engine;
mod foreign_worker;
mod kv;
mod launcher;
mod limits;
mod local;
mod proof;
mod reference_workers;
mod replay;
mod secrets;
mod servers;
mod shards;
mod support;
mod teardown;
mod tls;
mod tui;
mod watch_notify;
mod watch_worker;
mod worker_target;
mod wrangler_parity;
mod zoo;
