//! What kind of entry point a Worker has. The shim imports the Worker's module and wraps the
//! `env` its default export's handlers receive, so a service-worker script (KV bindings as
//! globals, handlers registered with `addEventListener`) or a module without a default export
//! cannot be wrapped: `canary build` says so, instead of a deploy that answers nothing.

use std::path::Path;

use oxc_allocator::Allocator;
use oxc_span::SourceType;
use oxc_syntax::module_record::{ExportEntry, ExportExportName};

/// The shape of a Worker's entry point, as far as the shim cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A module with a default export (`export default { fetch }`, a default class, a re-export).
    Module,
    /// No `import` or `export` at all: service-worker syntax.
    ServiceWorker,
    /// A module, but nothing is exported as `default`.
    NoDefault,
    /// Not parsed (an extension oxc does not know, or a syntax error): left to wrangler's build.
    Unknown,
}

/// Classifies the entry point `text`, read from `path` (whose extension says JS or TS).
pub fn classify(path: &Path, text: &str) -> Entry {
    let Ok(source_type) = SourceType::from_path(path) else {
        return Entry::Unknown;
    };
    let allocator = Allocator::default();
    let parsed = oxc_parser::Parser::new(&allocator, text, source_type).parse();
    if parsed.panicked || !parsed.errors.is_empty() {
        return Entry::Unknown;
    }
    let record = &parsed.module_record;
    if !record.has_module_syntax {
        return Entry::ServiceWorker;
    }
    let default = |e: &ExportEntry| match &e.export_name {
        ExportExportName::Default(_) => true,
        ExportExportName::Name(n) => n.name == "default",
        ExportExportName::Null => false,
    };
    if record.local_export_entries.iter().any(default)
        || record.indirect_export_entries.iter().any(default)
    {
        Entry::Module
    } else {
        Entry::NoDefault
    }
}

/// The build error for an entry the shim cannot wrap; `None` for one it can (or one left to
/// wrangler).
pub fn refusal(entry: Entry, main: &str) -> Option<String> {
    match entry {
        Entry::Module | Entry::Unknown => None,
        Entry::ServiceWorker => Some(format!(
            "`main` (\"{main}\") is in service-worker syntax (no import or export; handlers added with addEventListener): the shim wraps the env bindings a module Worker's handlers receive, and a service-worker script reads its KV bindings as globals. Move the Worker to module syntax first: export default {{ async fetch(request, env, ctx) {{ ... }} }}"
        )),
        Entry::NoDefault => Some(format!(
            "`main` (\"{main}\") exports nothing as default: the shim wraps the handlers of the default export (export default {{ fetch, scheduled, ... }}, or a default-exported class); export the Worker's handlers as default"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(name: &str, text: &str) -> Entry {
        classify(Path::new(name), text)
    }

    #[test]
    fn module_workers_with_a_default_export_in_any_form_can_be_wrapped() {
        for (name, text) in [
            (
                "a.js",
                "export default { fetch() { return new Response('x'); } };",
            ),
            (
                "a.mjs",
                "const h = { fetch() {} };\nexport { h as default };",
            ),
            ("a.js", "export { default } from './worker.js';"),
            ("a.js", "export { default as default } from './worker.js';"),
            (
                "a.ts",
                "import { WorkerEntrypoint } from 'cloudflare:workers';\nexport default class W extends WorkerEntrypoint { fetch(): Response { return new Response(''); } }",
            ),
        ] {
            assert_eq!(of(name, text), Entry::Module, "{text}");
        }
    }

    #[test]
    fn service_worker_scripts_and_modules_without_default_are_refused_with_the_fix() {
        let sw = of(
            "index.js",
            "addEventListener('fetch', (e) => e.respondWith(KV.get('k').then((v) => new Response(v))));",
        );
        assert_eq!(sw, Entry::ServiceWorker);
        let why = refusal(sw, "index.js").unwrap();
        assert!(
            why.contains("service-worker syntax") && why.contains("export default"),
            "{why}"
        );
        let named = of("index.js", "export const fetch = () => new Response('');");
        assert_eq!(named, Entry::NoDefault);
        assert!(
            refusal(named, "index.js")
                .unwrap()
                .contains("exports nothing as default")
        );
        assert_eq!(refusal(Entry::Module, "index.js"), None);
    }

    #[test]
    fn what_cannot_be_parsed_is_left_to_wrangler() {
        assert_eq!(of("index.js", "export default {"), Entry::Unknown);
        assert_eq!(of("index.coffee", "x = 1"), Entry::Unknown);
        assert_eq!(refusal(Entry::Unknown, "index.js"), None);
    }
}
