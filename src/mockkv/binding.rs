//! The workerd KV binding protocol: the HTTP that workerd's own KV class
//! sends to its backing service, answered byte-for-byte the way Cloudflare's
//! service answers it (see DESIGN.md).
//!
//! Owns: path and query parsing (keys are always percent-decoded, strictly),
//! the namespace prefix `/ns/<name>/`, response shapes (`CF-KV-Metadata`,
//! list metadata as a JSON-encoded string) and error reason phrases — workerd
//! turns a non-2xx into `KV <METHOD> failed: <status> <reason phrase>`.
//! Does not own: KV semantics, quotas or faults (see [`super::MockKv`]).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::fault::Action;
use super::server::ConnControl;
use super::store::{self, KvError, PutRequest};
use super::{MockKv, Op, OpContext, OpFailure, OpReply, OpRequest, hang_or_reset};

/// Header carrying metadata (JSON) on put requests and get responses.
pub const METADATA_HEADER: &str = "cf-kv-metadata";
/// Header naming the namespace of a bare-protocol request.
pub const NAMESPACE_HEADER: &str = "x-kvchaos-namespace";
/// Header marking a read as made from another location.
pub const LOCATION_HEADER: &str = "x-kvchaos-location";
/// Most keys in one bulk get.
const MAX_BULK_KEYS: usize = 100;
/// Largest bulk-get request body we read.
const MAX_BULK_BODY: usize = 1024 * 1024;

/// A response with `status` and, when given, a custom reason phrase (the
/// text workerd shows in its error). The body repeats the reason.
pub(crate) fn status_with_reason(status: u16, reason: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Body::from(reason.to_owned()));
    *resp.status_mut() = status;
    if status.canonical_reason() != Some(reason) {
        // Reason phrases must be visible ASCII; Cloudflare's always are, and
        // anything else falls back to the canonical phrase.
        if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes().to_vec()) {
            resp.extensions_mut().insert(rp);
        }
    }
    resp
}

fn kv_error(e: &KvError) -> Response {
    status_with_reason(e.status(), &e.to_string())
}

