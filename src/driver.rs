//! Check drivers: clients that exercise a Worker's control plane through the Worker's own API
//! (requests and JSON pointers from the scenario, so they fit any Worker) and record every
//! operation in the run history as `invoke` then `ok` / `fail` / `info`.
//!
//! Owns: sending a [`DriverRequest`], classifying its answer and reading values out of it, and
//! the driver tasks ([`lock`], [`queue`], [`status`], and [`cron`] firing). Does not own: judging (the checkers in
//! [`crate::check`] read the history) or when drivers start and stop (the run loop decides).
//!
//! Classification, the same for every operation: a status in the request's `empty` list is
//! `ok` with nothing read; any other 2xx is `ok` with its reads; a status in `fail` (by default
//! every other 4xx) is a definite `fail`; a refused connection is a `fail` (nothing was sent);
//! anything else — 5xx, a timeout, a lost connection — is `info`, because it may have taken
//! effect.

pub mod cron;
pub mod idempotency;
pub mod lock;
pub mod queue;
pub mod ratelimit;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Uri};
use http_body_util::Full;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::engine::client::{Conn, Endpoint};
use crate::history::{Event, OpKind};
use crate::outcome::Outcome;
use crate::redact::Redactor;
use crate::scenario::plan::{DriverRequest, Extract, IdempotencyPlan, LockPlan, Plan, QueuePlan};
use crate::scenario::template::RenderCx;

/// Largest answer body a driver reads.
const BODY_LIMIT: usize = 64 * 1024;
/// Longest body excerpt kept in the history for a failed operation.
const EXCERPT: usize = 200;

/// What every driver task shares: where to send, where to record, and the run's clock.
#[derive(Clone)]
pub struct Ctx {
    /// The target.
    pub endpoint: Endpoint,
    /// Where operations go (the run loop writes them to `history.jsonl`).
    pub history: UnboundedSender<(Duration, Event)>,
    /// Run time zero.
    pub run_start: Instant,
    /// Secrets to keep out of recorded answers.
    pub redactor: Redactor,
    /// The run's seed, for the drivers' random choices.
    pub seed: u64,
    /// On a canary run, the check that every answer came from the expected shimmed script.
    pub guard: crate::canary::control::AnswerGuard,
}

impl Ctx {
    /// Records one step of an operation of `process` at the current run time.
    pub fn record(&self, process: &str, op: OpKind, f: &str, value: Value) {
        let t = Instant::now().saturating_duration_since(self.run_start);
        // The receiver only goes away when the run is over; nothing is left to record then.
        let _ = self.history.send((t, Event::op(process, op, f, value)));
    }

    /// A seeded generator for `process`, so each driver's choices are reproducible.
    pub fn rng(&self, process: &str) -> SmallRng {
        let h = process.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        SmallRng::seed_from_u64(self.seed ^ h)
    }
}

/// The answer to one driver request, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `Ok`, `Fail` or `Info`.
    pub kind: OpKind,
    /// The HTTP status, when one arrived.
    pub status: Option<u16>,
    /// A status in the request's `empty` list: success with nothing to read.
    pub empty: bool,
    /// Values read (each configured field; `null` when absent from the answer).
    pub reads: Map<String, Value>,
    /// Named values extracted for later requests (`extract`); kept out of the history.
    pub extracted: Map<String, Value>,
    /// For anything but a plain `ok`: what happened, with the start of the body.
    pub error: Option<String>,
}

impl Answer {
    /// A read value, `Null` when absent.
    pub fn read(&self, name: &str) -> &Value {
        self.reads.get(name).unwrap_or(&Value::Null)
    }

    /// `value` with the answer's reads, and for non-ok answers its status and error.
    pub fn completion(&self, mut value: Map<String, Value>) -> Value {
        if self.kind == OpKind::Ok {
            for (k, v) in &self.reads {
                value.insert(k.clone(), v.clone());
            }
        } else {
            if let Some(s) = self.status {
                value.insert("http".to_owned(), Value::from(s));
            }
            if let Some(e) = &self.error {
                value.insert("error".to_owned(), Value::from(e.clone()));
            }
        }
        Value::Object(value)
    }
}

/// One driver process's connection to the target.
pub struct Client {
    ctx: Ctx,
    conn: Conn,
    rng: SmallRng,
    seq: u64,
}

