//! The one module that knows oxc: parses a JS / TS / JSX / TSX file (oxc_parser), runs scope
//! analysis (oxc_semantic) and turns the AST into the small [`FileModel`] the rest of the audit
//! works on. References are tied to their declarations by oxc's `Scoping`, so a local `cache`
//! that shadows nothing is a different thing from a global `CACHE`.
//!
//! Owns: syntax → model. Does not own: deciding what is KV (`resolve.rs`), walking the repo.

use oxc_allocator::Allocator;
mod builder;

use oxc_ast_visit::Visit;
use oxc_semantic::SemanticBuilder;
use oxc_span::SourceType;
use std::collections::HashMap;
use std::path::Path;

use builder::Builder;

use super::model::{FileModel, IgnoreComment};

/// Why a file could not be modelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The extension is not one of js, mjs, cjs, jsx, ts, mts, cts, tsx.
    #[error("not a JS/TS file extension")]
    Extension,
    /// oxc reported a syntax error (the first one, with its line).
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line.
        line: u32,
        /// oxc's message.
        message: String,
    },
}

/// Object-literal and `WorkerEntrypoint` method names that Workers call as handlers.
const HANDLERS: [&str; 5] = ["fetch", "scheduled", "queue", "email", "tail"];
/// Router method names whose function arguments run per request (hono, itty-router, …).
const ROUTES: [&str; 10] = [
    "get", "post", "put", "delete", "patch", "all", "use", "on", "options", "head",
];
/// Array methods whose callback runs once per element.
const LOOPS: [&str; 8] = [
    "map", "forEach", "flatMap", "filter", "reduce", "some", "every", "find",
];

/// Parses `text` (the language from `path`'s extension) into a [`FileModel`].
pub fn model_file(path: &Path, text: &str) -> Result<FileModel, ParseError> {
    let source_type = SourceType::from_path(path).map_err(|_| ParseError::Extension)?;
    let allocator = Allocator::default();
    let parsed = oxc_parser::Parser::new(&allocator, text, source_type).parse();
    let lines = LineIndex::new(text);
    if parsed.panicked || !parsed.errors.is_empty() {
        let (line, message) = parsed
            .errors
            .first()
            .map_or((1, "parse failed".into()), |e| {
                let at = e
                    .labels
                    .as_ref()
                    .and_then(|l| l.first())
                    .map_or(0, |l| l.offset() as u32);
                (lines.line_col(at).0, e.message.to_string())
            });
        return Err(ParseError::Syntax { line, message });
    }
    let program = parsed.program;
    let semantic = SemanticBuilder::new().build(&program).semantic;
    let scoping = semantic.scoping();
    let mut b = Builder {
        text,
        lines: &lines,
        scoping,
        model: FileModel::default(),
        sym_ids: HashMap::new(),
        fn_ids: HashMap::new(),
        pending: HashMap::new(),
        fn_stack: Vec::new(),
        class_stack: Vec::new(),
        loop_depth: vec![0],
    };
    b.visit_program(&program);
    for c in program.comments.iter() {
        let body = c.span.source_text(text);
        if let Some(ig) = ignore_comment(body, lines.line_col(c.span.start).0) {
            b.model.ignores.push(ig);
        }
    }
    b.model.lines = lines.starts.len() as u32;
    Ok(b.model)
}

/// Reads `kvchaos-audit: ignore[-next] <reason>` from a comment's text.
fn ignore_comment(body: &str, line: u32) -> Option<IgnoreComment> {
    let rest = body.split_once("kvchaos-audit:")?.1.trim_start();
    let (next, rest) = if let Some(r) = rest.strip_prefix("ignore-next") {
        (true, r)
    } else {
        (false, rest.strip_prefix("ignore")?)
    };
    let reason = rest.trim().trim_end_matches("*/").trim();
    Some(IgnoreComment {
        target_line: if next { line + 1 } else { line },
        line,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
    })
}

/// Byte offset → 1-based line and column.
struct LineIndex {
    starts: Vec<u32>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i as u32 + 1),
        );
        LineIndex { starts }
    }
    fn line_col(&self, at: u32) -> (u32, u32) {
        let i = self.starts.partition_point(|s| *s <= at).max(1) - 1;
        (i as u32 + 1, at - self.starts[i] + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::model::{Role, Val};

    fn model(src: &str) -> FileModel {
        model_file(Path::new("x.ts"), src).unwrap()
    }

    #[test]
    fn handler_param_and_alias_are_modelled() {
        let m = model(
            "export default { async fetch(req, env) { const kv = env.KV; return kv.get(`a:${req.url}`); } }",
        );
        assert_eq!(m.ops.len(), 1);
        let f = m.ops[0].func.unwrap() as usize;
        assert_eq!(m.functions[f].role, Some(Role::Handler("fetch".into())));
        let Val::Sym(s) = &m.ops[0].recv else {
            panic!("{:?}", m.ops[0].recv)
        };
        assert_eq!(
            m.symbols[*s as usize].defs,
            vec![Val::Member(
                Box::new(Val::Sym(
                    m.symbols.iter().position(|s| s.name == "env").unwrap() as u32
                )),
                "KV".into()
            )]
        );
        assert_eq!(m.ops[0].args[0], Val::Prefix("a:".into()));
    }

    #[test]
    fn loops_and_loop_callbacks_are_seen() {
        let m = model(
            "async function f(env) { for (const k of ks) { await env.KV.delete(k); } ks.map((k) => env.KV.get(k)); env.KV.list(); }",
        );
        let in_loop: Vec<bool> = m.ops.iter().map(|o| o.in_loop).collect();
        assert_eq!(in_loop, vec![true, true, false]);
    }

    #[test]
    fn ignore_comments_need_a_reason() {
        let m = model(
            "// kvchaos-audit: ignore-next fixture data\nx.get(1);\nx.put(1); // kvchaos-audit: ignore\n",
        );
        assert_eq!(m.ignores[0].target_line, 2);
        assert_eq!(m.ignores[0].reason.as_deref(), Some("fixture data"));
        assert_eq!(m.ignores[1].target_line, 3);
        assert_eq!(m.ignores[1].reason, None);
    }

    #[test]
    fn syntax_errors_are_reported_with_a_line() {
        let e = model_file(Path::new("x.js"), "const a = 1;\nconst = ;\n").unwrap_err();
        assert!(matches!(e, ParseError::Syntax { line: 2, .. }), "{e:?}");
        assert_eq!(
            model_file(Path::new("x.txt"), "").unwrap_err(),
            ParseError::Extension
        );
    }
}
