//! The engine and the stop protocol against servers that answer, fail, stall, hang and reset.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvchaos::exit::Exit;
use kvchaos::live::{Interrupts, Silent};
use kvchaos::redact::Redactor;
use kvchaos::run::{RunOptions, run};
use kvchaos::scenario::plan::{
    CmpOp, Load, Phase, Plan, RequestPlan, TargetKind, TargetPlan, Threshold, ThresholdMetric,
    ThresholdScope,
};
use kvchaos::scenario::template::{Part, Template};
use kvchaos::summary::{StopReason, Summary};

use crate::servers;

fn request(name: &str, path: &str, weight: u32, timeout: Duration) -> RequestPlan {
    RequestPlan {
        name: name.to_owned(),
        weight,
        method: http::Method::GET,
        path: Template::from_parts(vec![Part::Literal(path.to_owned())], path.to_owned()),
        headers: Vec::new(),
        body: None,
        timeout,
        expect: None,
    }
}

fn rate(secs: f64, rps: f64, max_in_flight: usize) -> Phase {
    Phase {
        name: None,
        duration: Duration::from_secs_f64(secs),
        load: Load::Rate {
            from: rps,
            to: rps,
            max_in_flight,
        },
    }
}

fn plan(addr: SocketAddr, phases: Vec<Phase>, requests: Vec<RequestPlan>) -> Plan {
    Plan {
        name: "it".to_owned(),
        description: String::new(),
        source: PathBuf::from("tests/it.toml"),
        seed: 7,
        target: TargetPlan {
            kind: TargetKind::Url(url::Url::parse(&format!("http://{addr}/")).expect("url")),
            allow_hosts: Vec::new(),
            ca_file: None,
            kv_binding: kvchaos::local::KvBindingMode::Workerd,
            config: None,
            env: None,
        },
        phases,
        requests,
        thresholds: Vec::new(),
        grace: Duration::from_secs(1),
        redactor: Redactor::default(),
        speedup: 1.0,
        cron: kvchaos::scenario::plan::CronPlan::default(),
        faults: Vec::new(),
        heal: None,
        kv: kvchaos::scenario::plan::KvPlan::default(),
        lock: None,
        queue: None,
        canary: None,
        idempotency: None,
        ratelimit: None,
    }
}

struct Done {
    exit: Exit,
    summary: Summary,
    dir: PathBuf,
    wall: Duration,
    _tmp: tempfile::TempDir,
}

async fn go(plan: Plan, interrupts: Interrupts) -> Done {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        out: tmp.path().to_owned(),
        threads: Some(1),
        ..RunOptions::default()
    };
    let t0 = Instant::now();
    let outcome = run(plan, &opts, interrupts, &mut Silent)
        .await
        .expect("run produces a report");
    Done {
        exit: outcome.exit,
        summary: outcome.summary,
        dir: outcome.report_dir,
        wall: t0.elapsed(),
        _tmp: tmp,
    }
}

fn class(s: &Summary, c: &str) -> u64 {
    s.overall.by_class.get(c).copied().unwrap_or(0)
}

