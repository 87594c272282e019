//! `kvchaos canary ...`: the command line of the canary shim.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{BuildPlan, CanaryError, DEFAULT_SECRET_VAR};
use crate::exit::Exit;

/// `kvchaos canary`.
#[derive(Debug, Args)]
pub struct CanaryArgs {
    #[command(subcommand)]
    command: CanaryCommand,
}

#[derive(Debug, Subcommand)]
enum CanaryCommand {
    /// Write a deployable build of a Worker with every KV binding wrapped by the chaos shim.
    #[command(after_help = BUILD_HELP)]
    Build(BuildArgs),
}

const BUILD_HELP: &str = "The Worker's own files are not touched: OUT holds kvchaos-shim.mjs (the entry point, importing the Worker's) and wrangler.json (the chosen environment flattened, paths pointing back at the Worker's folder). Deploy it with:
  npx wrangler versions upload -c OUT/wrangler.json      (a 0% version, reached with the version override header)
  npx wrangler secret put KVCHAOS_SHIM_SECRET -c OUT/wrangler.json
See docs/canary.md.

Exit codes:
  0    the build folder was written
  2    the Worker's config could not be read or lacks main, name or a KV binding
  3    the build folder could not be written";

#[derive(Debug, Args)]
struct BuildArgs {
    /// The Worker's folder, or its wrangler config file.
    dir: PathBuf,
    /// The [env.NAME] section to build (its bindings, vars and name).
    #[arg(long)]
    env: Option<String>,
    /// The build folder.
    #[arg(short, long)]
    out: PathBuf,
    /// The Worker env var (a secret) holding the control secret.
    #[arg(long, default_value = DEFAULT_SECRET_VAR)]
    secret_var: String,
}

/// Runs `kvchaos canary ...`.
pub fn run(args: CanaryArgs) -> Exit {
    match args.command {
        CanaryCommand::Build(a) => build(a),
    }
}

fn build(a: BuildArgs) -> Exit {
    if !a
        .secret_var
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || a.secret_var.is_empty()
    {
        eprintln!(
            "error: invalid --secret-var \"{}\": expected an env var name such as {DEFAULT_SECRET_VAR}",
            a.secret_var
        );
        return Exit::Usage;
    }
    let plan = BuildPlan {
        worker: a.dir,
        env: a.env,
        out: a.out,
        secret_var: a.secret_var,
    };
    match super::build(&plan) {
        Ok(b) => {
            println!(
                "wrote {} and {}: script \"{}\", KV bindings wrapped: {}{}",
                b.shim.display(),
                b.config.display(),
                b.script,
                b.kv.join(", "),
                if b.durable_objects.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; Durable Objects re-exported: {}",
                        b.durable_objects.join(", ")
                    )
                }
            );
            Exit::Pass
        }
        Err(e @ CanaryError::Write { .. }) => {
            eprintln!("error: {e}");
            Exit::Environment
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}
