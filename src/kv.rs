//! `kvchaos kv dump|verify|clean|restore`: the team's Workers KV backup and cleanup policy as
//! commands over the Cloudflare REST API — dump a prefix (with a manifest, resumable, paced),
//! verify it against D1 or another dump, clean legacy keys behind safety gates and an audit
//! log, restore from a local or R2 dump.
//!
//! Owns: the commands' entry point ([`run`]), what they take from the environment
//! ([`KvEnv`]: the API token, R2), their errors ([`KvError`]) and exit codes, and printing
//! through a [`Console`] that masks secrets. Does not own: the CLI's subcommand wiring
//! (`src/cli.rs`), or the mock KV these commands are tested against ([`crate::mockkv`]).
//!
//! Module map: [`args`] (flags), [`api`] (REST client), [`dump`], [`verify`], [`clean`],
//! [`restore`], [`record`] (file formats), [`store`] (local files and R2), [`secret`]
//! (sensitive prefixes, age, git), [`audit_log`].

pub mod api;
pub mod args;
pub mod audit_log;
pub mod clean;
pub mod dump;
pub mod record;
pub mod restore;
pub mod secret;
pub mod store;
pub mod verify;

use std::io::{IsTerminal, Write};

pub use args::{KvArgs, KvCommand};

use crate::exit::Exit;
use crate::redact::Redactor;
use api::Client;
use args::ConnArgs;
use store::ObjectStores;

/// Why a `kvchaos kv` command stopped.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Bad input: a flag, a file, a combination (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A gate or cap refused the command (exit 1).
    #[error("refused: {0}")]
    Refused(String),
    /// The API failed (exit 2 for 4xx input errors, else 3).
    #[error(transparent)]
    Api(#[from] api::ApiError),
    /// A file or R2 failed (exit 2 for a missing or bad input, else 3).
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The machine failed (exit 3).
    #[error("{0}")]
    Environment(String),
}

impl KvError {
    /// The message without the "refused: " lead, as the audit log records it.
    pub fn reason(&self) -> String {
        match self {
            KvError::Refused(m) => m.clone(),
            e => e.to_string(),
        }
    }

    /// The exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            KvError::Usage(_) => Exit::Usage,
            KvError::Refused(_) => Exit::Fail,
            KvError::Api(e) if e.is_usage() => Exit::Usage,
            KvError::Store(e) if e.is_usage() => Exit::Usage,
            KvError::Api(_) | KvError::Store(_) | KvError::Environment(_) => Exit::Environment,
        }
    }
}

/// What the commands take from the environment.
#[derive(Debug, Clone)]
pub struct KvEnv {
    /// `CLOUDFLARE_API_TOKEN`.
    pub api_token: Option<String>,
    /// How R2 is reached.
    pub stores: ObjectStores,
    /// Whether to draw progress on stderr (only when it is a terminal).
    pub progress: bool,
    /// Values masked in everything printed (the token, the R2 secret).
    pub redactor: Redactor,
}

impl KvEnv {
    /// From the process: the token, R2 credentials from `R2_*`, progress when stderr is a
    /// terminal.
    pub fn from_process() -> KvEnv {
        let api_token = std::env::var("CLOUDFLARE_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        let mut redactor = Redactor::default();
        for name in [
            "CLOUDFLARE_API_TOKEN",
            "R2_SECRET_ACCESS_KEY",
            "R2_ACCESS_KEY_ID",
        ] {
            if let Ok(v) = std::env::var(name) {
                redactor.add(v);
            }
        }
        KvEnv {
            api_token,
            stores: ObjectStores::R2Env,
            progress: std::io::stderr().is_terminal(),
            redactor,
        }
    }

    /// A test environment: this token, these stores, no progress.
    pub fn with_token(token: &str, stores: ObjectStores) -> KvEnv {
        let mut redactor = Redactor::default();
        redactor.add(token);
        KvEnv {
            api_token: Some(token.to_owned()),
            stores,
            progress: false,
            redactor,
        }
    }

    /// The API token, or the error that says where it comes from.
    pub fn token(&self) -> Result<String, KvError> {
        self.api_token.clone().ok_or_else(|| {
            KvError::Usage(
                "CLOUDFLARE_API_TOKEN is not set: export an API token with Workers KV Storage (and D1 for verify) permissions".into(),
            )
        })
    }

    async fn client(&self, conn: &ConnArgs) -> Result<Client, KvError> {
        Ok(Client::new(
            &conn.api_base,
            self.token()?,
            conn.pace,
            conn.max_retry_wait,
        )
        .await?)
    }
}

/// Where a command prints: results to `out`, progress and errors to `err`; secrets masked.
pub struct Console<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    redactor: Redactor,
    progress: bool,
    drawn: bool,
}

