//! Validation of `[canary]` and `[target] expect_script`: faults on a deployed canary through
//! its chaos shim. The secret must be in the environment, the target a URL, and the run must
//! fit the canary's caps before anything is sent.

use super::*;
use crate::scenario::plan::CanaryPlan;
use crate::scenario::raw::RawCanary;

/// The environment variable read for the shim's secret unless `secret_env` names another.
const DEFAULT_SECRET_ENV: &str = "KVCHAOS_CANARY_SECRET";
/// The shortest secret the shim accepts.
const MIN_SECRET: usize = 16;

impl Validator<'_> {
    /// `[canary]`, checked against the target and the phases (`None` when unusable).
    pub(super) fn canary(
        &mut self,
        raw: &ScenarioFile,
        phases: Option<&[Phase]>,
        run_length: Option<Duration>,
    ) -> Option<Option<CanaryPlan>> {
        let target = raw.target.as_ref().map(|t| t.get_ref());
        let expect = target.and_then(|t| t.expect_script.as_ref());
        let Some(c) = raw.canary.as_ref() else {
            if let Some(e) = expect {
                self.err(e.span().start, "target.expect_script", "expect_script is checked by the canary's chaos shim: add a [canary] table (see docs/canary.md) or remove it");
                return None;
            }
            return Some(None);
        };
        let at = c.span().start;
        if target.is_none_or(|t| t.url.is_none()) {
            self.err(at, "canary", "[canary] drives a deployed Worker's chaos shim: the target must be a URL, e.g. [target] url = \"https://hub-canary.example.workers.dev\"");
            return None;
        }
        let Some(expect) = expect else {
            self.err(at, "target.expect_script", "a [canary] run must name the shimmed script it expects, so production can never be hit: add [target] expect_script = \"hub-canary\"");
            return None;
        };
        let script = expect.get_ref().trim().to_owned();
        if script.is_empty() || script.len() > 255 {
            self.err(
                expect.span().start,
                "target.expect_script",
                "expect_script must be the canary's script name, e.g. \"hub-canary\", or its version id (a UUID, as `wrangler versions upload` prints it)",
            );
            return None;
        }
        let c = c.get_ref();
        let secret = self.canary_secret(c, at)?;
        let max_requests = match &c.max_requests {
            None => None,
            Some(v) => Some(self.int_in(
                v,
                "canary.max_requests",
                "a request count",
                1,
                i64::MAX,
                "max_requests = 5000",
            )? as u64),
        };
        let max_duration = match &c.max_duration {
            None => None,
            Some(v) => Some(self.duration(v, "canary.max_duration", "max_duration = \"10m\"")?),
        };
        let max_kv_writes = match &c.max_kv_writes {
            None => None,
            Some(v) => Some(self.int_in(
                v,
                "canary.max_kv_writes",
                "a write count",
                0,
                i64::MAX,
                "max_kv_writes = 200",
            )? as u64),
        };
        let plan = CanaryPlan {
            secret,
            expect_script: script,
            max_requests,
            max_duration,
            max_kv_writes,
            headers: self.canary_headers(c)?,
        };
        self.canary_caps(&plan, at, phases, run_length)?;
        Some(Some(plan))
    }

    fn canary_secret(&mut self, c: &RawCanary, at: usize) -> Option<String> {
        let (name, at) = match &c.secret_env {
            Some(n) => (n.get_ref().trim().to_owned(), n.span().start),
            None => (DEFAULT_SECRET_ENV.to_owned(), at),
        };
        match (self.env)(&name) {
            Some(s) if s.len() >= MIN_SECRET => {
                self.redactor.add(s.clone());
                Some(s)
            }
            Some(_) => {
                self.err(at, "canary.secret_env", format!("the secret in {name} is shorter than {MIN_SECRET} characters, and the shim refuses it: use a long random one, e.g. openssl rand -hex 32"));
                None
            }
            None => {
                self.err(at, "canary.secret_env", format!("{name} is not set: export the shim's control secret (the value given to wrangler secret put KVCHAOS_SHIM_SECRET)"));
                None
            }
        }
    }

    fn canary_headers(&mut self, c: &RawCanary) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        for (k, v) in c.headers.iter().flat_map(|h| &h.0) {
            let field = format!("canary.headers.{}", k.get_ref());
            if HeaderName::from_bytes(k.get_ref().as_bytes()).is_err() {
                self.err(k.span().start, field, format!("invalid header name {:?}: use letters, digits and -, e.g. \"Cloudflare-Workers-Version-Overrides\"", k.get_ref()));
                return None;
            }
            out.push((k.get_ref().clone(), v.get_ref().clone()));
        }
        Some(out)
    }

    /// The run must fit `max_duration` and `max_requests` before anything is sent.
    fn canary_caps(
        &mut self,
        plan: &CanaryPlan,
        at: usize,
        phases: Option<&[Phase]>,
        run_length: Option<Duration>,
    ) -> Option<()> {
        if let (Some(max), Some(len)) = (plan.max_duration, run_length)
            && len > max
        {
            self.err(at, "canary.max_duration", format!(
                "the run lasts {} (phases and grace), above [canary] max_duration = \"{}\": shorten the phases or raise the cap",
                humantime::format_duration(len),
                humantime::format_duration(max)
            ));
            return None;
        }
        let (Some(max), Some(phases)) = (plan.max_requests, phases) else {
            return Some(());
        };
        let mut planned = 0f64;
        for p in phases {
            match p.load {
                Load::Rate { from, to, .. } => {
                    planned += (from + to) / 2.0 * p.duration.as_secs_f64();
                }
                Load::Pause => {}
                Load::Vus(_) | Load::Replay(_) => {
                    self.err(at, "canary.max_requests", "a [canary] run with max_requests cannot bound closed-loop (vus) or replay phases in advance: use open-loop rates, e.g. rate = 20, or drop max_requests and rely on max_duration");
                    return None;
                }
            }
        }
        if planned.ceil() > max as f64 {
            self.err(at, "canary.max_requests", format!(
                "the phases send about {} requests, above [canary] max_requests = {max}: lower the rates or raise the cap",
                planned.ceil() as u64
            ));
            return None;
        }
        Some(())
    }
}
