//! Faults on a deployed canary: `kvchaos canary build` writes a deployable build of a Worker
//! whose entry point is the chaos shim (`mock/canary/shim.mjs`), which wraps every KV binding
//! and adds authenticated control routes; [`control`] is kvchaos's side of those routes.
//!
//! Owns: the build folder (the shim with the Worker's entry point, bindings and Durable Object
//! classes filled in, and a flattened wrangler config whose paths point back at the Worker's own
//! files, which are never touched), and the control protocol. Does not own: deploying (the user
//! runs `wrangler versions upload` or `wrangler deploy` on the folder) or the run.

pub mod args;
pub mod control;
pub mod entry;
pub mod live;

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use crate::wrangler::{self, WranglerConfig, WranglerError};

/// The shim's source, with placeholders.
const SHIM: &str = include_str!("../mock/canary/shim.mjs");
/// The shim's file name in the build folder.
pub const SHIM_FILE: &str = "kvchaos-shim.mjs";
/// The generated config's file name in the build folder.
pub const CONFIG_FILE: &str = "wrangler.json";
/// The `version_metadata` binding a build adds when the Worker's config has none.
pub const VERSION_BINDING: &str = "KVCHAOS_VERSION";
/// The Worker env var holding the control secret, unless the build names another.
pub const DEFAULT_SECRET_VAR: &str = "KVCHAOS_SHIM_SECRET";

/// Keys an `[env.NAME]` section does not inherit from the top level (wrangler's
/// "non-inheritable keys": bindings and vars must be repeated per environment).
const NOT_INHERITED: &[&str] = &[
    "vars",
    "define",
    "durable_objects",
    "kv_namespaces",
    "r2_buckets",
    "d1_databases",
    "services",
    "queues",
    "analytics_engine_datasets",
    "vectorize",
    "hyperdrive",
    "ai",
    "browser",
    "images",
    "send_email",
    "tail_consumers",
    "dispatch_namespaces",
    "mtls_certificates",
    "version_metadata",
    "workflows",
    "pipelines",
    "secrets_store_secrets",
    "unsafe",
];

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The Worker's folder, or its config file.
    pub worker: PathBuf,
    /// The `[env.NAME]` section to build, if any.
    pub env: Option<String>,
    /// The build folder (created; its two generated files are overwritten).
    pub out: PathBuf,
    /// The Worker env var the shim reads its control secret from.
    pub secret_var: String,
}

/// What a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The shim entry point.
    pub shim: PathBuf,
    /// The flattened wrangler config, `main` pointing at the shim.
    pub config: PathBuf,
    /// The script name the canary deploys as (and reports on every response).
    pub script: String,
    /// The KV bindings the shim wraps.
    pub kv: Vec<String>,
    /// The Durable Object classes re-exported with a wrapped env.
    pub durable_objects: Vec<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// The Worker's config could not be read.
    #[error(transparent)]
    Config(#[from] WranglerError),
    /// The config lacks something the build needs.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is missing, and the fix.
        message: String,
    },
    /// Writing the build folder failed.
    #[error("cannot write \"{path}\": {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes the build folder for `plan`.
