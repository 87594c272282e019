//! The AST walk of [`super::model_file`]: an oxc `Visit` that records symbols and their values,
//! functions with their roles, classes, candidate KV calls, other calls and exports into a
//! [`FileModel`]. Part of the oxc adapter: nothing outside `js` sees these types.

mod visit;

use std::collections::HashMap;

use oxc_ast::ast::*;

use oxc_semantic::Scoping;
use oxc_span::{GetSpan, Span};

use super::{HANDLERS, LOOPS, LineIndex, ROUTES};
use crate::audit::model::{
    Call as CallModel, Class as ClassModel, ClassId, ClassKind, FileModel, FnId,
    Function as FnModel, Op, OpCall, Role, SymId, Symbol, Val,
};

/// What the position of the next function tells about it.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    name: String,
    role: Option<Role>,
    loop_body: bool,
}

pub(super) struct Builder<'s, 't> {
    pub(super) text: &'t str,
    pub(super) lines: &'t LineIndex,
    pub(super) scoping: &'s Scoping,
    pub(super) model: FileModel,
    pub(super) sym_ids: HashMap<oxc_syntax::symbol::SymbolId, SymId>,
    /// Function start offset → id (function values are referenced before they are visited).
    pub(super) fn_ids: HashMap<u32, FnId>,
    pub(super) pending: HashMap<u32, Pending>,
    pub(super) fn_stack: Vec<FnId>,
    pub(super) class_stack: Vec<ClassId>,
    pub(super) loop_depth: Vec<u32>,
}