/// Every arrival of an open-loop phase is either sent or dropped.
fn assert_conserved(s: &Summary, expected_arrivals: u64) {
    let sent: u64 = s.phases.iter().map(|p| p.sent).sum();
    let dropped: u64 = s.phases.iter().map(|p| p.dropped).sum();
    assert_eq!(
        sent + dropped,
        expected_arrivals,
        "sent {sent} + dropped {dropped}"
    );
    assert_eq!(s.overall.dropped, dropped);
    assert_eq!(s.overall.completed + s.stop.unfinished, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_server_gets_every_request_on_schedule() {
    let addr = servers::http(Duration::ZERO).await;
    let d = go(
        plan(
            addr,
            vec![rate(1.0, 200.0, 16)],
            vec![
                request("a", "/a", 3, Duration::from_secs(5)),
                request("b", "/b", 1, Duration::from_secs(5)),
            ],
        ),
        Interrupts::default(),
    )
    .await;
    let s = &d.summary;
    assert_eq!(d.exit, Exit::Pass);
    assert_eq!(s.stop.reason, StopReason::Completed);
    assert_eq!(s.overall.completed, 200);
    assert_eq!(class(s, "2xx"), 200);
    assert_eq!(s.overall.dropped, 0);
    assert_conserved(s, 200);
    // Weights 3:1 over 200 seeded draws.
    let a = s.requests[0].completed;
    assert!((120..=180).contains(&a), "a got {a} of 200");
    assert_eq!(s.overall.bytes_received, 200 * 5);
    for f in ["summary.json", "timeseries.csv", "history.jsonl"] {
        assert!(d.dir.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(d.dir.join("timeseries.csv")).expect("csv");
    assert!(csv.lines().any(|l| l.contains(",all,")), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_are_classified_and_fail_thresholds() {
    let addr = servers::http(Duration::ZERO).await;
    let mut p = plan(
        addr,
        vec![rate(1.0, 100.0, 8)],
        vec![
            request("boom", "/503", 1, Duration::from_secs(5)),
            request("slow-down", "/429", 1, Duration::from_secs(5)),
            request("missing", "/404", 1, Duration::from_secs(5)),
        ],
    );
    p.thresholds.push(Threshold {
        scope: ThresholdScope::All,
        metric: ThresholdMetric::ErrorRate,
        op: CmpOp::Lt,
        limit: 0.01,
        expr: "error_rate < 1%".to_owned(),
        abort: false,
        during: None,
    });
    let d = go(p, Interrupts::default()).await;
    let s = &d.summary;
    assert_eq!(d.exit, Exit::Fail);
    assert_eq!(s.overall.completed, 100);
    assert_eq!(class(s, "5xx") + class(s, "429") + class(s, "4xx"), 100);
    assert_eq!(
        s.requests[0].by_class.get("5xx").copied(),
        Some(s.requests[0].completed)
    );
    assert_eq!(
        s.requests[1].by_class.get("429").copied(),
        Some(s.requests[1].completed)
    );
    assert_eq!(
        s.requests[2].by_class.get("4xx").copied(),
        Some(s.requests[2].completed)
    );
    assert_eq!(s.overall.error_rate, 1.0);
    assert!(!s.thresholds[0].passed);
    assert!(
        s.errors
            .iter()
            .any(|e| e.message == "HTTP 503 Service Unavailable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_causes_drops_and_corrected_latency_exceeds_service_time() {
    // Each answer takes 300 ms; 5 slots can carry about 17 req/s of the 100 req/s asked.
    let addr = servers::http(Duration::from_millis(300)).await;
    let d = go(
        plan(
            addr,
            vec![rate(1.0, 100.0, 5)],
            vec![request("slow", "/", 1, Duration::from_secs(5))],
        ),
        Interrupts::default(),
    )
    .await;
    let s = &d.summary;
    assert_conserved(s, 100);
    assert!(s.overall.dropped >= 60, "dropped {}", s.overall.dropped);
    assert!(
        s.overall.completed >= 10,
        "completed {}",
        s.overall.completed
    );
    assert_eq!(class(s, "2xx"), s.overall.completed);
    let (c, v) = (&s.overall.corrected, &s.overall.service);
    assert!(v.p50_us >= 300_000, "service p50 {}", v.p50_us);
    assert!(
        c.p50_us > v.p50_us && c.max_us > v.max_us && c.min_us >= v.min_us,
        "{c:?} vs {v:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_server_times_out_and_the_run_ends_on_time() {
    let addr = servers::hang().await;
    let d = go(
        plan(
            addr,
            vec![rate(1.0, 20.0, 50)],
            vec![request("hang", "/", 1, Duration::from_millis(200))],
        ),
        Interrupts::default(),
    )
    .await;
    let s = &d.summary;
    assert_conserved(s, 20);
    assert_eq!(class(s, "timeout"), 20);
    assert_eq!(s.overall.error_rate, 1.0);
    assert!(s.overall.service.min_us >= 200_000);
    // 1 s of load + at most the 200 ms timeout, well inside the 1 s grace.
    assert!(d.wall < Duration::from_secs(3), "took {:?}", d.wall);
    assert!(
        s.errors
            .iter()
            .any(|e| e.message.contains("no complete response within 200ms"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_are_classified() {
    let addr = servers::reset().await;
    let d = go(
        plan(
            addr,
            vec![rate(0.5, 40.0, 8)],
            vec![request("r", "/", 1, Duration::from_secs(2))],
        ),
        Interrupts::default(),
    )
    .await;
    let s = &d.summary;
    assert_conserved(s, 20);
    assert_eq!(class(s, "reset"), 20, "{:?}", s.overall.by_class);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_target_ends_at_once_with_exit_3_and_a_report() {
    let addr = servers::refused().await;
    let d = go(
        plan(
            addr,
            vec![rate(5.0, 10.0, 4)],
            vec![request("r", "/", 1, Duration::from_secs(1))],
        ),
        Interrupts::default(),
    )
    .await;
    assert_eq!(d.exit, Exit::Environment);
    assert_eq!(d.summary.stop.reason, StopReason::TargetUnreachable);
    assert!(
        d.summary
            .stop
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("cannot connect")
    );
    assert_eq!(d.summary.overall.completed, 0);
    assert!(d.dir.join("summary.json").is_file());
    assert!(d.wall < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_sends_back_to_back_without_drops() {
    let addr = servers::http(Duration::from_millis(5)).await;
    let d = go(
        plan(
            addr,
            vec![Phase {
                name: None,
                duration: Duration::from_secs(1),
                load: Load::Vus(4),
            }],
            vec![request("v", "/", 1, Duration::from_secs(2))],
        ),
        Interrupts::default(),
    )
    .await;
    let s = &d.summary;
    // 4 users × (1 s / ~5 ms) ≈ 800; allow a slow, shared machine.
    assert!(
        s.overall.completed >= 100,
        "completed {}",
        s.overall.completed
    );
    assert_eq!(s.overall.dropped, 0);
    assert_eq!(s.phases[0].kind, "vus");
    // Closed loop: the intended start is the actual send.
    assert!(
        s.overall
            .corrected
            .p50_us
            .abs_diff(s.overall.service.p50_us)
            <= s.overall.service.p50_us / 100 + 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_sending_and_still_writes_the_report() {
    let addr = servers::http(Duration::ZERO).await;
    let ints = Interrupts::default();
    let stop = ints.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        stop.cancel();
    });
    let d = go(
        plan(
            addr,
            vec![rate(30.0, 50.0, 8)],
            vec![request("i", "/", 1, Duration::from_secs(2))],
        ),
        ints,
    )
    .await;
    let s = &d.summary;
    assert_eq!(d.exit, Exit::Interrupted);
    assert_eq!(s.stop.reason, StopReason::Interrupted);
    assert!(d.wall < Duration::from_secs(3), "took {:?}", d.wall);
    // About 0.6 s × 50 req/s were due before the interrupt; nothing after it.
    let sent: u64 = s.phases.iter().map(|p| p.sent).sum();
    assert!((20..=40).contains(&sent), "sent {sent}");
    assert!(d.dir.join("summary.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_still_in_flight_after_the_grace_period_are_unfinished() {
    let addr = servers::hang().await;
    let mut p = plan(
        addr,
        vec![rate(0.5, 20.0, 50)],
        vec![request("h", "/", 1, Duration::from_secs(30))],
    );
    p.grace = Duration::from_millis(300);
    let d = go(p, Interrupts::default()).await;
    let s = &d.summary;
    assert_eq!(s.stop.unfinished, 10);
    assert_eq!(s.overall.completed, 0);
    assert_conserved(s, 10);
    assert!(d.wall < Duration::from_secs(2), "took {:?}", d.wall);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_abort_threshold_stops_the_run_early() {
    let addr = servers::http(Duration::ZERO).await;
    let mut p = plan(
        addr,
        vec![rate(30.0, 50.0, 8)],
        vec![
            request("ok", "/", 1, Duration::from_secs(2)),
            request("bad", "/500", 1, Duration::from_secs(2)),
        ],
    );
    p.thresholds.push(Threshold {
        scope: ThresholdScope::Request("bad".to_owned()),
        metric: ThresholdMetric::ErrorRate,
        op: CmpOp::Lt,
        limit: 0.05,
        expr: "error_rate < 5%".to_owned(),
        abort: true,
        during: None,
    });
    let d = go(p, Interrupts::default()).await;
    let s = &d.summary;
    assert_eq!(d.exit, Exit::Fail);
    assert_eq!(s.stop.reason, StopReason::Aborted);
    let detail = s.stop.detail.as_deref().unwrap_or("");
    assert!(
        detail.contains("bad error_rate < 5%") && detail.contains("100.00%"),
        "{detail}"
    );
    // Judged at the first one-second tick, long before the planned 30 s.
    assert!(d.wall < Duration::from_secs(4), "took {:?}", d.wall);
    assert!(!s.thresholds[0].passed);
}

/// Pauses sending at the first tick and resumes at the third.
struct PauseTwoSeconds {
    tx: tokio::sync::mpsc::UnboundedSender<kvchaos::live::Control>,
    rx: Option<tokio::sync::mpsc::UnboundedReceiver<kvchaos::live::Control>>,
    ticks: u32,
    paused_seen: bool,
}

impl kvchaos::live::Monitor for PauseTwoSeconds {
    fn tick(&mut self, s: &kvchaos::live::Snapshot) {
        self.ticks += 1;
        self.paused_seen |= s.progress.paused;
        let c = match self.ticks {
            1 => kvchaos::live::Control::Pause,
            3 => kvchaos::live::Control::Resume,
            _ => return,
        };
        let _ = self.tx.send(c);
    }

    fn controls(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<kvchaos::live::Control>> {
        self.rx.take()
    }
}

#[tokio::test]
async fn a_pause_skips_the_arrivals_it_covers_and_every_arrival_is_accounted_for() {
    let addr = servers::http(Duration::ZERO).await;
    let p = plan(
        addr,
        vec![rate(4.0, 200.0, 16)],
        vec![request("r", "/", 1, Duration::from_secs(2))],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        out: tmp.path().to_owned(),
        threads: Some(1),
        ..RunOptions::default()
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut monitor = PauseTwoSeconds {
        tx,
        rx: Some(rx),
        ticks: 0,
        paused_seen: false,
    };
    let outcome = run(p, &opts, Interrupts::default(), &mut monitor)
        .await
        .expect("run produces a report");
    assert!(monitor.paused_seen, "a snapshot showed the pause");
    let history =
        std::fs::read_to_string(outcome.report_dir.join("history.jsonl")).expect("history.jsonl");
    let resumed: serde_json::Value = history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "resumed")
        .expect("a resumed event");
    let skipped = resumed["skipped"].as_u64().expect("skipped count");
    let s = &outcome.summary;
    let sent: u64 = s.phases.iter().map(|p| p.sent).sum();
    let dropped: u64 = s.phases.iter().map(|p| p.dropped).sum();
    // Two of four seconds at 200/s were paused (ticks are about a second apart).
    assert!((300..=500).contains(&skipped), "skipped {skipped}");
    assert_eq!(
        sent + dropped + skipped,
        800,
        "sent {sent} dropped {dropped}"
    );
    assert_eq!(s.overall.completed, sent);
    assert_eq!(outcome.exit, Exit::Pass);
}

#[tokio::test]
async fn a_pause_holds_closed_loop_users_and_skips_nothing() {
    let addr = servers::http(Duration::ZERO).await;
    let vus = Phase {
        name: None,
        duration: Duration::from_secs(4),
        load: Load::Vus(2),
    };
    let p = plan(
        addr,
        vec![vus],
        vec![request("r", "/", 1, Duration::from_secs(2))],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = RunOptions {
        out: tmp.path().to_owned(),
        threads: Some(1),
        ..RunOptions::default()
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut monitor = PauseTwoSeconds {
        tx,
        rx: Some(rx),
        ticks: 0,
        paused_seen: false,
    };
    let outcome = run(p, &opts, Interrupts::default(), &mut monitor)
        .await
        .expect("run produces a report");
    let history =
        std::fs::read_to_string(outcome.report_dir.join("history.jsonl")).expect("history.jsonl");
    assert!(
        history.contains(r#""type":"resumed","skipped":0"#),
        "{history}"
    );
    // The interval that ends at the third tick lies wholly inside the pause: nothing completed.
    let csv = std::fs::read_to_string(outcome.report_dir.join("timeseries.csv")).expect("csv");
    let all: Vec<Vec<&str>> = csv
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r.get(1) == Some(&"all"))
        .collect();
    assert_eq!(all[2][2], "0", "{csv}");
    assert!(
        all[0][2] != "0" && all[3][2] != "0",
        "sent before and after: {csv}"
    );
    assert_eq!(outcome.exit, Exit::Pass);
}
