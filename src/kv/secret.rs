//! Secrets in dumps: which prefixes are sensitive (`--sensitive` or `sensitive_prefixes` in a
//! `--config` TOML file), age encryption to a recipient and decryption with an identity file,
//! and the git facts the commands need (is a path inside a work tree; the commit of the one
//! kvchaos runs in).
//!
//! Owns: the rule "a sensitive dump is encrypted, or refused inside a git work tree". Does
//! not own: printing (values are never handed to anything that prints) or the token (see
//! [`crate::redact`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;

use serde::Deserialize;

use super::KvError;

/// The magic line an age file starts with.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// Largest `--config` file.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// `--config kv.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KvConfig {
    /// Key prefixes whose dumps hold secrets.
    #[serde(default)]
    pub sensitive_prefixes: Vec<String>,
}

impl KvConfig {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<KvConfig, KvError> {
        let bytes = super::store::read_local(path, MAX_CONFIG_BYTES)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| KvError::Usage(format!("{}: not UTF-8 text", path.display())))?;
        toml::from_str(text).map_err(|e| {
            KvError::Usage(format!(
                "{}: {}; expected e.g. sensitive_prefixes = [\"settings:\"]",
                path.display(),
                e.message()
            ))
        })
    }

    /// Whether dumping `prefix` may include a sensitive key: it lies under a sensitive prefix,
    /// or a sensitive prefix lies under it (dumping `""` dumps everything).
    pub fn covers(&self, prefix: &str) -> bool {
        self.sensitive_prefixes
            .iter()
            .any(|s| prefix.starts_with(s.as_str()) || s.starts_with(prefix))
    }
}

/// Parse an age recipient (`age1…`).
pub fn recipient(s: &str) -> Result<age::x25519::Recipient, KvError> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        KvError::Usage(format!(
            "invalid age recipient '{s}': {e}; expected an X25519 recipient such as age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
        ))
    })
}

/// Encrypt `plaintext` to `recipient`.
pub fn encrypt(recipient: &age::x25519::Recipient, plaintext: &[u8]) -> Result<Vec<u8>, KvError> {
    age::encrypt(recipient, plaintext)
        .map_err(|e| KvError::Environment(format!("age encryption failed: {e}")))
}

/// Whether `bytes` are an age file.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// Decrypt an age file with the X25519 identity in `identity_file` (age-keygen's format;
/// `#` lines are comments).
pub fn decrypt(
    ciphertext: &[u8],
    identity_file: Option<&Path>,
    origin: &str,
) -> Result<Vec<u8>, KvError> {
    let Some(path) = identity_file else {
        return Err(KvError::Usage(format!(
            "{origin} is encrypted: pass --identity FILE (or KVCHAOS_AGE_IDENTITY) with the age identity it was encrypted to"
        )));
    };
    let bytes = super::store::read_local(path, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    // The identity's text is never quoted in a message.
    let identity = age::x25519::Identity::from_str(line).map_err(|_| {
        KvError::Usage(format!(
            "{}: no AGE-SECRET-KEY-1… line; expected a file written by age-keygen",
            path.display()
        ))
    })?;
    age::decrypt(&identity, ciphertext).map_err(|e| {
        KvError::Usage(format!(
            "{origin}: cannot decrypt with {}: {e}",
            path.display()
        ))
    })
}

/// Whether `dir` lies inside a git work tree (false when git is not installed).
pub fn inside_git_work_tree(dir: &Path) -> bool {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    git(dir, &["rev-parse", "--is-inside-work-tree"]).is_some_and(|o| o == "true")
}

/// `git rev-parse HEAD` in the current directory, when it is inside a work tree.
pub fn git_commit() -> Option<String> {
    git(Path::new("."), &["rev-parse", "HEAD"]).filter(|c| c.len() >= 40)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_prefixes_cover_narrower_and_wider_dumps() {
        let c: KvConfig = toml::from_str("sensitive_prefixes = [\"settings:secret:\"]").unwrap();
        assert!(c.covers("settings:secret:smtp"));
        assert!(c.covers("settings:"), "a wider dump includes the secrets");
        assert!(c.covers(""));
        assert!(!c.covers("master:"));
        assert!(toml::from_str::<KvConfig>("sensitive = []").is_err());
    }

    #[test]
    fn encrypts_to_a_recipient_and_decrypts_with_the_identity_file() {
        let id = age::x25519::Identity::generate();
        let r = recipient(&id.to_public().to_string()).unwrap();
        let c = encrypt(&r, b"{\"key\":\"k\",\"value\":\"s3cret\"}\n").unwrap();
        assert!(is_encrypted(&c));
        assert!(!c.windows(6).any(|w| w == b"s3cret"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id.txt");
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &f,
            format!("# created: now\n{}\n", id.to_string().expose_secret()),
        )
        .unwrap();
        let p = decrypt(&c, Some(&f), "d").unwrap();
        assert!(p.ends_with(b"s3cret\"}\n"));
        let e = decrypt(&c, None, "d.ndjson").unwrap_err().to_string();
        assert!(e.contains("--identity"), "{e}");
        assert!(recipient("age1nope").is_err());
    }
}
