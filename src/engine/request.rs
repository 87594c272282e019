//! Requests prepared once per run and built per send: static parts parsed at start, templated
//! parts rendered into a reused buffer; which request a send (or a dropped arrival) is, from
//! the seed.
//!
//! Owns building requests; sending them is `engine/worker.rs`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{EngineError, Shared};
use crate::scenario::template::{RenderCx, Template};

/// Header map capacity of a connection's first request: hyper parses the response's headers
/// into the request's map, so it gets room for a typical response too (growing it there costs
/// a reallocation and a rehash).
pub(super) const RESPONSE_HEADERS: usize = 12;

/// Salt that separates the random stream deciding which request a dropped arrival would have
/// been from the stream of sent requests.
const DROP_STREAM: u64 = 0x5eed_d409;

/// A request with everything that does not change between sends prepared once.
pub(super) struct Prepared {
    method: Method,
    uri: Part<Uri>,
    headers: Vec<(HeaderName, Part<HeaderValue>)>,
    body: Option<Part<Bytes>>,
    content_type: Option<HeaderValue>,
    timeout: Duration,
    pub(super) expect: Option<Vec<u16>>,
}

/// A request ready to send, with its timeout.
pub(super) type Built = (Request<Full<Bytes>>, Duration);

pub(super) enum Part<T> {
    Static(T),
    Dynamic(Template),
}

pub(super) fn prepare(
    r: &crate::scenario::plan::RequestPlan,
    base: &str,
) -> Result<Prepared, EngineError> {
    let bad = |message: String| EngineError::Request {
        request: r.name.clone(),
        message,
    };
    let uri = match r.path.as_static() {
        Some(p) => Part::Static(
            Uri::try_from(format!("{base}{p}"))
                .map_err(|e| bad(format!("invalid path \"{p}\": {e}")))?,
        ),
        None => Part::Dynamic(r.path.clone()),
    };
    let headers = r
        .headers
        .iter()
        .map(|(name, t)| {
            let v = match t.as_static() {
                Some(s) => Part::Static(
                    HeaderValue::from_str(s)
                        .map_err(|_| bad(format!("invalid value for header \"{name}\"")))?,
                ),
                None => Part::Dynamic(t.clone()),
            };
            Ok((name.clone(), v))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let has_content_type = r.headers.iter().any(|(n, _)| n == CONTENT_TYPE);
    let (body, content_type) = match &r.body {
        None => (None, None),
        Some(b) => {
            let part = match b.template.as_static() {
                Some(s) => Part::Static(Bytes::from(s.to_owned())),
                None => Part::Dynamic(b.template.clone()),
            };
            let ct = b
                .content_type
                .filter(|_| !has_content_type)
                .map(HeaderValue::from_static);
            (Some(part), ct)
        }
    };
    Ok(Prepared {
        method: r.method.clone(),
        uri,
        headers,
        body,
        content_type,
        timeout: r.timeout,
        expect: r.expect.clone(),
    })
}

/// SplitMix64: spreads a seed and an index into an independent stream seed.
pub(super) fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Shared {
    fn choose(&self, rng: &mut SmallRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1);
        let x = rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }

    pub(super) fn drop_choice(&self, phase: usize, k: u64) -> usize {
        let mut rng =
            SmallRng::seed_from_u64(mix(self.seed ^ DROP_STREAM, ((phase as u64) << 40) | k));
        self.choose(&mut rng)
    }

    /// Builds request number `seq` into `headers` (an emptied map whose room is reused: see
    /// [`super::client::Conn::spare_headers`]); `None` when a templated path renders to an
    /// invalid URI.
    pub(super) fn build(
        &self,
        seq: u64,
        buf: &mut String,
        mut headers: HeaderMap,
    ) -> (usize, Option<Built>) {
        let mut rng = SmallRng::seed_from_u64(mix(self.seed, seq));
        let idx = self.choose(&mut rng);
        let r = &self.requests[idx];
        let mut cx = RenderCx {
            seq,
            rng: &mut rng,
            vars: None,
        };
        let uri = match &r.uri {
            Part::Static(u) => u.clone(),
            Part::Dynamic(t) => {
                buf.clear();
                buf.push_str(&self.base_path);
                t.render(&mut cx, buf);
                match Uri::try_from(buf.as_str()) {
                    Ok(u) => u,
                    Err(_) => return (idx, None),
                }
            }
        };
        headers.reserve(r.headers.len() + 2);
        headers.append(HOST, self.endpoint.authority().clone());
        for (name, v) in &r.headers {
            let v = match v {
                Part::Static(v) => v.clone(),
                Part::Dynamic(t) => {
                    buf.clear();
                    t.render(&mut cx, buf);
                    match HeaderValue::from_str(buf) {
                        Ok(v) => v,
                        Err(_) => return (idx, None),
                    }
                }
            };
            headers.append(name.clone(), v);
        }
        if let Some(ct) = &r.content_type {
            headers.append(CONTENT_TYPE, ct.clone());
        }
        let body = match &r.body {
            None => Bytes::new(),
            Some(Part::Static(bytes)) => bytes.clone(),
            Some(Part::Dynamic(t)) => {
                let mut s = String::new();
                t.render(&mut cx, &mut s);
                Bytes::from(s)
            }
        };
        // Built in place rather than through `Request::builder()`, whose every step moves the
        // whole request.
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = r.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        (idx, Some((req, r.timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_spreads_neighbouring_indices() {
        assert_ne!(mix(1, 1), mix(1, 2));
        assert_ne!(mix(1, 1), mix(2, 1));
        assert_eq!(mix(7, 9), mix(7, 9));
    }
}
