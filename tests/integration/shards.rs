//! A run split over N local processes (`kvchaos run --shard I/N --start-at T`) against one
//! local server, then `kvchaos merge`: counts add up, percentiles are those of the added
//! histograms, the merged rate is the sum of the shard rates; a missing shard or a shard of
//! another configuration makes the merge INCOMPLETE (exit 1).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use kvchaos::report::model::Summary;

use crate::servers;

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");
const SHARDS: u64 = 3;

const SCENARIO: &str = r#"
name = "sharded"
seed = 5

[target]
url = "http://127.0.0.1:1/"

[[phases]]
duration = "2s"
rate = 600

[[requests]]
name = "hello"
path = "/"

[[requests]]
name = "second"
weight = 2
path = "/ok/{{seq}}"

[thresholds]
all = ["p99 < 2s", "error_rate < 1%", "rps > 100"]
"#;

fn shard(scenario: &Path, out: &Path, url: &str, spec: &str, start: &str, seed: &str) -> Child {
    Command::new(BIN)
        .args([
            "run",
            scenario.to_str().expect("utf-8"),
            "--no-tui",
            "--threads",
            "1",
        ])
        .args([
            "--target-url",
            url,
            "--shard",
            spec,
            "--start-at",
            start,
            "--seed",
            seed,
        ])
        .args(["--out", out.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kvchaos")
}

fn wait(child: Child) -> Output {
    child.wait_with_output().expect("kvchaos ends")
}

fn only_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("report root")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn summary(dir: &Path) -> Summary {
    kvchaos::report::json::read_summary(dir).expect("summary reads")
}

fn merge(dirs: &[PathBuf], out: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("merge");
    for d in dirs {
        cmd.arg(d);
    }
    cmd.arg("--out").arg(out).output().expect("kvchaos merge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_merge_into_the_whole_run_exactly() {
    let addr = servers::http(Duration::ZERO).await;
    let url = format!("http://{addr}/");
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("sharded.toml");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    // Far enough ahead for every process to start and reach its engine.
    let start =
        humantime::format_rfc3339_millis(SystemTime::now() + Duration::from_secs(3)).to_string();
    let outs: Vec<PathBuf> = (0..SHARDS)
        .map(|i| tmp.path().join(format!("s{i}")))
        .collect();
    let children: Vec<Child> = (0..SHARDS)
        .map(|i| {
            shard(
                &scenario,
                &outs[i as usize],
                &url,
                &format!("{i}/{SHARDS}"),
                &start,
                "5",
            )
        })
        .collect();
    // The odd one out: same shard 2, another seed (another configuration).
    let odd_out = tmp.path().join("odd");
    let odd = shard(&scenario, &odd_out, &url, "2/3", &start, "6");
    let outputs: Vec<Output> =
        tokio::task::spawn_blocking(move || children.into_iter().map(wait).collect())
            .await
            .expect("join");
    let odd = tokio::task::spawn_blocking(move || wait(odd))
        .await
        .expect("join");
    for o in outputs.iter().chain([&odd]) {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let dirs: Vec<PathBuf> = outs.iter().map(|o| only_dir(o)).collect();
    let shards: Vec<Summary> = dirs.iter().map(|d| summary(d)).collect();
    for (i, s) in shards.iter().enumerate() {
        let info = s.shard.as_ref().expect("shard info");
        assert_eq!((info.index, info.count), (i as u64, SHARDS));
        assert!(
            info.start_skew_us.abs() < 1_000_000,
            "skew {}",
            info.start_skew_us
        );
    }
    // Each shard sent about a third of the global schedule (1,200 arrivals in 2 s).
    for s in &shards {
        let sent = s.overall.completed + s.overall.dropped;
        assert!((380..=420).contains(&sent), "{sent}");
    }

    let merged_out = tmp.path().join("merged");
    let m = merge(&dirs, &merged_out);
    assert_eq!(
        m.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&m.stderr)
    );
    let merged = summary(&merged_out);
    let sum = |f: &dyn Fn(&Summary) -> u64| shards.iter().map(f).sum::<u64>();
    assert_eq!(merged.overall.completed, sum(&|s| s.overall.completed));
    assert_eq!(merged.overall.dropped, sum(&|s| s.overall.dropped));
    assert_eq!(merged.overall.errors, sum(&|s| s.overall.errors));
    for r in &merged.requests {
        let parts: u64 = shards
            .iter()
            .flat_map(|s| s.requests.iter().filter(|q| q.name == r.name))
            .map(|q| q.completed)
            .sum();
        assert_eq!(r.completed, parts, "{}", r.name);
    }
    assert_eq!(merged.phases[0].sent, sum(&|s| s.phases[0].sent));
    // Percentiles are those of the shards' histograms added.
    let mut all = kvchaos::metrics::new_histogram();
    let mut service = kvchaos::metrics::new_histogram();
    for d in &dirs {
        let (_, a, _) = kvchaos::merge::histograms::read(d).expect("histograms");
        all.add(&a.corrected).expect("same bounds");
        service.add(&a.service).expect("same bounds");
    }
    assert_eq!(
        merged.overall.corrected,
        kvchaos::metrics::percentiles(&all)
    );
    assert_eq!(
        merged.overall.service,
        kvchaos::metrics::percentiles(&service)
    );
    // The merged rate is the sum of the shard rates.
    let rates: f64 = shards.iter().map(|s| s.overall.rps).sum();
    assert!(
        (merged.overall.rps - rates).abs() <= rates * 0.01,
        "merged {} vs sum {rates}",
        merged.overall.rps
    );
    assert!(
        merged.thresholds.iter().all(|t| t.passed),
        "{:?}",
        merged.thresholds
    );
    let info = merged
        .shard
        .as_ref()
        .and_then(|s| s.merged.as_ref())
        .expect("merge info");
    assert!(info.complete);
    assert_eq!(info.shards, vec![0, 1, 2]);
    for f in [
        "summary.json",
        "report.md",
        "report.html",
        "junit.xml",
        "histograms.json",
    ] {
        assert!(merged_out.join(f).is_file(), "{f}");
    }

    // A shard missing: INCOMPLETE, exit 1.
    let partial = tmp.path().join("partial");
    let m = merge(&dirs[..2], &partial);
    assert_eq!(m.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&m.stderr).contains("shard 2 of 3 missing"));
    assert!(
        summary(&partial)
            .warnings
            .iter()
            .any(|w| w.contains("INCOMPLETE"))
    );

    // A shard of another configuration: INCOMPLETE, exit 1.
    let mixed = tmp.path().join("mixed");
    let mut with_odd = dirs[..2].to_vec();
    with_odd.push(only_dir(&odd_out));
    let m = merge(&with_odd, &mixed);
    assert_eq!(m.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&m.stderr).contains("different scenario, binary or configuration"),
        "{}",
        String::from_utf8_lossy(&m.stderr)
    );
}
