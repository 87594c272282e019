//! Integration tests: the whole tool driven in-process against real servers on 127.0.0.1:0.

mod audit;
mod cli;
mod engine;
mod foreign_worker;
mod kv;
mod launcher;
mod local;
mod proof;
mod reference_workers;
mod replay;
mod servers;
mod support;
mod teardown;
mod tls;
mod tui;
mod watch_notify;
mod watch_worker;
mod worker_target;
mod zoo;
