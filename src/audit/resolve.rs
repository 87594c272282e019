//! Resolution: which declared KV binding (if any) reaches each candidate call's receiver, by
//! following the values of the file models — aliases, destructuring, `this.field`, parameters
//! through their call sites, relative imports across files — and which handlers reach each
//! function through the call graph.
//!
//! Owns: the abstract interpretation over [`FileModel`]s. Does not own: parsing (`js.rs`),
//! categories or estimates. Never guesses: a receiver that only *might* be a namespace is
//! `Unknown`, one that may be several is `Ambiguous`.

use std::collections::{BTreeSet, HashMap, HashSet};

mod values;

use super::model::{ClassKind, FileModel, FnId, Role, SymId, Val};

/// How far value chains are followed (aliases of aliases of parameters …).
const MAX_DEPTH: u32 = 24;

/// The names the wrangler config of a file's Worker declares.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// KV namespace bindings (every environment).
    pub kv: BTreeSet<String>,
    /// Every other binding and var name (R2, D1, Durable Objects, vars).
    pub other: BTreeSet<String>,
}

/// One parsed file of the project.
#[derive(Debug)]
pub struct Unit {
    /// Path relative to the root, `/`-separated.
    pub rel: String,
    /// The model.
    pub model: FileModel,
    /// The names its Worker declares.
    pub names: usize,
}

/// What a value may be.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Abs {
    Env,
    Kv(String),
    /// `env.NAME` with a name no config declares, or `env[expr]`.
    EnvUnknown,
    /// An untraceable value's `.NAME` where NAME is a declared KV binding.
    OpaqueKv(String),
    Opaque,
    This(usize, u32),
    Module(usize),
    Fn(usize, FnId),
    /// An object literal of a file (its property values resolve on member access).
    Obj(usize, Val),
    NotKv,
}

/// A call site a parameter is bound through: (callee file, callee function, caller file, call
/// index). `None`: no particular one.
pub type Ctx = Option<(usize, FnId, usize, usize)>;

/// An object literal: the file its values belong to, its properties, whether it spreads.
pub type ObjectOf = (usize, Vec<(String, Val)>, bool);

/// How sure the audit is about a call's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Exactly one declared KV binding reaches it.
    Resolved,
    /// Several bindings, or a binding and something else, reach it (or the variable is
    /// reassigned).
    Ambiguous,
    /// It comes from the Worker's env, or from an untraceable value, under a name the audit
    /// cannot tie to one declared KV binding.
    Unknown,
}

/// The resolution of one candidate call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// How sure.
    pub status: Status,
    /// The KV bindings that may reach it (one when resolved).
    pub bindings: Vec<String>,
}

/// The whole project, ready to answer questions.
pub struct Resolver<'p> {
    units: &'p [Unit],
    names: &'p [Names],
    by_rel: HashMap<&'p str, usize>,
    /// (file, function) → the calls that call it: (file, index into `calls`).
    callers: HashMap<(usize, FnId), Vec<(usize, usize)>>,
    cache: HashMap<(usize, SymId), (Vec<Abs>, bool)>,
    busy: HashSet<(usize, SymId)>,
}

type Flow = (Vec<Abs>, bool);