impl<'a> Console<'a> {
    /// A console over two writers.
    pub fn new(out: &'a mut dyn Write, err: &'a mut dyn Write, env: &KvEnv) -> Console<'a> {
        Console {
            out,
            err,
            redactor: env.redactor.clone(),
            progress: env.progress,
            drawn: false,
        }
    }

    fn end_progress(&mut self) {
        if self.drawn {
            let _ = writeln!(self.err);
            self.drawn = false;
        }
    }

    /// One result line (or lines).
    pub fn say(&mut self, text: &str) {
        self.end_progress();
        let _ = writeln!(self.out, "{}", self.redactor.redact(text));
    }

    /// One error or warning line.
    pub fn warn(&mut self, text: &str) {
        self.end_progress();
        let _ = writeln!(self.err, "{}", self.redactor.redact(text));
    }

    /// Redraw the progress line (only when stderr is a terminal).
    pub fn progress(&mut self, text: &str) {
        if self.progress {
            let _ = write!(self.err, "\r\x1b[2K{}", self.redactor.redact(text));
            let _ = self.err.flush();
            self.drawn = true;
        }
    }
}

/// Run one `kvchaos kv` command.
pub async fn run(args: KvArgs, env: &KvEnv, out: &mut dyn Write, err: &mut dyn Write) -> Exit {
    let mut console = Console::new(out, err, env);
    let is_dump = matches!(args.command, KvCommand::Dump(_));
    let result = dispatch(args, env, &mut console).await;
    match result {
        Ok(exit) => exit,
        Err(e) => {
            console.warn(&format!("error: {e}"));
            if is_dump && matches!(e, KvError::Api(api::ApiError::RateLimited { .. })) {
                console.warn(
                    "the dump stopped; its checkpoint is kept: run the same command again to resume",
                );
            }
            e.exit()
        }
    }
}

async fn dispatch(args: KvArgs, env: &KvEnv, console: &mut Console<'_>) -> Result<Exit, KvError> {
    match args.command {
        KvCommand::Dump(a) => {
            let mut client = env.client(&a.conn).await?;
            dump::dump(&a, &mut client, &env.stores, console).await?;
            Ok(Exit::Pass)
        }
        KvCommand::Verify(a) => {
            let equal = verify::verify(&a, env, console).await?;
            Ok(if equal { Exit::Pass } else { Exit::Fail })
        }
        KvCommand::Clean(a) => {
            let mut client = env.client(&a.conn).await?;
            if a.dry_run {
                clean::plan(&a, &mut client, console).await?;
            } else if a.apply.is_some() {
                clean::apply(&a, &mut client, &env.stores, console).await?;
            } else {
                return Err(KvError::Usage(
                    "kv clean needs --dry-run -o plan.json, or --apply plan.json".into(),
                ));
            }
            Ok(Exit::Pass)
        }
        KvCommand::Restore(a) => {
            let mut client = env.client(&a.conn).await?;
            restore::restore(&a, &mut client, &env.stores, console).await?;
            Ok(Exit::Pass)
        }
    }
}
