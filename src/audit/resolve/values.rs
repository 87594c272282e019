//! The values a call site's key and options stand for: strings and object literals followed
//! through constants, relative imports and — per calling context — helper parameters; and the
//! calling contexts themselves. Part of [`super::Resolver`].

use super::{Ctx, ObjectOf, Resolver, normalize};
use crate::audit::model::{FnId, Val};

impl Resolver<'_> {
    /// The call sites to evaluate candidate call `op`'s key and options through: one per caller
    /// of the function whose parameter the key (or options) comes from, else `[None]`.
    pub fn contexts(&self, file: usize, op: usize) -> Vec<Ctx> {
        let o = &self.units[file].model.ops[op];
        let from = [o.args.first(), o.args.get(2)]
            .into_iter()
            .flatten()
            .find_map(|v| self.param_fn(file, v, 0));
        let Some(func) = from else {
            return vec![None];
        };
        match self.callers.get(&(file, func)) {
            Some(sites) if sites.len() <= 32 => sites
                .iter()
                .map(|&(cf, ci)| Some((file, func, cf, ci)))
                .collect(),
            _ => vec![None],
        }
    }

    /// The function whose parameter `v` is built from, if any.
    fn param_fn(&self, file: usize, v: &Val, depth: u32) -> Option<FnId> {
        if depth > 8 {
            return None;
        }
        match v {
            Val::Param { func, .. } => Some(*func),
            Val::Concat(l) | Val::Member(l, _) => self.param_fn(file, l, depth + 1),
            Val::Obj(props, _) => props
                .iter()
                .find(|(k, _)| k == "prefix")
                .and_then(|(_, v)| self.param_fn(file, v, depth + 1)),
            Val::Sym(_) => {
                let (f, v) = self.constant(file, v)?;
                (f == file)
                    .then(|| self.param_fn(f, &v, depth + 1))
                    .flatten()
            }
            _ => None,
        }
    }

    /// The argument bound to parameter `index` of `func` through `ctx`, or through the only
    /// caller.
    fn bound_arg(&self, file: usize, func: FnId, index: u32, ctx: Ctx) -> Option<(usize, Val)> {
        let (cf, ci) = match ctx {
            Some((f, id, cf, ci)) if (f, id) == (file, func) => (cf, ci),
            _ => match self.callers.get(&(file, func))?.as_slice() {
                [one] => *one,
                _ => return None,
            },
        };
        let arg = self.units[cf].model.calls[ci].args.get(index as usize)?;
        Some((cf, arg.clone()))
    }

    /// The string `v` stands for: `(text, exact)`, `exact` false for a known prefix. Follows
    /// constants (never reassigned) in this file and through relative imports, and parameters
    /// through `ctx`.
    pub fn string_of(&self, file: usize, v: &Val, ctx: Ctx, depth: u32) -> Option<(String, bool)> {
        if depth > 8 {
            return None;
        }
        match v {
            Val::Str(s) => Some((s.clone(), true)),
            Val::Prefix(s) => Some((s.clone(), false)),
            Val::Concat(l) => self
                .string_of(file, l, ctx, depth + 1)
                .map(|(s, _)| (s, false)),
            Val::Member(obj, prop) => {
                let (f, props, _) = self.object_of(file, obj, ctx, depth + 1)?;
                let (_, v) = props.iter().find(|(k, _)| k == prop)?;
                self.string_of(f, v, ctx, depth + 1)
            }
            Val::Param { func, index } => {
                let (f, v) = self.bound_arg(file, *func, *index, ctx)?;
                self.string_of(f, &v, None, depth + 1)
            }
            _ => {
                let (f, v) = self.constant(file, v)?;
                self.string_of(f, &v, ctx, depth + 1)
            }
        }
    }

    /// The object literal `v` stands for, with the file its values belong to.
    pub fn object_of(&self, file: usize, v: &Val, ctx: Ctx, depth: u32) -> Option<ObjectOf> {
        if depth > 8 {
            return None;
        }
        match v {
            Val::Obj(props, spread) => Some((file, props.clone(), *spread)),
            Val::Param { func, index } => {
                let (f, v) = self.bound_arg(file, *func, *index, ctx)?;
                self.object_of(f, &v, None, depth + 1)
            }
            _ => {
                let (f, v) = self.constant(file, v)?;
                self.object_of(f, &v, ctx, depth + 1)
            }
        }
    }

    /// Whether parameter `index` of `func` is missing at the call site `ctx` names.
    pub fn arg_missing(&self, file: usize, v: &Val, ctx: Ctx) -> bool {
        if let Val::Sym(_) = v
            && let Some((f, inner)) = self.constant(file, v)
        {
            return f == file && self.arg_missing(file, &inner, ctx);
        }
        match (v, ctx) {
            (Val::Param { func, index }, Some((f, id, cf, ci))) if (f, id) == (file, *func) => {
                self.units[cf].model.calls[ci].args.len() <= *index as usize
            }
            _ => false,
        }
    }

    /// The enclosing function and loop flag of the call site `ctx` names.
    pub fn ctx_site(&self, ctx: Ctx) -> Option<(usize, Option<FnId>, bool)> {
        let (_, _, cf, ci) = ctx?;
        let c = &self.units[cf].model.calls[ci];
        Some((cf, c.func, c.in_loop))
    }

    /// The single value of a never-reassigned symbol or of an imported export.
    fn constant(&self, file: usize, v: &Val) -> Option<(usize, Val)> {
        match v {
            Val::Sym(s) => {
                let sym = &self.units[file].model.symbols[*s as usize];
                match (sym.mutated, sym.defs.as_slice()) {
                    (false, [one]) => Some((file, one.clone())),
                    _ => None,
                }
            }
            Val::Import { source, name } => {
                let t = self.import_target(file, source)?;
                Some((t, self.units[t].model.exports.get(name)?.clone()))
            }
            _ => None,
        }
    }

    /// The unit a relative import specifier of `file` names (`./x` → `x.ts`, `x/index.js`, …).
    pub(super) fn import_target(&self, file: usize, source: &str) -> Option<usize> {
        if !source.starts_with("./") && !source.starts_with("../") {
            return None;
        }
        let rel = &self.units[file].rel;
        let dir = rel.rfind('/').map_or("", |i| &rel[..i]);
        let joined = normalize(&format!("{dir}/{source}"))?;
        let stem = joined
            .strip_suffix(".js")
            .or_else(|| joined.strip_suffix(".mjs"))
            .unwrap_or(&joined);
        let exts = ["", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".mts", ".cjs"];
        let candidates = exts
            .iter()
            .map(|e| format!("{joined}{e}"))
            .chain(exts.iter().map(|e| format!("{stem}{e}")))
            .chain(exts.iter().map(|e| format!("{joined}/index{e}")));
        candidates
            .into_iter()
            .find_map(|c| self.by_rel.get(c.as_str()).copied())
    }
}
