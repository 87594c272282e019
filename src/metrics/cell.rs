//! Recording cells: the histograms and counters of one request × outcome class, and the
//! per-thread shards the engine records into. The recorder folds shards into its own cells.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::windows::Windows;
use crate::outcome::{Class, Outcome};
use crate::scenario::plan::Window;

/// Lowest recordable latency: 1 µs.
pub const HIST_LOW_US: u64 = 1;
/// Highest recordable latency: 60 s (larger values are clamped).
pub const HIST_HIGH_US: u64 = 60_000_000;
/// Significant decimal digits kept.
pub const HIST_SIGFIG: u8 = 3;
/// Distinct error messages kept for the report.
pub(super) const MAX_ERROR_SAMPLES: usize = 32;

/// A fresh histogram with the recorder's bounds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; this cannot fail.
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Histograms and counters of one request name × outcome class.
pub struct Cell {
    /// Latency from the intended start, µs.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send, µs.
    pub service: Histogram<u64>,
    /// Body bytes received.
    pub bytes: u64,
}

impl Cell {
    pub(super) fn new() -> Box<Cell> {
        Box::new(Cell {
            corrected: new_histogram(),
            service: new_histogram(),
            bytes: 0,
        })
    }

    pub(super) fn count(&self) -> u64 {
        self.corrected.len()
    }

    pub(super) fn add(&mut self, other: &Cell) {
        // Same bounds everywhere, so adding cannot overflow the range.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.service.add(&other.service);
        self.bytes += other.bytes;
    }

    pub(super) fn reset(&mut self) {
        self.corrected.reset();
        self.service.reset();
        self.bytes = 0;
    }
}

/// A table of cells indexed by request × class, allocated on first use.
pub(super) struct Cells {
    pub(super) cells: Vec<Option<Box<Cell>>>,
}

impl Cells {
    pub(super) fn new(requests: usize) -> Self {
        Cells {
            cells: (0..requests * Class::COUNT).map(|_| None).collect(),
        }
    }

    /// The cell at flat index `i`, allocated if needed.
    pub(super) fn get_mut(&mut self, i: usize) -> &mut Cell {
        self.cells[i].get_or_insert_with(Cell::new)
    }

    /// The cell of `request` × `class`, if anything was recorded there.
    pub(super) fn get(&self, request: usize, class: Class) -> Option<&Cell> {
        self.cells[request * Class::COUNT + class.index()].as_deref()
    }
}

/// Key of an error message: request, class, and the status for HTTP errors.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ErrorKey {
    pub(super) request: usize,
    pub(super) class: Class,
    pub(super) message: String,
}

/// Bounded counts of distinct error messages.
#[derive(Default)]
pub(super) struct ErrorCounts {
    pub(super) counts: Vec<(ErrorKey, u64)>,
}

impl ErrorCounts {
    pub(super) fn add(&mut self, key: ErrorKey, n: u64) {
        if let Some(slot) = self.counts.iter_mut().find(|(k, _)| *k == key) {
            slot.1 += n;
        } else if self.counts.len() < MAX_ERROR_SAMPLES {
            self.counts.push((key, n));
        }
    }

    pub(super) fn drain_into(&mut self, other: &mut ErrorCounts) {
        for (k, n) in self.counts.drain(..) {
            other.add(k, n);
        }
    }
}

/// One engine thread's share of the recording; locked per request by its own thread only
/// (uncontended) and once a second by the recorder.
pub struct Shard {
    /// Requests in no window (or recorded without a time).
    pub(super) cells: Cells,
    pub(super) dropped: Vec<u64>,
    /// Requests by window (index as [`Window::index`]); the recorder counts them in the whole
    /// run too.
    pub(super) windowed: [Cells; 3],
    pub(super) windowed_dropped: [Vec<u64>; 3],
    /// The run's start and windows, once the recorder knows them.
    pub(super) windows: Option<(Instant, Arc<Windows>)>,
    pub(super) errors: ErrorCounts,
    pub(super) answers: crate::engine::errors::Answers,
}

