//! `latency.hlog`: the run's corrected latency as an HdrHistogram interval log, the standard
//! format read by HdrHistogram's `HistogramLogProcessor`, HdrHistogramVisualizer and the
//! `hdrhistogram` crates of other languages.
//!
//! One line per closed interval (one second) and request: `Tag=<request>` lines hold one
//! request's histogram, untagged lines hold all requests together (so tools that read only
//! untagged intervals see the whole run). Values and `Interval_Max` are microseconds (no
//! `MaxValueDivisor`: a builder per line would repeat that header before every interval).
//! Timestamps are seconds since `BaseTime`, the run's start.
//!
//! Written during the run by [`HlogWriter`], an [`IntervalSink`] of the recorder: each interval
//! is encoded (compressed V2, base64) and written as it closes, so memory stays flat. Read back
//! by [`read`] for the HTML report and for re-rendering. Uses `hdrhistogram`'s own
//! `serialization::interval_log` writer and parser and its V2 (de)serialisers.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use crate::metrics::IntervalSink;

/// File name of the interval log inside a report folder.
pub const HLOG_FILE: &str = "latency.hlog";

/// The legend line Java's `HistogramLogWriter` writes after the headers.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"";

/// Largest log [`read`] accepts (about a day of one-second intervals for 20 requests).
const MAX_HLOG_BYTES: u64 = 512 << 20;

/// Why an interval log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A line that is neither a comment, a header nor an interval.
    #[error(
        "{}: byte {offset}: not an HdrHistogram interval log line: re-run the scenario, or \
         remove the file to render the report without interval data",
        path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad line.
        offset: usize,
    },
    /// An interval whose histogram does not decode.
    #[error("{}: interval at {start_s:.3} s: cannot decode its histogram: {message}", path.display())]
    Histogram {
        /// The file.
        path: PathBuf,
        /// Start of the interval, seconds after `BaseTime`.
        start_s: f64,
        /// What failed.
        message: String,
    },
    /// Larger than [`MAX_HLOG_BYTES`].
    #[error("{}: larger than {} MiB: not a kvchaos interval log", path.display(), MAX_HLOG_BYTES >> 20)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
}

/// Writes `latency.hlog` as the recorder closes intervals.
///
/// A failed write loses that interval, never the run (like a `timeseries.csv` row); the first
/// error is kept and reported by [`HlogWriter::error`].
pub struct HlogWriter<W: Write> {
    out: W,
    serializer: V2DeflateSerializer,
    error: Option<io::Error>,
}

impl<W: Write> HlogWriter<W> {
    /// Writes the headers to `out`: format version, `StartTime` and `BaseTime` (both `start`)
    /// and the column legend.
    pub fn new(mut out: W, start: SystemTime) -> io::Result<Self> {
        let mut serializer = V2DeflateSerializer::new();
        let stamp = humantime::format_rfc3339_millis(start);
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with kvchaos {}: corrected latency in µs; Tag=<request>, untagged = all requests]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(&format!("[Run started {stamp}]"))
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut serializer)?;
        writeln!(out, "{LEGEND}")?;
        Ok(HlogWriter {
            out,
            serializer,
            error: None,
        })
    }

    /// Appends one interval (`request` `None` for all requests).
    pub fn write(
        &mut self,
        request: Option<&str>,
        start: Duration,
        len: Duration,
        h: &Histogram<u64>,
    ) -> io::Result<()> {
        // A builder without headers writes nothing before the line: the headers were written
        // by `new`. (The writer borrows `out`, so it cannot be kept between intervals.)
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.serializer)?;
        // Request names are letters, digits, `.`, `_` and `-`, which tags allow; anything else
        // is replaced rather than dropped.
        let clean: Option<String> = request.map(|r| {
            r.chars()
                .map(|c| {
                    if matches!(c, ',' | ' ' | '\r' | '\n') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect()
        });
        log.write_histogram(h, start, len, clean.as_deref().and_then(Tag::new))
            .map_err(|e| match e {
                hdrhistogram::serialization::interval_log::IntervalLogWriterError::IoError(e) => e,
                other => io::Error::other(other.to_string()),
            })
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The underlying writer (tests read the log back from it).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }
}