impl Client {
    /// A client for `process`.
    pub fn new(ctx: &Ctx, process: &str) -> Client {
        Client {
            rng: ctx.rng(process),
            ctx: ctx.clone(),
            conn: Conn::default(),
            seq: 0,
        }
    }

    /// The run context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The client's seeded generator.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Sends `req` with `vars` and classifies the answer.
    pub async fn call(&mut self, req: &DriverRequest, vars: &Map<String, Value>) -> Answer {
        let built = match build(&self.ctx.endpoint, req, vars, self.seq, &mut self.rng) {
            Ok(r) => r,
            Err(why) => {
                return Answer {
                    error: Some(self.ctx.redactor.redact(&why).into_owned()),
                    ..transport(OpKind::Fail, String::new())
                };
            }
        };
        self.seq += 1;
        let fetched = tokio::time::timeout(
            req.timeout,
            self.conn.fetch(&self.ctx.endpoint, built, BODY_LIMIT),
        )
        .await;
        let answer = match fetched {
            Err(_) => {
                self.conn.discard();
                transport(
                    OpKind::Info,
                    format!(
                        "no answer within {}",
                        humantime::format_duration(req.timeout)
                    ),
                )
            }
            Ok(Err(x)) => {
                let kind = if x.outcome == Outcome::Connect {
                    OpKind::Fail
                } else {
                    OpKind::Info
                };
                transport(
                    kind,
                    x.error.unwrap_or_else(|| "transport failure".to_owned()),
                )
            }
            Ok(Ok((parts, body))) => {
                // Every driver answer passes here: one from production (no shim header, or
                // another script) stops the run before any fault, as for the load.
                let shim = parts.headers.get(crate::canary::control::SHIM_HEADER);
                let shim = shim.and_then(|h| h.to_str().ok());
                self.ctx
                    .guard
                    .check(shim, parts.status.as_u16(), "the drivers' requests");
                classify(req, &parts, &body)
            }
        };
        Answer {
            error: answer
                .error
                .map(|e| self.ctx.redactor.redact(&e).into_owned()),
            ..answer
        }
    }
}

fn transport(kind: OpKind, error: String) -> Answer {
    Answer {
        kind,
        status: None,
        empty: false,
        reads: Map::new(),
        extracted: Map::new(),
        error: Some(error),
    }
}

/// The request for `req` rendered with `vars`.
fn build(
    ep: &Endpoint,
    req: &DriverRequest,
    vars: &Map<String, Value>,
    seq: u64,
    rng: &mut SmallRng,
) -> Result<Request<Full<Bytes>>, String> {
    let mut cx = RenderCx {
        seq,
        rng,
        vars: Some(vars),
    };
    let mut path = ep.base_path().to_owned();
    req.path.render(&mut cx, &mut path);
    let uri = Uri::try_from(path.as_str())
        .map_err(|e| format!("the path \"{path}\" is not a valid URI: {e}"))?;
    let mut r = Request::new(Full::new(Bytes::new()));
    *r.method_mut() = req.method.clone();
    *r.uri_mut() = uri;
    let headers = r.headers_mut();
    headers.insert(HOST, ep.authority().clone());
    for (name, t) in &req.headers {
        let mut v = String::new();
        t.render(&mut cx, &mut v);
        let v = HeaderValue::from_str(&v).map_err(|_| {
            format!(
                "header {name} rendered to a value a header cannot hold (from \"{}\")",
                t.source()
            )
        })?;
        headers.append(name.clone(), v);
    }
    if let Some(b) = &req.body {
        if let Some(ct) = b.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        let mut text = String::new();
        b.template.render(&mut cx, &mut text);
        *r.body_mut() = Full::new(Bytes::from(text));
    }
    Ok(r)
}

