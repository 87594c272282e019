//! What the kvchaos process itself uses: resident memory and CPU time.

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
    fn readings_are_plausible() {
        let v: Vec<u8> = vec![1; 8 << 20];
        assert!(super::rss_kib() >= 8 * 1024, "{}", super::rss_kib());
        assert!(super::peak_rss_kib() >= super::rss_kib() / 2);
        assert!(super::cpu_seconds() > 0.0);
        drop(v);
    }
}