impl<W: Write + Send> IntervalSink for HlogWriter<W> {
    fn interval(&mut self, request: Option<&str>, start_s: f64, len_s: f64, h: &Histogram<u64>) {
        let secs = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default();
        let r = self.write(request, secs(start_s), secs(len_s), h);
        self.keep(r);
    }

    fn finish(&mut self) {
        let r = self.flush();
        self.keep(r);
    }
}

/// One interval read back from a log.
#[derive(Debug, Clone)]
pub struct Interval {
    /// The request, `None` for all requests together.
    pub tag: Option<String>,
    /// Start, seconds after the run's start (`BaseTime`).
    pub start_s: f64,
    /// Length in seconds.
    pub len_s: f64,
    /// Corrected latency in µs.
    pub hist: Histogram<u64>,
}

/// Reads an interval log: every interval, in file order (decoded histograms held in memory;
/// for long runs use [`read_each`]).
pub fn read(path: &Path) -> Result<Vec<Interval>, HlogError> {
    let mut out = Vec::new();
    read_each(path, |i| out.push(i))?;
    Ok(out)
}

/// Reads an interval log and hands each interval to `f` as it is decoded, so only one decoded
/// histogram is held at a time (a run of an hour has tens of thousands).
///
/// Timestamps are returned relative to `BaseTime` when the log has one (kvchaos logs do);
/// otherwise relative to `StartTime`, or to the first interval.
pub fn read_each(path: &Path, f: impl FnMut(Interval)) -> Result<(), HlogError> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_HLOG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| HlogError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_HLOG_BYTES {
        return Err(HlogError::TooLarge {
            path: path.to_owned(),
        });
    }
    parse_each(&bytes, path, f)
}

/// Parses the bytes of an interval log; `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Vec<Interval>, HlogError> {
    let mut out = Vec::new();
    parse_each(bytes, path, |i| out.push(i))?;
    Ok(out)
}

