//! A Worker's wrangler configuration as kvchaos needs it: the Worker's name and entry point, its
//! bindings by kind (KV, R2, D1, Durable Objects), its cron triggers and `[vars]`, for the
//! top level and for every `[env.NAME]` section, with wrangler's inheritance rules.
//!
//! Owns: finding `wrangler.toml` / `wrangler.jsonc` / `wrangler.json` in a directory, reading
//! it (size-capped), and resolving an environment. Does not own: building or running the Worker
//! (the launcher under `mock/miniflare` does that with wrangler itself).
//!
//! Inheritance follows wrangler: `name` (as `<name>-<env>` unless the section names itself),
//! `main` and `triggers` are inherited by an environment that does not set them; bindings and
//! `vars` are not (an environment without `kv_namespaces` has no KV binding).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Largest wrangler configuration file read (wrangler files are a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The file names wrangler looks for, in its order of preference.
pub const CONFIG_NAMES: [&str; 3] = ["wrangler.toml", "wrangler.jsonc", "wrangler.json"];

/// Why a wrangler configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WranglerError {
    /// The directory holds none of [`CONFIG_NAMES`].
    #[error(
        "\"{}\": no wrangler.toml, wrangler.jsonc or wrangler.json there: give a Worker's directory or its config file",
        .0.display()
    )]
    NotFound(PathBuf),
    /// The file could not be read.
    #[error("\"{}\": {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("\"{}\": {size} bytes is over the {MAX_CONFIG_BYTES}-byte limit for a wrangler config", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// TOML or JSONC syntax error (the message carries line and column).
    #[error("\"{}\": {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field has the wrong shape.
    #[error("\"{}\": {field}: {message}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, e.g. `env.staging.kv_namespaces[1].binding`.
        field: String,
        /// What is wrong and the fix.
        message: String,
    },
    /// `--env NAME` names no `[env.NAME]` section.
    #[error("\"{}\": no [env.{env}] section; environments here: {}", path.display(), list_or_none(.known))]
    UnknownEnv {
        /// The file.
        path: PathBuf,
        /// The environment asked for.
        env: String,
        /// The environments the file has.
        known: Vec<String>,
    },
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// One `[[kv_namespaces]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvBinding {
    /// The name the Worker's code uses (`env.<binding>`).
    pub binding: String,
    /// The namespace id, when given.
    pub id: Option<String>,
    /// The preview namespace id, when given.
    pub preview_id: Option<String>,
}

/// What one environment (or the top level) of the configuration declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    /// The Worker's name in this environment.
    pub name: Option<String>,
    /// The entry point (`main`), relative to the config file.
    pub main: Option<String>,
    /// KV namespaces.
    pub kv: Vec<KvBinding>,
    /// R2 bucket binding names.
    pub r2: Vec<String>,
    /// D1 database binding names.
    pub d1: Vec<String>,
    /// Durable Object namespace binding names.
    pub durable_objects: Vec<String>,
    /// Durable Object classes this Worker defines itself (`class_name` of bindings without
    /// `script_name`).
    pub durable_object_classes: Vec<String>,
    /// Cron expressions of `[triggers] crons`.
    pub crons: Vec<String>,
    /// `[vars]`, with non-string values as their JSON text.
    pub vars: BTreeMap<String, String>,
}

impl Bindings {
    /// The KV binding names.
    pub fn kv_names(&self) -> Vec<&str> {
        self.kv.iter().map(|k| k.binding.as_str()).collect()
    }
}

/// A wrangler configuration file, read.
#[derive(Debug, Clone)]
pub struct WranglerConfig {
    /// The file read.
    pub path: PathBuf,
    /// The top level.
    pub top: Bindings,
    /// Each `[env.NAME]` section as written (before inheritance).
    envs: BTreeMap<String, (Bindings, Presence)>,
}

/// Which inheritable keys an environment section sets itself.
#[derive(Debug, Clone, Copy, Default)]
struct Presence {
    name: bool,
    main: bool,
    triggers: bool,
}

