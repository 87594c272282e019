//! A fault-injecting mock of Cloudflare Workers KV.
//!
//! Owns: one in-memory store behind two front doors — the workerd KV binding
//! protocol ([`binding`]) and the Cloudflare REST API v4 ([`rest`]) — plus
//! the virtual clock, daily quotas, fault rules, accounting and a control
//! API under `/__kvchaos/` ([`control`]), all on one loopback listener
//! ([`server`]). [`MockKv`] is the cloneable in-process handle that
//! `kvchaos run` uses. Does not own: starting miniflare, the scenario's fault
//! timeline (it only executes rules it is given), or the CLI wiring
//! ([`standalone`] provides the pieces).
//!
//! # Choosing a namespace
//! Namespaces are named by a binding name or a namespace id; both doors
//! share them by name. The binding door creates one on first use.
//! - Binding protocol: `/ns/<name>/<key>`, `/ns/<name>/?prefix=…` (list),
//!   `POST /ns/<name>/bulk/get`. Without the `/ns/<name>` prefix the request
//!   uses the namespace named by the `X-KvChaos-Namespace` header (a
//!   launcher can inject it per binding), else the default namespace
//!   (`default`). On the bare protocol a key starting with `ns/` must be sent
//!   as `ns%2F…`.
//! - REST: the `:ns` path segment is the name; every account id is
//!   accepted, and quotas are counted per account id (binding requests
//!   count against [`MockKvConfig::account_id`]). Unlike the binding door,
//!   REST never creates a namespace by writing: a namespace exists once the
//!   binding door wrote to it or it was created (REST `POST …/namespaces`
//!   with a `title`, which is also its id here; [`MockKv::create_namespace`];
//!   `kvchaos mock-kv --namespace NAME`); others answer 404, code 10013.
//!
//! # Stale reads ("another location")
//! A read carrying `X-KvChaos-Location: <anything but "primary">` is made
//! from another location: every matching `stale-reads` rule fires for it.
//! Other reads fire such a rule with its probability. A stale read sees the
//! key as it was `lag` ago, so a key created since then is still a miss.
//! History is kept only while a stale-reads rule has asked for it.
//!
//! # Accounting choices
//! A bulk get counts one read per key against the quota; each successful
//! operation is counted (misses are reads too); refused operations are not.

pub mod binding;
pub mod clock;
pub mod conns;
pub mod control;
pub mod fault;
pub mod group;
mod perform;
pub mod quota;
pub mod ratelimit;
pub mod rest;
pub mod server;
pub mod standalone;
pub mod stats;
pub mod store;
pub mod wire;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub use clock::VirtualClock;
pub use fault::{FaultId, FaultSpec, FaultSpecError, FaultView};
pub use quota::Limits;
pub use ratelimit::RestRateLimit;
pub use server::{ListenError, bind, serve};
pub use standalone::{MockKvArgs, run_standalone};
pub use stats::Snapshot;

use fault::{Action, FaultSet};
use quota::Quotas;
use stats::Stats;
use store::{Entry, KvError, ListPage, PutRequest, Store};

/// A KV operation type, as quotas and fault rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// get, get with metadata, bulk get.
    Get,
    /// put.
    Put,
    /// delete.
    Delete,
    /// list.
    List,
}

impl Op {
    /// Every operation type.
    pub const ALL: [Op; 4] = [Op::Get, Op::Put, Op::Delete, Op::List];

    fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name, as in `KV put() limit exceeded for the day.`
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "get" | "read" => Ok(Op::Get),
            "put" | "write" => Ok(Op::Put),
            "delete" => Ok(Op::Delete),
            "list" => Ok(Op::List),
            _ => Err(format!(
                "unknown operation '{s}': expected get, put, delete or list"
            )),
        }
    }
}

/// How a mock starts.
#[derive(Clone, Debug)]
pub struct MockKvConfig {
    /// Daily quotas.
    pub limits: Limits,
    /// Refuse same-key writes closer than one second (Cloudflare's rule).
    pub same_key_write_limit: bool,
    /// Seed for fault probabilities and jitter.
    pub seed: u64,
    /// Namespace for binding requests that name none.
    pub default_namespace: String,
    /// Account that binding requests count against.
    pub account_id: String,
    /// Bearer token the REST API requires; `None` accepts any token.
    pub api_token: Option<String>,
    /// How keys are grouped in the accounting (see [`group::GroupRule`]).
    pub group: group::GroupRule,
    /// Journal length.
    pub journal_len: usize,
    /// Allow serving on a non-loopback address.
    pub allow_non_loopback: bool,
    /// REST requests admitted per window per account (429 with `Retry-After` past it);
    /// `None`: no limit.
    pub rest_rate_limit: Option<RestRateLimit>,
}