/// Strict percent-decoding: `%` must be followed by two hex digits, and
/// the result must be UTF-8. `+` stays `+` (paths are not form-encoded).
pub fn percent_decode_strict(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn bad_key() -> Response {
    status_with_reason(400, "Could not URL-decode key name")
}

/// Which namespace and path a binding request addresses.
/// `None` when the namespace name in the path is malformed.
fn route(path: &str, headers: &HeaderMap, default_ns: &str) -> Option<(String, String)> {
    if let Some(after) = path.strip_prefix("/ns/") {
        let (enc, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        let name = percent_decode_strict(enc).filter(|n| !n.is_empty())?;
        return Some((name, rest.to_owned()));
    }
    let ns = headers
        .get(NAMESPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or(default_ns);
    Some((ns.to_owned(), path.to_owned()))
}

fn query_param(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Answer one binding-protocol request.
pub(crate) async fn handle(kv: MockKv, req: Request) -> Response {
    let conn = req.extensions().get::<ConnControl>().cloned();
    let (parts, body) = req.into_parts();
    let (namespace, rest) = match route(
        parts.uri.path(),
        &parts.headers,
        &kv.config().default_namespace,
    ) {
        Some(r) => r,
        None => return status_with_reason(400, "Invalid namespace name"),
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let remote = parts
        .headers
        .get(LOCATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.is_empty() && v != "primary");
    let ctx = OpContext {
        namespace,
        account: kv.config().account_id.clone(),
        remote,
    };
    let op_request = match (&parts.method, rest.as_str()) {
        (&Method::GET, "/") => list_request(&query),
        (_, "/") => Err(Refusal::Method("GET")),
        (&Method::POST, "/bulk/get") => {
            return bulk_get(kv, ctx, body, conn).await;
        }
        (&Method::GET | &Method::PUT | &Method::DELETE, p) => {
            key_request(&parts.method, &parts.headers, p, &query, body).await
        }
        _ => Err(Refusal::Method("GET, PUT, DELETE")),
    };
    let op_request = match op_request {
        Ok(r) => r,
        Err(refusal) => return refusal.response(),
    };
    let op = match &op_request {
        OpRequest::Get { .. } => Op::Get,
        OpRequest::Put { .. } => Op::Put,
        OpRequest::Delete { .. } => Op::Delete,
        _ => Op::List,
    };
    match kv.perform(&ctx, op_request).await {
        Ok(reply) => reply_response(reply),
        Err(f) => failure(f, op, conn).await,
    }
}

/// A request refused before it reaches the store, answered at once.
enum Refusal {
    /// An invalid argument or value, as the store words it.
    Kv(KvError),
    /// The key is not valid percent-encoding.
    BadKey,
    /// An invalid `cache_ttl`, with the reason.
    CacheTtl(String),
    /// The method is not allowed here; the allowed ones.
    Method(&'static str),
}

impl Refusal {
    fn response(self) -> Response {
        match self {
            Refusal::Kv(e) => kv_error(&e),
            Refusal::BadKey => bad_key(),
            Refusal::CacheTtl(reason) => status_with_reason(400, &reason),
            Refusal::Method(allow) => method_not_allowed(allow),
        }
    }
}

/// A list (`GET /?key_count_limit=&prefix=&cursor=`).
fn list_request(query: &[(String, String)]) -> Result<OpRequest, Refusal> {
    let limit = store::validate_list_limit(
        "key_count_limit",
        query_param(query, "key_count_limit").as_deref(),
    )
    .map_err(Refusal::Kv)?;
    Ok(OpRequest::List {
        prefix: query_param(query, "prefix").unwrap_or_default(),
        cursor: query_param(query, "cursor"),
        limit,
    })
}

/// A get, put or delete of the key at `path`.
async fn key_request(
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    query: &[(String, String)],
    body: Body,
) -> Result<OpRequest, Refusal> {
    // A put's body is read first, so every error reaches the Worker as an answer
    // (an unread body makes the connection close under the client: a reset).
    let value = if method == Method::PUT {
        Some(read_value(headers, body).await)
    } else {
        None
    };
    let Some(key) = percent_decode_strict(&path[1..]) else {
        return Err(Refusal::BadKey);
    };
    match *method {
        Method::GET => {
            let ttl = query_param(query, "cache_ttl");
            if let Err(reason) = super::wire::check_cache_ttl_param(ttl.as_deref()) {
                return Err(Refusal::CacheTtl(reason));
            }
            Ok(OpRequest::Get { key })
        }
        Method::DELETE => Ok(OpRequest::Delete { key }),
        _ => {
            // workerd sends the metadata's JSON as UTF-8 bytes (non-ASCII included);
            // the store checks expiration, then size, then JSON, as miniflare does.
            let metadata = headers
                .get(METADATA_HEADER)
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned());
            let value = match value {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(Refusal::Kv(e)),
                None => bytes::Bytes::new(),
            };
            Ok(OpRequest::Put {
                key,
                put: PutRequest {
                    value,
                    metadata,
                    expiration: query_param(query, "expiration"),
                    expiration_ttl: query_param(query, "expiration_ttl"),
                },
            })
        }
    }
}

/// A successful get, list, put or delete, as the binding's backing service answers it.
fn reply_response(reply: OpReply) -> Response {
    match reply {
        OpReply::Entry(Some(e)) => {
            let mut resp = Response::new(Body::from(e.value));
            // from_bytes: metadata JSON may hold non-ASCII UTF-8 (a header's obs-text).
            if let Some(m) = e
                .metadata
                .and_then(|m| HeaderValue::from_bytes(m.as_bytes()).ok())
            {
                resp.headers_mut().insert(METADATA_HEADER, m);
            }
            if let Some(exp) = e.expiration {
                resp.headers_mut()
                    .insert("expiration", HeaderValue::from(exp));
            }
            resp
        }
        OpReply::Entry(None) => status_with_reason(404, "Not Found"),
        OpReply::Page(page) => {
            // The binding protocol wants metadata as a JSON-encoded string.
            let keys: Vec<Value> = page
                .keys
                .into_iter()
                .map(|k| listed_key_json(k, MetadataAs::String))
                .collect();
            let mut body = json!({ "keys": keys, "list_complete": page.list_complete });
            if let Some(c) = page.cursor {
                body["cursor"] = Value::String(c);
            }
            json_response(&body)
        }
        _ => Response::new(Body::empty()),
    }
}

fn json_response(v: &Value) -> Response {
    let mut resp = Response::new(Body::from(v.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = status_with_reason(405, "Method Not Allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Render a failure the way the binding's backing service does.
async fn failure(f: OpFailure, op: Op, conn: Option<ConnControl>) -> Response {
    match f {
        OpFailure::Kv(e) => kv_error(&e),
        OpFailure::Quota(q) => status_with_reason(429, &daily_limit_reason(q)),
        OpFailure::Fault(Action::DailyLimit) => status_with_reason(429, &daily_limit_reason(op)),
        OpFailure::Fault(Action::RateLimit) => status_with_reason(429, "Too Many Requests"),
        OpFailure::Fault(Action::Error(s)) => {
            let reason = StatusCode::from_u16(s)
                .ok()
                .and_then(|c| c.canonical_reason())
                .unwrap_or("Internal Server Error");
            status_with_reason(s, reason)
        }
        OpFailure::Fault(a @ (Action::Hang | Action::Reset)) => hang_or_reset(a, conn).await,
    }
}

/// `KV put() limit exceeded for the day.` and its siblings.
pub fn daily_limit_reason(op: Op) -> String {
    format!("KV {}() limit exceeded for the day.", op.as_str())
}

/// Read a put body, refusing more than 25 MiB.
pub(crate) async fn read_value(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, KvError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    super::wire::read_value(declared, body).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkGetBody {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    with_metadata: bool,
    #[serde(default)]
    cache_ttl: Option<Value>,
}

async fn bulk_get(kv: MockKv, ctx: OpContext, body: Body, conn: Option<ConnControl>) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BULK_BODY).await else {
        return status_with_reason(413, "Payload Too Large");
    };
    let Ok(req) = serde_json::from_slice::<BulkGetBody>(&bytes) else {
        return status_with_reason(400, "Bad Request");
    };
    let as_json = match req.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return status_with_reason(
                400,
                &format!("\"{other}\" is not a valid type. Use \"json\" or \"text\""),
            );
        }
    };
    if req.keys.is_empty() {
        return status_with_reason(400, "You must request a minimum of 1 key");
    }
    if req.keys.len() > MAX_BULK_KEYS {
        return status_with_reason(400, "You can request a maximum of 100 keys");
    }
    if let Err(reason) = super::wire::check_cache_ttl_value(req.cache_ttl.as_ref()) {
        return status_with_reason(400, &reason);
    }
    let entries = match kv
        .perform(&ctx, OpRequest::GetMany { keys: req.keys })
        .await
    {
        Ok(OpReply::Entries(e)) => e,
        Ok(_) => return status_with_reason(500, "Internal Server Error"),
        Err(f) => return failure(f, Op::Get, conn).await,
    };
    let shape = BulkShape {
        as_json,
        with_metadata: req.with_metadata,
        with_expiration: false,
    };
    let Some(out) = bulk_values(entries, shape) else {
        return status_with_reason(400, NON_JSON_VALUE);
    };
    let mut resp = Response::new(Body::from(super::wire::js_ordered_object(out)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// How a listed key's metadata is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetadataAs {
    /// As a JSON-encoded string (the binding protocol).
    String,
    /// As the JSON value itself (the REST API).
    Json,
}

/// One key of a list page: `{name, expiration?, metadata?}`.
pub(crate) fn listed_key_json(k: store::ListedKey, metadata: MetadataAs) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), Value::String(k.name));
    if let Some(e) = k.expiration {
        o.insert("expiration".into(), json!(e));
    }
    let m = match (k.metadata, metadata) {
        (Some(m), MetadataAs::String) => Some(Value::String(m)),
        (Some(m), MetadataAs::Json) => serde_json::from_str(&m).ok(),
        (None, _) => None,
    };
    if let Some(m) = m {
        o.insert("metadata".into(), m);
    }
    Value::Object(o)
}

/// Cloudflare's answer when a bulk get asks for JSON and a value is not JSON.
pub(crate) const NON_JSON_VALUE: &str =
    "At least one of the requested keys corresponds to a non-json value";

/// How a bulk get shapes each value.
#[derive(Clone, Copy)]
pub(crate) struct BulkShape {
    /// Parse values as JSON (`type: "json"`) instead of returning text.
    pub as_json: bool,
    /// Return `{value, metadata}` objects instead of bare values.
    pub with_metadata: bool,
    /// Also put `expiration` in those objects (the REST API does, the binding does not).
    pub with_expiration: bool,
}

/// Key → value (or `{value, metadata[, expiration]}`, or null for a miss) for a bulk get, in
/// the order asked; `None` when JSON was asked for and a value is not JSON.
pub(crate) fn bulk_values(
    entries: Vec<(String, Option<store::Entry>)>,
    shape: BulkShape,
) -> Option<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for (key, entry) in entries {
        let v = match entry {
            None => Value::Null,
            Some(e) => {
                let text = String::from_utf8_lossy(&e.value).into_owned();
                let value = if shape.as_json {
                    serde_json::from_str::<Value>(&text).ok()?
                } else {
                    Value::String(text)
                };
                if !shape.with_metadata {
                    value
                } else {
                    let metadata = e
                        .metadata
                        .and_then(|m| serde_json::from_str::<Value>(&m).ok())
                        .unwrap_or(Value::Null);
                    let mut o = json!({ "value": value, "metadata": metadata });
                    if shape.with_expiration {
                        o["expiration"] = json!(e.expiration);
                    }
                    o
                }
            }
        };
        out.push((key, v));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;
    use crate::mockkv::{Limits, MockKvConfig, VirtualClock, router};

    /// 2024-01-01T12:00:00Z: noon, so a day boundary is 12 h away.
    const T0: u64 = 1_704_110_400_000;

    fn mock() -> MockKv {
        MockKv::new(MockKvConfig::default(), VirtualClock::frozen(T0))
    }

    struct Answer {
        status: u16,
        reason: String,
        headers: HeaderMap,
        body: String,
    }

    async fn send(
        kv: &MockKv,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Answer {
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "fake-host");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = router(kv.clone())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_owned))
            .unwrap_or_default();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status: status.as_u16(),
            reason,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(kv: &MockKv, uri: &str) -> Answer {
        send(kv, "GET", uri, &[], Body::empty()).await
    }

    #[tokio::test]
    async fn put_get_with_metadata_and_percent_encoded_keys() {
        let kv = mock();
        let put = send(
            &kv,
            "PUT",
            "/a:b%20c?urlencoded=true&expiration_ttl=120",
            &[("cf-kv-metadata", r#"{"v":1}"#)],
            "hello",
        )
        .await;
        assert_eq!(put.status, 200);
        // Same key, encoded differently (delete encodes ':').
        let got = get(&kv, "/a%3Ab%20c?urlencoded=true").await;
        assert_eq!((got.status, got.body.as_str()), (200, "hello"));
        assert_eq!(got.headers[METADATA_HEADER], r#"{"v":1}"#);
        assert_eq!(got.headers["expiration"], (T0 / 1000 + 120).to_string());
        let del = send(
            &kv,
            "DELETE",
            "/a%3Ab%20c?urlencoded=true",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(del.status, 200);
        let miss = get(&kv, "/a:b%20c?urlencoded=true").await;
        assert_eq!(miss.status, 404);
    }

    #[tokio::test]
    async fn expired_keys_vanish_on_the_virtual_clock() {
        let kv = mock();
        send(&kv, "PUT", "/k?urlencoded=true&expiration_ttl=60", &[], "v").await;
        kv.clock().advance(Duration::from_secs(59));
        assert_eq!(get(&kv, "/k?urlencoded=true").await.status, 200);
        kv.clock().advance(Duration::from_secs(1));
        assert_eq!(get(&kv, "/k?urlencoded=true").await.status, 404);
        let list = get(&kv, "/?key_count_limit=10").await;
        assert_eq!(list.body, r#"{"keys":[],"list_complete":true}"#);
    }

    #[tokio::test]
    async fn put_errors_carry_cloudflare_reason_phrases() {
        let kv = mock();
        type Case<'a> = (String, &'a [(&'a str, &'a str)], u16, String);
        let cases: [Case; 5] = [
            (
                "/k?expiration_ttl=30".into(),
                &[],
                400,
                "Invalid expiration_ttl of 30. Expiration TTL must be at least 60.".into(),
            ),
            (
                format!("/k?expiration={}", T0 / 1000 + 10),
                &[],
                400,
                format!(
                    "Invalid expiration of {}. Expiration times must be at least 60 seconds in the future.",
                    T0 / 1000 + 10
                ),
            ),
            (
                format!("/{}", "x".repeat(513)),
                &[],
                414,
                "UTF-8 encoded length of 513 exceeds key length limit of 512.".into(),
            ),
            (
                "/k".into(),
                &[("cf-kv-metadata", "{not json")],
                400,
                "Metadata is not valid JSON.".into(),
            ),
            (
                "/%2E%2E".into(),
                &[],
                400,
                "Illegal key name \"..\". Please use a different name.".into(),
            ),
        ];
        for (uri, headers, status, reason) in cases {
            let a = send(&kv, "PUT", &uri, headers, "v").await;
            assert_eq!(
                (a.status, a.reason.as_str()),
                (status, reason.as_str()),
                "{uri}"
            );
        }
        let meta = format!("\"{}\"", "m".repeat(1023));
        let a = send(&kv, "PUT", "/k", &[("cf-kv-metadata", &meta)], "v").await;
        assert_eq!(
            (a.status, a.reason.as_str()),
            (413, "Metadata length of 1025 exceeds limit of 1024.")
        );
        let big = vec![b'x'; store::MAX_VALUE_BYTES + 1];
        let a = send(&kv, "PUT", "/k", &[], big).await;
        assert_eq!(a.status, 413);
        assert!(a.reason.starts_with("Value length of"), "{}", a.reason);
        let stats = kv.stats();
        assert!(
            stats
                .counts
                .iter()
                .all(|c| c.outcome == crate::mockkv::stats::Outcome::Invalid)
        );
    }

    #[tokio::test]
    async fn same_key_writes_faster_than_one_per_second_get_429() {
        let kv = mock();
        assert_eq!(send(&kv, "PUT", "/k", &[], "1").await.status, 200);
        let a = send(&kv, "PUT", "/k", &[], "2").await;
        assert_eq!((a.status, a.reason.as_str()), (429, "Too Many Requests"));
        kv.clock().advance(Duration::from_secs(1));
        assert_eq!(send(&kv, "PUT", "/k", &[], "3").await.status, 200);
        kv.set_same_key_write_limit(false);
        assert_eq!(send(&kv, "PUT", "/k", &[], "4").await.status, 200);
        assert_eq!(get(&kv, "/k").await.body, "4");
    }

    #[tokio::test]
    async fn list_sorts_pages_and_encodes_metadata_as_string() {
        let kv = mock();
        kv.set_same_key_write_limit(false);
        for k in ["q:b", "q:a", "r:a", "q:c"] {
            send(
                &kv,
                "PUT",
                &format!("/{k}"),
                &[("cf-kv-metadata", r#"{"n":1}"#)],
                "v",
            )
            .await;
        }
        let p1 = get(&kv, "/?key_count_limit=2&prefix=q%3A").await;
        let v: Value = serde_json::from_str(&p1.body).unwrap();
        assert_eq!(v["keys"][0]["name"], "q:a");
        assert_eq!(
            v["keys"][0]["metadata"], r#"{"n":1}"#,
            "metadata is a JSON string"
        );
        assert_eq!(v["list_complete"], false);
        let cursor = v["cursor"].as_str().unwrap();
        let p2 = get(
            &kv,
            &format!("/?key_count_limit=2&prefix=q%3A&cursor={cursor}"),
        )
        .await;
        let v: Value = serde_json::from_str(&p2.body).unwrap();
        assert_eq!(v["keys"].as_array().unwrap().len(), 1);
        assert_eq!(v["list_complete"], true);
        assert!(v.get("cursor").is_none());
        for (q, reason) in [
            (
                "key_count_limit=0",
                "Invalid key_count_limit of 0. Please specify an integer greater than 0.",
            ),
            (
                "key_count_limit=1001",
                "Invalid key_count_limit of 1001. Please specify an integer less than 1000.",
            ),
            ("cursor=zz", "Invalid cursor \"zz\"."),
        ] {
            let a = get(&kv, &format!("/?{q}")).await;
            assert_eq!((a.status, a.reason.as_str()), (400, reason));
        }
    }

    #[tokio::test]
    async fn bulk_get_text_json_metadata_and_errors() {
        let kv = mock();
        send(&kv, "PUT", "/a", &[("cf-kv-metadata", "7")], r#"{"x":1}"#).await;
        send(&kv, "PUT", "/b", &[], "plain").await;
        let post = |body: Value| {
            let kv = kv.clone();
            async move { send(&kv, "POST", "/bulk/get", &[], body.to_string()).await }
        };
        let a = post(json!({"keys": ["a", "b", "none"]})).await;
        assert_eq!(a.body, r#"{"a":"{\"x\":1}","b":"plain","none":null}"#);
        let a = post(json!({"keys": ["a"], "type": "json", "withMetadata": true})).await;
        assert_eq!(a.body, r#"{"a":{"metadata":7,"value":{"x":1}}}"#);
        for (body, reason) in [
            (json!({"keys": []}), "You must request a minimum of 1 key"),
            (
                json!({"keys": (0..101).map(|i| i.to_string()).collect::<Vec<_>>()}),
                "You can request a maximum of 100 keys",
            ),
            (
                json!({"keys": ["a"], "type": "stream"}),
                "\"stream\" is not a valid type. Use \"json\" or \"text\"",
            ),
            (
                json!({"keys": ["b"], "type": "json"}),
                "At least one of the requested keys corresponds to a non-json value",
            ),
        ] {
            let a = post(body).await;
            assert_eq!((a.status, a.reason.as_str()), (400, reason));
        }
        let a = send(&kv, "POST", "/bulk/get", &[], "not json").await;
        assert_eq!(a.status, 400);
    }

    #[tokio::test]
    async fn namespaces_by_path_prefix_header_or_default() {
        let kv = mock();
        send(&kv, "PUT", "/ns/A/k", &[], "in A").await;
        send(&kv, "PUT", "/k", &[("x-kvchaos-namespace", "B")], "in B").await;
        send(&kv, "PUT", "/k", &[], "in default").await;
        assert_eq!(get(&kv, "/ns/A/k").await.body, "in A");
        assert_eq!(get(&kv, "/ns/B/k").await.body, "in B");
        assert_eq!(get(&kv, "/ns/default/k").await.body, "in default");
        let list = get(&kv, "/ns/A/?prefix=").await;
        assert!(list.body.contains(r#""name":"k""#));
        assert_eq!(kv.peek("A", "k").unwrap(), "in A");
    }

    #[tokio::test]
    async fn malformed_requests_get_4xx() {
        let kv = mock();
        for (method, uri, status) in [
            ("GET", "/bad%zzkey", 400),
            ("GET", "/bad%e2%28%a1", 400),
            ("GET", "/trailing%4", 400),
            ("PUT", "/ns/%zz/k", 400),
            ("POST", "/k", 405),
            ("PATCH", "/k", 405),
            ("DELETE", "/", 405),
            ("GET", "/", 200),
            ("GET", "/__kvchaos/nope", 404),
        ] {
            let a = send(&kv, method, uri, &[], Body::empty()).await;
            assert_eq!(a.status, status, "{method} {uri}");
        }
    }

    #[tokio::test]
    async fn daily_quota_runs_out_and_resets_at_virtual_midnight() {
        let kv = mock();
        kv.set_same_key_write_limit(false);
        kv.set_limits(Limits {
            writes: Some(3),
            reads: Some(2),
            deletes: Some(1),
            lists: Some(1),
        });
        for i in 0..3 {
            assert_eq!(
                send(&kv, "PUT", &format!("/k{i}"), &[], "v").await.status,
                200
            );
        }
        let a = send(&kv, "PUT", "/k3", &[], "v").await;
        assert_eq!(
            (a.status, a.reason.as_str()),
            (429, "KV put() limit exceeded for the day.")
        );
        get(&kv, "/k0").await;
        get(&kv, "/nope").await;
        assert_eq!(
            get(&kv, "/k0").await.reason,
            "KV get() limit exceeded for the day."
        );
        send(&kv, "DELETE", "/k0", &[], Body::empty()).await;
        assert_eq!(
            send(&kv, "DELETE", "/k1", &[], Body::empty()).await.reason,
            "KV delete() limit exceeded for the day."
        );
        get(&kv, "/").await;
        assert_eq!(
            get(&kv, "/").await.reason,
            "KV list() limit exceeded for the day."
        );
        let left = kv.stats().quota;
        assert!(left.iter().all(|r| r.left == Some(0)), "{left:?}");
        // Noon + 12 h - 1 ms: still the same UTC day.
        kv.clock()
            .advance(Duration::from_millis(12 * 3_600_000 - 1));
        assert_eq!(send(&kv, "PUT", "/k3", &[], "v").await.status, 429);
        kv.clock().advance(Duration::from_millis(1));
        assert_eq!(send(&kv, "PUT", "/k3", &[], "v").await.status, 200);
    }

    #[tokio::test]
    async fn concurrent_writers_lose_no_update_and_keep_per_key_order() {
        let kv = mock();
        kv.set_same_key_write_limit(false);
        kv.set_limits(Limits::PAID);
        let mut tasks = Vec::new();
        for w in 0..8 {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    let a = send(&kv, "PUT", &format!("/w{w}:{i}"), &[], format!("{i}")).await;
                    assert_eq!(a.status, 200);
                    // Per-key order: successive writes to one key, last wins.
                    send(&kv, "PUT", &format!("/last:{w}"), &[], format!("{i}")).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let list = get(&kv, "/?prefix=w").await;
        let v: Value = serde_json::from_str(&list.body).unwrap();
        assert_eq!(v["keys"].as_array().unwrap().len(), 400);
        for w in 0..8 {
            assert_eq!(kv.peek("default", &format!("last:{w}")).unwrap(), "49");
        }
    }
}
