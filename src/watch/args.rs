//! The `kvchaos watch` command line: arguments (clap derive), loading the plan and the state,
//! one round (`--once`) or the daemon, printing, and the exit code. Nothing else in the
//! watch module prints.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::notify::RetryPolicy;
use super::state::State;
use crate::exit::Exit;

/// The exit-code table of `kvchaos watch --help`.
pub const WATCH_HELP: &str = "\
The watch file (WATCH.toml) is documented in docs/watch.md. Webhook URLs are read only from
the environment (url_env = \"SLACK_WEBHOOK_URL\"); secrets in probe URLs and headers as
${NAME} or {{env.NAME}}.

Exit codes (--once):
  0    every check is up (or warming up)
  1    an alert is active (notified, or waiting for a mute window to end)
  2    usage or watch-file error (nothing was probed)
  3    environment failure: the state file cannot be read or written
The daemon exits 0 after Ctrl-C or SIGTERM, 2 or 3 as above.";

/// Arguments of `kvchaos watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The watch file: checks, notifiers, mute windows.
    pub file: PathBuf,
    /// Evaluate once and exit (for a scheduled CI job); the exit code says whether an alert
    /// is active.
    #[arg(long)]
    pub once: bool,
    /// Keep alert state here between runs (written atomically); without it, `--once` starts
    /// from nothing every time and may repeat notifications.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

/// Runs `kvchaos watch`; the daemon stops when `cancel` fires.
pub async fn run(args: WatchArgs, cancel: CancellationToken) -> Exit {
    let plan = match super::config::load(&args.file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Usage;
        }
    };
    let state = match &args.state {
        Some(path) => match State::load(path) {
            Ok((s, warning)) => {
                if let Some(w) = warning {
                    eprintln!("warning: {w}");
                }
                s
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Environment;
            }
        },
        None => {
            if args.once {
                eprintln!(
                    "warning: --once without --state: nothing is remembered between runs, so an active alert is notified every run"
                );
            }
            State::new()
        }
    };
    // An unwritable state file is found before anything is sent: a notice sent but not
    // remembered would be sent again by the next run.
    if let Some(path) = &args.state
        && let Err(e) = state.save(path)
    {
        eprintln!("error: {e}");
        return Exit::Environment;
    }
    if args.once {
        let mut client = super::client(&plan);
        let now = super::now_ms();
        let r = super::round(&plan, &state, &mut client, now, RetryPolicy::default()).await;
        for l in super::render(&plan, &r) {
            println!("{l}");
        }
        if let Some(path) = &args.state
            && let Err(e) = r.evaluation.state.save(path)
        {
            eprintln!("error: {e}");
            return Exit::Environment;
        }
        return if r.evaluation.any_active() {
            Exit::Fail
        } else {
            Exit::Pass
        };
    }
    println!(
        "kvchaos watch: {} check{} every {}; Ctrl-C to stop",
        plan.checks.len(),
        if plan.checks.len() == 1 { "" } else { "s" },
        humantime::format_duration(plan.interval)
    );
    match super::daemon(&plan, state, args.state.as_deref(), cancel, &mut |l| {
        println!("{l}")
    })
    .await
    {
        Ok(_) => Exit::Pass,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Environment
        }
    }
}