pub fn build(plan: &BuildPlan) -> Result<Built, CanaryError> {
    let file = if plan.worker.is_dir() {
        wrangler::find(&plan.worker).ok_or_else(|| WranglerError::NotFound(plan.worker.clone()))?
    } else {
        plan.worker.clone()
    };
    let config = WranglerConfig::load(&file)?;
    let bindings = config.resolve(plan.env.as_deref())?;
    let invalid = |message: String| CanaryError::Invalid {
        path: file.clone(),
        message,
    };
    let main = bindings
        .main
        .clone()
        .ok_or_else(|| invalid("no `main`: the shim imports the Worker's entry point, so the config must name it, e.g. main = \"src/index.js\"".into()))?;
    let script = bindings.name.clone().ok_or_else(|| {
        invalid(
            "no `name`: the canary is checked by its script name, e.g. name = \"hub-canary\""
                .into(),
        )
    })?;
    if bindings.kv.is_empty() {
        return Err(invalid(format!(
            "{} declares no KV binding ([[kv_namespaces]]): there is nothing for the shim to wrap",
            plan.env
                .as_deref()
                .map_or("the top level".to_owned(), |e| format!("[env.{e}]"))
        )));
    }
    let write = |path: &Path, source| CanaryError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(&plan.out).map_err(|e| write(&plan.out, e))?;
    let out = plan.out.canonicalize().map_err(|e| write(&plan.out, e))?;
    let config_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|e| write(&file, e))?;
    let kv: Vec<String> = bindings.kv.iter().map(|k| k.binding.clone()).collect();
    let classes = bindings.durable_object_classes.clone();
    let import = import_path(&out, &config_dir.join(&main));
    let text = wrangler::read_file(&file)?;
    let doc = wrangler::document(&text, &file)?;
    let mut flat = flatten(doc, plan.env.as_deref(), &script);
    check_entry(&config_dir, &main, &flat).map_err(invalid)?;
    let version = version_binding(&mut flat);
    let shim = fill(&import, &script, &kv, &classes, &plan.secret_var)
        .replace("__KVCHAOS_VERSION_BINDING__", &version);
    let shim_path = out.join(SHIM_FILE);
    std::fs::write(&shim_path, shim).map_err(|e| write(&shim_path, e))?;
    let rebased = rebase(flat, &config_dir, &out, &main);
    let config_path = out.join(CONFIG_FILE);
    let json = serde_json::to_string_pretty(&rebased).expect("a JSON value serialises");
    std::fs::write(&config_path, json + "\n").map_err(|e| write(&config_path, e))?;
    Ok(Built {
        shim: shim_path,
        config: config_path,
        script,
        kv,
        durable_objects: classes,
    })
}

/// The shim with its placeholders filled in.
fn fill(import: &str, script: &str, kv: &[String], classes: &[String], secret_var: &str) -> String {
    let js = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let unquote = |s: String| s[1..s.len() - 1].to_owned();
    let classes: String = classes
        .iter()
        .map(|c| {
            format!(
                "export class {c} extends user.{c} {{\n  constructor(state, env) {{\n    super(state, wrapEnv(env));\n  }}\n}}\n"
            )
        })
        .collect();
    SHIM.replace("__KVCHAOS_USER_MAIN__", &unquote(js(import)))
        .replace("__KVCHAOS_SCRIPT__", &unquote(js(script)))
        .replace("__KVCHAOS_SECRET_VAR__", &unquote(js(secret_var)))
        .replace(
            "__KVCHAOS_KV_BINDINGS__",
            &serde_json::to_string(kv).expect("strings serialise"),
        )
        .replace("__KVCHAOS_DO_CLASSES__", &classes)
}

/// Refuses an entry point the shim cannot wrap (see [`entry`]). A `main` that does not exist
/// yet is fine when the config has a `[build] command`, which writes it before wrangler bundles.
fn check_entry(config_dir: &Path, main: &str, flat: &Value) -> Result<(), String> {
    let path = config_dir.join(main);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) if has_build_command(flat) && !path.exists() => return Ok(()),
        Err(e) => {
            return Err(format!(
                "`main` (\"{main}\") cannot be read as {}: {e}; it must name the Worker's entry point, relative to the config",
                path.display()
            ));
        }
    };
    match entry::refusal(entry::classify(&path, &text), main) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

fn has_build_command(flat: &Value) -> bool {
    flat.get("build")
        .and_then(|b| b.get("command"))
        .and_then(Value::as_str)
        .is_some_and(|c| !c.trim().is_empty())
}