impl<'p> Resolver<'p> {
    /// Indexes the project and builds its call graph.
    pub fn new(units: &'p [Unit], names: &'p [Names]) -> Self {
        let by_rel = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.rel.as_str(), i))
            .collect();
        let mut r = Resolver {
            units,
            names,
            by_rel,
            callers: HashMap::new(),
            cache: HashMap::new(),
            busy: HashSet::new(),
        };
        // Two passes: callees reached through parameters resolve once the first pass's edges
        // exist. Values cached while the graph was incomplete are dropped after each.
        for _ in 0..2 {
            let mut callers: HashMap<(usize, FnId), Vec<(usize, usize)>> = HashMap::new();
            for (f, u) in units.iter().enumerate() {
                for (ci, call) in u.model.calls.iter().enumerate() {
                    for a in r.eval(f, &call.callee, 0).0 {
                        if let Abs::Fn(tf, tfn) = a {
                            callers.entry((tf, tfn)).or_default().push((f, ci));
                        }
                    }
                }
            }
            r.callers = callers;
            r.cache.clear();
        }
        r
    }

    /// Resolves the receiver of candidate call `op` of file `file`; `None`: not KV.
    pub fn resolve_op(&mut self, file: usize, op: usize) -> Option<Resolution> {
        let recv = &self.units[file].model.ops[op].recv;
        let (abs, mutated) = self.eval(file, recv, 0);
        let kv: BTreeSet<String> = abs
            .iter()
            .filter_map(|a| match a {
                Abs::Kv(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let unknown: BTreeSet<String> = abs
            .iter()
            .filter_map(|a| match a {
                Abs::OpaqueKv(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        let env_unknown = abs.contains(&Abs::EnvUnknown);
        let others = abs.iter().any(|a| !matches!(a, Abs::Kv(_)));
        let status = match kv.len() {
            0 if !unknown.is_empty() || env_unknown => Status::Unknown,
            0 => return None,
            1 if !others && !mutated => Status::Resolved,
            _ => Status::Ambiguous,
        };
        let bindings = if kv.is_empty() { unknown } else { kv };
        Some(Resolution {
            status,
            bindings: bindings.into_iter().collect(),
        })
    }

    fn names(&self, file: usize) -> &'p Names {
        &self.names[self.units[file].names]
    }

    fn eval(&mut self, file: usize, v: &Val, depth: u32) -> Flow {
        if depth > MAX_DEPTH {
            return (vec![Abs::Opaque], false);
        }
        match v {
            Val::Str(_) | Val::Prefix(_) | Val::Concat(_) | Val::Other => (vec![Abs::NotKv], false),
            Val::Obj(..) => (vec![Abs::Obj(file, v.clone())], false),
            Val::Call(callee) => {
                let (abs, m) = self.eval(file, callee, depth + 1);
                let mut out = Vec::new();
                for a in abs {
                    if let Abs::Fn(f, id) = a {
                        let returns = self.units[f].model.functions[id as usize].returns.clone();
                        for r in &returns {
                            out.extend(self.eval(f, r, depth + 1).0);
                        }
                    }
                }
                if out.is_empty() {
                    out.push(Abs::NotKv);
                }
                (dedup(out), m)
            }
            Val::Sym(s) => self.eval_sym(file, *s, depth),
            Val::Global(name) => {
                let n = self.names(file);
                let a = if n.kv.contains(name) {
                    Abs::Kv(name.clone())
                } else if n.other.contains(name) {
                    Abs::NotKv
                } else {
                    Abs::Opaque
                };
                (vec![a], false)
            }
            Val::Member(base, prop) => {
                let (abs, m) = self.eval(file, base, depth + 1);
                let mut out = Vec::new();
                let mut mutated = m;
                for a in abs {
                    let (more, m2) = self.member(file, a, prop, depth);
                    mutated |= m2;
                    out.extend(more);
                }
                (dedup(out), mutated)
            }
            Val::Dynamic(base) => {
                let (abs, m) = self.eval(file, base, depth + 1);
                let out = abs
                    .into_iter()
                    .map(|a| match a {
                        Abs::Env => Abs::EnvUnknown,
                        Abs::Opaque => Abs::Opaque,
                        _ => Abs::NotKv,
                    })
                    .collect();
                (dedup(out), m)
            }
            Val::This(Some(c)) => (vec![Abs::This(file, *c)], false),
            Val::This(None) => (vec![Abs::Opaque], false),
            Val::Func(f) => (vec![Abs::Fn(file, *f)], false),
            Val::Param { func, index } => self.eval_param(file, *func, *index, depth),
            Val::Import { source, name } => self.eval_import(file, source, name, depth),
            Val::Union(vs) => {
                let mut out = Vec::new();
                let mut mutated = false;
                for v in vs {
                    let (a, m) = self.eval(file, v, depth + 1);
                    out.extend(a);
                    mutated |= m;
                }
                (dedup(out), mutated)
            }
        }
    }

    fn member(&mut self, file: usize, a: Abs, prop: &str, depth: u32) -> Flow {
        let n = self.names(file);
        let one = |a| (vec![a], false);
        match a {
            Abs::Env if n.kv.contains(prop) => one(Abs::Kv(prop.to_owned())),
            Abs::Env if n.other.contains(prop) => one(Abs::NotKv),
            Abs::Env => one(Abs::EnvUnknown),
            Abs::Opaque if prop == "env" => one(Abs::Env),
            Abs::Opaque if n.kv.contains(prop) => one(Abs::OpaqueKv(prop.to_owned())),
            Abs::Opaque => one(Abs::Opaque),
            Abs::This(f, c) => {
                let class = &self.units[f].model.classes[c as usize];
                match class.fields.get(prop) {
                    Some(defs) => {
                        let defs = defs.clone();
                        let mutated = defs.len() > 1;
                        let mut out = Vec::new();
                        for d in &defs {
                            out.extend(self.eval(f, d, depth + 1).0);
                        }
                        (dedup(out), mutated)
                    }
                    None if prop == "env" && class.kind != ClassKind::Plain => one(Abs::Env),
                    None => one(Abs::Opaque),
                }
            }
            Abs::Module(f) => self.eval_export(f, prop, depth),
            Abs::Obj(f, Val::Obj(props, _)) => match props.iter().find(|(k, _)| k == prop) {
                Some((_, v)) => self.eval(f, &v.clone(), depth + 1),
                None => one(Abs::NotKv),
            },
            _ => one(Abs::NotKv),
        }
    }

    fn eval_sym(&mut self, file: usize, s: SymId, depth: u32) -> Flow {
        if let Some(hit) = self.cache.get(&(file, s)) {
            return hit.clone();
        }
        if !self.busy.insert((file, s)) {
            return (Vec::new(), false);
        }
        let sym = &self.units[file].model.symbols[s as usize];
        let mutated = sym.mutated || sym.defs.len() > 1;
        let mut out = Vec::new();
        let mut m = mutated;
        if sym.defs.is_empty() {
            out.push(Abs::Opaque);
        }
        for d in sym.defs.clone() {
            let (a, m2) = self.eval(file, &d, depth + 1);
            out.extend(a);
            m |= m2;
        }
        self.busy.remove(&(file, s));
        let flow = (dedup(out), m);
        self.cache.insert((file, s), flow.clone());
        flow
    }

    fn eval_param(&mut self, file: usize, func: FnId, index: u32, depth: u32) -> Flow {
        let model = &self.units[file].model;
        let f = &model.functions[func as usize];
        let is_env = match &f.role {
            Some(Role::Handler(_)) => index == 1,
            Some(Role::DurableObject(m)) => m.ends_with("constructor") && index == 1,
            _ => false,
        };
        if is_env {
            return (vec![Abs::Env], false);
        }
        let Some(sites) = self.callers.get(&(file, func)).cloned() else {
            return (vec![Abs::Opaque], false);
        };
        let mut out = Vec::new();
        let mut mutated = false;
        for (cf, ci) in sites {
            let arg = self.units[cf].model.calls[ci].args.get(index as usize);
            match arg {
                Some(a) => {
                    let (abs, m) = self.eval(cf, &a.clone(), depth + 1);
                    out.extend(abs);
                    mutated |= m;
                }
                None => out.push(Abs::NotKv),
            }
        }
        (dedup(out), mutated)
    }

    fn eval_import(&mut self, file: usize, source: &str, name: &str, depth: u32) -> Flow {
        if source == "cloudflare:workers" && name == "env" {
            return (vec![Abs::Env], false);
        }
        let Some(target) = self.import_target(file, source) else {
            return (vec![Abs::Opaque], false);
        };
        if name == "*" {
            return (vec![Abs::Module(target)], false);
        }
        self.eval_export(target, name, depth)
    }

    fn eval_export(&mut self, file: usize, name: &str, depth: u32) -> Flow {
        match self.units[file].model.exports.get(name).cloned() {
            Some(v) => self.eval(file, &v, depth + 1),
            None => (vec![Abs::Opaque], false),
        }
    }

    /// The handler roles that reach function `func` of `file` through the call graph (its own
    /// when it has one), and whether a loop lies on the way.
    pub fn reach(&self, file: usize, func: Option<FnId>) -> (BTreeSet<String>, bool) {
        let mut roles = BTreeSet::new();
        let mut looped = false;
        let mut seen = HashSet::new();
        let mut stack = vec![(file, func)];
        while let Some((f, func)) = stack.pop() {
            let Some(id) = func else {
                roles.insert("module".to_owned());
                continue;
            };
            if !seen.insert((f, id)) || seen.len() > 256 {
                continue;
            }
            let fm = &self.units[f].model.functions[id as usize];
            if fm.loop_body && (f, id) != (file, func.unwrap_or(u32::MAX)) {
                looped = true;
            }
            if let Some(role) = &fm.role {
                roles.insert(role_name(role));
                continue;
            }
            match self.callers.get(&(f, id)) {
                Some(sites) => {
                    for &(cf, ci) in sites {
                        let call = &self.units[cf].model.calls[ci];
                        looped |= call.in_loop;
                        stack.push((cf, call.func));
                    }
                }
                None => {
                    roles.insert("unreached".to_owned());
                }
            }
        }
        (roles, looped)
    }
}

/// How a role is shown.
pub fn role_name(r: &Role) -> String {
    match r {
        Role::Handler(h) => h.clone(),
        Role::Route => "fetch".to_owned(),
        Role::DurableObject(m) => {
            let method = m.rsplit('.').next().unwrap_or(m);
            if method == "alarm" {
                "alarm".to_owned()
            } else {
                format!("durable-object:{method}")
            }
        }
        Role::Rpc(m) => format!("rpc:{}", m.rsplit('.').next().unwrap_or(m)),
    }
}

fn dedup(mut v: Vec<Abs>) -> Vec<Abs> {
    v.sort();
    v.dedup();
    v
}

/// `a/./b/../c` → `a/c`; `None` when it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::js::model_file;
    use std::path::Path;

    fn names() -> Vec<Names> {
        vec![Names {
            kv: ["KV", "CACHE", "OTHER"].map(String::from).into(),
            other: ["BUCKET", "DB"].map(String::from).into(),
        }]
    }

    fn resolve(files: &[(&str, &str)]) -> Vec<(String, u32, Option<Resolution>)> {
        let units: Vec<Unit> = files
            .iter()
            .map(|(rel, src)| Unit {
                rel: rel.to_string(),
                model: model_file(Path::new(rel), src).unwrap(),
                names: 0,
            })
            .collect();
        let n = names();
        let mut r = Resolver::new(&units, &n);
        let mut out = Vec::new();
        for (f, u) in units.iter().enumerate() {
            for (i, op) in u.model.ops.iter().enumerate() {
                out.push((u.rel.clone(), op.line, r.resolve_op(f, i)));
            }
        }
        out
    }

    fn one(src: &str) -> Vec<Option<(Status, Vec<String>)>> {
        resolve(&[("src/index.ts", src)])
            .into_iter()
            .map(|(_, _, r)| r.map(|r| (r.status, r.bindings)))
            .collect()
    }

    fn res(b: &str) -> Option<(Status, Vec<String>)> {
        Some((Status::Resolved, vec![b.to_owned()]))
    }

    #[test]
    fn forms_resolve_to_the_declared_binding() {
        let got = one(r#"
            import { env as wenv } from "cloudflare:workers";
            export default {
              async fetch(req, env) {
                await env.KV.get("a");
                const cache = env.CACHE; await cache.put("b", "v");
                const { KV } = env; await KV.delete("c");
                const { CACHE: c2 } = env; await c2.list();
                await wenv.OTHER.get("d");
                await helper(env.KV);
              },
            };
            async function helper(ns) { return ns.get("e"); }
        "#);
        assert_eq!(
            got,
            vec![
                res("KV"),
                res("CACHE"),
                res("KV"),
                res("CACHE"),
                res("OTHER"),
                res("KV")
            ]
        );
    }

    #[test]
    fn lookalikes_are_not_kv() {
        let got = one(r#"
            export default {
              async fetch(req, env, ctx) {
                await env.BUCKET.put("k", "v");
                await caches.default.put(req, new Response("x"));
                const cache = await caches.open("x"); await cache.put(req, res);
                const m = new Map(); m.get("k"); m.delete("k");
                const h = new Headers(); h.get("x");
                new URLSearchParams("").get("a");
                const CACHE = new Map(); CACHE.get("x");
              },
            };
            export class Room extends DurableObject {
              async fetch(r) { await this.ctx.storage.put("k", 1); }
            }
        "#);
        assert!(got.iter().all(Option::is_none), "{got:?}");
    }

    #[test]
    fn reassignment_and_several_bindings_are_ambiguous() {
        let got = one(r#"
            export default { async fetch(req, env) {
              let kv = env.KV; if (req.url) kv = env.CACHE; await kv.get("x");
              const pick = req.method === "GET" ? env.KV : env.OTHER; await pick.get("y");
              await env[req.headers.get("ns")].get("z");
              await env.UNDECLARED.get("w");
            } };
        "#);
        let statuses: Vec<Status> = got.iter().flatten().map(|r| r.0).collect();
        // The computed `env[...]` member call is a get on `env[...]`, and `req.headers.get`
        // is not KV.
        assert_eq!(
            statuses,
            vec![
                Status::Ambiguous,
                Status::Ambiguous,
                Status::Unknown,
                Status::Unknown
            ],
            "{got:?}"
        );
    }

    #[test]
    fn helpers_resolve_across_files_and_this_env_and_hono() {
        let got = resolve(&[
            (
                "src/index.ts",
                r#"import { touch } from "./lib/store";
                   import { Hono } from "hono";
                   const app = new Hono();
                   app.get("/x", async (c) => { await c.env.KV.get("h"); return c.text("ok"); });
                   export default { fetch: app.fetch, async scheduled(e, env) { await touch(env.CACHE, "t"); } };
                   export class Lock extends DurableObject { async alarm() { await this.env.KV.delete("l"); } }
                   export class Api extends WorkerEntrypoint { async rpc() { this.kv = this.env.OTHER; return this.kv.get("r"); } }"#,
            ),
            (
                "src/lib/store.ts",
                "export async function touch(ns: KVNamespace, k: string) { await ns.put(k, '1'); }",
            ),
        ]);
        let got: Vec<_> = got
            .into_iter()
            .filter_map(|(f, _, r)| r.map(|r| (f, Some((r.status, r.bindings)))))
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].1, res("KV"));
        assert_eq!(got[1].1, res("KV"));
        assert_eq!(got[2].1, res("OTHER"));
        assert_eq!(got[3], ("src/lib/store.ts".into(), res("CACHE")));
    }

    #[test]
    fn destructured_params_nested_patterns_and_globals() {
        let got = one(r#"
            export default { async fetch(req, { KV, BUCKET }) {
              await KV.get("a"); await BUCKET.get("b");
            } };
            addEventListener("fetch", (e) => e.respondWith(CACHE.get("sw")));
            const route = async (c) => { const { env: { OTHER } } = c; return OTHER.list(); };
            function shadow(CACHE) { return CACHE.get("param, not the binding"); }
        "#);
        let found: Vec<_> = got.into_iter().flatten().collect();
        assert_eq!(
            found,
            vec![
                (Status::Resolved, vec!["KV".to_owned()]),
                (Status::Resolved, vec!["CACHE".to_owned()]),
                (Status::Resolved, vec!["OTHER".to_owned()]),
            ]
        );
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("src/./a/../b").as_deref(), Some("src/b"));
        assert_eq!(normalize("../x"), None);
    }
}