/// Parses the bytes of an interval log, handing each interval to `f`.
pub fn parse_each(bytes: &[u8], path: &Path, mut f: impl FnMut(Interval)) -> Result<(), HlogError> {
    let mut base: Option<f64> = None;
    let mut start: Option<f64> = None;
    // Timestamps are deltas from BaseTime when there is one; without it they are absolute,
    // and the zero is StartTime or the first interval. Headers precede the intervals.
    let mut zero: Option<f64> = None;
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let i = match entry {
            Ok(LogEntry::BaseTime(t)) => {
                base = Some(t.as_secs_f64());
                continue;
            }
            Ok(LogEntry::StartTime(t)) => {
                start = Some(t.as_secs_f64());
                continue;
            }
            Ok(LogEntry::Interval(i)) => i,
            Err(hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                offset,
            }) => {
                return Err(HlogError::Parse {
                    path: path.to_owned(),
                    offset,
                });
            }
        };
        let at = i.start_timestamp().as_secs_f64();
        let zero = *zero.get_or_insert_with(|| match base {
            Some(_) => 0.0,
            None => start.unwrap_or(at),
        });
        let start_s = at - zero;
        let bad = |message: String| HlogError::Histogram {
            path: path.to_owned(),
            start_s,
            message,
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram().trim())
            .map_err(|e| bad(format!("not base64: {e}")))?;
        let hist: Histogram<u64> = de
            .deserialize(&mut raw.as_slice())
            .map_err(|e| bad(format!("{e:?}")))?;
        f(Interval {
            tag: i.tag().map(|t| t.as_str().to_owned()),
            start_s,
            len_s: i.duration().as_secs_f64(),
            hist,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Recorder, new_histogram, percentiles};

    fn start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_250)
    }

    /// A shared buffer, so the test can read the log after the recorder consumed the writer.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn headers_follow_the_standard_layout() {
        let w = HlogWriter::new(Vec::new(), start()).expect("headers");
        let text = String::from_utf8(w.into_inner()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("#[Logged with kvchaos "), "{text}");
        assert_eq!(lines[1], "#[Histogram log format version 1.3]");
        assert_eq!(lines[2], "#[Run started 2025-11-24T16:00:00.250Z]");
        assert_eq!(
            lines[3],
            "#[StartTime: 1764000000.250 (seconds since epoch)]"
        );
        assert_eq!(
            lines[4],
            "#[BaseTime: 1764000000.250 (seconds since epoch)]"
        );
        assert_eq!(lines[5], LEGEND);
        assert_eq!(lines.len(), 6);
    }

    /// The recorder's intervals, written through the sink and decoded with hdrhistogram's
    /// reader, give the same percentiles as the recorder's own totals.
    #[test]
    fn recorder_intervals_decode_back_to_the_same_percentiles() {
        let buf = Shared::default();
        let mut rec = Recorder::new(vec!["get".into(), "put".into()], 1, None).expect("recorder");
        rec.set_interval_sink(Box::new(
            HlogWriter::new(buf.clone(), start()).expect("headers"),
        ));
        for second in 0..3u64 {
            {
                let shard = rec.shard(0);
                let mut s = shard.lock();
                for i in 1..=500u64 {
                    let us = i * 37 * (second + 1);
                    s.record(0, crate::outcome::Outcome::Status(200), us, us, 0, None);
                }
                s.record(
                    1,
                    crate::outcome::Outcome::Status(503),
                    90_000 + second,
                    80_000,
                    0,
                    None,
                );
            }
            rec.tick((second + 1) as f64, 1.0, 0);
        }
        let (per, all, _) = rec.finish();
        let bytes = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        let intervals = parse(&bytes, Path::new("latency.hlog")).expect("decodes");
        // Three ticks × (two requests + all).
        assert_eq!(intervals.len(), 9);
        assert_eq!(intervals[0].tag.as_deref(), Some("get"));
        assert_eq!(intervals[2].tag, None);
        assert!((intervals[3].start_s - 1.0).abs() < 1e-3);
        assert!((intervals[3].len_s - 1.0).abs() < 1e-3);
        let merged = |tag: Option<&str>| {
            let mut h = new_histogram();
            for i in intervals.iter().filter(|i| i.tag.as_deref() == tag) {
                h.add(&i.hist).expect("same bounds");
            }
            h
        };
        assert_eq!(
            percentiles(&merged(Some("get"))),
            percentiles(&per[0].corrected)
        );
        assert_eq!(
            percentiles(&merged(Some("put"))),
            percentiles(&per[1].corrected)
        );
        assert_eq!(percentiles(&merged(None)), percentiles(&all.corrected));
    }

    #[test]
    fn an_empty_interval_is_written_and_read() {
        let mut w = HlogWriter::new(Vec::new(), start()).expect("headers");
        w.write(
            Some("idle"),
            Duration::from_secs(4),
            Duration::from_millis(1_002),
            &new_histogram(),
        )
        .expect("written");
        let bytes = w.into_inner();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.contains("\nTag=idle,4.000,1.002,0.000,"), "{text}");
        let back = parse(&bytes, Path::new("x.hlog")).expect("decodes");
        assert_eq!(back.len(), 1);
        assert!(back[0].hist.is_empty());
    }

    #[test]
    fn a_bad_line_names_its_offset() {
        let err = parse(b"#ok\nnot a line\n", Path::new("latency.hlog")).expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("latency.hlog: byte 4: not an HdrHistogram"),
            "{err}"
        );
    }

    #[test]
    fn a_log_without_base_time_counts_from_its_start_time() {
        let mut h = new_histogram();
        h.record(1_000).expect("in range");
        let mut ser = V2DeflateSerializer::new();
        let mut out = Vec::new();
        {
            let mut log = IntervalLogWriterBuilder::new()
                .with_start_time(start())
                .begin_log_with(&mut out, &mut ser)
                .expect("headers");
            log.write_histogram(
                &h,
                Duration::from_millis(1_764_000_002_250),
                Duration::from_secs(1),
                None,
            )
            .expect("written");
        }
        let back = parse(&out, Path::new("java.hlog")).expect("decodes");
        assert!((back[0].start_s - 2.0).abs() < 1e-3, "{}", back[0].start_s);
        assert_eq!(back[0].hist.max(), h.max());
    }
}
