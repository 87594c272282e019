//! Settings heavy on resources checked against the machine: a phase whose concurrency does not
//! fit under the open-file limit (already raised to the hard limit) is refused before any
//! request, with the limit and the fix named.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kvchaos");

#[test]
fn max_in_flight_above_the_open_file_limit_is_refused_naming_ulimit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("fds.toml");
    std::fs::write(
        &scenario,
        "name = \"fds\"\n[target]\nbuiltin = true\n[[phases]]\nduration = \"1s\"\nrate = 10\nmax_in_flight = 100000\n[[requests]]\nname = \"x\"\npath = \"/\"\n",
    )
    .expect("write");
    let out = tmp.path().join("reports");
    // A hard limit of 1024 in the child only (`ulimit -Hn` may lower it; kvchaos raises the soft
    // limit to it and must still refuse).
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 512 && ulimit -Hn 1024 && exec \"$0\" run \"$1\" --no-tui --out \"$2\"")
        .arg(BIN)
        .arg(&scenario)
        .arg(&out)
        .output()
        .expect("run kvchaos");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("open-file limit of 1024") && stderr.contains("ulimit -n"),
        "{stderr}"
    );
    assert!(stderr.contains("max_in_flight = 100000"), "{stderr}");
    assert!(!out.exists(), "refused before the report folder");
}
