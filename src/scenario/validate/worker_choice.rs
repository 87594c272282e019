//! Validation of a Worker target's `config` (which wrangler config file) and `env` (which
//! `[env.NAME]` section), as `wrangler dev --config FILE --env NAME` takes them.

use super::*;

impl Validator<'_> {
    /// `(config, env)` of a Worker target: the file must exist under the Worker directory and
    /// hold the environment. `None` after reporting an error; both absent for other targets.
    pub(super) fn worker_choice(
        &mut self,
        t: &RawTarget,
        kind: Option<&TargetKind>,
    ) -> Option<(Option<PathBuf>, Option<String>)> {
        let dir = match kind {
            Some(TargetKind::Worker(dir)) => dir,
            Some(_) => {
                for (field, v) in [("target.config", &t.config), ("target.env", &t.env)] {
                    if let Some(v) = v {
                        self.err(v.span().start, field, format!("{field} {:?} applies to a local Worker only: remove it, or give worker = \"path/to/worker-dir\" instead of url/builtin", v.get_ref()));
                    }
                }
                return (t.config.is_none() && t.env.is_none()).then_some((None, None));
            }
            // The target itself is wrong (already reported); nothing to check against.
            None => return Some((None, None)),
        };
        let config = match &t.config {
            None => None,
            Some(c) => Some((self.worker_config_file(dir, c)?, c.get_ref().into())),
        };
        let path = match &config {
            Some((path, _)) => path.clone(),
            None => crate::scenario::worker_config(dir)?,
        };
        let env = match &t.env {
            None => None,
            Some(e) => Some(self.worker_env(&path, e)?),
        };
        Some((config.map(|(_, rel)| rel), env))
    }

    /// The config file `c` names, resolved against the Worker directory, if it is a file.
    fn worker_config_file(&mut self, dir: &Path, c: &Spanned<String>) -> Option<PathBuf> {
        let path = dir.join(c.get_ref());
        if path.is_file() {
            return Some(path);
        }
        let found = crate::wrangler::CONFIG_NAMES
            .iter()
            .chain(["wrangler-dev.toml"].iter())
            .filter(|n| dir.join(n).is_file())
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>();
        let hint = if found.is_empty() {
            String::new()
        } else {
            format!(" (the folder has {})", found.join(", "))
        };
        self.err(c.span().start, "target.config", format!("wrangler config {:?} not found in \"{}\"{hint}: give the config file's path relative to the Worker directory, e.g. config = \"wrangler-dev.toml\"", c.get_ref(), dir.display()));
        None
    }

    /// `e`, if the config at `path` has an `[env.NAME]` section of that name.
    fn worker_env(&mut self, path: &Path, e: &Spanned<String>) -> Option<String> {
        let name = e.get_ref();
        let known = match crate::wrangler::WranglerConfig::load(path) {
            Ok(cfg) => cfg.env_names(),
            Err(err) => {
                self.err(
                    e.span().start,
                    "target.env",
                    format!("cannot check env {name:?}: {err}"),
                );
                return None;
            }
        };
        if known.iter().any(|k| k == name) {
            return Some(name.clone());
        }
        let have = if known.is_empty() {
            "it has no [env.NAME] sections".to_owned()
        } else {
            format!(
                "it has {}",
                known
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.err(e.span().start, "target.env", format!("no [env.{name}] in \"{}\": {have}: name one of its environments, or remove env to run the top level", path.display()));
        None
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario::parse_str;

    const SCENARIO: &str = r#"
name = "named"
[target]
worker = "workers/wrangler-dev-config"
TARGET_EXTRA

[[phases]]
duration = "1s"
rate = 1

[[requests]]
name = "r"
path = "/"
"#;

    fn parse(extra: &str) -> Result<crate::scenario::plan::Plan, String> {
        // Relative to tests/fixtures/, where the fixture Workers are.
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/named.toml");
        parse_str(&SCENARIO.replace("TARGET_EXTRA", extra), &file, &|_| None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_named_config_and_env_reach_the_plan() {
        let plan = parse("config = \"wrangler-dev.toml\"\nenv = \"staging\"").expect("valid");
        assert_eq!(
            plan.target.config.as_deref(),
            Some(Path::new("wrangler-dev.toml"))
        );
        assert_eq!(plan.target.env.as_deref(), Some("staging"));
        let plain = parse("").expect("valid");
        assert_eq!((plain.target.config, plain.target.env), (None, None));
    }

    #[test]
    fn env_is_checked_against_the_default_config_too() {
        // wrangler.toml of the fixture has no [env.staging]; wrangler-dev.toml has.
        let err = parse("env = \"staging\"").expect_err("no env in wrangler.toml");
        assert!(
            err.contains("target.env: no [env.staging]") && err.contains("no [env.NAME] sections"),
            "{err}"
        );
    }

    #[test]
    fn config_and_env_need_a_worker_target() {
        let text = SCENARIO
            .replace(
                "worker = \"workers/wrangler-dev-config\"",
                "url = \"http://127.0.0.1:1\"",
            )
            .replace("TARGET_EXTRA", "env = \"staging\"");
        let err = parse_str(&text, Path::new("t.toml"), &|_| None).expect_err("url target");
        assert!(
            err.to_string()
                .contains("target.env \"staging\" applies to a local Worker only"),
            "{err}"
        );
    }
}
