//! From resolved candidate calls to [`Finding`]s: key prefix, TTL, handlers and loops through
//! the call graph, category, estimate, fingerprints, ignore comments; then totals and the
//! ranked migration candidates.
//!
//! Owns: assembling findings. Does not own: resolution rules or category rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::classify::{self, Category, Facts};
use super::model::{FileModel, Op, OpCall};
use super::resolve::{Ctx, Names, Resolution};
use super::{Candidate, Finding, Note, Resolver, ScanOptions, Totals, Ttl, Unit, Worker, estimate};

/// Findings (by file, line) and the call sites ignore comments cover.
pub(super) fn findings(
    units: &[Unit],
    names: &[Names],
    workers: &[Worker],
    opts: &ScanOptions,
    notes: &mut Vec<Note>,
) -> (Vec<Finding>, Vec<Note>) {
    let mut r = Resolver::new(units, names);
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for (f, u) in units.iter().enumerate() {
        for ig in u.model.ignores.iter().filter(|i| i.reason.is_none()) {
            notes.push(super::note(
                &u.rel,
                ig.line,
                "kvchaos-audit ignore comment without a reason covers nothing: write `// kvchaos-audit: ignore <reason>`",
            ));
        }
        let mut sites = Vec::new();
        for (i, op) in u.model.ops.iter().enumerate() {
            let Some(res) = r.resolve_op(f, i) else {
                continue;
            };
            if let Some(ig) = u
                .model
                .ignores
                .iter()
                .find(|ig| ig.target_line == op.line && ig.reason.is_some())
            {
                let reason = ig.reason.clone().unwrap_or_default();
                ignored.push(super::note(&u.rel, op.line, &reason));
                continue;
            }
            sites.push((i, res));
        }
        let worker = u.names.min(workers.len());
        let kv_ops: Vec<usize> = sites.iter().map(|s| s.0).collect();
        for (i, res) in &sites {
            let mut variants: Vec<Finding> = Vec::new();
            for ctx in r.contexts(f, *i) {
                let site = Site {
                    file: f,
                    unit: u,
                    op: &u.model.ops[*i],
                    ctx,
                    kv_ops: &kv_ops,
                };
                let new = site.finding(&r, res, workers.get(worker), opts);
                // Callers that give the same key prefix and TTL make one finding.
                match variants.iter_mut().find(|v| {
                    (&v.key_prefix, v.key_exact, v.ttl) == (&new.key_prefix, new.key_exact, new.ttl)
                }) {
                    Some(v) => {
                        let mut h: BTreeSet<String> = v.handlers.drain(..).collect();
                        h.extend(new.handlers);
                        v.handlers = h.into_iter().collect();
                        v.in_loop |= new.in_loop;
                        let ticks = workers.get(worker).map_or(0, |w| w.ticks);
                        let op = u.model.ops[*i].op;
                        v.estimate =
                            estimate::estimate(op, &v.handlers, v.in_loop, opts.loop_factor, ticks);
                    }
                    None => variants.push(new),
                }
            }
            out.extend(variants);
        }
    }
    cache_families(&mut out);
    fingerprint(&mut out);
    (out, ignored)
}

/// One candidate call under one calling context.
struct Site<'u> {
    file: usize,
    unit: &'u Unit,
    op: &'u OpCall,
    ctx: Ctx,
    kv_ops: &'u [usize],
}

impl Site<'_> {
    fn finding(
        &self,
        r: &Resolver<'_>,
        res: &Resolution,
        worker: Option<&Worker>,
        opts: &ScanOptions,
    ) -> Finding {
        let (f, u, op, ctx) = (self.file, self.unit, self.op, self.ctx);
        let bindings = res.bindings.join("|");
        let (prefix, exact) = key_of(r, f, op, ctx).map_or((None, false), |(p, e)| (Some(p), e));
        let ttl = ttl_of(r, f, op, ctx);
        let get_then_put = get_then_put(r, f, &u.model, op, self.kv_ops, ctx);
        let (handlers, looped) = match r.ctx_site(ctx) {
            Some((cf, func, call_loop)) => {
                let (h, l) = r.reach(cf, func);
                (h, l || call_loop)
            }
            None => r.reach(f, op.func),
        };
        let handlers: Vec<String> = handlers.into_iter().collect();
        let function = op.func.map_or("<top-level>".to_owned(), |id| {
            u.model.functions[id as usize].name.clone()
        });
        let in_handler = handlers.iter().any(|h| h != "module" && h != "unreached");
        let facts = Facts {
            prefix: prefix.as_deref(),
            binding: &bindings,
            function: &function,
            is_list: op.op == Op::List,
            ttl: ttl == Ttl::Yes,
            get_then_put,
            in_handler,
        };
        let (category, rule) = classify::classify(&facts);
        let ticks = worker.map_or(0, |w| w.ticks);
        let in_loop = op.in_loop || looped;
        Finding {
            file: u.rel.clone(),
            line: op.line,
            column: op.column,
            worker: worker.map_or_else(|| "(shared)".to_owned(), |w| w.name.clone()),
            op: op.op.as_str().to_owned(),
            status: res.status,
            bindings: res.bindings.clone(),
            key_prefix: prefix,
            key_exact: exact,
            ttl,
            function,
            estimate: estimate::estimate(op.op, &handlers, in_loop, opts.loop_factor, ticks),
            handlers,
            in_loop,
            category,
            target: classify::target(&rule).to_owned(),
            rule,
            call: op.call_text.clone(),
            fingerprint: String::new(),
            site: String::new(),
            measured: None,
        }
    }
}