/// Classifies a complete answer and reads its values.
fn classify(req: &DriverRequest, parts: &http::response::Parts, body: &Bytes) -> Answer {
    let status = parts.status.as_u16();
    let mut answer = Answer {
        status: Some(status),
        error: None,
        ..transport(OpKind::Info, String::new())
    };
    if req.empty.contains(&status) {
        answer.kind = OpKind::Ok;
        answer.empty = true;
        return answer;
    }
    if parts.status.is_success() {
        answer.kind = OpKind::Ok;
        let json: Option<Value> = serde_json::from_slice(body).ok();
        for (name, from) in &req.reads {
            let v = read(from, json.as_ref(), &parts.headers);
            answer.reads.insert(name.clone(), v.unwrap_or(Value::Null));
        }
        for (name, from) in &req.extract {
            // Extracted values are echoed back as they came: a header's text stays text (a
            // quoted ETag keeps its quotes).
            let v = match from {
                Extract::Header(h) => parts
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| Value::from(s.trim())),
                other => read(other, json.as_ref(), &parts.headers),
            };
            answer
                .extracted
                .insert(name.clone(), v.unwrap_or(Value::Null));
        }
        return answer;
    }
    answer.kind = if req.fail.contains(&status) {
        OpKind::Fail
    } else {
        OpKind::Info
    };
    answer.error = Some(format!("{status}: {}", excerpt(body)));
    answer
}

/// The value at `from` in an answer: a JSON pointer into the body, a header (parsed as JSON
/// when it is JSON), or whether such a value equals a given one.
fn read(from: &Extract, json: Option<&Value>, headers: &http::HeaderMap) -> Option<Value> {
    match from {
        Extract::Pointer(p) => json.and_then(|j| j.pointer(p)).cloned(),
        Extract::Header(h) => headers.get(h).and_then(|v| v.to_str().ok()).map(|s| {
            serde_json::from_str::<Value>(s.trim()).unwrap_or_else(|_| Value::from(s.trim()))
        }),
        Extract::Equals(inner, want) => {
            let got = read(inner, json, headers)?;
            // A header holds text: "1" matches equals = 1 and equals = "1" alike.
            let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            Some(Value::Bool(got == *want || text(&got) == text(want)))
        }
    }
}

/// The start of a body as text, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_owned(),
    }
}

/// Sleeps for `d` unless `stop` fires first; returns whether it slept the whole time.
pub async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

/// A duration uniform in `[lo, hi]`.
pub fn between(rng: &mut SmallRng, (lo, hi): (Duration, Duration)) -> Duration {
    use rand::Rng;
    if hi <= lo {
        return lo;
    }
    let us = rng.random_range(lo.as_micros() as u64..=hi.as_micros() as u64);
    Duration::from_micros(us)
}

/// A JSON object from pairs.
pub fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The drivers of one run: started with the load, told when the heal phase starts, finished
/// with the final reads.
pub struct Drivers {
    tasks: tokio::task::JoinSet<()>,
    ctx: Ctx,
    lock: Option<(Arc<LockPlan>, Arc<lock::LastGrants>)>,
    queue: Option<(Arc<QueuePlan>, Arc<queue::Book>)>,
    idempotency: Option<(Arc<IdempotencyPlan>, Arc<idempotency::Keys>)>,
    /// The id prefix of this run's tasks.
    prefix: Option<Arc<str>>,
    /// Stops everything at the end of the run.
    stop: CancellationToken,
    /// Stops the producers when the heal phase starts.
    produce: CancellationToken,
    healing: bool,
}

impl Drivers {
    /// Starts the lock clients, queue producers and consumers, and the cron status probe the
    /// plan asks for (none is a valid answer: then this does nothing).
    pub fn start(plan: &Plan, ctx: Ctx) -> Drivers {
        let stop = CancellationToken::new();
        let produce = stop.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        let lock = plan
            .lock
            .clone()
            .map(|l| (Arc::new(l), Arc::new(lock::LastGrants::default())));
        if let Some((l, last)) = &lock {
            for i in 0..l.clients {
                tasks.spawn(lock::client(
                    i,
                    l.clone(),
                    ctx.clone(),
                    last.clone(),
                    stop.clone(),
                ));
            }
        }
        let queue = plan
            .queue
            .clone()
            .map(|q| (Arc::new(q), Arc::new(queue::Book::default())));
        let prefix: Option<Arc<str>> = queue.as_ref().map(|_| Arc::from(queue::id_prefix()));
        if let (Some((q, book)), Some(prefix)) = (&queue, &prefix) {
            for i in 0..q.producers {
                tasks.spawn(queue::producer(
                    i,
                    q.clone(),
                    ctx.clone(),
                    prefix.clone(),
                    book.clone(),
                    produce.clone(),
                ));
            }
            for i in 0..q.consumers {
                tasks.spawn(queue::consumer(i, q.clone(), ctx.clone(), stop.clone()));
            }
        }
        if let Some(s) = &plan.cron.status {
            tasks.spawn(status::probe(s.clone(), ctx.clone(), stop.clone()));
        }
        let idempotency = start_keyed(plan, &ctx, &mut tasks, (&produce, &stop));
        Drivers {
            tasks,
            ctx,
            lock,
            queue,
            idempotency,
            prefix,
            stop,
            produce,
            healing: false,
        }
    }

