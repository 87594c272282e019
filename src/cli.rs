//! Command-line interface: arguments (clap), the runtime, signals, printing errors once, and
//! exit codes. Nothing below this module prints errors or exits the process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit::{EXIT_CODES_HELP, Exit};
use crate::live::{Interrupts, LinePrinter};
use crate::run::RunOptions;

/// The scenario `kvchaos run` uses when none is given: the reference Worker under miniflare with
/// the mock KV and a KV daily-limit window. Compiled in, and read as if from the source tree, so
/// its relative Worker path resolves wherever kvchaos is run from.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/smoke.toml");
/// Where the built-in default scenario lives (its relative paths resolve from here).
pub const DEFAULT_SCENARIO_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");

/// Load and chaos harness for Cloudflare Workers.
#[derive(Debug, Parser)]
#[command(name = "kvchaos", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario and write its report.
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Check scenario files without sending anything.
    #[command(after_help = EXIT_CODES_HELP)]
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Re-render report.md, junit.xml and report.html of a report folder from its summary.json,
    /// history.jsonl, latency.hlog, timeseries.csv and mockkv.json.
    #[command(
        after_help = "Exit codes:\n  0    the reports were written\n  2    the folder or its summary.json could not be read\n  3    a report could not be written"
    )]
    Report {
        /// Report folder (as printed at the end of a run), or its summary.json.
        dir: PathBuf,
    },
    /// Compare two runs: latency, error-rate and verdict changes, KV operations per 1,000
    /// requests by key prefix; optional regression gates.
    #[command(after_help = COMPARE_HELP)]
    Compare(CompareArgs),
    /// Watch deployed Workers: alert in Slack, Discord or a webhook when a cron stops running,
    /// input drops to zero or errors rise.
    #[command(after_help = crate::watch::args::WATCH_HELP)]
    Watch(crate::watch::WatchArgs),
    /// Inventory a Worker repository's KV calls, rank migration candidates, gate CI on them.
    Audit(crate::audit::args::AuditArgs),
    /// Build a Worker for a deployed canary with the chaos shim around its KV bindings.
    Canary(crate::canary::args::CanaryArgs),
    /// Serve the fault-injecting mock of Cloudflare Workers KV on its own (for other tools).
    MockKv(crate::mockkv::MockKvArgs),
    /// Dump, verify, clean and restore Workers KV namespaces (the REST API; see docs/kv.md).
    #[command(after_help = crate::kv::args::KV_EXIT_CODES)]
    Kv(crate::kv::KvArgs),
    /// Merge the report folders of a run's shards (`run --shard I/N`) into one report.
    #[command(
        after_help = "Exit codes:\n  0    merged; every threshold (and check) passed\n  1    a threshold or check failed, or the merge is INCOMPLETE (a shard missing, or a different scenario, binary or configuration)\n  2    a shard's report folder could not be read\n  3    the merged report could not be written"
    )]
    Merge {
        /// The shards' report folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Folder to write the merged report into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Recorded traffic: convert wrangler tail and HAR captures into a replay corpus.
    Replay(crate::replay::args::ReplayArgs),
    /// Serve the built-in minimal HTTP target (used by the benchmark when nginx is absent).
    #[command(hide = true)]
    BuiltinServer {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

const COMPARE_HELP: &str = "\
Gates (--fail-if, repeatable):
  p99 +20%              p99 of all requests may rise by at most 20% (p50 p90 p95 p99 p99.9 max mean)
  p99[checkout] +50ms   one request, absolute; p99[*] +20% judges every request and all
  error_rate +1pp       error rate may rise by at most 1 percentage point
  rps -10%              throughput may fall by at most 10%
  kv_puts +0            no more KV puts per 1,000 requests than before (kv_ops kv_gets kv_puts
                        kv_deletes kv_lists); kv_puts[queue:] +10% for one key prefix
  verdicts              no check or threshold that passed before may stop passing

Exit codes:
  0    compared; every gate held
  1    a gate failed
  2    a report could not be read, or a gate is invalid
  3    the --html file could not be written";

#[derive(Debug, Args)]
struct CompareArgs {
    /// The run before (a report folder or its summary.json).
    before: PathBuf,
    /// The run after (a report folder or its summary.json).
    after: PathBuf,
    /// Fail (exit 1) when AFTER regressed beyond this gate, e.g. "p99 +20%" or "kv_puts +0".
    #[arg(long = "fail-if", value_name = "GATE")]
    fail_if: Vec<String>,
    /// Also write the comparison as a self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Do not print the Markdown comparison to stdout.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Scenario file; without one, the built-in default (scenarios/smoke.toml) runs.
    scenario: Option<PathBuf>,
    /// Send the load to this URL instead of the scenario's target.
    #[arg(long, value_name = "URL", conflicts_with = "worker")]
    target_url: Option<String>,
    /// Run this Worker directory under miniflare (its KV routed to the mock) as the target.
    #[arg(long, value_name = "DIR")]
    worker: Option<PathBuf>,
    /// The Worker's wrangler config file (as `wrangler dev --config`; relative to the current
    /// directory or to the Worker directory).
    #[arg(long, value_name = "FILE", conflicts_with = "target_url")]
    config: Option<PathBuf>,
    /// The `[env.NAME]` section of the Worker's config to run (as `wrangler dev --env`).
    #[arg(long, value_name = "NAME", conflicts_with = "target_url")]
    env: Option<String>,
    /// Allow this non-loopback host as a target (repeatable; `*.example.com` for subdomains).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Folder in which the report folder is created.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    out: PathBuf,
    /// Seed for keys, the request mix and templated values.
    #[arg(long)]
    seed: Option<u64>,
    /// Cut or extend the run to this length, e.g. 30s or 10m.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Print a plain status line every second instead of the dashboard.
    #[arg(long)]
    no_tui: bool,
    /// Engine threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// Treat an UNKNOWN check verdict (e.g. the run never healed) as a failure.
    #[arg(long)]
    strict: bool,
    /// Leave out the scenario's [[faults]]: the baseline run, which every check should pass.
    #[arg(long)]
    no_faults: bool,
    /// Send only shard I of N of the load (request k of the open-loop schedule when
    /// k mod N = I; closed-loop users split); only shard 0 runs faults, crons, drivers, checks.
    #[arg(long, value_name = "I/N", value_parser = clap::value_parser!(crate::engine::Shard))]
    shard: Option<crate::engine::Shard>,
    /// Split the run over N shards, this one's index from JOB_COMPLETION_INDEX (a Kubernetes
    /// Indexed Job).
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    shards: Option<u64>,
    /// Start the schedule at this time (RFC 3339, e.g. 2026-12-02T01:30:00Z), the same for
    /// every shard; how far off each shard started is recorded.
    #[arg(long, value_name = "RFC3339", value_parser = parse_start_at)]
    start_at: Option<std::time::SystemTime>,
}

fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(std::time::SystemTime::from)
        .map_err(|e| format!("{e}: expected an RFC 3339 time, e.g. 2026-12-02T01:30:00Z"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: expected e.g. 30s, 2m or 1h"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Sized to the CPUs this process may use (taskset is respected), at most two: the heavy
    // lifting of a run happens on the engine's own threads.
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 2);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Environment.code());
        }
    };
    let exit = rt.block_on(dispatch(cli));
    // Do not wait for stray tasks (e.g. a stalled connection) once the result is known.
    rt.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(exit.code())
}

async fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Validate { scenarios } => validate(&scenarios),
        Command::Report { dir } => report(&dir),
        Command::Compare(args) => compare(&args),
        Command::Merge { dirs, out } => merge(&dirs, &out),
        Command::BuiltinServer { listen } => builtin_server(listen).await,
        Command::MockKv(args) => mock_kv(args).await,
        Command::Watch(args) => watch(args).await,
        Command::Kv(args) => {
            let env = crate::kv::KvEnv::from_process();
            crate::kv::run(args, &env, &mut std::io::stdout(), &mut std::io::stderr()).await
        }
        Command::Audit(args) => crate::audit::args::run(args),
        Command::Canary(args) => crate::canary::args::run(args),
        Command::Replay(args) => crate::replay::args::run(args),
    }
}

fn merge(dirs: &[PathBuf], out: &Path) -> Exit {
    match crate::merge::merge(dirs, out) {
        Ok(m) => {
            for w in m
                .summary
                .warnings
                .iter()
                .filter(|w| w.starts_with("INCOMPLETE"))
            {
                eprintln!("warning: {w}");
            }
            for f in &m.files {
                println!("wrote {}", f.display());
            }
            println!("{}", crate::report::text::terminal_summary(&m.summary));
            m.exit
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    }
}

fn report(dir: &Path) -> Exit {
    use crate::report::ReportError;
    match crate::report::rerender(dir) {
        Ok(r) => {
            for n in &r.notes {
                eprintln!("warning: {n}");
            }
            for f in &r.files {
                println!("wrote {}", f.display());
            }
            println!("{}", crate::report::text::terminal_summary(&r.summary));
            Exit::Pass
        }
        Err(e @ ReportError::Write { .. }) => {
            eprintln!("error: {e}");
            Exit::Environment
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

fn compare(args: &CompareArgs) -> Exit {
    use crate::report::compare;
    let result = (|| {
        let gates = args
            .fail_if
            .iter()
            .map(|g| compare::parse_gate(g))
            .collect::<Result<Vec<_>, _>>()?;
        let before = compare::Side::load(&args.before)?;
        let after = compare::Side::load(&args.after)?;
        compare::compare(before, after, &gates)
    })();
    let c = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if !args.quiet {
        print!("{}", compare::render_markdown(&c));
    }
    if let Some(path) = &args.html {
        if let Err(e) = std::fs::write(path, compare::render_html(&c)) {
            eprintln!(
                "error: {}: cannot write the HTML comparison: {e}",
                path.display()
            );
            return Exit::Environment;
        }
        eprintln!("wrote {}", path.display());
    }
    for g in c.gates.iter().filter(|g| !g.passed) {
        eprintln!("gate failed: {}: {}", g.gate, g.detail.join("; "));
    }
    if c.passed() { Exit::Pass } else { Exit::Fail }
}

fn validate(files: &[PathBuf]) -> Exit {
    let mut exit = Exit::Pass;
    for f in files {
        match crate::scenario::load(f) {
            Ok(plan) => println!(
                "ok: {} ({} phases, {} requests, {})",
                f.display(),
                plan.phases.len(),
                plan.requests.len(),
                humantime::format_duration(plan.duration())
            ),
            Err(e) => {
                eprintln!("{e}");
                exit = Exit::Usage;
            }
        }
    }
    exit
}

/// Stop on the first SIGINT or SIGTERM, abandon in-flight requests on the second. `announce`
/// says so on stderr (not under the dashboard, whose screen it would scribble over).
fn interrupts(announce: bool) -> Interrupts {
    use tokio::signal::unix::{SignalKind, signal};
    let ints = Interrupts::default();
    // Registered here, before returning, so that a signal sent once the caller says it is
    // running is never met by the default disposition (which would kill the process).
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return ints;
    };
    let i = ints.clone();
    tokio::spawn(async move {
        for n in 1.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if n == 1 {
                if announce {
                    eprintln!(
                        "interrupted: stopping, waiting for requests in flight (again to abandon them)"
                    );
                }
                i.stop.cancel();
            } else {
                i.abort.cancel();
                return;
            }
        }
    });
    ints
}

async fn wait_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn run(args: RunArgs) -> Exit {
    let (given, no_tui) = (args.scenario.is_some(), args.no_tui);
    let opts = match run_options(args) {
        Ok(opts) => opts,
        Err(exit) => return exit,
    };
    let prepared = if given {
        crate::run::prepare(&opts)
    } else {
        crate::run::prepare_from_text(&opts, DEFAULT_SCENARIO, Path::new(DEFAULT_SCENARIO_PATH))
    };
    let plan = match prepared {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{e}");
            return e.exit();
        }
    };
    let dashboard = crate::tui::wanted(no_tui);
    // Signals are handled from here on: the line below tells a supervisor it may send them.
    let interrupts = interrupts(!dashboard);
    println!(
        "kvchaos: running \"{}\" for {} (seed {})",
        plan.name,
        humantime::format_duration(plan.duration()),
        plan.seed
    );
    let mut tui = None;
    if dashboard {
        match crate::tui::Tui::start(interrupts.clone()) {
            Ok(t) => tui = Some(t),
            Err(e) => eprintln!("warning: cannot start the dashboard ({e}); printing status lines"),
        }
    }
    let result = match tui.as_mut() {
        Some(t) => crate::run::run(plan, &opts, interrupts, t).await,
        None => crate::run::run(plan, &opts, interrupts, &mut LinePrinter).await,
    };
    // The terminal is back to normal before anything is printed.
    if let Some(t) = tui
        && let Err(e) = t.finish().await
    {
        eprintln!("warning: {e}");
    }
    report_run(result)
}

/// The run's options from its arguments; a bad `--shard`/`--shards` is a usage error.
fn run_options(args: RunArgs) -> Result<RunOptions, Exit> {
    Ok(RunOptions {
        scenario: args
            .scenario
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SCENARIO_PATH)),
        target_url: args.target_url,
        worker: args.worker,
        worker_config: args.config,
        worker_env: args.env,
        allow_hosts: args.allow_hosts,
        out: args.out,
        seed: args.seed,
        duration: args.duration,
        threads: args.threads,
        strict: args.strict,
        no_faults: args.no_faults,
        shard: match crate::engine::Shard::resolve(
            args.shard,
            args.shards,
            std::env::var("JOB_COMPLETION_INDEX").ok().as_deref(),
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return Err(Exit::Usage);
            }
        },
        start_at: args.start_at,
    })
}

