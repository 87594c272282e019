//! The Cloudflare REST API v4 for KV, on the same store as the binding door.
//!
//! Owns: `/client/v4/accounts/:account/storage/kv/namespaces/:ns/` with
//! `values/:key` (GET raw value, PUT raw body with `expiration` /
//! `expiration_ttl`, DELETE), `metadata/:key`, `keys` (`prefix`, `limit`,
//! `cursor`), `bulk` (PUT writes, DELETE deletes), `bulk/delete` and
//! `bulk/get` (POST); the `{success, errors, messages, result, result_info}`
//! envelope; the Bearer token check. Error codes: 10048 (daily limit, with
//! Cloudflare's message), 10009 (key not found), 10000 (authentication),
//! 6003 (missing Authorization), 10013 (unknown namespace) follow
//! Cloudflare; 971 for rate limiting and 10001 for everything else are the
//! mock's choice. Also: the request-rate limit (429 with `Retry-After`, see
//! [`super::ratelimit`]), `POST …/storage/kv/namespaces` (create),
//! `GET /client/v4/user/tokens/verify` (the token's identity), `base64`
//! bulk values, at most 10,000 pairs or keys per bulk write or delete.
//! Not supported yet: multipart PUT (metadata on single writes).
//! Does not own: KV semantics, quotas or faults (see [`super::MockKv`]).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::binding::{LOCATION_HEADER, percent_decode_strict, read_value};
use super::fault::Action;
use super::server::ConnControl;
use super::store::{self, KvError, PutRequest};
use super::{MockKv, OpContext, OpFailure, OpReply, OpRequest, hang_or_reset};

/// Cloudflare's message for an exhausted daily quota (code 10048).
pub const DAILY_LIMIT_MESSAGE: &str =
    "your account has reached the free usage limit for this operation for today";
/// Largest JSON body of a bulk request.
const MAX_BULK_BODY: usize = 100 * 1024 * 1024;
/// Most pairs one bulk write or keys one bulk delete may carry.
pub const MAX_BULK_ITEMS: usize = 10_000;
/// The token id `GET /user/tokens/verify` answers with (the actor a dump records).
pub const TOKEN_ID: &str = "kvchaos-mock-token";