    /// The id prefix of this run's queue tasks, when it drives a queue.
    pub fn queue_prefix(&self) -> Option<String> {
        self.prefix.as_deref().map(str::to_owned)
    }

    /// The heal phase started: producers stop, and the drain starts reading results.
    pub fn heal(&mut self) {
        if std::mem::replace(&mut self.healing, true) {
            return;
        }
        self.produce.cancel();
        if let Some((q, book)) = &self.queue {
            self.tasks.spawn(queue::drain(
                q.clone(),
                self.ctx.clone(),
                book.clone(),
                self.stop.clone(),
            ));
        }
    }

    /// Stops every driver (waiting up to `wait` for operations in flight; those still running
    /// then are abandoned and stay outstanding in the history, which reads as `info`), then
    /// makes the final reads — each lock, every task not yet seen done — within `wait` more.
    /// `final_reads` false skips them (an interrupted run ends at once).
    pub async fn finish(mut self, wait: Duration, final_reads: bool) {
        self.stop.cancel();
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(wait, all_done).await.is_err() {
            self.tasks.abort_all();
        }
        if !final_reads {
            return;
        }
        let ctx = &self.ctx;
        let locks = async {
            if let Some((l, last)) = &self.lock {
                lock::final_reads(l, ctx, last).await;
            }
        };
        let tasks = async {
            if let Some((q, book)) = &self.queue {
                queue::final_round(q, ctx, book).await;
            }
        };
        let effects = async {
            if let Some((p, keys)) = &self.idempotency {
                idempotency::final_reads(p, ctx, keys).await;
            }
        };
        let _ = tokio::time::timeout(wait, async { tokio::join!(locks, tasks, effects) }).await;
    }
}

