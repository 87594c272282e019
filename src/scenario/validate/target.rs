//! Validation of `[target]`: a local Worker folder or a URL, its host allowlist and TLS settings.

use super::*;

impl Validator<'_> {
    pub(super) fn target(&mut self, t: Option<&Spanned<RawTarget>>) -> Option<TargetPlan> {
        const FIX: &str = "add url = \"http://127.0.0.1:8787\" for a running server, worker = \"path/to/worker-dir\" for a Worker run locally under miniflare, or builtin = true for kvchaos's own test server";
        let Some(t) = t else {
            self.err(
                0,
                "target",
                format!("missing [target] table: add [target] and under it {FIX}"),
            );
            return None;
        };
        let span = t.span();
        let t = t.get_ref();
        let allow_hosts = self.allow_hosts(t.allow_hosts.as_deref());
        let builtin = t.builtin.as_ref().filter(|b| *b.get_ref());
        let chosen = usize::from(t.url.is_some())
            + usize::from(t.worker.is_some())
            + usize::from(builtin.is_some());
        let kind = if chosen > 1 {
            let at = [
                t.worker.as_ref().map(|w| w.span().start),
                builtin.map(|b| b.span().start),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(span.start);
            self.err(at, "target", "url, worker and builtin = true are alternatives: keep exactly one (url for a running server, worker for a local Worker directory, builtin for kvchaos's own test server)");
            None
        } else if let Some(url) = &t.url {
            self.url(url, allow_hosts.as_deref())
        } else if let Some(w) = &t.worker {
            self.worker_dir(w).map(TargetKind::Worker)
        } else if builtin.is_some() {
            Some(TargetKind::Builtin)
        } else {
            let (at, msg) = match &t.builtin {
                Some(b) => (
                    b.span().start,
                    format!("builtin = false and no url or worker: {FIX}"),
                ),
                None => (span.start, format!("no target: {FIX}")),
            };
            self.err(at, "target", msg);
            None
        };
        let ca_file = match &t.ca_file {
            None => Some(None),
            Some(f) => self.ca_file(f).map(Some),
        };
        let kv_binding = match &t.kv_binding {
            None => Some(crate::local::KvBindingMode::Workerd),
            Some(b) => match b.get_ref().as_str() {
                "workerd" => Some(crate::local::KvBindingMode::Workerd),
                "wrapped" => Some(crate::local::KvBindingMode::Wrapped),
                other => {
                    self.err(b.span().start, "target.kv_binding", format!("unknown KV binding {other:?}: expected \"workerd\" (workerd's own KV class; errors read \"KV PUT failed: 429 ...\") or \"wrapped\" (daily-limit errors read exactly as in production)"));
                    None
                }
            },
        };
        Some(TargetPlan {
            kind: kind?,
            allow_hosts: allow_hosts?,
            ca_file: ca_file?,
            kv_binding: kv_binding?,
        })
    }

    /// Resolves `worker` against the scenario's folder and checks it holds a wrangler config.
    pub(super) fn worker_dir(&mut self, w: &Spanned<String>) -> Option<PathBuf> {
        let raw = Path::new(w.get_ref());
        let dir = match self.file.parent() {
            Some(parent) if raw.is_relative() => parent.join(raw),
            _ => raw.to_path_buf(),
        };
        if crate::scenario::worker_config(&dir).is_some() {
            return Some(dir);
        }
        let what = if dir.is_dir() {
            "has no wrangler.toml, wrangler.jsonc or wrangler.json"
        } else {
            "is not a directory"
        };
        self.err(
            w.span().start,
            "target.worker",
            format!("worker \"{}\" {what}: give the Worker's directory, relative to the scenario file, e.g. worker = \"../mock/workers/d1-do-control-plane\"", dir.display()),
        );
        None
    }

    /// Resolves `ca_file` against the scenario's folder and checks it holds PEM certificates.
    pub(super) fn ca_file(&mut self, f: &Spanned<String>) -> Option<PathBuf> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let raw = Path::new(f.get_ref());
        let path = match self.file.parent() {
            Some(dir) if raw.is_relative() => dir.join(raw),
            _ => raw.to_path_buf(),
        };
        let at = f.span().start;
        let certs = match CertificateDer::pem_file_iter(&path) {
            Ok(iter) => iter.collect::<Result<Vec<_>, _>>(),
            Err(e) => {
                self.err(at, "target.ca_file", format!("cannot read CA file \"{}\": {e}: give a PEM file of root certificates, relative to the scenario file", path.display()));
                return None;
            }
        };
        match certs {
            Ok(c) if !c.is_empty() => Some(path),
            Ok(_) => {
                self.err(at, "target.ca_file", format!("CA file \"{}\" holds no certificate: expected PEM blocks \"-----BEGIN CERTIFICATE-----\"", path.display()));
                None
            }
            Err(e) => {
                self.err(
                    at,
                    "target.ca_file",
                    format!("CA file \"{}\" is not valid PEM: {e}", path.display()),
                );
                None
            }
        }
    }

    pub(super) fn allow_hosts(&mut self, hosts: Option<&[Spanned<String>]>) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, h) in hosts.unwrap_or_default().iter().enumerate() {
            let field = format!("target.allow_hosts[{}]", i + 1);
            let s = h.get_ref().trim().to_ascii_lowercase();
            let bare = s.strip_prefix("*.").unwrap_or(&s);
            let valid = !bare.is_empty()
                && bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
                && !bare.starts_with('.')
                && !bare.ends_with('.');
            if !valid {
                ok = false;
                self.err(
                    h.span().start,
                    field,
                    format!(
                        "invalid host {:?}: write a bare host name without scheme, port or path, or \"*.\" and a domain for its subdomains, e.g. allow_hosts = [\"canary.example.workers.dev\", \"*.example.workers.dev\"]",
                        h.get_ref()
                    ),
                );
            } else {
                out.push(s);
            }
        }
        ok.then_some(out)
    }

    pub(super) fn url(
        &mut self,
        url: &Spanned<String>,
        allow_hosts: Option<&[String]>,
    ) -> Option<TargetKind> {
        const EXAMPLE: &str = "e.g. url = \"http://127.0.0.1:8787\"";
        let field = "target.url";
        let at = url.span().start;
        let tpl = self.compile(url, TemplateContext::Url, field)?;
        // Only literals and environment values remain, so rendering needs no real state.
        let mut rng = SmallRng::seed_from_u64(0);
        let mut text = String::new();
        tpl.render(
            &mut RenderCx {
                seq: 0,
                rng: &mut rng,
                vars: None,
            },
            &mut text,
        );
        let source = url.get_ref();
        let parsed = match url::Url::parse(text.trim()) {
            Ok(u) => u,
            Err(e) => {
                self.err(at, field, format!("invalid URL {source:?}: {e}; {EXAMPLE}"));
                return None;
            }
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            self.err(
                at,
                field,
                format!(
                    "unsupported scheme {:?} in {source:?}: only http and https targets are supported, {EXAMPLE}",
                    parsed.scheme()
                ),
            );
            return None;
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // The value is not quoted: it holds a credential.
            self.err(at, field, "the URL contains a user name or password, which would end up in reports: remove \"user:password@\" and send a header instead, e.g. headers = { authorization = \"Bearer {{env.TOKEN}}\" }");
            return None;
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            self.err(
                at,
                field,
                format!("the target URL {source:?} has a query or fragment: request paths are appended to it, so put queries in requests.path instead, {EXAMPLE}"),
            );
            return None;
        }
        if let Some(hosts) = allow_hosts
            && let Err(msg) = super::super::check_target_allowed(&parsed, hosts)
        {
            self.err(at, field, msg);
            return None;
        }
        Some(TargetKind::Url(parsed))
    }
}
