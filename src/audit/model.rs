//! The parser-independent model of one JS/TS file that the audit reasons about: symbols and
//! the values that flow into them, functions (with the handler role the syntax gives them),
//! classes, KV-shaped calls (`x.get/put/delete/list/getWithMetadata(...)`), every other call
//! (for the call graph), exports and `kvchaos-audit:` comments.
//!
//! Owns: the data types only. Does not own: building them (`js.rs`, the one place that knows
//! oxc) or resolving them to bindings (`resolve.rs`).

use std::collections::BTreeMap;

/// A symbol of one file (an index into [`FileModel::symbols`]).
pub type SymId = u32;
/// A function of one file (an index into [`FileModel::functions`]).
pub type FnId = u32;
/// A class of one file (an index into [`FileModel::classes`]).
pub type ClassId = u32;

/// A value as the syntax shows it, before resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Val {
    /// A string known exactly (literal, or a template without expressions).
    Str(String),
    /// A string known to start with this text (template head, `"a:" + x`).
    Prefix(String),
    /// `left + something`: a string starting with whatever `left` is.
    Concat(Box<Val>),
    /// An object literal: static keys and their values; `true` when it has a spread.
    Obj(Vec<(String, Val)>, bool),
    /// A reference to a symbol declared in this file.
    Sym(SymId),
    /// A reference no declaration in scope resolves (a global).
    Global(String),
    /// `object.property` (also `object["literal"]` and destructuring `{ property }`).
    Member(Box<Val>, String),
    /// `object[expression]` with a computed key.
    Dynamic(Box<Val>),
    /// `this`, inside a class when known.
    This(Option<ClassId>),
    /// A function expression or declaration.
    Func(FnId),
    /// A function's parameter by position (destructured parameters are `Member`s of it).
    Param {
        /// The function.
        func: FnId,
        /// The position, from 0.
        index: u32,
    },
    /// An imported name (`*` for a namespace import, `default` for a default import).
    Import {
        /// The module specifier as written.
        source: String,
        /// The exported name.
        name: String,
    },
    /// What a call of the callee returns (`kvStore(env.KV)`, `await getKv()`).
    Call(Box<Val>),
    /// One of several values (`a ? b : c`, `a || b`, `a ?? b`).
    Union(Vec<Val>),
    /// Anything else: numbers, `new X()`, call results, … — never a KV namespace by itself.
    Other,
}

/// A declared symbol and every value assigned to it that the syntax shows.
#[derive(Debug, Clone, Default)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// The initializer and each assignment.
    pub defs: Vec<Val>,
    /// Written after its declaration (scope analysis says so), so what it holds may change.
    pub mutated: bool,
}

/// What runs a function, as its syntactic position tells.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A Worker handler (`fetch`, `scheduled`, `queue`, `email`, `tail`) of an object or of a
    /// `WorkerEntrypoint` class.
    Handler(String),
    /// A route callback (`app.get("/x", (c) => …)`, hono and the like): per request.
    Route,
    /// A Durable Object method (`alarm`, `fetch`, the constructor or an RPC method).
    DurableObject(String),
    /// A `WorkerEntrypoint` RPC method.
    Rpc(String),
}

/// One function.
#[derive(Debug, Clone, Default)]
pub struct Function {
    /// The name to show (`fetch`, `Counter.alarm`, `handle`, `<anonymous>`).
    pub name: String,
    /// The role, when its position gives one.
    pub role: Option<Role>,
    /// The class it is a method of.
    pub class: Option<ClassId>,
    /// Its body runs once per element (a callback of `.map`, `.forEach`, …).
    pub loop_body: bool,
    /// 1-based line of its start.
    pub line: u32,
    /// What its `return` statements (or expression body) give.
    pub returns: Vec<Val>,
}

/// What kind of class, from its `extends` clause and methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassKind {
    /// `extends DurableObject`, or a class with an `alarm` method.
    DurableObject,
    /// `extends WorkerEntrypoint`.
    Entrypoint,
    /// Anything else.
    #[default]
    Plain,
}

/// One class.
#[derive(Debug, Clone, Default)]
pub struct Class {
    /// Its name (`<anonymous>` for a class expression without one).
    pub name: String,
    /// Its kind.
    pub kind: ClassKind,
    /// `this.field = value` assignments and field initializers, by field.
    pub fields: BTreeMap<String, Vec<Val>>,
}

/// The KV method names the audit looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `get`.
    Get,
    /// `getWithMetadata`.
    GetWithMetadata,
    /// `put`.
    Put,
    /// `delete`.
    Delete,
    /// `list`.
    List,
}

impl Op {
    /// The method name for a property name, when it is one of the KV methods.
    pub fn from_name(name: &str) -> Option<Op> {
        Some(match name {
            "get" => Op::Get,
            "getWithMetadata" => Op::GetWithMetadata,
            "put" => Op::Put,
            "delete" => Op::Delete,
            "list" => Op::List,
            _ => return None,
        })
    }

    /// The method name.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetWithMetadata => "getWithMetadata",
            Op::Put => "put",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }
}

/// `receiver.op(args…)` with `op` one of [`Op`]: a candidate KV call.
#[derive(Debug, Clone)]
pub struct OpCall {
    /// The method.
    pub op: Op,
    /// The receiver.
    pub recv: Val,
    /// The arguments.
    pub args: Vec<Val>,
    /// The first argument's source text, whitespace removed (same-key detection).
    pub key_text: String,
    /// `receiver.op(first argument)`, whitespace removed and cut to 160 bytes.
    pub call_text: String,
    /// The enclosing function (`None` at module top level).
    pub func: Option<FnId>,
    /// Lexically inside a loop of its function (or of a loop callback).
    pub in_loop: bool,
    /// 1-based line and column.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// Any other call whose callee may be a function of the project.
#[derive(Debug, Clone)]
pub struct Call {
    /// The callee.
    pub callee: Val,
    /// The arguments.
    pub args: Vec<Val>,
    /// The enclosing function.
    pub func: Option<FnId>,
    /// Lexically inside a loop.
    pub in_loop: bool,
}

/// A `// kvchaos-audit: ignore …` or `ignore-next …` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreComment {
    /// The line it covers (its own for `ignore`, the next for `ignore-next`).
    pub target_line: u32,
    /// The line it is on.
    pub line: u32,
    /// The reason given; `None` when missing (the comment then covers nothing).
    pub reason: Option<String>,
}

/// One file, modelled.
#[derive(Debug, Clone, Default)]
pub struct FileModel {
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// Functions.
    pub functions: Vec<Function>,
    /// Classes.
    pub classes: Vec<Class>,
    /// Candidate KV calls.
    pub ops: Vec<OpCall>,
    /// Other calls.
    pub calls: Vec<Call>,
    /// Exported names (`default` for the default export).
    pub exports: BTreeMap<String, Val>,
    /// `kvchaos-audit:` comments.
    pub ignores: Vec<IgnoreComment>,
    /// Lines of code (for the benchmark's and the summary's counts).
    pub lines: u32,
}
