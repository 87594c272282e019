//! `histograms.json`: a run's final totals per request, losslessly — the corrected and
//! service-time HDR histograms in hdrhistogram's V2 encoding (deflated, base64), with the
//! per-class counts, bytes and drops, and the same per window when the run has faults (for
//! thresholds with `during`). Every run writes it; `kvchaos merge` adds shards' files exactly
//! (HDR histograms with the same bounds add without loss).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::metrics::windows::WindowTotals;
use crate::metrics::{Totals, new_histogram};
use crate::outcome::Class;
use crate::scenario::plan::Window;

/// File name inside a report folder.
pub const HISTOGRAMS_FILE: &str = "histograms.json";

/// Layout version of the file.
const VERSION: u32 = 1;

/// Largest file read (a few KiB per request in practice).
const MAX_BYTES: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramsFile {
    version: u32,
    requests: Vec<Entry>,
    all: Entry,
    /// Per window (`steady`, `faults`, `heal`); absent when the run had no faults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    windows: Vec<WindowEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowEntry {
    window: String,
    /// How long requests were due in it, seconds.
    duration_s: f64,
    requests: Vec<Entry>,
    all: Entry,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    by_class: BTreeMap<String, u64>,
    bytes: u64,
    dropped: u64,
    /// Corrected latency, µs: V2 deflate, base64.
    corrected: String,
    /// Service time, µs: V2 deflate, base64.
    service: String,
}

/// Writes `per` (scenario order), `all` and the `windows` into `dir`.
pub fn write(
    dir: &Path,
    per: &[Totals],
    all: &Totals,
    windows: &[WindowTotals],
) -> std::io::Result<()> {
    let file = HistogramsFile {
        version: VERSION,
        requests: per.iter().map(entry).collect::<std::io::Result<_>>()?,
        all: entry(all)?,
        windows: windows
            .iter()
            .map(|w| {
                Ok(WindowEntry {
                    window: w.window.name().to_owned(),
                    duration_s: w.duration_s,
                    requests: w.per.iter().map(entry).collect::<std::io::Result<_>>()?,
                    all: entry(&w.all)?,
                })
            })
            .collect::<std::io::Result<_>>()?,
    };
    let text = serde_json::to_string(&file).map_err(std::io::Error::other)?;
    // Through a rename, so a full disk leaves no cut-off file for `merge` to misread.
    crate::report::json::write_atomic(&dir.join(HISTOGRAMS_FILE), text.as_bytes())
        .map_err(std::io::Error::other)
}

/// A report folder's totals: per request (file order), all, and per window.
pub type Measured = (Vec<Totals>, Totals, Vec<WindowTotals>);

/// Reads a report folder's totals.
pub fn read(dir: &Path) -> Result<Measured, String> {
    let path = dir.join(HISTOGRAMS_FILE);
    let shown = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            format!("{shown}: cannot read: {e}: re-run the shard with this kvchaos version")
        })?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "{shown}: larger than {} MiB: not a kvchaos histograms file",
            MAX_BYTES >> 20
        ));
    }
    let file: HistogramsFile = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{shown}: not a histograms file: {e}"))?;
    if file.version != VERSION {
        return Err(format!(
            "{shown}: version {} (this kvchaos reads {VERSION}): merge with the kvchaos that ran the shards",
            file.version
        ));
    }
    let per = file
        .requests
        .iter()
        .map(|e| totals(e).map_err(|m| format!("{shown}: request \"{}\": {m}", e.name)))
        .collect::<Result<Vec<_>, _>>()?;
    let all = totals(&file.all).map_err(|m| format!("{shown}: all requests: {m}"))?;
    let windows = file
        .windows
        .iter()
        .map(|w| window_totals(w).map_err(|m| format!("{shown}: window \"{}\": {m}", w.window)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((per, all, windows))
}

fn window_totals(w: &WindowEntry) -> Result<WindowTotals, String> {
    let window = Window::from_name(&w.window)
        .ok_or_else(|| "unknown window: expected steady, faults or heal".to_owned())?;
    Ok(WindowTotals {
        window,
        per: w.requests.iter().map(totals).collect::<Result<_, _>>()?,
        all: totals(&w.all)?,
        duration_s: w.duration_s,
    })
}

fn entry(t: &Totals) -> std::io::Result<Entry> {
    Ok(Entry {
        name: t.name.clone(),
        by_class: Class::ALL
            .iter()
            .zip(t.by_class)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (c.name().to_owned(), n))
            .collect(),
        bytes: t.bytes,
        dropped: t.dropped,
        corrected: encode(&t.corrected)?,
        service: encode(&t.service)?,
    })
}

