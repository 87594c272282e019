//! What the kvchaos process itself uses and may use: resident memory and CPU time; the
//! open-file limit checked against a plan's concurrency; a test write in the report folder
//! before any request is sent.

use std::io::Write as _;
use std::path::Path;

/// Descriptors kept free beyond the load's sockets: report files, the Worker's pipes, the mock
/// KV's listener, drivers' connections, the runtime.
pub const RESERVED_FILES: u64 = 256;

/// Raises this process's open-file soft limit to its hard limit; returns the soft limit in
/// force afterwards (`None` where it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit write and read a plain struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        Some(lim.rlim_cur)
    }
}

/// Whether `concurrency` requests in flight, each holding `per_request` sockets, fit under the
/// open-file limit `limit` with [`RESERVED_FILES`] to spare; the error names the figures and
/// the fix.
pub fn check_open_files(
    concurrency: u64,
    per_request: u64,
    limit: u64,
    what: &str,
) -> Result<(), String> {
    let sockets = concurrency.saturating_mul(per_request);
    let needed = sockets.saturating_add(RESERVED_FILES);
    if needed <= limit {
        return Ok(());
    }
    let fits = limit.saturating_sub(RESERVED_FILES) / per_request.max(1);
    Err(format!(
        "{what} needs about {needed} open files ({sockets} sockets + {RESERVED_FILES} reserved), \
         above this machine's open-file limit of {limit} (already raised to the hard limit): \
         lower it to at most {fits} concurrent requests, or raise the hard limit (`ulimit -Hn`, \
         then `ulimit -n`) and run again"
    ))
}

/// Reads at most `limit` bytes of the file at `path`: a larger file (or an endless one such as
/// `/dev/zero`, whose size reads 0) is an `InvalidData` error naming the limit, read no further.
pub fn read_capped(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is over the {limit}-byte limit for this file",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text (invalid sequences replaced).
pub fn read_capped_text(path: &Path, limit: u64) -> std::io::Result<String> {
    read_capped(path, limit).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Writes, syncs and removes a probe file in `dir`, so a full or read-only disk is found
/// before any request is sent.
pub fn check_writable(dir: &Path) -> Result<(), String> {
    let path = dir.join(".kvchaos-write-test");
    let probe = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&path)?;
        // As much as the first seconds of a run write (history, time series, histograms).
        f.write_all(&[b'\n'; 64 * 1024])?;
        f.sync_all()
    };
    let result = probe();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| {
        format!(
            "the report folder \"{}\" is not writable ({e}); free space or choose another with --out",
            dir.display()
        )
    })
}

/// Peak resident set size of this process in KiB (0 where unknown).
pub fn peak_rss_kib() -> u64 {
    rusage().map_or(0, |r| u64::try_from(r.ru_maxrss).unwrap_or(0))
}

/// User plus system CPU seconds used by this process (0 where unknown).
pub fn cpu_seconds() -> f64 {
    rusage().map_or(0.0, |r| {
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(r.ru_utime) + tv(r.ru_stime)
    })
}

/// Current resident set size in KiB, from `/proc/self/statm` (0 where unavailable).
pub fn rss_kib() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096) / 1024
}

fn rusage() -> Option<libc::rusage> {
    // SAFETY: getrusage writes a plain struct that we zero first.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut r) == 0).then_some(r)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_file_check_names_the_limit_and_the_fix() {
        assert!(super::check_open_files(100, 2, 1024, "x").is_ok());
        assert!(super::check_open_files(400, 2, 1024, "x").is_err());
        let e = super::check_open_files(100_000, 1, 1024, "phase 1 max_in_flight = 100000")
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("limit of 1024") && e.contains("ulimit -n"),
            "{e}"
        );
        assert!(e.contains("at most 768"), "{e}");
        assert!(super::raise_open_file_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn endless_files_are_refused_after_the_cap() {
        let e = super::read_capped(std::path::Path::new("/dev/zero"), 4096)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("over the 4096-byte limit"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, "abc").expect("write");
        assert_eq!(super::read_capped_text(&p, 3).ok().as_deref(), Some("abc"));
    }

    #[test]
    fn a_full_disk_is_found_by_the_write_test() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(super::check_writable(dir.path()).is_ok());
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
        // /dev/full accepts opens and refuses every write with ENOSPC.
        if std::path::Path::new("/dev/full").exists() {
            std::os::unix::fs::symlink("/dev/full", dir.path().join(".kvchaos-write-test"))
                .expect("symlink");
            let e = super::check_writable(dir.path()).err().unwrap_or_default();
            assert!(e.contains("not writable") && e.contains("space"), "{e}");
        }
    }

    #[test]
    fn readings_are_plausible() {
        let v: Vec<u8> = vec![1; 8 << 20];
        assert!(super::rss_kib() >= 8 * 1024, "{}", super::rss_kib());
        assert!(super::peak_rss_kib() >= super::rss_kib() / 2);
        assert!(super::cpu_seconds() > 0.0);
        drop(v);
    }
}
