//! The `Visit` half of the builder: which AST nodes it stops at and what each records, through
//! the builder's own methods (symbols, functions and roles, classes, calls, exports).

use oxc_ast::ast::*;
use oxc_ast_visit::{Visit, walk};
use oxc_syntax::scope::ScopeFlags;

use super::*;

impl<'a> Visit<'a> for Builder<'_, '_> {
    fn visit_function(&mut self, it: &Function<'a>, flags: ScopeFlags) {
        if let Some(id) = &it.id {
            let f = self.fn_id(it.span);
            if !self.pending.contains_key(&it.span.start) {
                self.model.functions[f as usize].name = id.name.to_string();
            }
            if it.is_declaration() {
                self.def_binding(id, Val::Func(f));
            }
        }
        self.enter_fn(it.span, &it.params);
        walk::walk_function(self, it, flags);
        self.exit_fn();
    }

    fn visit_return_statement(&mut self, it: &ReturnStatement<'a>) {
        if let (Some(f), Some(arg)) = (self.fn_stack.last().copied(), &it.argument) {
            let v = self.val(arg);
            self.model.functions[f as usize].returns.push(v);
        }
        walk::walk_return_statement(self, it);
    }

    fn visit_arrow_function_expression(&mut self, it: &ArrowFunctionExpression<'a>) {
        let f = self.enter_fn(it.span, &it.params);
        if it.expression
            && let Some(Statement::ExpressionStatement(e)) = it.body.statements.first()
        {
            let v = self.val(&e.expression);
            self.model.functions[f as usize].returns.push(v);
        }
        walk::walk_arrow_function_expression(self, it);
        self.exit_fn();
    }

    fn visit_class(&mut self, it: &Class<'a>) {
        let c = self.model.classes.len() as ClassId;
        self.model.classes.push(ClassModel {
            name: it
                .id
                .as_ref()
                .map_or("<anonymous>".into(), |i| i.name.to_string()),
            kind: class_kind(it),
            fields: Default::default(),
        });
        self.class_stack.push(c);
        walk::walk_class(self, it);
        self.class_stack.pop();
    }

    fn visit_method_definition(&mut self, it: &MethodDefinition<'a>) {
        let name = it
            .key
            .static_name()
            .map_or("<computed>".into(), |n| n.to_string());
        let class = self
            .class_stack
            .last()
            .map(|c| &self.model.classes[*c as usize]);
        let shown = class.map_or(name.clone(), |c| format!("{}.{name}", c.name));
        let role = self.method_role(&name, true);
        self.pending.insert(
            it.value.span.start,
            Pending {
                name: shown,
                role,
                loop_body: false,
            },
        );
        walk::walk_method_definition(self, it);
    }

    fn visit_property_definition(&mut self, it: &PropertyDefinition<'a>) {
        if let (Some(c), Some(k), Some(v)) = (
            self.class_stack.last().copied(),
            it.key.static_name(),
            it.value.as_ref(),
        ) {
            let v = self.val(v);
            let fields = &mut self.model.classes[c as usize].fields;
            fields.entry(k.to_string()).or_default().push(v);
        }
        walk::walk_property_definition(self, it);
    }

    fn visit_object_property(&mut self, it: &ObjectProperty<'a>) {
        if let Some(name) = it.key.static_name() {
            let role = self.method_role(&name, false);
            self.expect_fn(&it.value, name.to_string(), role);
        }
        walk::walk_object_property(self, it);
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        if let Some(init) = &it.init {
            let v = self.val(init);
            if let BindingPatternKind::BindingIdentifier(id) = &it.id.kind {
                self.expect_fn(init, id.name.to_string(), None);
            }
            self.def_pattern(&it.id, v);
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_assignment_expression(&mut self, it: &AssignmentExpression<'a>) {
        let v = if it.operator == AssignmentOperator::Assign {
            self.val(&it.right)
        } else {
            Val::Other
        };
        match &it.left {
            AssignmentTarget::AssignmentTargetIdentifier(id) => {
                if let Val::Sym(s) = self.ident_val(id) {
                    self.model.symbols[s as usize].defs.push(v);
                }
            }
            AssignmentTarget::StaticMemberExpression(m) => {
                if let (Expression::ThisExpression(_), Some(c)) =
                    (&m.object, self.class_stack.last().copied())
                {
                    let fields = &mut self.model.classes[c as usize].fields;
                    fields
                        .entry(m.property.name.to_string())
                        .or_default()
                        .push(v);
                }
            }
            _ => {}
        }
        walk::walk_assignment_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        self.record_call(it);
        walk::walk_call_expression(self, it);
    }

    fn visit_for_statement(&mut self, it: &ForStatement<'a>) {
        self.loop_body(|s| walk::walk_for_statement(s, it));
    }

    fn visit_for_of_statement(&mut self, it: &ForOfStatement<'a>) {
        self.loop_body(|s| walk::walk_for_of_statement(s, it));
    }

    fn visit_for_in_statement(&mut self, it: &ForInStatement<'a>) {
        self.loop_body(|s| walk::walk_for_in_statement(s, it));
    }

    fn visit_while_statement(&mut self, it: &WhileStatement<'a>) {
        self.loop_body(|s| walk::walk_while_statement(s, it));
    }

    fn visit_do_while_statement(&mut self, it: &DoWhileStatement<'a>) {
        self.loop_body(|s| walk::walk_do_while_statement(s, it));
    }

    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        let source = it.source.value.to_string();
        for s in it.specifiers.iter().flatten() {
            let (local, name) = match s {
                ImportDeclarationSpecifier::ImportSpecifier(s) => (&s.local, s.imported.name()),
                ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                    (&s.local, "default".into())
                }
                ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => (&s.local, "*".into()),
            };
            let v = Val::Import {
                source: source.clone(),
                name: name.to_string(),
            };
            self.def_binding(local, v);
        }
    }

    fn visit_export_named_declaration(&mut self, it: &ExportNamedDeclaration<'a>) {
        if let Some(d) = &it.declaration {
            self.export_decl(d);
        }
        for s in &it.specifiers {
            let v = match (&it.source, &s.local) {
                (Some(src), local) => Val::Import {
                    source: src.value.to_string(),
                    name: local.name().to_string(),
                },
                (None, ModuleExportName::IdentifierReference(id)) => self.ident_val(id),
                _ => Val::Other,
            };
            self.model.exports.insert(s.exported.name().to_string(), v);
        }
        walk::walk_export_named_declaration(self, it);
    }

    fn visit_export_default_declaration(&mut self, it: &ExportDefaultDeclaration<'a>) {
        let v = match &it.declaration {
            ExportDefaultDeclarationKind::FunctionDeclaration(f) => Val::Func(self.fn_id(f.span)),
            ExportDefaultDeclarationKind::ClassDeclaration(_) => Val::Other,
            other => match other.as_expression() {
                Some(e) => self.val(e),
                None => Val::Other,
            },
        };
        self.model.exports.insert("default".into(), v);
        walk::walk_export_default_declaration(self, it);
    }
}
