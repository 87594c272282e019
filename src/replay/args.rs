//! `kvchaos replay import`: the command line of capture conversion.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Format, Reader};
use crate::exit::Exit;

/// Exit codes of `kvchaos replay`.
pub const REPLAY_EXIT_CODES: &str = "Exit codes:\n  0    the corpus was written\n  2    the capture could not be read or is malformed (the message names line and byte)\n  3    the corpus could not be written";

/// `kvchaos replay ...`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(subcommand)]
    command: ReplayCommand,
}

#[derive(Debug, Subcommand)]
enum ReplayCommand {
    /// Convert a capture (wrangler tail --format json, HAR 1.2, or a corpus) into kvchaos's
    /// NDJSON corpus, one record per event, streaming (constant memory).
    #[command(after_help = REPLAY_EXIT_CODES)]
    Import {
        /// The capture.
        file: PathBuf,
        /// The capture's format; detected from its first event when omitted.
        #[arg(long, value_parser = ["wrangler-tail", "har", "ndjson"])]
        format: Option<String>,
        /// Where the corpus goes (`-` for standard output).
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Runs `kvchaos replay ...`; prints its own messages.
pub fn run(args: ReplayArgs) -> Exit {
    match args.command {
        ReplayCommand::Import {
            file,
            format,
            output,
        } => import(file, format.as_deref().and_then(Format::parse), output),
    }
}

fn import(file: PathBuf, format: Option<Format>, output: PathBuf) -> Exit {
    let mut reader = match Reader::open(&file, format) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let to_stdout = output.as_os_str() == "-";
    // Written next to the target and renamed at the end, so a failed import leaves no half corpus.
    let partial = output.with_extension("ndjson.partial");
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(&partial) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: {}: cannot create: {e}", partial.display());
                return Exit::Environment;
            }
        }
    };
    let mut out = std::io::BufWriter::with_capacity(64 << 10, sink);
    let result = super::import(&mut reader, &mut out);
    drop(out);
    let stats = match result {
        Ok(s) => s,
        Err(e) => {
            if !to_stdout {
                let _ = std::fs::remove_file(&partial);
            }
            eprintln!("error: {e:#}");
            let usage = e.downcast_ref::<super::CaptureError>().is_some();
            return if usage {
                Exit::Usage
            } else {
                Exit::Environment
            };
        }
    };
    if !to_stdout {
        if let Err(e) = std::fs::rename(&partial, &output) {
            eprintln!("error: {}: cannot write: {e}", output.display());
            return Exit::Environment;
        }
    }
    let [fetch, cron, alarm, queue] = stats.by_kind;
    eprintln!(
        "{}: {} {} events over {:.1}s → {} (fetch {fetch}, cron {cron}, alarm {alarm}, queue {queue}; {} of other kinds skipped)",
        file.display(),
        stats.total(),
        reader.format().as_str(),
        stats.last_ms as f64 / 1000.0,
        if to_stdout {
            "stdout".into()
        } else {
            output.display().to_string()
        },
        stats.skipped,
    );
    Exit::Pass
}
