//! Command-line interface: arguments (clap), the runtime, signals, printing errors once, and
//! exit codes. Nothing below this module prints errors or exits the process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit::{EXIT_CODES_HELP, Exit};
use crate::run::{Interrupts, LinePrinter, RunOptions};

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
    /// Re-render the reports of a report folder from its summary.json.
    Report {
        /// Report folder (as printed at the end of a run).
        dir: PathBuf,
    },
    /// Serve the fault-injecting mock of Cloudflare Workers KV on its own (for other tools).
    MockKv(crate::mockkv::MockKvArgs),
    /// Serve the built-in minimal HTTP target (used by the benchmark when nginx is absent).
    #[command(hide = true)]
    BuiltinServer {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
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
        Command::Report { dir } => match crate::report::rerender(&dir) {
            Ok(files) => {
                for f in files {
                    println!("wrote {}", f.display());
                }
                Exit::Pass
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Usage
            }
        },
        Command::BuiltinServer { listen } => builtin_server(listen).await,
        Command::MockKv(args) => mock_kv(args).await,
    }
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
    let ints = Interrupts::default();
    let i = ints.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            if wait_signal().await.is_err() {
                return;
            }
            n += 1;
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
    let opts = RunOptions {
        scenario: args
            .scenario
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SCENARIO_PATH)),
        target_url: args.target_url,
        worker: args.worker,
        allow_hosts: args.allow_hosts,
        out: args.out,
        seed: args.seed,
        duration: args.duration,
        threads: args.threads,
        strict: args.strict,
    };
    let prepared = match &args.scenario {
        Some(_) => crate::run::prepare(&opts),
        None => {
            crate::run::prepare_from_text(&opts, DEFAULT_SCENARIO, Path::new(DEFAULT_SCENARIO_PATH))
        }
    };
    let plan = match prepared {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("{e}");
            return e.exit();
        }
    };
    println!(
        "kvchaos: running \"{}\" for {} (seed {})",
        plan.name,
        humantime::format_duration(plan.duration()),
        plan.seed
    );
    let dashboard = crate::tui::wanted(args.no_tui);
    let interrupts = interrupts(!dashboard);
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
    match result {
        Ok(outcome) => {
            println!(
                "{}",
                crate::report::text::terminal_summary(&outcome.summary)
            );
            println!("report: {}", outcome.report_dir.display());
            outcome.exit
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    }
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