/// Starts the idempotency clients (new keys until the heal phase) and the rate limiter
/// clients (until the end), each with a prefix of its own so runs never share keys.
fn start_keyed(
    plan: &Plan,
    ctx: &Ctx,
    tasks: &mut tokio::task::JoinSet<()>,
    (produce, stop): (&CancellationToken, &CancellationToken),
) -> Option<(Arc<IdempotencyPlan>, Arc<idempotency::Keys>)> {
    if let Some(r) = &plan.ratelimit {
        let r = Arc::new(r.clone());
        let prefix: Arc<str> = Arc::from(queue::id_prefix());
        for k in 0..r.keys.len() {
            for c in 0..r.clients {
                tasks.spawn(ratelimit::client(
                    k,
                    c,
                    r.clone(),
                    ctx.clone(),
                    prefix.clone(),
                    stop.clone(),
                ));
            }
        }
    }
    let p = Arc::new(plan.idempotency.clone()?);
    let keys = Arc::new(idempotency::Keys::default());
    let prefix: Arc<str> = Arc::from(queue::id_prefix());
    for i in 0..p.clients {
        tasks.spawn(idempotency::client(
            i,
            p.clone(),
            ctx.clone(),
            prefix.clone(),
            keys.clone(),
            (produce.clone(), stop.clone()),
        ));
    }
    Some((p, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::template::{Part, Template, VarMode};

    fn req(reads: Vec<(String, Extract)>) -> DriverRequest {
        DriverRequest {
            method: http::Method::POST,
            path: Template::from_parts(
                vec![
                    Part::Literal("/locks/".into()),
                    Part::Var {
                        name: "lock".into(),
                        mode: VarMode::Path,
                    },
                ],
                "/locks/{{lock}}".into(),
            ),
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(1),
            fail: (400..=499).filter(|s| *s != 404).collect(),
            empty: vec![404],
            reads,
            extract: vec![(
                "receipt".into(),
                Extract::Header(http::HeaderName::from_static("x-receipt")),
            )],
        }
    }

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn answers_are_classified_and_values_read_from_body_and_headers() {
        let r = req(vec![
            (
                "token".into(),
                Extract::Header(http::HeaderName::from_static("x-fence")),
            ),
            ("expires_at".into(), Extract::Pointer("/lease/until".into())),
            ("holder".into(), Extract::Pointer("/missing".into())),
        ]);
        let a = classify(
            &r,
            &parts(201, &[("x-fence", "17")]),
            &Bytes::from_static(br#"{"lease":{"until":1234}}"#),
        );
        assert_eq!(a.kind, OpKind::Ok);
        assert_eq!(a.read("token"), &Value::from(17));
        assert_eq!(a.read("expires_at"), &Value::from(1234));
        assert_eq!(a.read("holder"), &Value::Null);
        assert_eq!(a.extracted["receipt"], Value::Null, "absent: null");
        let a = classify(
            &r,
            &parts(200, &[("x-receipt", "\"17\"")]),
            &Bytes::from_static(b"{}"),
        );
        // Echoed as it came: a quoted ETag keeps its quotes, a number-like text stays text.
        assert_eq!(a.extracted["receipt"], Value::from("\"17\""));
        let a = classify(
            &r,
            &parts(200, &[("x-receipt", "r-9")]),
            &Bytes::from_static(b"{}"),
        );
        assert_eq!(a.extracted["receipt"], Value::from("r-9"));
        assert!(
            !a.completion(Map::new()).to_string().contains("r-9"),
            "kept out of the history"
        );

        let a = classify(&r, &parts(404, &[]), &Bytes::new());
        assert!(a.empty && a.kind == OpKind::Ok && a.reads.is_empty());
        let a = classify(
            &r,
            &parts(409, &[]),
            &Bytes::from_static(b"{\"error\":\"held\"}"),
        );
        assert_eq!(a.kind, OpKind::Fail);
        assert_eq!(a.error.as_deref(), Some("409: {\"error\":\"held\"}"));
        let a = classify(&r, &parts(503, &[]), &Bytes::from_static(b"KV PUT failed"));
        assert_eq!(a.kind, OpKind::Info, "a 5xx may have taken effect");
        let v = a.completion(obj([("lock", Value::from("a"))]));
        assert_eq!(v["http"], 503);
        assert_eq!(v["error"], "503: KV PUT failed");
    }

    #[test]
    fn matched_booleans_compare_the_value_read_with_the_one_given() {
        let created = Extract::Pointer("/created".into());
        let dup = Extract::Equals(Box::new(created), Value::Bool(false));
        let h = http::HeaderMap::new();
        let body = serde_json::json!({"created": false});
        assert_eq!(read(&dup, Some(&body), &h), Some(Value::Bool(true)));
        let body = serde_json::json!({"created": true});
        assert_eq!(read(&dup, Some(&body), &h), Some(Value::Bool(false)));
        assert_eq!(
            read(&dup, Some(&serde_json::json!({})), &h),
            None,
            "absent stays absent"
        );
        let mut h = http::HeaderMap::new();
        h.insert("x-dup", http::HeaderValue::from_static("1"));
        let by_header = |want: Value| {
            Extract::Equals(
                Box::new(Extract::Header(http::HeaderName::from_static("x-dup"))),
                want,
            )
        };
        assert_eq!(
            read(&by_header(Value::from("1")), None, &h),
            Some(Value::Bool(true))
        );
        assert_eq!(
            read(&by_header(Value::from(1)), None, &h),
            Some(Value::Bool(true))
        );
        assert_eq!(
            read(&by_header(Value::from("0")), None, &h),
            Some(Value::Bool(false))
        );
    }

    #[test]
    fn requests_render_variables_escaped_for_their_place() {
        let ep = Endpoint::http(
            "127.0.0.1:9".parse().unwrap_or_else(|e| panic!("{e}")),
            HeaderValue::from_static("127.0.0.1:9"),
            "/base",
        );
        let mut rng = SmallRng::seed_from_u64(1);
        let vars = obj([("lock", Value::from("a b/c"))]);
        let built = build(&ep, &req(vec![]), &vars, 0, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(built.uri().path(), "/base/locks/a%20b%2Fc");
        assert_eq!(built.headers()[HOST], "127.0.0.1:9");
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt(b"a\nb"), "a b");
        let long = vec![b'x'; 500];
        assert_eq!(excerpt(&long).chars().count(), EXCERPT + 1);
    }
}
