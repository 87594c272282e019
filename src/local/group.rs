//! Process groups: the launcher runs in its own group, and workerd (spawned
//! by miniflare without a new session) inherits it, so one signal to the
//! group reaches every process of a local run.
//!
//! Owns: signalling a group and asking which processes are still in it.
//! Does not own: spawning (see [`super::LocalWorker`]).

/// Send SIGKILL to every process in group `pgid`. Harmless when the group
/// is already empty.
pub fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid)
        && pgid > 1
    {
        // SAFETY: kill(2) with a negative pid signals a process group; it
        // touches no memory of ours.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Whether any process (zombies included) is still in group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The processes of group `pgid` as `(pid, command name)`, read from
/// `/proc` (empty where there is no `/proc`). Zombies are left out: they
/// run nothing and only wait for their parent to reap them.
pub fn group_members(pgid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, state, group) = parse_stat(&stat)?;
            (group == pgid && state != 'Z').then(|| (pid, comm.to_owned()))
        })
        .collect()
}

/// `(comm, state, pgrp)` from a `/proc/<pid>/stat` line. The command name
/// sits in parentheses and may itself contain spaces and parentheses, so
/// the fields after it are found from the last `)`.
fn parse_stat(stat: &str) -> Option<(&str, char, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let _ppid = rest.next()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((comm, state, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let s = "4242 (work (er) d) S 4200 4200 4200 0 -1 4194560 0 0";
        assert_eq!(parse_stat(s), Some(("work (er) d", 'S', 4200)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_group_is_alive_and_listed() {
        // SAFETY: getpgrp has no preconditions.
        let own = unsafe { libc::getpgrp() } as u32;
        assert!(group_alive(own));
        let me = std::process::id();
        assert!(group_members(own).iter().any(|(pid, _)| *pid == me));
    }
}
