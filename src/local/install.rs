//! Finding Node.js and installing the launcher's pinned npm packages.
//!
//! Owns: looking `node` and `npm` up on `PATH`, deciding whether
//! `node_modules` matches the pins in `package.json`, and running `npm ci`.
//! Does not own: the launcher process (see [`super::LocalWorker`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

use super::LocalError;

/// The first executable called `program` in the directories of `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `node` on `PATH`, or an error saying how to get it.
pub fn node() -> Result<PathBuf, LocalError> {
    find_on_path("node").ok_or(LocalError::Missing { program: "node" })
}

#[derive(Deserialize)]
struct PackageJson {
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct InstalledPackage {
    version: String,
}

/// The pinned dependencies of `dir/package.json` that `dir/node_modules`
/// lacks or holds at another version (empty: nothing to install).
pub fn missing_packages(dir: &Path) -> Result<Vec<String>, LocalError> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest).map_err(|source| LocalError::Io {
        what: format!("reading '{}'", manifest.display()),
        source,
    })?;
    let pkg: PackageJson = serde_json::from_str(&text).map_err(|e| LocalError::Protocol {
        detail: format!("'{}' is not a valid package.json: {e}", manifest.display()),
    })?;
    Ok(pkg
        .dependencies
        .into_iter()
        .filter(|(name, want)| {
            let installed = dir.join("node_modules").join(name).join("package.json");
            let have = std::fs::read_to_string(installed)
                .ok()
                .and_then(|t| serde_json::from_str::<InstalledPackage>(&t).ok());
            have.is_none_or(|h| &h.version != want)
        })
        .map(|(name, want)| format!("{name}@{want}"))
        .collect())
}

/// Serialises installs within this process: two `npm ci` in one directory
/// at once would trample each other.
static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Make sure `dir/node_modules` holds the exact versions pinned in
/// `dir/package.json`, running `npm ci` (progress on stderr) when it does
/// not. Quick when everything is already installed.
pub async fn ensure_installed(dir: &Path) -> Result<(), LocalError> {
    node()?;
    let _guard = INSTALL.lock().await;
    let missing = missing_packages(dir)?;
    if missing.is_empty() {
        return Ok(());
    }
    let npm = find_on_path("npm").ok_or(LocalError::Missing { program: "npm" })?;
    eprintln!(
        "kvchaos: installing the miniflare launcher's packages in '{}' ({}) with npm ci ...",
        dir.display(),
        missing.join(", ")
    );
    let status = tokio::process::Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        // npm's progress goes to our stderr, never to our stdout (which may
        // carry machine-readable output).
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|source| LocalError::Io {
            what: format!("running npm ci in '{}'", dir.display()),
            source,
        })?;
    if !status.success() {
        return Err(LocalError::Install {
            dir: dir.to_owned(),
            status: status.to_string(),
        });
    }
    let still = missing_packages(dir)?;
    if !still.is_empty() {
        return Err(LocalError::Install {
            dir: dir.to_owned(),
            status: format!("still missing after npm ci: {}", still.join(", ")),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_compares_pins_with_node_modules() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"dependencies":{"a":"1.0.0","b":"2.0.0"}}"#,
        )
        .expect("write");
        let nm = dir.path().join("node_modules");
        std::fs::create_dir_all(nm.join("a")).expect("mkdir");
        std::fs::create_dir_all(nm.join("b")).expect("mkdir");
        std::fs::write(nm.join("a/package.json"), r#"{"version":"1.0.0"}"#).expect("write");
        std::fs::write(nm.join("b/package.json"), r#"{"version":"1.9.0"}"#).expect("write");
        assert_eq!(
            missing_packages(dir.path()).expect("ok"),
            vec!["b@2.0.0".to_owned()]
        );
    }

    #[test]
    fn unreadable_manifest_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            missing_packages(dir.path()),
            Err(LocalError::Io { .. })
        ));
    }

    #[test]
    fn path_lookup_finds_sh_and_not_nonsense() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("kvchaos-no-such-program").is_none());
    }
}