/// The environment's config as one top-level document, with wrangler's inheritance: keys the
/// section sets win, inheritable keys come from the top level, the rest are not inherited.
fn flatten(doc: Value, env: Option<&str>, script: &str) -> Value {
    let Value::Object(mut top) = doc else {
        return doc;
    };
    let envs = top.remove("env");
    let mut out = top;
    if let Some(name) = env {
        let section = envs
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for key in NOT_INHERITED {
            out.remove(*key);
        }
        out.extend(section);
    }
    out.insert("name".into(), Value::String(script.to_owned()));
    Value::Object(out)
}

/// The name of the config's `version_metadata` binding, added as [`VERSION_BINDING`] when the
/// config has none: the shim reports its `id` so `expect_script` may name a version.
fn version_binding(config: &mut Value) -> String {
    let Value::Object(m) = config else {
        return VERSION_BINDING.to_owned();
    };
    let named = m
        .get("version_metadata")
        .and_then(|v| v.get("binding"))
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty() && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if let Some(b) = named {
        return b.to_owned();
    }
    m.insert(
        "version_metadata".into(),
        serde_json::json!({ "binding": VERSION_BINDING }),
    );
    VERSION_BINDING.to_owned()
}

/// Points every path of the config (relative to `config_dir`) at the same file from `out`, and
/// `main` at the shim.
fn rebase(doc: Value, config_dir: &Path, out: &Path, main: &str) -> Value {
    let Value::Object(mut m) = doc else {
        return doc;
    };
    let re = |s: &str| -> String {
        let p = Path::new(s);
        if p.is_absolute() {
            s.to_owned()
        } else {
            relative(out, &config_dir.join(p))
        }
    };
    // Module rules are matched relative to `base_dir`, the entry point's folder by default.
    let main_dir = Path::new(main)
        .parent()
        .map_or_else(String::new, |p| p.display().to_string());
    let base = m
        .get("base_dir")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or(if main_dir.is_empty() {
            ".".into()
        } else {
            main_dir
        });
    m.insert("base_dir".into(), Value::String(re(&base)));
    m.insert("main".into(), Value::String(SHIM_FILE.into()));
    rebase_str(&mut m, "tsconfig", &re);
    for (table, key) in [
        ("build", "cwd"),
        ("assets", "directory"),
        ("site", "bucket"),
    ] {
        if let Some(Value::Object(t)) = m.get_mut(table) {
            rebase_str(t, key, &re);
        }
    }
    if let Some(Value::Object(b)) = m.get_mut("build")
        && !b.contains_key("cwd")
    {
        // A build command runs in the Worker's folder, as it would under wrangler there.
        b.insert("cwd".into(), Value::String(re(".")));
    }
    if let Some(Value::Array(dbs)) = m.get_mut("d1_databases") {
        for db in dbs.iter_mut().filter_map(Value::as_object_mut) {
            let dir = db
                .get("migrations_dir")
                .and_then(Value::as_str)
                .unwrap_or("migrations")
                .to_owned();
            db.insert("migrations_dir".into(), Value::String(re(&dir)));
        }
    }
    if let Some(Value::Object(alias)) = m.get_mut("alias") {
        for v in alias.values_mut() {
            if let Value::String(s) = v
                && (s.starts_with("./") || s.starts_with("../"))
            {
                *s = re(s);
            }
        }
    }
    Value::Object(m)
}

fn rebase_str(m: &mut Map<String, Value>, key: &str, re: &dyn Fn(&str) -> String) {
    if let Some(Value::String(s)) = m.get_mut(key) {
        *s = re(s);
    }
}

/// The import specifier of `target` from a module in `from`: relative, with `./` or `../`.
fn import_path(from: &Path, target: &Path) -> String {
    let r = relative(from, target);
    if r.starts_with("../") {
        r
    } else {
        format!("./{r}")
    }
}

/// `target` relative to the folder `from` (both absolute), with `/` separators.
fn relative(from: &Path, target: &Path) -> String {
    let norm = |p: &Path| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        out
    };
    let (a, b) = (norm(from), norm(target));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); a.len() - common];
    parts.extend(b[common..].iter().cloned());
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests;