/// Reads and deletes of a key family that is only ever put with a TTL are cache too.
fn cache_families(out: &mut [Finding]) {
    let mut ttl_families: HashMap<(Vec<String>, String), bool> = HashMap::new();
    for f in out.iter().filter(|f| f.op == "put") {
        let key = (f.bindings.clone(), f.key_prefix.clone().unwrap_or_default());
        let e = ttl_families.entry(key).or_insert(true);
        *e &= f.ttl == Ttl::Yes;
    }
    for f in out.iter_mut() {
        let key = (f.bindings.clone(), f.key_prefix.clone().unwrap_or_default());
        if f.op != "put"
            && f.rule == "no control-plane signal"
            && ttl_families.get(&key).copied().unwrap_or(false)
        {
            f.rule = "ttl-cache (its key family is put with a TTL)".to_owned();
            f.category = Category::C;
            f.target = classify::target(&f.rule).to_owned();
        }
    }
}

/// Fingerprints stable when lines move: FNV-1a over rule, file, call and function, with an
/// occurrence number for identical calls in one function.
fn fingerprint(out: &mut [Finding]) {
    let mut seen: HashMap<(String, String, String, String), u32> = HashMap::new();
    for f in out.iter_mut() {
        let prefix = f.key_prefix.clone().unwrap_or_else(|| "?".into());
        let n = seen
            .entry((
                f.file.clone(),
                f.call.clone(),
                f.function.clone(),
                prefix.clone(),
            ))
            .or_insert(0);
        let site = format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{prefix}\u{1f}{n}",
            f.file, f.call, f.function
        );
        *n += 1;
        let rule = f.rule.split(" (").next().unwrap_or(&f.rule);
        f.site = fnv(&site);
        f.fingerprint = fnv(&format!("{rule}\u{1f}{site}"));
    }
}

/// FNV-1a, 64 bits, as 16 hex digits (an id, not a security measure).
pub(super) fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn key_of(r: &Resolver<'_>, file: usize, op: &OpCall, ctx: Ctx) -> Option<(String, bool)> {
    let Some(first) = op.args.first() else {
        // `list()` without options lists every key.
        return (op.op == Op::List).then(|| (String::new(), false));
    };
    if op.op == Op::List {
        let (f, props, _) = r.object_of(file, first, ctx, 0)?;
        let Some((_, p)) = props.iter().find(|(k, _)| k == "prefix") else {
            return Some((String::new(), false));
        };
        return r.string_of(f, p, ctx, 0).map(|(s, _)| (s, false));
    }
    r.string_of(file, first, ctx, 0)
}

fn ttl_of(r: &Resolver<'_>, file: usize, op: &OpCall, ctx: Ctx) -> Ttl {
    if op.op != Op::Put {
        return Ttl::NotApplicable;
    }
    let Some(opts) = op.args.get(2) else {
        return Ttl::No;
    };
    if r.arg_missing(file, opts, ctx) {
        return Ttl::No;
    }
    match r.object_of(file, opts, ctx, 0) {
        Some((_, props, spread)) => {
            if props
                .iter()
                .any(|(k, _)| k == "expirationTtl" || k == "expiration")
            {
                Ttl::Yes
            } else if spread {
                Ttl::Unknown
            } else {
                Ttl::No
            }
        }
        None => Ttl::Unknown,
    }
}