fn envelope(status: StatusCode, body: Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn ok(result: Value) -> Response {
    envelope(
        StatusCode::OK,
        json!({"success": true, "errors": [], "messages": [], "result": result}),
    )
}

fn fail(status: u16, code: u32, message: &str) -> Response {
    envelope(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({
            "success": false,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": null
        }),
    )
}

fn kv_fail(e: &KvError) -> Response {
    match e {
        KvError::SameKeyRate => fail(429, 971, "Too Many Requests"),
        KvError::Invalid { status, message } => fail(*status, 10001, message),
    }
}

async fn failure(f: OpFailure, conn: Option<ConnControl>) -> Response {
    match f {
        OpFailure::Kv(e) => kv_fail(&e),
        OpFailure::Quota(_) | OpFailure::Fault(Action::DailyLimit) => {
            fail(429, 10048, DAILY_LIMIT_MESSAGE)
        }
        OpFailure::Fault(Action::RateLimit) => fail(
            429,
            971,
            "Please wait and consider throttling your request speed",
        ),
        OpFailure::Fault(Action::Error(s)) => fail(s, 10001, "Internal server error"),
        OpFailure::Fault(a @ (Action::Hang | Action::Reset)) => hang_or_reset(a, conn).await,
    }
}

/// Parsed REST path: account, namespace, and what follows.
struct Target {
    account: String,
    namespace: String,
    rest: String,
}

fn parse_path(path: &str) -> Option<Target> {
    let after = path.strip_prefix("/client/v4/accounts/")?;
    let (account, after) = after.split_once('/')?;
    let after = after.strip_prefix("storage/kv/namespaces/")?;
    let (ns, rest) = after.split_once('/').unwrap_or((after, ""));
    Some(Target {
        account: percent_decode_strict(account).filter(|a| !a.is_empty())?,
        namespace: percent_decode_strict(ns).filter(|n| !n.is_empty())?,
        rest: rest.to_owned(),
    })
}

fn check_auth(kv: &MockKv, headers: &http::HeaderMap) -> Result<(), Box<Response>> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match (bearer, &kv.config().api_token) {
        (None, _) => Err(Box::new(fail(400, 6003, "Invalid request headers"))),
        (Some(t), Some(want)) if t != want => {
            Err(Box::new(fail(403, 10000, "Authentication error")))
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct BulkWrite {
    key: String,
    value: String,
    #[serde(default)]
    expiration: Option<Value>,
    #[serde(default)]
    expiration_ttl: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    base64: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkGet {
    keys: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, alias = "with_metadata")]
    with_metadata: bool,
}

fn raw_number(v: Option<Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, Box<Response>> {
    let bytes = axum::body::to_bytes(body, MAX_BULK_BODY)
        .await
        .map_err(|_| Box::new(fail(413, 10001, "Request body too large")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(fail(
            400,
            10001,
            &format!("Malformed JSON in request body: {e}"),
        ))
    })
}

/// The account a path names (`""` for paths without one): what the rate limit counts per.
fn path_account(path: &str) -> String {
    path.strip_prefix("/client/v4/accounts/")
        .and_then(|a| a.split('/').next())
        .and_then(percent_decode_strict)
        .unwrap_or_default()
}

/// Answer one REST request: count it, apply the rate limit and the token check, answer the
/// routes outside a namespace, refuse unknown namespaces, then the namespace's routes.
pub(crate) async fn handle(kv: MockKv, req: Request) -> Response {
    let conn = req.extensions().get::<ConnControl>().cloned();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if let Err(retry_after_s) = kv.admit_rest(&path_account(&path)) {
        let mut resp = fail(
            429,
            971,
            "Please wait and consider throttling your request speed",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        return resp;
    }
    if let Err(resp) = check_auth(&kv, &parts.headers) {
        return *resp;
    }
    if path == "/client/v4/user/tokens/verify" && parts.method == Method::GET {
        return ok(json!({"id": TOKEN_ID, "status": "active"}));
    }
    if path.ends_with("/storage/kv/namespaces") && parts.method == Method::POST {
        return create_namespace(&kv, body).await;
    }
    let Some(target) = parse_path(&path) else {
        return fail(404, 7003, "Could not route to the requested path");
    };
    if !kv.namespace_exists(&target.namespace) {
        return fail(404, 10013, "namespace not found");
    }
    in_namespace(kv, target, parts, body, conn).await
}

/// `POST …/storage/kv/namespaces` `{"title"}`: the mock uses the title as the id.
async fn create_namespace(kv: &MockKv, body: Body) -> Response {
    #[derive(Deserialize)]
    struct Create {
        title: String,
    }
    let c: Create = match read_json(body).await {
        Ok(c) => c,
        Err(r) => return *r,
    };
    if c.title.is_empty() || c.title.len() > 512 {
        return fail(400, 10019, "namespace title must be 1 to 512 bytes");
    }
    if !kv.create_namespace(&c.title) {
        return fail(
            400,
            10014,
            "a namespace with this account ID and title already exists",
        );
    }
    ok(json!({"id": c.title, "title": c.title, "supports_url_encoding": true}))
}

/// The routes under one existing namespace.
async fn in_namespace(
    kv: MockKv,
    target: Target,
    parts: http::request::Parts,
    body: Body,
    conn: Option<ConnControl>,
) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let ctx = OpContext {
        namespace: target.namespace,
        account: target.account,
        remote: parts
            .headers
            .get(LOCATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.is_empty() && v != "primary"),
    };
    let c = Call {
        kv,
        ctx,
        query,
        conn,
    };
    let method = parts.method.clone();
    let rest = target.rest.as_str();
    if let Some(enc) = rest.strip_prefix("values/") {
        return value(&c, &method, enc, &parts.headers, body).await;
    }
    if let Some(enc) = rest.strip_prefix("metadata/") {
        return metadata(&c, &method, enc).await;
    }
    collection(&c, &method, rest, body).await
}

/// One request's context under a namespace.
struct Call {
    kv: MockKv,
    ctx: OpContext,
    query: Vec<(String, String)>,
    conn: Option<ConnControl>,
}

impl Call {
    fn param(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// `values/:key`: GET, PUT, DELETE.
async fn value(
    c: &Call,
    method: &Method,
    enc: &str,
    headers: &http::HeaderMap,
    body: Body,
) -> Response {
    let Some(key) = percent_decode_strict(enc) else {
        return fail(400, 10001, "Could not URL-decode key name");
    };
    let request = match *method {
        Method::GET => OpRequest::Get { key },
        Method::DELETE => OpRequest::Delete { key },
        Method::PUT => {
            let value = match read_value(headers, body).await {
                Ok(v) => v,
                Err(e) => return kv_fail(&e),
            };
            OpRequest::Put {
                key,
                put: PutRequest {
                    value,
                    metadata: None,
                    expiration: c.param("expiration"),
                    expiration_ttl: c.param("expiration_ttl"),
                },
            }
        }
        _ => return fail(405, 10001, "Method not allowed"),
    };
    match c.kv.perform(&c.ctx, request).await {
        Ok(OpReply::Entry(Some(e))) => {
            let mut resp = Response::new(Body::from(e.value));
            if let Some(exp) = e.expiration {
                resp.headers_mut()
                    .insert("expiration", HeaderValue::from(exp));
            }
            resp
        }
        Ok(OpReply::Entry(None)) => fail(404, 10009, "get: 'key not found'"),
        Ok(_) => ok(json!({})),
        Err(f) => failure(f, c.conn.clone()).await,
    }
}

/// `metadata/:key`: GET.
async fn metadata(c: &Call, method: &Method, enc: &str) -> Response {
    if *method != Method::GET {
        return fail(405, 10001, "Method not allowed");
    }
    let Some(key) = percent_decode_strict(enc) else {
        return fail(400, 10001, "Could not URL-decode key name");
    };
    match c.kv.perform(&c.ctx, OpRequest::Get { key }).await {
        Ok(OpReply::Entry(Some(e))) => ok(e
            .metadata
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or(Value::Null)),
        Ok(_) => fail(404, 10009, "metadata: 'key not found'"),
        Err(f) => failure(f, c.conn.clone()).await,
    }
}

/// `keys`, `bulk`, `bulk/delete`, `bulk/get`.
async fn collection(c: &Call, method: &Method, rest: &str, body: Body) -> Response {
    match (method, rest) {
        (&Method::GET, "keys") => list(c).await,
        (&Method::PUT, "bulk") => {
            let writes: Vec<BulkWrite> = match read_json(body).await {
                Ok(w) => w,
                Err(r) => return *r,
            };
            if writes.len() > MAX_BULK_ITEMS {
                return fail(400, 10001, "You can write at most 10000 pairs at once");
            }
            let items = match bulk_items(writes) {
                Ok(items) => items,
                Err(key) => {
                    return fail(
                        400,
                        10001,
                        &format!("The value of \"{key}\" is not valid base64"),
                    );
                }
            };
            bulk_result(
                c.kv.perform(&c.ctx, OpRequest::PutMany { items }).await,
                c.conn.clone(),
            )
            .await
        }
        (&Method::DELETE, "bulk") | (&Method::POST, "bulk/delete") => {
            let keys: Vec<String> = match read_json(body).await {
                Ok(k) => k,
                Err(r) => return *r,
            };
            if keys.len() > MAX_BULK_ITEMS {
                return fail(400, 10001, "You can delete at most 10000 keys at once");
            }
            bulk_result(
                c.kv.perform(&c.ctx, OpRequest::DeleteMany { keys }).await,
                c.conn.clone(),
            )
            .await
        }
        (&Method::POST, "bulk/get") => bulk_get(c, body).await,
        _ => fail(404, 7003, "Could not route to the requested path"),
    }
}

/// `GET keys`.
async fn list(c: &Call) -> Response {
    let limit = match store::validate_list_limit("limit", c.param("limit").as_deref()) {
        Ok(l) => l,
        Err(e) => return kv_fail(&e),
    };
    let request = OpRequest::List {
        prefix: c.param("prefix").unwrap_or_default(),
        cursor: c.param("cursor"),
        limit,
    };
    match c.kv.perform(&c.ctx, request).await {
        Ok(OpReply::Page(page)) => {
            let count = page.keys.len();
            let keys: Vec<Value> = page
                .keys
                .into_iter()
                .map(|k| super::binding::listed_key_json(k, super::binding::MetadataAs::Json))
                .collect();
            envelope(
                StatusCode::OK,
                json!({
                    "success": true, "errors": [], "messages": [], "result": keys,
                    "result_info": {"count": count, "cursor": page.cursor.unwrap_or_default()}
                }),
            )
        }
        Ok(_) => fail(500, 10001, "Internal server error"),
        Err(f) => failure(f, c.conn.clone()).await,
    }
}

/// `POST bulk/get`.
async fn bulk_get(c: &Call, body: Body) -> Response {
    let req: BulkGet = match read_json(body).await {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let as_json = match req.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return fail(
                400,
                10001,
                &format!("\"{other}\" is not a valid type. Use \"json\" or \"text\""),
            );
        }
    };
    if req.keys.is_empty() || req.keys.len() > 100 {
        return fail(400, 10001, "You can request between 1 and 100 keys");
    }
    let entries = match c
        .kv
        .perform(&c.ctx, OpRequest::GetMany { keys: req.keys })
        .await
    {
        Ok(OpReply::Entries(e)) => e,
        Ok(_) => return fail(500, 10001, "Internal server error"),
        Err(f) => return failure(f, c.conn.clone()).await,
    };
    let shape = super::binding::BulkShape {
        as_json,
        with_metadata: req.with_metadata,
        with_expiration: true,
    };
    let Some(values) = super::binding::bulk_values(entries, shape) else {
        return fail(400, 10001, super::binding::NON_JSON_VALUE);
    };
    ok(json!({ "values": Value::Object(values.into_iter().collect()) }))
}

/// Bulk writes as puts, base64 values decoded; `Err(key)` names a value that is not base64.
fn bulk_items(writes: Vec<BulkWrite>) -> Result<Vec<(String, PutRequest)>, String> {
    use base64::Engine as _;
    writes
        .into_iter()
        .map(|w| {
            let value = if w.base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(w.value.as_bytes())
                    .map_err(|_| w.key.clone())?
            } else {
                w.value.into_bytes()
            };
            let put = PutRequest {
                value: bytes::Bytes::from(value),
                metadata: w.metadata.map(|m| m.to_string()),
                expiration: raw_number(w.expiration),
                expiration_ttl: raw_number(w.expiration_ttl),
            };
            Ok((w.key, put))
        })
        .collect()
}

async fn bulk_result(r: Result<OpReply, OpFailure>, conn: Option<ConnControl>) -> Response {
    match r {
        Ok(OpReply::Bulk { ok: n, failed }) => {
            ok(json!({"successful_key_count": n, "unsuccessful_keys": failed}))
        }
        Ok(_) => fail(500, 10001, "Internal server error"),
        Err(f) => failure(f, conn).await,
    }
}

#[cfg(test)]
mod tests;
