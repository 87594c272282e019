//! `kvchaos mock-kv`: the mock as a standalone server for other tools.
//!
//! Owns: the command-line arguments ([`MockKvArgs`]), turning them into a
//! [`MockKvConfig`] and clock, and [`run_standalone`], which binds, prints
//! the bound address as the first stdout line and serves until cancelled.
//! Does not own: the CLI's subcommand wiring, signals or exit codes
//! (`src/cli.rs` does that and passes a cancellation token).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{FaultSpec, Limits, MockKv, MockKvConfig, VirtualClock, bind, serve};

/// Quota plan for the standalone mock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanArg {
    /// 100,000 reads, 1,000 writes, deletes and lists per day.
    Free,
    /// No daily limit.
    Paid,
    /// Only the limits given with `--reads-per-day` and friends.
    Custom,
}

/// Arguments of `kvchaos mock-kv`.
#[derive(Clone, Debug, clap::Args)]
pub struct MockKvArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed as the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Allow listening on a non-loopback address (the mock has no real
    /// authentication).
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Daily quota plan.
    #[arg(long, value_enum, default_value_t = PlanArg::Free)]
    pub plan: PlanArg,
    /// Reads per day (with --plan custom).
    #[arg(long)]
    pub reads_per_day: Option<u64>,
    /// Writes per day (with --plan custom).
    #[arg(long)]
    pub writes_per_day: Option<u64>,
    /// Deletes per day (with --plan custom).
    #[arg(long)]
    pub deletes_per_day: Option<u64>,
    /// Lists per day (with --plan custom).
    #[arg(long)]
    pub lists_per_day: Option<u64>,
    /// Real length of one virtual day, e.g. 60s (default: real time).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub day: Option<Duration>,
    /// A fault rule in the compact syntax, e.g.
    /// `kind=daily-limit,ops=put,prefix=queue:,p=1.0`; repeatable.
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<FaultSpec>,
    /// Seed for fault probabilities and jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Allow writing the same key more than once per second.
    #[arg(long)]
    pub no_same_key_limit: bool,
    /// Bearer token the REST API requires (default: any token).
    #[arg(long, env = "KVCHAOS_MOCK_API_TOKEN")]
    pub api_token: Option<String>,
    /// Namespace for binding requests that name none.
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
    /// Create this namespace at start, so the REST door knows it (repeatable; the REST door
    /// answers 404, code 10013, for namespaces never created nor written by a binding).
    #[arg(long = "namespace", value_name = "NAME")]
    pub namespaces: Vec<String>,
    /// Limit REST requests per account, e.g. 1200/5m (Cloudflare's); past it: 429 with
    /// Retry-After until the window ends (default: no limit).
    #[arg(long, value_name = "REQUESTS/WINDOW", value_parser = parse_rate_limit)]
    pub rest_rate_limit: Option<super::RestRateLimit>,
}

fn parse_rate_limit(s: &str) -> Result<super::RestRateLimit, String> {
    s.parse()
}

fn parse_fault(s: &str) -> Result<FaultSpec, String> {
    s.parse::<FaultSpec>().map_err(|e| e.to_string())
}

impl MockKvArgs {
    /// Validated configuration and clock.
    pub fn to_config(&self) -> anyhow::Result<(MockKvConfig, VirtualClock)> {
        let custom = [
            self.reads_per_day,
            self.writes_per_day,
            self.deletes_per_day,
            self.lists_per_day,
        ];
        let limits = match self.plan {
            PlanArg::Free | PlanArg::Paid if custom.iter().any(Option::is_some) => {
                anyhow::bail!(
                    "quota numbers such as --writes-per-day need '--plan custom' (plan is '{:?}')",
                    self.plan
                );
            }
            PlanArg::Free => Limits::FREE,
            PlanArg::Paid => Limits::PAID,
            PlanArg::Custom => Limits {
                reads: self.reads_per_day,
                writes: self.writes_per_day,
                deletes: self.deletes_per_day,
                lists: self.lists_per_day,
            },
        };
        if self.day.is_some_and(|d| d.is_zero()) {
            anyhow::bail!("invalid --day '0s': expected a positive duration, e.g. --day 60s");
        }
        let speed = self.day.map_or(1.0, VirtualClock::speed_for_day);
        let config = MockKvConfig {
            limits,
            same_key_write_limit: !self.no_same_key_limit,
            seed: self.seed,
            default_namespace: self.default_namespace.clone(),
            api_token: self.api_token.clone(),
            allow_non_loopback: self.allow_non_loopback,
            rest_rate_limit: self.rest_rate_limit,
            ..MockKvConfig::default()
        };
        Ok((config, VirtualClock::real_time(speed)))
    }
}