fn totals(e: &Entry) -> Result<Totals, String> {
    let mut by_class = [0u64; Class::COUNT];
    for (class, n) in &e.by_class {
        let c =
            Class::from_name(class).ok_or_else(|| format!("unknown outcome class \"{class}\""))?;
        by_class[c.index()] = *n;
    }
    Ok(Totals {
        name: e.name.clone(),
        corrected: decode(&e.corrected)?,
        service: decode(&e.service)?,
        by_class,
        bytes: e.bytes,
        dropped: e.dropped,
    })
}

fn encode(h: &Histogram<u64>) -> std::io::Result<String> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e:?}"))?;
    // Re-based on the recorder's bounds, so every shard's histograms add without clamping.
    let mut out = new_histogram();
    out.add(&h)
        .map_err(|e| format!("histogram outside the recorder's range: {e:?}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, values: &[u64]) -> Totals {
        let mut corrected = new_histogram();
        let mut service = new_histogram();
        for v in values {
            let _ = corrected.record(*v);
            let _ = service.record(*v / 2 + 1);
        }
        let mut by_class = [0; Class::COUNT];
        by_class[0] = values.len() as u64;
        Totals {
            name: name.to_owned(),
            corrected,
            service,
            by_class,
            bytes: 42,
            dropped: 3,
        }
    }

    #[test]
    fn totals_round_trip_losslessly() {
        let dir = std::env::temp_dir().join(format!("kvchaos-hist-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let per = vec![
            sample("a", &[1, 7, 150, 9_999, 1_234_567]),
            sample("b", &[]),
        ];
        let all = sample("all", &[1, 7, 150, 9_999, 1_234_567]);
        let heal = WindowTotals {
            window: Window::Heal,
            per: vec![sample("a", &[3, 4]), sample("b", &[])],
            all: sample("all", &[3, 4]),
            duration_s: 2.5,
        };
        write(&dir, &per, &all, &[heal]).unwrap_or_else(|e| panic!("{e}"));
        let (back, back_all, windows) = read(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(windows.len(), 1);
        assert_eq!(
            (windows[0].window, windows[0].duration_s),
            (Window::Heal, 2.5)
        );
        assert_eq!(windows[0].per[0].corrected.len(), 2);
        assert_eq!(windows[0].all.corrected.max(), 4);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].corrected, per[0].corrected);
        assert_eq!(back[0].service, per[0].service);
        assert_eq!(back[0].by_class, per[0].by_class);
        assert_eq!((back[0].bytes, back[0].dropped), (42, 3));
        assert!(back[1].corrected.is_empty());
        assert_eq!(back_all.corrected.len(), 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_or_foreign_file_names_itself() {
        let dir = std::env::temp_dir().join(format!("kvchaos-hist-bad-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let e = read(&dir).err().unwrap_or_default();
        assert!(
            e.contains(HISTOGRAMS_FILE) && e.contains("cannot read"),
            "{e}"
        );
        let _ = std::fs::write(dir.join(HISTOGRAMS_FILE), "{\"version\": 9}");
        let e = read(&dir).err().unwrap_or_default();
        assert!(e.contains("not a histograms file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
