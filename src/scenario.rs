//! Scenario files: the raw TOML model, validation into a [`Plan`], and the messages a user
//! reads when a file is wrong. Owns every check of user input; nothing past [`Plan`] re-checks.
//!
//! Every message names `file:line:column`, the field path (`phases[2].rate`), the bad value
//! in quotes (never an environment value) and an example of a valid one.

pub mod location;
pub mod plan;
pub mod raw;
pub mod template;
pub mod threshold;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use plan::Plan;

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// The file as given by the user.
    pub file: PathBuf,
    /// 1-based line; 0 for a problem with the file as a whole (e.g. it cannot be read).
    pub line: usize,
    /// 1-based column, counted in characters; 0 when `line` is 0.
    pub column: usize,
    /// Field path, e.g. `phases[2].rate`; empty when the problem has no field.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ScenarioError {
    /// An error at byte `offset` of `src`.
    pub fn at(file: &Path, src: &str, offset: usize, field: String, message: String) -> Self {
        let (line, column) = location::line_col(src, offset);
        ScenarioError {
            file: file.to_path_buf(),
            line,
            column,
            field,
            message,
        }
    }

    /// An error about the file as a whole.
    pub fn file_level(file: &Path, message: String) -> Self {
        ScenarioError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            return write!(f, "{file}: {}", self.message);
        }
        write!(f, "{file}:{}:{}: ", self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a scenario file, in file order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and validates the scenario at `path`, reading `{{env.NAME}}` from the process
/// environment. A file without `seed` gets a random one.
pub fn load(path: &Path) -> Result<Plan, ScenarioErrors> {
    use std::io::Read;
    let fail = |message: String| ScenarioErrors(vec![ScenarioError::file_level(path, message)]);
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SCENARIO_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(format!("cannot read scenario file: {e}")))?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(fail(format!(
            "the scenario file is larger than {} KiB: a scenario is a few KiB of TOML; is this the right file?",
            MAX_SCENARIO_BYTES / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        ScenarioErrors(vec![ScenarioError::file_level(
            path,
            format!(
                "the scenario file is not valid UTF-8 (at byte {}): save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )])
    })?;
    parse_str(&text, path, &|name| std::env::var(name).ok())
}

/// Largest scenario file read (1 MiB); a longer one is refused unread.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// Parses and validates scenario `text`; `path` is used in messages only and `env` answers
/// `{{env.NAME}}`. Syntax and shape errors stop at the first; semantic errors are all reported.
pub fn parse_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ScenarioErrors> {
    let raw: raw::ScenarioFile =
        toml::from_str(text).map_err(|e| ScenarioErrors(vec![from_toml_error(text, path, &e)]))?;
    validate::validate(raw, text, path, env, rand::random()).map_err(ScenarioErrors)
}

/// The wrangler configuration file of a Worker directory, if it has one.
pub fn worker_config(dir: &Path) -> Option<PathBuf> {
    crate::wrangler::find(dir)
}

/// Checks that `url` may receive load: loopback (127.0.0.0/8, `::1`, `localhost`) always may;
/// any other host must match an `allow_hosts` entry, exactly (case-insensitive) or as
/// `*.suffix` for its subdomains. The message stands alone, for `--target-url` overrides too.
pub fn check_target_allowed(url: &url::Url, allow_hosts: &[String]) -> Result<(), String> {
    let Some(host) = url.host() else {
        return Err(format!(
            "target URL \"{url}\" has no host: e.g. http://127.0.0.1:8787"
        ));
    };
    let name = match host {
        url::Host::Ipv4(ip) if ip.is_loopback() => return Ok(()),
        url::Host::Ipv6(ip) if ip.is_loopback() => return Ok(()),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
        url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
    };
    if name == "localhost" {
        return Ok(());
    }
    let allowed = allow_hosts.iter().any(|pattern| {
        let pattern = pattern.trim().trim_matches(['[', ']']).to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(suffix) => name
                .strip_suffix(suffix)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => pattern == name,
        }
    });
    if allowed {
        return Ok(());
    }
    Err(format!(
        "target host \"{name}\" is not loopback and not in allow_hosts: add allow_hosts = [\"{name}\"] under [target] if you really mean to send load there"
    ))
}

/// Turns a TOML syntax or serde shape error into our form: location, field path, and a
/// message that says what to write instead.
fn from_toml_error(src: &str, path: &Path, e: &toml::de::Error) -> ScenarioError {
    let offset = e.span().map_or(0, |s| s.start);
    let field = location::field_path_at(src, offset);
    let msg = e.message().trim();
    let key = field.rsplit('.').next().unwrap_or("").to_owned();
    let message = if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches(',')
            .trim()
            .trim_start_matches("expected")
            .trim()
            .replace('`', "");
        if expected.is_empty() {
            format!("unknown field \"{name}\": remove it")
        } else {
            format!("unknown field \"{name}\": expected {expected}; check the spelling")
        }
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        format!(
            "missing field \"{name}\": add it, e.g. {}",
            example_for(name)
        )
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        format!(
            "invalid value: found {}, expected {}, e.g. {}",
            found.replace('`', "\""),
            plain_expected(expected),
            example_for(&field)
        )
    } else if msg.starts_with("duplicate key") || msg.starts_with("duplicate field") {
        format!("duplicate key \"{key}\": a key may appear once per table; remove one of them")
    } else {
        format!(
            "invalid TOML: {msg}: check the quotes, brackets and = signs here (strings need double quotes, e.g. duration = \"30s\"; syntax: https://toml.io)"
        )
    };
    let field = if msg.starts_with("unknown field") {
        // The path ends at the unknown key; show the table it is in.
        match field.rsplit_once('.') {
            Some((table, _)) => table.to_owned(),
            None => "(top level)".to_owned(),
        }
    } else {
        field
    };
    ScenarioError::at(path, src, offset, field, message)
}

fn plain_expected(expected: &str) -> String {
    match expected {
        "a sequence" => "an array".to_owned(),
        e if e.starts_with("struct ") || e == "a table" || e.starts_with("a map") => {
            "a table".to_owned()
        }
        "a boolean" => "true or false".to_owned(),
        other => other.replace('`', ""),
    }
}

/// An example line for a field path, for messages about its type.
fn example_for(field: &str) -> &'static str {
    if field.starts_with("thresholds") {
        return "all = [\"p99 < 500ms\", { expr = \"error_rate < 5%\", abort = true }]";
    }
    if field.contains(".headers.") {
        return "\"x-api-key\" = \"{{env.API_KEY}}\"";
    }
    let key = field.rsplit('.').next().unwrap_or(field);
    let key = key.split('[').next().unwrap_or(key);
    match key {
        "name" => "name = \"my-scenario\"",
        "description" => "description = \"what this scenario shows\"",
        "url" => "url = \"http://127.0.0.1:8787\"",
        "builtin" => "builtin = true",
        "allow_hosts" => "allow_hosts = [\"api.example.com\"]",
        "target" => "[target] with url = \"http://127.0.0.1:8787\"",
        "phases" => {
            "[[phases]] (double brackets: one per phase) with duration = \"30s\" and rate = 100"
        }
        "requests" => {
            "[[requests]] (double brackets: one per request) with name = \"get-item\" and path = \"/items/1\""
        }
        "thresholds" => "[thresholds] with all = [\"p99 < 500ms\"]",
        "method" => "method = \"POST\"",
        "path" => "path = \"/items/{{random_key 1000}}\"",
        "headers" => "headers = { \"x-api-key\" = \"{{env.API_KEY}}\" }",
        "body" => "body = \"raw text\"",
        "json" => "json = { id = \"{{uuid}}\" }",
        _ => "a value of the expected type; see scenarios/http-target.toml for every field",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only environment tests see: never the real one.
    fn fixed_env(name: &str) -> Option<String> {
        match name {
            "API_KEY" => Some("k-123-secret".to_owned()),
            "MULTILINE" => Some("line1-secret\r\nline2".to_owned()),
            _ => None,
        }
    }

    fn dir(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn toml_files(rel: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir(rel))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
        files.sort();
        files
    }

    /// One seeded mutation of `text`: numbers made huge, lines dropped or doubled, bytes
    /// flipped, durations and values swapped for hostile ones.
    fn mutate(text: &str, rng: &mut rand::rngs::SmallRng) -> String {
        use rand::Rng;
        const HOSTILE: [&str; 10] = [
            "\"18446744073709551615s\"",
            "18446744073709551615",
            "-9223372036854775808",
            "1e308",
            "nan",
            "\"\"",
            "[]",
            "{}",
            "\"{{\"",
            "\"0s\"",
        ];
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.is_empty() {
            return String::new();
        }
        for _ in 0..rng.random_range(1..4) {
            let i = rng.random_range(0..lines.len());
            match rng.random_range(0..5) {
                0 => {
                    if let Some((k, _)) = lines[i].split_once(" = ") {
                        let v = HOSTILE[rng.random_range(0..HOSTILE.len())];
                        lines[i] = format!("{k} = {v}");
                    }
                }
                1 => {
                    lines.remove(i);
                    if lines.is_empty() {
                        break;
                    }
                }
                2 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                3 => {
                    let mut b = lines[i].clone().into_bytes();
                    if !b.is_empty() {
                        let j = rng.random_range(0..b.len());
                        b[j] = rng.random_range(0x20..0x7f);
                    }
                    lines[i] = String::from_utf8_lossy(&b).into_owned();
                }
                _ => lines[i] = lines[i].replace(|c: char| c.is_ascii_digit(), "9"),
            }
        }
        lines.join("\n")
    }

    #[test]
    fn mutated_scenarios_never_panic_the_parser_or_the_validator() {
        use rand::SeedableRng;
        let mut files = toml_files("scenarios");
        files.extend(toml_files("tests/fixtures/invalid"));
        let texts: Vec<(PathBuf, String)> = files
            .into_iter()
            .filter_map(|f| std::fs::read_to_string(&f).ok().map(|t| (f, t)))
            .collect();
        assert!(texts.len() > 20, "corpus: {}", texts.len());
        // The corpus holds every table kind of a scenario, so each one's validator is mutated.
        for table in [
            "target",
            "phases",
            "requests",
            "thresholds",
            "clock",
            "cron",
            "faults",
            "heal",
            "kv",
            "lock",
            "queue",
        ] {
            let header = |t: &str| {
                t.contains(&format!("\n[{table}]")) || t.contains(&format!("\n[[{table}]]"))
            };
            assert!(
                texts.iter().any(|(_, t)| header(t)),
                "no [{table}] in the corpus"
            );
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
        let started = std::time::Instant::now();
        let mut runs = 0;
        // Bounded in count and in time, so a slow machine still ends the test quickly.
        while runs < 4_000 && started.elapsed() < std::time::Duration::from_secs(20) {
            let (file, text) = &texts[runs % texts.len()];
            let mutated = mutate(text, &mut rng);
            let outcome = std::panic::catch_unwind(|| {
                let _ = parse_str(&mutated, file, &fixed_env);
            });
            assert!(
                outcome.is_ok(),
                "panic on a mutation of {}:\n{mutated}",
                file.display()
            );
            runs += 1;
        }
        assert!(runs >= 200, "only {runs} mutations ran");
    }

    #[test]
    fn oversized_and_endless_scenario_files_are_refused_unread() {
        let e = load(Path::new("/dev/zero"))
            .expect_err("endless")
            .to_string();
        assert!(e.contains("larger than 1024 KiB"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_SCENARIO_BYTES as usize + 1)).expect("write");
        let e = load(&big).expect_err("too big").to_string();
        assert!(e.contains("big.toml"), "{e}");
    }

    #[test]
    fn durations_and_counts_past_their_limits_are_refused_by_name() {
        let base = "name = \"x\"\n[target]\nurl = \"http://127.0.0.1:1\"\n";
        let phases = "[[phases]]\nduration = \"18446744073709551615s\"\nrate = 1\n[[phases]]\nduration = \"1s\"\nrate = 1\n";
        let req = "[[requests]]\nname = \"r\"\npath = \"/\"\n";
        let e = parse_str(
            &format!("{base}{phases}{req}"),
            Path::new("x.toml"),
            &fixed_env,
        )
        .expect_err("overflow")
        .to_string();
        assert!(e.contains("at most 30 days"), "{e}");
        let many: String = (0..300)
            .map(|i| format!("[[requests]]\nname = \"r{i}\"\npath = \"/\"\n"))
            .collect();
        let one = "[[phases]]\nduration = \"1s\"\nrate = 1\n";
        let e = parse_str(
            &format!("{base}{one}{many}"),
            Path::new("x.toml"),
            &fixed_env,
        )
        .expect_err("too many")
        .to_string();
        assert!(
            e.contains("300 [[requests]] tables, more than the 256"),
            "{e}"
        );
        let long = format!(
            "[[requests]]\nname = \"r\"\npath = \"/{}\"\n",
            "a".repeat(70_000)
        );
        let e = parse_str(
            &format!("{base}{one}{long}"),
            Path::new("x.toml"),
            &fixed_env,
        )
        .expect_err("long path")
        .to_string();
        assert!(e.contains("more than the 8192"), "{e}");
    }

    #[test]
    fn every_invalid_fixture_reports_its_error_where_it_says() {
        let files = toml_files("tests/fixtures/invalid");
        assert!(
            files.len() >= 12,
            "expected at least 12 fixtures, found {}",
            files.len()
        );
        let mut failures = Vec::new();
        for file in &files {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel = PathBuf::from(format!("tests/fixtures/invalid/{name}"));
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let at = text.lines().find_map(|l| l.strip_prefix("# at: "));
            let expects: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: "))
                .collect();
            let Some(at) = at else {
                failures.push(format!("{name}: no \"# at: LINE:COL\" line"));
                continue;
            };
            if expects.is_empty() {
                failures.push(format!("{name}: no \"# expect: ...\" line"));
                continue;
            }
            let errors = match parse_str(&text, &rel, &fixed_env) {
                Ok(_) => {
                    failures.push(format!("{name}: validated but should not"));
                    continue;
                }
                Err(e) => e.to_string(),
            };
            let first = errors.lines().next().unwrap_or("");
            let prefix = format!("tests/fixtures/invalid/{name}:{}: ", at.trim());
            if !first.starts_with(&prefix) {
                failures.push(format!(
                    "{name}: first error should start with {prefix:?}, got:\n{errors}"
                ));
            }
            for want in &expects {
                if !first.contains(want) {
                    failures.push(format!(
                        "{name}: first error lacks {want:?}, got:\n{errors}"
                    ));
                }
            }
            for secret in ["k-123-secret", "line1-secret"] {
                if errors.contains(secret) {
                    failures.push(format!(
                        "{name}: an error message shows an environment value"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_shipped_scenario_validates_without_environment() {
        let files = toml_files("scenarios");
        assert!(!files.is_empty());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Err(e) = parse_str(&text, &file, &|_| None) {
                panic!("{}", e);
            }
        }
    }

    #[test]
    fn display_with_and_without_a_location() {
        let e = ScenarioError::at(
            Path::new("s.toml"),
            "a\nbc = 1",
            5,
            "bc".into(),
            "bad".into(),
        );
        assert_eq!(e.to_string(), "s.toml:2:4: bc: bad");
        let f = ScenarioError::file_level(
            Path::new("s.toml"),
            "cannot read scenario file: gone".into(),
        );
        assert_eq!(f.to_string(), "s.toml: cannot read scenario file: gone");
        let all = ScenarioErrors(vec![e, f]);
        assert_eq!(all.to_string().lines().count(), 2);
    }

    #[test]
    fn load_reports_an_unreadable_file_without_a_line() {
        let path = Path::new("/nonexistent/kvchaos/x.toml");
        let msg = load(path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("/nonexistent/kvchaos/x.toml: cannot read scenario file"),
            "{msg}"
        );
    }

    #[test]
    fn target_allowlist_accepts_loopback_and_listed_hosts_only() {
        let u = |s: &str| url::Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let allow = vec![
            "canary.example.workers.dev".to_owned(),
            "*.Example.dev".to_owned(),
        ];
        for ok in [
            "http://127.0.0.1:8787",
            "http://127.9.8.7/",
            "http://[::1]:80/",
            "http://LOCALHOST:1/",
            "https://Canary.Example.Workers.Dev/",
            "https://a.b.example.dev/",
        ] {
            assert_eq!(check_target_allowed(&u(ok), &allow), Ok(()), "{ok}");
        }
        for bad in [
            "https://example.dev/",
            "https://notexample.dev/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "https://api.example.com/",
        ] {
            let e = check_target_allowed(&u(bad), &allow)
                .err()
                .unwrap_or_default();
            assert!(
                e.contains("is not loopback and not in allow_hosts"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            check_target_allowed(&u("https://api.example.com/x"), &[]),
            Err("target host \"api.example.com\" is not loopback and not in allow_hosts: add allow_hosts = [\"api.example.com\"] under [target] if you really mean to send load there".to_owned())
        );
    }

    #[test]
    fn a_single_bracket_phase_table_says_to_use_double_brackets() {
        let text = "name = \"n\"\n[target]\nbuiltin = true\n[phases]\nduration = \"1s\"\n";
        let e = parse_str(text, Path::new("t.toml"), &fixed_env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("t.toml:4:1: phases: invalid value: found"),
            "{e}"
        );
        assert!(
            e.contains("expected an array") && e.contains("[[phases]] (double brackets"),
            "{e}"
        );
    }
}