/// Bind, print the bound address as the first stdout line, serve until
/// `cancel` fires.
pub async fn run_standalone(args: MockKvArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let (config, clock) = args.to_config()?;
    let kv = MockKv::new(config, clock);
    for name in &args.namespaces {
        kv.create_namespace(name);
    }
    for spec in &args.faults {
        kv.add_fault(spec.clone())
            .with_context(|| format!("cannot add fault {spec:?}"))?;
    }
    let listener = bind(args.listen, args.allow_non_loopback).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{addr}").context("writing the bound address to stdout")?;
        out.flush().context("flushing stdout")?;
    }
    serve(listener, kv, cancel)
        .await
        .with_context(|| format!("serving the mock KV on {addr}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MockKvArgs,
    }

    fn parse(argv: &[&str]) -> Result<MockKvArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("mock-kv").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_are_loopback_free_plan_real_time() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:0".parse().unwrap());
        let (config, clock) = a.to_config().unwrap();
        assert_eq!(config.limits, Limits::FREE);
        assert_eq!(clock.view().speed, 1.0);
    }

    #[test]
    fn day_faults_and_custom_plan() {
        let a = parse(&[
            "--day",
            "60s",
            "--plan",
            "custom",
            "--writes-per-day",
            "5",
            "--fault",
            "kind=daily-limit,ops=put,prefix=queue:,p=1.0",
            "--fault",
            "kind=latency,latency=10ms",
        ])
        .unwrap();
        assert_eq!(a.faults.len(), 2);
        let (config, clock) = a.to_config().unwrap();
        assert_eq!(config.limits.writes, Some(5));
        assert_eq!(config.limits.reads, None);
        assert_eq!(clock.view().speed, 1440.0);
    }

    #[test]
    fn namespaces_and_the_rest_rate_limit() {
        let a = parse(&[
            "--namespace",
            "qa",
            "--namespace",
            "prod",
            "--rest-rate-limit",
            "1200/5m",
        ])
        .unwrap();
        assert_eq!(a.namespaces, ["qa", "prod"]);
        let (config, _) = a.to_config().unwrap();
        assert_eq!(
            config.rest_rate_limit,
            Some(super::super::RestRateLimit::CLOUDFLARE)
        );
        let e = parse(&["--rest-rate-limit", "lots"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("e.g. 1200/5m"), "{e}");
    }

    #[test]
    fn bad_arguments_are_refused_with_the_fix() {
        let e = parse(&["--fault", "kind=boom"]).err().unwrap().to_string();
        assert!(e.contains("unknown kind 'boom'"), "{e}");
        let a = parse(&["--writes-per-day", "5"]).unwrap();
        assert!(
            a.to_config()
                .unwrap_err()
                .to_string()
                .contains("--plan custom")
        );
        let a = parse(&["--day", "0s"]).unwrap();
        assert!(a.to_config().is_err());
    }

    #[tokio::test]
    async fn refuses_non_loopback_and_stops_on_cancel() {
        let a = parse(&["--listen", "0.0.0.0:0"]).unwrap();
        let err = run_standalone(a, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("non-loopback"));
        let cancel = CancellationToken::new();
        cancel.cancel();
        run_standalone(parse(&[]).unwrap(), cancel).await.unwrap();
    }
}