impl Shard {
    /// An empty shard for `requests` request names.
    pub(super) fn new(requests: usize) -> Shard {
        Shard {
            cells: Cells::new(requests),
            dropped: vec![0; requests],
            windowed: [0; 3].map(|_| Cells::new(requests)),
            windowed_dropped: [0; 3].map(|_| vec![0; requests]),
            windows: None,
            errors: ErrorCounts::default(),
            answers: Default::default(),
        }
    }

    /// The window of a request intended at `intended`, once the windows are known.
    fn window_at(&self, intended: Instant) -> Option<Window> {
        let (start, windows) = self.windows.as_ref()?;
        windows.of(intended.saturating_duration_since(*start))
    }

    /// Records one completed request intended at `intended`, in its window too.
    #[allow(clippy::too_many_arguments)]
    pub fn record_at(
        &mut self,
        intended: Instant,
        request: usize,
        outcome: Outcome,
        corrected_us: u64,
        service_us: u64,
        bytes: u64,
        error: Option<String>,
    ) {
        let window = self.window_at(intended);
        let done = (corrected_us, service_us, bytes);
        self.record_in(window, request, outcome, done, error);
    }

    /// Records one completed request in the whole run only (no window).
    pub fn record(
        &mut self,
        request: usize,
        outcome: Outcome,
        corrected_us: u64,
        service_us: u64,
        bytes: u64,
        error: Option<String>,
    ) {
        let done = (corrected_us, service_us, bytes);
        self.record_in(None, request, outcome, done, error);
    }

    /// `done`: corrected latency (µs), service time (µs) and body bytes.
    fn record_in(
        &mut self,
        window: Option<Window>,
        request: usize,
        outcome: Outcome,
        (corrected_us, service_us, bytes): (u64, u64, u64),
        error: Option<String>,
    ) {
        let class = outcome.class();
        let cells = match window {
            Some(w) => &mut self.windowed[w.index()],
            None => &mut self.cells,
        };
        let cell = cells.get_mut(request * Class::COUNT + class.index());
        cell.corrected.saturating_record(corrected_us);
        cell.service.saturating_record(service_us);
        cell.bytes += bytes;
        if class.is_error() {
            let message = match (outcome, error) {
                (_, Some(m)) => m,
                (Outcome::Status(s), None) => status_message(s),
                (_, None) => class.name().to_owned(),
            };
            self.errors.add(
                ErrorKey {
                    request,
                    class,
                    message,
                },
                1,
            );
        }
    }

    /// Keeps the start of an error answer's body (see [`crate::engine::errors`]).
    pub fn answer(&mut self, request: usize, status: u16, body: (bytes::Bytes, bool)) {
        self.answers.add(request, status, body);
    }

    /// Counts a request that was due but could not start because every slot was busy.
    pub fn drop_one(&mut self, request: usize) {
        self.dropped[request] += 1;
    }

    /// Counts a dropped request that was intended at `intended`, in its window too.
    pub fn drop_one_at(&mut self, request: usize, intended: Instant) {
        match self.window_at(intended) {
            Some(w) => self.windowed_dropped[w.index()][request] += 1,
            None => self.dropped[request] += 1,
        }
    }
}

fn status_message(status: u16) -> String {
    match http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} {reason}"),
        None => format!("HTTP {status}"),
    }
}

/// Shared handle to a shard.
#[derive(Clone)]
pub struct ShardHandle(Arc<Mutex<Shard>>);

impl ShardHandle {
    /// A handle to a new shard.
    pub(super) fn new(shard: Shard) -> ShardHandle {
        ShardHandle(Arc::new(Mutex::new(shard)))
    }

    /// Locks the shard. A poisoned lock (a panic while recording) still yields the data.
    pub fn lock(&self) -> MutexGuard<'_, Shard> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