/// A get and a later put without a TTL of the same key text in one function (a
/// read-modify-write race; a read-through cache, whose put has a TTL, is not one).
fn get_then_put(
    r: &Resolver<'_>,
    file: usize,
    m: &FileModel,
    op: &OpCall,
    kv_ops: &[usize],
    ctx: Ctx,
) -> bool {
    if op.key_text.is_empty() || op.func.is_none() {
        return false;
    }
    let same = |o: &&OpCall| o.func == op.func && o.key_text == op.key_text;
    let ops: Vec<&OpCall> = kv_ops.iter().map(|i| &m.ops[*i]).filter(same).collect();
    let first_get = ops
        .iter()
        .filter(|o| matches!(o.op, Op::Get | Op::GetWithMetadata))
        .map(|o| o.line)
        .min();
    let last_put = ops
        .iter()
        .filter(|o| o.op == Op::Put && ttl_of(r, file, o, ctx) != Ttl::Yes)
        .map(|o| o.line)
        .max();
    matches!((first_get, last_put), (Some(g), Some(p)) if g <= p)
        && matches!(op.op, Op::Get | Op::GetWithMetadata | Op::Put)
}

/// Counts for the baseline.
pub(super) fn totals(findings: &[Finding]) -> Totals {
    let mut t = Totals {
        total: findings.len() as u64,
        ..Totals::default()
    };
    for f in findings {
        *t.by_op.entry(f.op.clone()).or_default() += 1;
        *t.by_category
            .entry(format!("{:?}", f.category))
            .or_default() += 1;
        let status = serde_json::to_value(f.status).ok();
        let status = status
            .as_ref()
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned();
        *t.by_status.entry(status).or_default() += 1;
        if f.op == "put" && f.ttl == Ttl::No {
            t.puts_without_ttl += 1;
        }
    }
    t
}

/// The top 10 key families to migrate: control plane first, then by TTL-less puts, lists,
/// loops and estimated volume.
pub(super) fn candidates(findings: &[Finding]) -> Vec<Candidate> {
    let mut families: BTreeMap<(String, String), Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        let prefix = f
            .key_prefix
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "*".into());
        families
            .entry((f.bindings.join("|"), prefix))
            .or_default()
            .push(f);
    }
    let mut scored: Vec<(u64, Candidate)> = families
        .into_iter()
        .map(|((binding, prefix), fs)| family(binding, prefix, &fs))
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.prefix.cmp(&b.1.prefix)));
    scored
        .into_iter()
        .take(10)
        .enumerate()
        .map(|(i, (_, mut c))| {
            c.rank = i as u32 + 1;
            c
        })
        .collect()
}

/// One key family's rank score and candidate entry.
fn family(binding: String, prefix: String, fs: &[&Finding]) -> (u64, Candidate) {
    let best = fs
        .iter()
        .min_by_key(|f| f.category)
        .copied()
        .unwrap_or(fs[0]);
    let no_ttl = fs
        .iter()
        .filter(|f| f.op == "put" && f.ttl == Ttl::No)
        .count() as u64;
    let lists = fs.iter().filter(|f| f.op == "list").count() as u64;
    let looped = fs.iter().filter(|f| f.in_loop).count() as u64;
    let per_day: f64 = fs.iter().filter_map(|f| f.estimate.per_day).sum();
    let weight = match best.category {
        Category::A => 3_000,
        Category::B => 2_000,
        Category::C => 1_000,
    };
    let score = weight
        + no_ttl * 50
        + lists * 60
        + looped * 20
        + (per_day as u64 / 100).min(400)
        + fs.len() as u64;
    let handlers: BTreeSet<&str> = fs
        .iter()
        .flat_map(|f| f.handlers.iter().map(String::as_str))
        .collect();
    let mut why = vec![format!("{} call sites", fs.len())];
    if no_ttl > 0 {
        why.push(format!("{no_ttl} puts without TTL"));
    }
    if lists > 0 {
        why.push(format!("{lists} lists"));
    }
    if looped > 0 {
        why.push(format!("{looped} in loops"));
    }
    if per_day > 0.0 {
        why.push(format!("~{per_day:.0} ops/day from crons"));
    }
    why.push(format!(
        "reached from {}",
        handlers.into_iter().collect::<Vec<_>>().join(", ")
    ));
    let c = Candidate {
        rank: 0,
        binding,
        prefix,
        category: best.category,
        rule: best.rule.clone(),
        target: best.target.clone(),
        sites: fs.len() as u32,
        locations: fs
            .iter()
            .map(|f| format!("{}:{}", f.file, f.line))
            .collect(),
        why: why.join("; "),
    };
    (score, c)
}