impl<'a> Builder<'_, '_> {
    fn sym(&mut self, id: oxc_syntax::symbol::SymbolId) -> SymId {
        if let Some(s) = self.sym_ids.get(&id) {
            return *s;
        }
        let s = self.model.symbols.len() as SymId;
        self.model.symbols.push(Symbol {
            name: self.scoping.symbol_name(id).to_owned(),
            defs: Vec::new(),
            mutated: self.scoping.symbol_is_mutated(id),
        });
        self.sym_ids.insert(id, s);
        s
    }

    fn fn_id(&mut self, span: Span) -> FnId {
        if let Some(f) = self.fn_ids.get(&span.start) {
            return *f;
        }
        let f = self.model.functions.len() as FnId;
        self.model.functions.push(FnModel {
            name: "<anonymous>".into(),
            line: self.lines.line_col(span.start).0,
            ..FnModel::default()
        });
        self.fn_ids.insert(span.start, f);
        f
    }

    fn def_binding(&mut self, id: &BindingIdentifier<'a>, val: Val) {
        if let Some(sid) = id.symbol_id.get() {
            let s = self.sym(sid);
            self.model.symbols[s as usize].defs.push(val);
        }
    }

    /// Records what each name bound by `pattern` holds when the whole holds `val`.
    fn def_pattern(&mut self, pattern: &BindingPattern<'a>, val: Val) {
        match &pattern.kind {
            BindingPatternKind::BindingIdentifier(id) => self.def_binding(id, val),
            BindingPatternKind::ObjectPattern(obj) => {
                for p in &obj.properties {
                    let v = match p.key.static_name() {
                        Some(k) if !p.computed => Val::Member(Box::new(val.clone()), k.into()),
                        _ => Val::Dynamic(Box::new(val.clone())),
                    };
                    self.def_pattern(&p.value, v);
                }
                if let Some(rest) = &obj.rest {
                    self.def_pattern(&rest.argument, Val::Other);
                }
            }
            BindingPatternKind::ArrayPattern(arr) => {
                for p in arr.elements.iter().flatten() {
                    self.def_pattern(p, Val::Other);
                }
            }
            BindingPatternKind::AssignmentPattern(a) => {
                let dflt = self.val(&a.right);
                self.def_pattern(&a.left, Val::Union(vec![val, dflt]));
            }
        }
    }

    fn ident_val(&mut self, id: &IdentifierReference<'a>) -> Val {
        let sym = id
            .reference_id
            .get()
            .and_then(|r| self.scoping.get_reference(r).symbol_id());
        match sym {
            Some(s) => Val::Sym(self.sym(s)),
            None => Val::Global(id.name.to_string()),
        }
    }

    /// The value an expression stands for, as far as the syntax shows.
    fn val(&mut self, e: &Expression<'a>) -> Val {
        match e {
            Expression::StringLiteral(s) => Val::Str(s.value.to_string()),
            Expression::TemplateLiteral(t) => match (template_val(t), t.expressions.first()) {
                // `${PREFIX}${id}`: the string starts with whatever PREFIX is.
                (Val::Prefix(h), Some(first)) if h.is_empty() => {
                    Val::Concat(Box::new(self.val(first)))
                }
                (v, _) => v,
            },
            Expression::Identifier(id) => self.ident_val(id),
            Expression::StaticMemberExpression(m) => {
                Val::Member(Box::new(self.val(&m.object)), m.property.name.to_string())
            }
            Expression::ComputedMemberExpression(m) => {
                let obj = Box::new(self.val(&m.object));
                match &m.expression {
                    Expression::StringLiteral(s) => Val::Member(obj, s.value.to_string()),
                    _ => Val::Dynamic(obj),
                }
            }
            Expression::ThisExpression(_) => Val::This(self.class_stack.last().copied()),
            Expression::ObjectExpression(o) => self.obj_val(o),
            Expression::FunctionExpression(f) => Val::Func(self.fn_id(f.span)),
            Expression::ArrowFunctionExpression(f) => Val::Func(self.fn_id(f.span)),
            Expression::ParenthesizedExpression(p) => self.val(&p.expression),
            Expression::TSAsExpression(x) => self.val(&x.expression),
            Expression::TSSatisfiesExpression(x) => self.val(&x.expression),
            Expression::TSNonNullExpression(x) => self.val(&x.expression),
            Expression::TSTypeAssertion(x) => self.val(&x.expression),
            Expression::ChainExpression(c) => match &c.expression {
                ChainElement::StaticMemberExpression(m) => {
                    Val::Member(Box::new(self.val(&m.object)), m.property.name.to_string())
                }
                _ => Val::Other,
            },
            Expression::ConditionalExpression(c) => {
                Val::Union(vec![self.val(&c.consequent), self.val(&c.alternate)])
            }
            Expression::LogicalExpression(l) => {
                Val::Union(vec![self.val(&l.left), self.val(&l.right)])
            }
            Expression::CallExpression(c) => Val::Call(Box::new(self.val(&c.callee))),
            Expression::AwaitExpression(a) => self.val(&a.argument),
            Expression::BinaryExpression(b) if b.operator == BinaryOperator::Addition => {
                match self.val(&b.left) {
                    Val::Str(s) | Val::Prefix(s) => Val::Prefix(s),
                    other => Val::Concat(Box::new(other)),
                }
            }
            _ => Val::Other,
        }
    }

    fn obj_val(&mut self, o: &ObjectExpression<'a>) -> Val {
        let mut props = Vec::new();
        let mut spread = false;
        for p in &o.properties {
            match p {
                ObjectPropertyKind::ObjectProperty(p) => match p.key.static_name() {
                    Some(k) if !p.computed => props.push((k.to_string(), self.val(&p.value))),
                    _ => spread = true,
                },
                ObjectPropertyKind::SpreadProperty(_) => spread = true,
            }
        }
        Val::Obj(props, spread)
    }

    fn args(&mut self, args: &[Argument<'a>]) -> Vec<Val> {
        args.iter()
            .map(|a| match a.as_expression() {
                Some(e) => self.val(e),
                None => Val::Other,
            })
            .collect()
    }

    fn in_loop(&self) -> bool {
        self.loop_depth.last().copied().unwrap_or(0) > 0
    }

    fn enter_fn(&mut self, span: Span, params: &FormalParameters<'a>) -> FnId {
        let f = self.fn_id(span);
        if let Some(p) = self.pending.remove(&span.start) {
            let func = &mut self.model.functions[f as usize];
            func.name = p.name;
            func.role = p.role;
            func.loop_body |= p.loop_body;
        }
        if self.model.functions[f as usize].name == "<anonymous>"
            && let Some(parent) = self.fn_stack.last()
        {
            let name = format!("{} callback", self.model.functions[*parent as usize].name);
            self.model.functions[f as usize].name = name;
        }
        let class = self.class_stack.last().copied();
        if self.model.functions[f as usize].role.is_some() {
            self.model.functions[f as usize].class = class;
        }
        for (i, p) in params.items.iter().enumerate() {
            self.def_pattern(
                &p.pattern,
                Val::Param {
                    func: f,
                    index: i as u32,
                },
            );
        }
        let body_loop = self.model.functions[f as usize].loop_body;
        self.fn_stack.push(f);
        self.loop_depth.push(u32::from(body_loop));
        f
    }

    fn exit_fn(&mut self) {
        self.fn_stack.pop();
        self.loop_depth.pop();
    }

    /// Names the function `value` will be when it is one, with the role its position gives.
    fn expect_fn(&mut self, value: &Expression<'a>, name: String, role: Option<Role>) {
        let span = match value.without_parentheses() {
            Expression::FunctionExpression(f) => f.span,
            Expression::ArrowFunctionExpression(f) => f.span,
            _ => return,
        };
        let loop_body = false;
        self.pending.insert(
            span.start,
            Pending {
                name,
                role,
                loop_body,
            },
        );
    }

    /// The role of a method called `name` in the innermost class (or an object literal).
    fn method_role(&self, name: &str, in_class: bool) -> Option<Role> {
        let kind = match (in_class, self.class_stack.last()) {
            (true, Some(c)) => self.model.classes[*c as usize].kind,
            (true, None) => return None,
            (false, _) => return HANDLERS.contains(&name).then(|| Role::Handler(name.into())),
        };
        match kind {
            ClassKind::DurableObject => Some(Role::DurableObject(name.into())),
            ClassKind::Entrypoint if HANDLERS.contains(&name) => Some(Role::Handler(name.into())),
            ClassKind::Entrypoint => Some(Role::Rpc(name.into())),
            ClassKind::Plain => None,
        }
    }

    fn record_call(&mut self, it: &CallExpression<'a>) {
        let callee = it.callee.without_parentheses();
        let member = match callee {
            Expression::StaticMemberExpression(m) => Some((&m.object, m.property.name.as_str())),
            Expression::ChainExpression(c) => match &c.expression {
                ChainElement::StaticMemberExpression(m) => {
                    Some((&m.object, m.property.name.as_str()))
                }
                _ => None,
            },
            _ => None,
        };
        let func = self.fn_stack.last().copied();
        let in_loop = self.in_loop();
        if let Some((obj, prop)) = member {
            for a in &it.arguments {
                if let Some(e) = a.as_expression() {
                    if ROUTES.contains(&prop) {
                        self.expect_fn(e, format!("{prop} route"), Some(Role::Route));
                    } else if LOOPS.contains(&prop) {
                        self.expect_fn(e, format!("{prop} callback"), None);
                        self.mark_loop_body(e);
                    }
                }
            }
            if let Some(op) = Op::from_name(prop) {
                let recv = self.val(obj);
                let args = self.args(&it.arguments);
                let key_text = it
                    .arguments
                    .first()
                    .map(|a| squash(a.span().source_text(self.text), 120))
                    .unwrap_or_default();
                let recv_text = squash(obj.span().source_text(self.text), 80);
                let (line, column) = self.lines.line_col(it.span.start);
                self.model.ops.push(OpCall {
                    op,
                    recv,
                    args,
                    call_text: format!("{recv_text}.{prop}({key_text})"),
                    key_text,
                    func,
                    in_loop,
                    line,
                    column,
                });
                // Also an edge of the call graph: `store.get(k)` may call a wrapper's `get`.
                let callee = self.val(callee);
                let args = self
                    .model
                    .ops
                    .last()
                    .map(|o| o.args.clone())
                    .unwrap_or_default();
                self.model.calls.push(CallModel {
                    callee,
                    args,
                    func,
                    in_loop,
                });
                return;
            }
        }
        let callee = self.val(callee);
        let args = self.args(&it.arguments);
        self.model.calls.push(CallModel {
            callee,
            args,
            func,
            in_loop,
        });
    }

    fn mark_loop_body(&mut self, e: &Expression<'a>) {
        let span = match e.without_parentheses() {
            Expression::FunctionExpression(f) => f.span,
            Expression::ArrowFunctionExpression(f) => f.span,
            _ => return,
        };
        if let Some(p) = self.pending.get_mut(&span.start) {
            p.loop_body = true;
        }
    }

    fn loop_body<F: FnOnce(&mut Self)>(&mut self, f: F) {
        if let Some(d) = self.loop_depth.last_mut() {
            *d += 1;
        }
        f(self);
        if let Some(d) = self.loop_depth.last_mut() {
            *d -= 1;
        }
    }

    fn export_decl(&mut self, d: &Declaration<'a>) {
        let ids: Vec<_> = match d {
            Declaration::VariableDeclaration(v) => v
                .declarations
                .iter()
                .flat_map(|d| d.id.get_binding_identifiers())
                .map(|b| (b.name.to_string(), b.symbol_id.get()))
                .collect(),
            Declaration::FunctionDeclaration(f) => {
                f.id.iter()
                    .map(|b| (b.name.to_string(), b.symbol_id.get()))
                    .collect()
            }
            Declaration::ClassDeclaration(c) => {
                c.id.iter()
                    .map(|b| (b.name.to_string(), b.symbol_id.get()))
                    .collect()
            }
            _ => Vec::new(),
        };
        for (name, sid) in ids {
            if let Some(sid) = sid {
                let s = self.sym(sid);
                self.model.exports.insert(name, Val::Sym(s));
            }
        }
    }
}

/// Source text with whitespace removed, cut to `max` bytes at a char boundary.
fn squash(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn template_val(t: &TemplateLiteral<'_>) -> Val {
    let head = t
        .quasis
        .first()
        .map(|q| q.value.cooked.unwrap_or(q.value.raw).to_string())
        .unwrap_or_default();
    if t.expressions.is_empty() {
        Val::Str(head)
    } else {
        Val::Prefix(head)
    }
}

fn class_kind(c: &Class<'_>) -> ClassKind {
    let sup = match c.super_class.as_ref().map(|e| e.without_parentheses()) {
        Some(Expression::Identifier(id)) => id.name.to_string(),
        Some(Expression::StaticMemberExpression(m)) => m.property.name.to_string(),
        _ => String::new(),
    };
    let has_alarm = c.body.body.iter().any(|e| match e {
        ClassElement::MethodDefinition(m) => m.key.static_name().is_some_and(|n| n == "alarm"),
        _ => false,
    });
    if sup.contains("DurableObject") || has_alarm {
        ClassKind::DurableObject
    } else if sup.contains("WorkerEntrypoint") {
        ClassKind::Entrypoint
    } else {
        ClassKind::Plain
    }
}