impl Default for MockKvConfig {
    fn default() -> Self {
        Self {
            limits: Limits::FREE,
            same_key_write_limit: true,
            seed: 0,
            default_namespace: "default".to_owned(),
            account_id: "kvchaos".to_owned(),
            api_token: None,
            group: group::GroupRule::default(),
            journal_len: 1000,
            allow_non_loopback: false,
            rest_rate_limit: None,
        }
    }
}

/// Cloneable handle to one mock: its store, clock, quotas, faults and stats.
#[derive(Clone, Debug)]
pub struct MockKv {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    clock: VirtualClock,
    config: MockKvConfig,
    same_key_limit: AtomicBool,
    // A std Mutex, as in mini-redis: every critical section is short and
    // synchronous (values are `Bytes`, so reads clone cheaply), and it is
    // never held across `.await` — latency and hangs happen outside it.
    state: Mutex<MockState>,
}

#[derive(Debug)]
struct MockState {
    store: Store,
    quotas: Quotas,
    faults: FaultSet,
    stats: Stats,
    rest: ratelimit::RestWindows,
}

/// Who asks: the namespace, the account quotas count against, and whether
/// the read comes from "another location".
#[derive(Clone, Debug)]
pub(crate) struct OpContext {
    pub namespace: String,
    pub account: String,
    pub remote: bool,
}

/// One operation, protocol-neutral.
#[derive(Clone, Debug)]
pub(crate) enum OpRequest {
    Get {
        key: String,
    },
    GetMany {
        keys: Vec<String>,
    },
    Put {
        key: String,
        put: PutRequest,
    },
    PutMany {
        items: Vec<(String, PutRequest)>,
    },
    Delete {
        key: String,
    },
    DeleteMany {
        keys: Vec<String>,
    },
    List {
        prefix: String,
        cursor: Option<String>,
        limit: usize,
    },
}

impl OpRequest {
    fn op(&self) -> Op {
        match self {
            Self::Get { .. } | Self::GetMany { .. } => Op::Get,
            Self::Put { .. } | Self::PutMany { .. } => Op::Put,
            Self::Delete { .. } | Self::DeleteMany { .. } => Op::Delete,
            Self::List { .. } => Op::List,
        }
    }