/// The whole configuration as JSON (TOML converted), for tools that rewrite it.
pub fn document(text: &str, path: &Path) -> Result<Value, WranglerError> {
    let syntax = |message: String| WranglerError::Syntax {
        path: path.to_owned(),
        message,
    };
    if path.extension().is_some_and(|e| e == "toml") {
        let t: toml::Table = toml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        serde_json::to_value(t).map_err(|e| syntax(e.to_string()))
    } else {
        jsonc_parser::parse_to_serde_value::<Value>(text, &Default::default())
            .map_err(|e| syntax(e.to_string()))
    }
}

/// Reads a config file whole, refusing one over the size cap.
pub fn read_file(path: &Path) -> Result<String, WranglerError> {
    read_capped(path)
}

/// The config file of `dir`, if it has one (see [`CONFIG_NAMES`]).
pub fn find(dir: &Path) -> Option<PathBuf> {
    CONFIG_NAMES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

impl WranglerConfig {
    /// Reads `path`: a config file, or a directory holding one.
    pub fn load(path: &Path) -> Result<Self, WranglerError> {
        let file = if path.is_dir() {
            find(path).ok_or_else(|| WranglerError::NotFound(path.to_owned()))?
        } else {
            path.to_owned()
        };
        let text = read_capped(&file)?;
        Self::parse(&text, &file)
    }

    /// Parses `text` (TOML when `path` ends in `.toml`, JSONC otherwise).
    pub fn parse(text: &str, path: &Path) -> Result<Self, WranglerError> {
        let doc = document(text, path)?;
        let reader = Reader { path };
        let top = reader.bindings(&doc, "")?.0;
        let mut envs = BTreeMap::new();
        if let Some(env) = doc.get("env") {
            let table = env
                .as_object()
                .ok_or_else(|| reader.field("env", "expected a table of environments"))?;
            for (name, section) in table {
                envs.insert(
                    name.clone(),
                    reader.bindings(section, &format!("env.{name}."))?,
                );
            }
        }
        Ok(WranglerConfig {
            path: path.to_owned(),
            top,
            envs,
        })
    }

    /// The names of the `[env.NAME]` sections.
    pub fn env_names(&self) -> Vec<String> {
        self.envs.keys().cloned().collect()
    }

    /// What the Worker has in environment `env` (`None`: the top level), with wrangler's
    /// inheritance applied.
    pub fn resolve(&self, env: Option<&str>) -> Result<Bindings, WranglerError> {
        let Some(env) = env else {
            return Ok(self.top.clone());
        };
        let Some((section, set)) = self.envs.get(env) else {
            return Err(WranglerError::UnknownEnv {
                path: self.path.clone(),
                env: env.to_owned(),
                known: self.env_names(),
            });
        };
        let mut out = section.clone();
        if !set.name {
            out.name = self.top.name.as_ref().map(|n| format!("{n}-{env}"));
        }
        if !set.main {
            out.main = self.top.main.clone();
        }
        if !set.triggers {
            out.crons = self.top.crons.clone();
        }
        Ok(out)
    }

    /// Every KV binding name declared at the top level or in any environment.
    pub fn all_kv_names(&self) -> BTreeSet<String> {
        std::iter::once(&self.top)
            .chain(self.envs.values().map(|(b, _)| b))
            .flat_map(|b| b.kv.iter().map(|k| k.binding.clone()))
            .collect()
    }

    /// Every cron expression declared at the top level or in any environment, deduplicated.
    pub fn all_crons(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        std::iter::once(&self.top)
            .chain(self.envs.values().map(|(b, _)| b))
            .flat_map(|b| b.crons.iter().cloned())
            .filter(|c| seen.insert(c.clone()))
            .collect()
    }
}

/// Reads `path` whole, refusing files over [`MAX_CONFIG_BYTES`].
fn read_capped(path: &Path) -> Result<String, WranglerError> {
    use std::io::Read;
    let read_err = |source| WranglerError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(WranglerError::TooLarge {
            path: path.to_owned(),
            size: std::fs::metadata(path).map_or(text.len() as u64, |m| m.len()),
        });
    }
    Ok(text)
}

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn field(&self, field: &str, message: &str) -> WranglerError {
        WranglerError::Field {
            path: self.path.to_owned(),
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }

    fn bindings(&self, doc: &Value, at: &str) -> Result<(Bindings, Presence), WranglerError> {
        let presence = Presence {
            name: doc.get("name").is_some(),
            main: doc.get("main").is_some(),
            triggers: doc.get("triggers").is_some(),
        };
        let mut b = Bindings {
            name: self.opt_str(doc, "name", at)?,
            main: self.opt_str(doc, "main", at)?,
            ..Bindings::default()
        };
        for (i, entry) in self.array(doc, "kv_namespaces", at)?.iter().enumerate() {
            let at = format!("{at}kv_namespaces[{i}].");
            b.kv.push(KvBinding {
                binding: self.req_str(entry, "binding", &at)?,
                id: self.opt_str(entry, "id", &at)?,
                preview_id: self.opt_str(entry, "preview_id", &at)?,
            });
        }
        b.r2 = self.names(doc, "r2_buckets", "binding", at)?;
        b.d1 = self.names(doc, "d1_databases", "binding", at)?;
        b.durable_objects = match doc.get("durable_objects") {
            Some(d) => self.names(d, "bindings", "name", &format!("{at}durable_objects."))?,
            None => Vec::new(),
        };
        if let Some(d) = doc.get("durable_objects") {
            let at = format!("{at}durable_objects.");
            for (i, e) in self.array(d, "bindings", &at)?.iter().enumerate() {
                let at = format!("{at}bindings[{i}].");
                if self.opt_str(e, "script_name", &at)?.is_none()
                    && let Some(class) = self.opt_str(e, "class_name", &at)?
                    && !b.durable_object_classes.contains(&class)
                {
                    b.durable_object_classes.push(class);
                }
            }
        }
        if let Some(t) = doc.get("triggers") {
            for (i, c) in self
                .array(t, "crons", &format!("{at}triggers."))?
                .iter()
                .enumerate()
            {
                let c = c.as_str().ok_or_else(|| {
                    self.field(
                        &format!("{at}triggers.crons[{i}]"),
                        "expected a cron expression string, e.g. \"*/5 * * * *\"",
                    )
                })?;
                b.crons.push(c.to_owned());
            }
        }
        if let Some(vars) = doc.get("vars").and_then(Value::as_object) {
            for (k, v) in vars {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                b.vars.insert(k.clone(), v);
            }
        }
        Ok((b, presence))
    }

    fn array<'v>(&self, doc: &'v Value, key: &str, at: &str) -> Result<&'v [Value], WranglerError> {
        match doc.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.field(&format!("{at}{key}"), "expected an array")),
        }
    }

    fn names(
        &self,
        doc: &Value,
        key: &str,
        name: &str,
        at: &str,
    ) -> Result<Vec<String>, WranglerError> {
        self.array(doc, key, at)?
            .iter()
            .enumerate()
            .map(|(i, e)| self.req_str(e, name, &format!("{at}{key}[{i}].")))
            .collect()
    }

    fn opt_str(&self, doc: &Value, key: &str, at: &str) -> Result<Option<String>, WranglerError> {
        match doc.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.field(&format!("{at}{key}"), "expected a string")),
        }
    }

    fn req_str(&self, doc: &Value, key: &str, at: &str) -> Result<String, WranglerError> {
        self.opt_str(doc, key, at)?.ok_or_else(|| {
            self.field(
                &format!("{at}{key}"),
                &format!("missing; every entry needs \"{key}\""),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
name = "hub"
main = "src/index.ts"
[[kv_namespaces]]
binding = "KV"
id = "abc"
[[r2_buckets]]
binding = "FILES"
bucket_name = "files"
[durable_objects]
bindings = [{ name = "LOCKS", class_name = "Locks" }]
[triggers]
crons = ["*/5 * * * *"]
[vars]
LIMIT = 10
[env.canary]
[[env.canary.kv_namespaces]]
binding = "CANARY_KV"
id = "def"
[env.quiet]
name = "hub-quiet"
triggers = { crons = [] }
"#;

    fn parse(text: &str, file: &str) -> Result<WranglerConfig, WranglerError> {
        WranglerConfig::parse(text, Path::new(file))
    }

    #[test]
    fn top_level_bindings_by_kind() {
        let c = parse(TOML, "wrangler.toml").expect("parses");
        assert_eq!(c.top.name.as_deref(), Some("hub"));
        assert_eq!(c.top.kv_names(), ["KV"]);
        assert_eq!(c.top.r2, ["FILES"]);
        assert_eq!(c.top.durable_objects, ["LOCKS"]);
        assert_eq!(c.top.durable_object_classes, ["Locks"]);
        assert_eq!(c.top.crons, ["*/5 * * * *"]);
        assert_eq!(c.top.vars["LIMIT"], "10");
    }

    #[test]
    fn environments_inherit_name_main_and_triggers_but_not_bindings() {
        let c = parse(TOML, "wrangler.toml").expect("parses");
        let canary = c.resolve(Some("canary")).expect("env");
        assert_eq!(canary.name.as_deref(), Some("hub-canary"));
        assert_eq!(canary.main.as_deref(), Some("src/index.ts"));
        assert_eq!(canary.crons, ["*/5 * * * *"]);
        assert_eq!(canary.kv_names(), ["CANARY_KV"]);
        assert!(canary.r2.is_empty(), "bindings are not inherited");
        let quiet = c.resolve(Some("quiet")).expect("env");
        assert_eq!(quiet.name.as_deref(), Some("hub-quiet"));
        assert!(quiet.crons.is_empty(), "an env's own triggers win");
        assert!(quiet.kv.is_empty());
        let all: Vec<String> = c.all_kv_names().into_iter().collect();
        assert_eq!(all, ["CANARY_KV", "KV"]);
    }

    #[test]
    fn an_unknown_environment_lists_the_known_ones() {
        let c = parse(TOML, "wrangler.toml").expect("parses");
        let e = c
            .resolve(Some("prod"))
            .expect_err("no such env")
            .to_string();
        assert!(e.contains("no [env.prod] section"), "{e}");
        assert!(e.contains("canary, quiet"), "{e}");
    }

    #[test]
    fn jsonc_with_comments_and_trailing_commas() {
        let text = r#"{
          // the Worker
          "name": "w",
          "kv_namespaces": [{ "binding": "CACHE", "id": "x" },],
          "triggers": { "crons": ["0 * * * *"] }, /* hourly */
        }"#;
        let c = parse(text, "wrangler.jsonc").expect("parses");
        assert_eq!(c.top.kv_names(), ["CACHE"]);
        assert_eq!(c.all_crons(), ["0 * * * *"]);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse("[[kv_namespaces]]\nid = \"x\"\n", "wrangler.toml")
            .expect_err("missing binding")
            .to_string();
        assert!(e.contains("kv_namespaces[0].binding: missing"), "{e}");
        let e = parse("[triggers]\ncrons = [5]\n", "wrangler.toml")
            .expect_err("bad cron")
            .to_string();
        assert!(e.contains("triggers.crons[0]"), "{e}");
        let e = parse("name = \n", "wrangler.toml")
            .expect_err("syntax")
            .to_string();
        assert!(e.contains("wrangler.toml"), "{e}");
    }

    #[test]
    fn oversized_files_are_refused_unread() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("wrangler.toml");
        let f = std::fs::File::create(&p).expect("create");
        f.set_len(MAX_CONFIG_BYTES + 10).expect("size");
        let e = WranglerConfig::load(dir.path()).expect_err("too large");
        assert!(matches!(e, WranglerError::TooLarge { .. }), "{e}");
        let empty = tempfile::tempdir().expect("tmp");
        let e = WranglerConfig::load(empty.path()).expect_err("none");
        assert!(e.to_string().contains("no wrangler.toml"), "{e}");
    }
}