/// Prints a run's notes and summary (or its error) and gives its exit code.
fn report_run(result: Result<crate::run::RunOutcome, crate::run::RunError>) -> Exit {
    match result {
        Ok(outcome) => {
            for note in &outcome.notes {
                eprintln!("warning: {note}");
            }
            println!(
                "{}",
                crate::report::text::terminal_summary(&outcome.summary)
            );
            println!("report: {}", outcome.report_dir.display());
            outcome.exit
        }
        Err(e) => {
            for note in e.notes() {
                eprintln!("warning: {note}");
            }
            eprintln!("error: {e}");
            e.exit()
        }
    }
}

async fn watch(args: crate::watch::WatchArgs) -> Exit {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = wait_signal().await;
        on_signal.cancel();
    });
    crate::watch::args::run(args, cancel).await
}

async fn mock_kv(args: crate::mockkv::MockKvArgs) -> Exit {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = wait_signal().await;
        on_signal.cancel();
    });
    match crate::mockkv::run_standalone(args, cancel).await {
        Ok(()) => Exit::Pass,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Usage
        }
    }
}

async fn builtin_server(listen: std::net::SocketAddr) -> Exit {
    if !listen.ip().is_loopback() {
        eprintln!(
            "error: --listen {listen}: the built-in server listens on loopback only, e.g. 127.0.0.1:0"
        );
        return Exit::Usage;
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return Exit::Environment;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("{a}"),
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(crate::target::builtin::serve(listener, stop.clone()));
    let _ = wait_signal().await;
    stop.cancel();
    let _ = server.await;
    Exit::Pass
}
