//! Finding what to scan: the wrangler configs (one per Worker, several in a monorepo) and the
//! JS/TS sources under a root, skipping dependencies, build output, tests and whatever the
//! exclusion file `.kvchaos-audit-ignore` (and the root `.gitignore`) name. Bounded: files over
//! [`MAX_FILE_BYTES`] are skipped with a note, and at most [`MAX_FILES`] are taken.
//!
//! Owns: the directory walk and glob matching. Does not own: reading configs or parsing.

use std::path::{Path, PathBuf};

/// Largest source file read; bigger ones are bundles or generated code.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Most source files taken from one root.
pub const MAX_FILES: usize = 20_000;
/// The exclusion file read from the root: one glob a line, `#` comments.
pub const IGNORE_FILE: &str = ".kvchaos-audit-ignore";

/// Directory names never entered: dependencies, build output, caches, tests.
const SKIP_DIRS: [&str; 15] = [
    "node_modules",
    "dist",
    "build",
    "out",
    ".wrangler",
    ".git",
    ".next",
    ".turbo",
    ".cache",
    "coverage",
    "target",
    "__tests__",
    "test",
    "tests",
    "__mocks__",
];
/// Extensions parsed.
const EXTENSIONS: [&str; 8] = ["js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx"];

/// What a walk found, paths relative to the root with `/` separators.
#[derive(Debug, Default)]
pub struct Walked {
    /// JS/TS sources.
    pub sources: Vec<String>,
    /// Directories holding a wrangler config ("" for the root).
    pub worker_dirs: Vec<String>,
    /// Files skipped and why.
    pub notes: Vec<String>,
}

/// Walks `root`, skipping what `excludes` matches.
pub fn walk(root: &Path, excludes: &Globs) -> Walked {
    let mut out = Walked::default();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        if crate::wrangler::find(&dir).is_some() {
            out.worker_dirs.push(rel.clone());
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            out.notes.push(format!(
                "{}: cannot read the directory, skipped",
                dir.display()
            ));
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if excludes.matches(&child, meta.is_dir()) {
                continue;
            }
            if meta.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    stack.push((e.path(), child));
                }
            } else if meta.is_file() && is_source(&name) {
                if meta.len() > MAX_FILE_BYTES {
                    out.notes.push(format!(
                        "{child}: {} bytes is over the {MAX_FILE_BYTES}-byte limit, skipped",
                        meta.len()
                    ));
                } else if out.sources.len() >= MAX_FILES {
                    out.notes
                        .push(format!("{child}: over {MAX_FILES} files, skipped"));
                } else {
                    out.sources.push(child);
                }
            }
        }
    }
    out.sources.sort();
    out.worker_dirs.sort();
    out
}

/// A JS/TS source that is not a test, a type declaration or a minified bundle.
fn is_source(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    EXTENSIONS.contains(&ext)
        && !stem.ends_with(".d")
        && !stem.ends_with(".min")
        && !name.contains(".test.")
        && !name.contains(".spec.")
}

/// Gitignore-style globs: `*` within a segment, `**` across segments, `?` one character; a
/// pattern without `/` matches any path segment, a trailing `/` only directories.
#[derive(Debug, Default, Clone)]
pub struct Globs {
    patterns: Vec<(String, bool)>,
}

impl Globs {
    /// Reads the globs of `text` (one a line, `#` comments, blank lines ignored; `!` negations
    /// are not supported and are skipped).
    pub fn parse(text: &str) -> Self {
        let mut patterns = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let dir_only = line.ends_with('/');
            patterns.push((line.trim_end_matches('/').to_owned(), dir_only));
        }
        Globs { patterns }
    }

    /// Adds the globs of another set.
    pub fn extend(&mut self, other: Globs) {
        self.patterns.extend(other.patterns);
    }

    /// Whether `rel` (a `/`-separated path under the root) is excluded.
    pub fn matches(&self, rel: &str, is_dir: bool) -> bool {
        self.patterns.iter().any(|(p, dir_only)| {
            if *dir_only && !is_dir {
                // `dir/` excludes the files under it through the directory itself.
                return false;
            }
            match p.strip_prefix('/') {
                Some(anchored) => glob(anchored.as_bytes(), rel.as_bytes()),
                None if p.contains('/') => glob(p.as_bytes(), rel.as_bytes()),
                None => rel
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| glob(p.as_bytes(), n.as_bytes())),
            }
        })
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) if p.get(1) == Some(&b'*') => {
            let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
            if rest.is_empty() {
                return true;
            }
            (0..=s.len()).any(|i| (i == 0 || s[i - 1] == b'/') && glob(rest, &s[i..]))
                || glob(&p[2..], s)
        }
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob(p, &s[1..])),
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// The exclusion globs of `root`: its `.kvchaos-audit-ignore` and `.gitignore` (each capped at
/// 256 KiB; a missing file is no globs).
pub fn excludes(root: &Path) -> Globs {
    let mut g = Globs::default();
    for name in [IGNORE_FILE, ".gitignore"] {
        let p: PathBuf = root.join(name);
        if let Ok(m) = std::fs::metadata(&p)
            && m.len() <= 256 * 1024
            && let Ok(text) = crate::resources::read_capped_text(&p, 256 * 1024)
        {
            g.extend(Globs::parse(&text));
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_gitignore() {
        let g = Globs::parse("# x\nlegacy/**\n*.gen.ts\n/scripts/\nsrc/?.js\n");
        assert!(g.matches("legacy/a/b.ts", false));
        assert!(g.matches("src/api.gen.ts", false));
        assert!(g.matches("scripts", true));
        assert!(!g.matches("scripts", false));
        assert!(!g.matches("x/scripts", true));
        assert!(g.matches("src/a.js", false));
        assert!(!g.matches("src/ab.js", false));
        assert!(!g.matches("src/index.ts", false));
    }

    #[test]
    fn tests_types_and_bundles_are_not_sources() {
        assert!(is_source("index.ts"));
        assert!(is_source("App.tsx"));
        assert!(!is_source("index.test.ts"));
        assert!(!is_source("a.spec.js"));
        assert!(!is_source("worker-configuration.d.ts"));
        assert!(!is_source("bundle.min.js"));
        assert!(!is_source("README.md"));
    }
}