    /// The key fault rules and accounting look at (for bulk: each key).
    fn keys(&self) -> Vec<&str> {
        match self {
            Self::Get { key } | Self::Put { key, .. } | Self::Delete { key } => vec![key],
            Self::GetMany { keys } | Self::DeleteMany { keys } => {
                keys.iter().map(String::as_str).collect()
            }
            Self::PutMany { items } => items.iter().map(|(k, _)| k.as_str()).collect(),
            Self::List { prefix, .. } => vec![prefix],
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug)]
pub(crate) enum OpReply {
    Entry(Option<Entry>),
    Entries(Vec<(String, Option<Entry>)>),
    Done,
    Bulk { ok: usize, failed: Vec<String> },
    Page(ListPage),
}

/// Why an operation was not done.
#[derive(Clone, Debug)]
pub(crate) enum OpFailure {
    Kv(KvError),
    Quota(Op),
    Fault(Action),
}

impl MockKv {
    /// A mock with `config` on `clock`.
    pub fn new(config: MockKvConfig, clock: VirtualClock) -> Self {
        let state = MockState {
            store: Store::default(),
            quotas: Quotas::new(config.limits),
            faults: FaultSet::new(config.seed),
            stats: Stats::new(config.group, config.journal_len),
            rest: ratelimit::RestWindows::new(config.rest_rate_limit),
        };
        Self {
            shared: Arc::new(Shared {
                clock,
                same_key_limit: AtomicBool::new(config.same_key_write_limit),
                config,
                state: Mutex::new(state),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        // A panic inside a critical section cannot leave the maps half
        // updated in a way later requests could not live with.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The mock's clock (clones share time with the mock).
    pub fn clock(&self) -> &VirtualClock {
        &self.shared.clock
    }

    /// The configuration it started with.
    pub fn config(&self) -> &MockKvConfig {
        &self.shared.config
    }

    /// Add a fault rule; its window starts now on the mock's clock.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<FaultId, FaultSpecError> {
        let now = self.clock().now_ms();
        let mut st = self.lock();
        let id = st.faults.add(spec, now)?;
        let lag = st.faults.max_lag_ms();
        st.store.keep_history(lag);
        Ok(id)
    }

    /// Remove one fault rule; false if no rule has that id.
    pub fn clear_fault(&self, id: FaultId) -> bool {
        self.lock().faults.clear(id)
    }

    /// Remove every fault rule at once (the kill switch); returns how many.
    pub fn clear_all_faults(&self) -> usize {
        self.lock().faults.clear_all()
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<FaultView> {
        self.lock().faults.views()
    }

    /// Everything counted so far.
    pub fn stats(&self) -> Snapshot {
        let now = self.clock().now_ms();
        let st = self.lock();
        st.stats
            .snapshot(now, st.quotas.rows(now), st.faults.views())
    }

    /// Forget all keys (faults, quotas and stats stay).
    pub fn reset_data(&self) {
        self.lock().store.clear();
    }

    /// Forget all counters and today's quota use.
    pub fn reset_stats(&self) {
        let mut st = self.lock();
        st.stats.clear();
        st.quotas.clear();
    }

    /// Create an empty namespace, as `POST /client/v4/accounts/:a/storage/kv/namespaces` does;
    /// true when it is new. The binding door creates namespaces by writing to them.
    pub fn create_namespace(&self, name: &str) -> bool {
        self.lock().store.create_namespace(name)
    }

    /// Whether a namespace exists (the REST door answers 404, code 10013, for others).
    pub fn namespace_exists(&self, name: &str) -> bool {
        self.lock().store.has_namespace(name)
    }

    /// Replace the REST request-rate limit (`None`: no limit); windows start afresh.
    pub fn set_rest_rate_limit(&self, limit: Option<RestRateLimit>) {
        self.lock().rest.set_limit(limit);
    }

    /// REST requests answered so far, refused ones included.
    pub fn rest_requests(&self) -> u64 {
        self.lock().rest.requests()
    }

    /// Count one REST request for `account`; `Err(seconds)` when over the rate limit.
    pub(crate) fn admit_rest(&self, account: &str) -> Result<(), u64> {
        let now = self.clock().now_ms();
        self.lock().rest.admit(account, now)
    }

    /// Replace the daily limits.
    pub fn set_limits(&self, limits: Limits) {
        self.lock().quotas.set_limits(limits);
    }

    /// Turn the one-write-per-second-per-key rule on or off.
    pub fn set_same_key_write_limit(&self, on: bool) {
        self.shared.same_key_limit.store(on, Ordering::Relaxed);
    }

    /// Read a key's current value without counting or faults (for final
    /// checks by the harness).
    pub fn peek(&self, namespace: &str, key: &str) -> Option<bytes::Bytes> {
        let now = self.clock().now_ms();
        self.lock()
            .store
            .get(namespace, key, now, None)
            .ok()
            .flatten()
            .map(|e| e.value)
    }
}

/// The whole HTTP surface: control API under `/__kvchaos/`, REST API v4
/// under `/client/v4/`, and the binding protocol for everything else.
pub fn router(kv: MockKv) -> Router {
    Router::new()
        .nest("/__kvchaos", control::router())
        .fallback(front_door)
        .with_state(kv)
}

async fn front_door(State(kv): State<MockKv>, req: Request) -> Response {
    let path = req.uri().path();
    if path.starts_with("/client/v4/") {
        rest::handle(kv, req).await
    } else if path == "/__kvchaos" || path.starts_with("/__kvchaos/") {
        control::not_found().into_response()
    } else {
        binding::handle(kv, req).await
    }
}

/// Carry out a hang or reset: never answer, after asking the connection to
/// close itself for a reset. Without a connection (handler tests) a reset
/// answers 502 so that the test sees it.
pub(crate) async fn hang_or_reset(action: Action, conn: Option<server::ConnControl>) -> Response {
    if action == Action::Reset {
        match conn {
            Some(c) => c.reset(),
            None => {
                return (
                    http::StatusCode::BAD_GATEWAY,
                    "connection reset (no connection to reset)",
                )
                    .into_response();
            }
        }
    }
    // Dropped by the connection task when the client gives up, the
    // connection is reset or the server stops.
    std::future::pending::<Response>().await
}
