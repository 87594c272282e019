//! The Cloudflare REST API v4 for KV, on the same store as the binding door.
//!
//! Owns: `/client/v4/accounts/:account/storage/kv/namespaces/:ns/` with
//! `values/:key` (GET raw value, PUT raw body with `expiration` /
//! `expiration_ttl`, DELETE), `metadata/:key`, `keys` (`prefix`, `limit`,
//! `cursor`), `bulk` (PUT writes, DELETE deletes), `bulk/delete` and
//! `bulk/get` (POST); the `{success, errors, messages, result, result_info}`
//! envelope; the Bearer token check. Error codes: 10048 (daily limit, with
//! Cloudflare's message), 10009 (key not found), 10000 (authentication),
//! 6003 (missing Authorization) follow Cloudflare; 971 for rate limiting
//! and 10001 for everything else are the mock's choice. Not supported yet:
//! multipart PUT (metadata on single writes) and `base64` bulk values.
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

/// Answer one REST request.
pub(crate) async fn handle(kv: MockKv, req: Request) -> Response {
    let conn = req.extensions().get::<ConnControl>().cloned();
    let (parts, body) = req.into_parts();
    if let Err(resp) = check_auth(&kv, &parts.headers) {
        return *resp;
    }
    let Some(target) = parse_path(parts.uri.path()) else {
        return fail(404, 7003, "Could not route to the requested path");
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let ctx = OpContext {
        namespace: target.namespace,
        account: target.account,
        remote: parts
            .headers
            .get(LOCATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.is_empty() && v != "primary"),
    };
    let method = parts.method.clone();
    let rest = target.rest.as_str();

    if let Some(enc) = rest.strip_prefix("values/") {
        let Some(key) = percent_decode_strict(enc) else {
            return fail(400, 10001, "Could not URL-decode key name");
        };
        let request = match method {
            Method::GET => OpRequest::Get { key },
            Method::DELETE => OpRequest::Delete { key },
            Method::PUT => {
                let value = match read_value(&parts.headers, body).await {
                    Ok(v) => v,
                    Err(e) => return kv_fail(&e),
                };
                OpRequest::Put {
                    key,
                    put: PutRequest {
                        value,
                        metadata: None,
                        expiration: param("expiration"),
                        expiration_ttl: param("expiration_ttl"),
                    },
                }
            }
            _ => return fail(405, 10001, "Method not allowed"),
        };
        return match kv.perform(&ctx, request).await {
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
            Err(f) => failure(f, conn).await,
        };
    }
    if let Some(enc) = rest.strip_prefix("metadata/") {
        if method != Method::GET {
            return fail(405, 10001, "Method not allowed");
        }
        let Some(key) = percent_decode_strict(enc) else {
            return fail(400, 10001, "Could not URL-decode key name");
        };
        return match kv.perform(&ctx, OpRequest::Get { key }).await {
            Ok(OpReply::Entry(Some(e))) => ok(e
                .metadata
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or(Value::Null)),
            Ok(_) => fail(404, 10009, "metadata: 'key not found'"),
            Err(f) => failure(f, conn).await,
        };
    }
    match (&method, rest) {
        (&Method::GET, "keys") => {
            let limit = match store::validate_list_limit("limit", param("limit").as_deref()) {
                Ok(l) => l,
                Err(e) => return kv_fail(&e),
            };
            let request = OpRequest::List {
                prefix: param("prefix").unwrap_or_default(),
                cursor: param("cursor"),
                limit,
            };
            match kv.perform(&ctx, request).await {
                Ok(OpReply::Page(page)) => {
                    let count = page.keys.len();
                    let keys: Vec<Value> = page
                        .keys
                        .into_iter()
                        .map(|k| {
                            super::binding::listed_key_json(k, super::binding::MetadataAs::Json)
                        })
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
                Err(f) => failure(f, conn).await,
            }
        }
        (&Method::PUT, "bulk") => {
            let writes: Vec<BulkWrite> = match read_json(body).await {
                Ok(w) => w,
                Err(r) => return *r,
            };
            if writes.iter().any(|w| w.base64) {
                return fail(
                    400,
                    10001,
                    "base64 values are not supported by the kvchaos mock",
                );
            }
            let items = writes
                .into_iter()
                .map(|w| {
                    let put = PutRequest {
                        value: bytes::Bytes::from(w.value),
                        metadata: w.metadata.map(|m| m.to_string()),
                        expiration: raw_number(w.expiration),
                        expiration_ttl: raw_number(w.expiration_ttl),
                    };
                    (w.key, put)
                })
                .collect();
            bulk_result(kv.perform(&ctx, OpRequest::PutMany { items }).await, conn).await
        }
        (&Method::DELETE, "bulk") | (&Method::POST, "bulk/delete") => {
            let keys: Vec<String> = match read_json(body).await {
                Ok(k) => k,
                Err(r) => return *r,
            };
            bulk_result(kv.perform(&ctx, OpRequest::DeleteMany { keys }).await, conn).await
        }
        (&Method::POST, "bulk/get") => {
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
            let entries = match kv
                .perform(&ctx, OpRequest::GetMany { keys: req.keys })
                .await
            {
                Ok(OpReply::Entries(e)) => e,
                Ok(_) => return fail(500, 10001, "Internal server error"),
                Err(f) => return failure(f, conn).await,
            };
            let shape = super::binding::BulkShape {
                as_json,
                with_metadata: req.with_metadata,
                with_expiration: true,
            };
            let Some(values) = super::binding::bulk_values(entries, shape) else {
                return fail(400, 10001, super::binding::NON_JSON_VALUE);
            };
            ok(json!({ "values": values }))
        }
        _ => fail(404, 7003, "Could not route to the requested path"),
    }
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
mod tests {
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;
    use crate::mockkv::{Limits, MockKvConfig, VirtualClock, router};

    const T0: u64 = 1_704_110_400_000;
    const BASE: &str = "/client/v4/accounts/acc/storage/kv/namespaces/NS";

    fn mock(token: Option<&str>) -> MockKv {
        let config = MockKvConfig {
            api_token: token.map(str::to_owned),
            ..MockKvConfig::default()
        };
        MockKv::new(config, VirtualClock::frozen(T0))
    }

    async fn call(
        kv: &MockKv,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: impl Into<Body>,
    ) -> (u16, String) {
        let mut req = http::Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = router(kv.clone())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn authed(kv: &MockKv, method: &str, path: &str, body: impl Into<Body>) -> (u16, Value) {
        let (s, b) = call(
            kv,
            method,
            &format!("{BASE}{path}"),
            Some("Bearer t0k"),
            body,
        )
        .await;
        (s, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    #[tokio::test]
    async fn bearer_token_is_checked() {
        let kv = mock(Some("t0k"));
        let (s, b) = call(&kv, "GET", &format!("{BASE}/keys"), None, Body::empty()).await;
        assert_eq!(s, 400);
        assert!(b.contains("6003"));
        let (s, b) = call(
            &kv,
            "GET",
            &format!("{BASE}/keys"),
            Some("Bearer nope"),
            Body::empty(),
        )
        .await;
        assert_eq!(s, 403);
        assert!(b.contains(r#""code":10000"#));
        assert_eq!(authed(&kv, "GET", "/keys", Body::empty()).await.0, 200);
    }

    #[tokio::test]
    async fn values_metadata_keys_and_bulk() {
        let kv = mock(None);
        kv.set_same_key_write_limit(false);
        let (s, v) = authed(&kv, "PUT", "/values/a%3A1?expiration_ttl=60", "one").await;
        assert_eq!((s, v["success"].clone()), (200, json!(true)));
        let (s, v) = authed(&kv, "GET", "/values/a:1", Body::empty()).await;
        assert_eq!((s, v), (200, Value::String("one".into())));
        let (s, v) = authed(&kv, "GET", "/values/none", Body::empty()).await;
        assert_eq!(s, 404);
        assert_eq!(v["errors"][0]["code"], 10009);
        let bulk = json!([
            {"key": "a:2", "value": "two", "metadata": {"m": 2}},
            {"key": "b:1", "value": "three", "expiration_ttl": 120}
        ]);
        let (s, v) = authed(&kv, "PUT", "/bulk", bulk.to_string()).await;
        assert_eq!(
            (s, v["result"]["successful_key_count"].clone()),
            (200, json!(2))
        );
        let (_, v) = authed(&kv, "GET", "/metadata/a:2", Body::empty()).await;
        assert_eq!(v["result"], json!({"m": 2}));
        let (_, v) = authed(&kv, "GET", "/keys?prefix=a:&limit=1", Body::empty()).await;
        assert_eq!(v["result"][0]["name"], "a:1");
        assert_eq!(v["result_info"]["count"], 1);
        let cursor = v["result_info"]["cursor"].as_str().unwrap().to_owned();
        let (_, v) = authed(
            &kv,
            "GET",
            &format!("/keys?prefix=a:&limit=1&cursor={cursor}"),
            Body::empty(),
        )
        .await;
        assert_eq!(
            v["result"][0]["metadata"],
            json!({"m": 2}),
            "metadata is JSON here"
        );
        assert_eq!(v["result_info"]["cursor"], "");
        let (_, v) = authed(
            &kv,
            "POST",
            "/bulk/get",
            json!({"keys": ["a:1", "zz"]}).to_string(),
        )
        .await;
        assert_eq!(v["result"]["values"], json!({"a:1": "one", "zz": null}));
        let (s, v) = authed(
            &kv,
            "POST",
            "/bulk/delete",
            json!(["a:1", "a:2"]).to_string(),
        )
        .await;
        assert_eq!(
            (s, v["result"]["successful_key_count"].clone()),
            (200, json!(2))
        );
        let (s, _) = authed(&kv, "DELETE", "/values/b:1", Body::empty()).await;
        assert_eq!(s, 200);
        let (_, v) = authed(&kv, "GET", "/keys", Body::empty()).await;
        assert_eq!(v["result"], json!([]));
    }

    #[tokio::test]
    async fn errors_use_the_envelope() {
        let kv = mock(None);
        for (method, path, body, status) in [
            ("PUT", "/values/k?expiration_ttl=1", "v", 400),
            ("PUT", "/values/bad%zz", "v", 400),
            ("GET", "/keys?limit=5000", "", 400),
            ("PUT", "/bulk", "not json", 400),
            ("POST", "/values/k", "", 405),
            ("GET", "/nothing-here", "", 404),
        ] {
            let (s, v) = authed(&kv, method, path, body).await;
            assert_eq!(s, status, "{method} {path}");
            assert_eq!(v["success"], false, "{method} {path}");
            assert_eq!(v["result"], Value::Null);
        }
        let (s, _) = call(
            &kv,
            "GET",
            "/client/v4/accounts/x",
            Some("Bearer t"),
            Body::empty(),
        )
        .await;
        assert_eq!(s, 404);
    }

    #[tokio::test]
    async fn daily_limit_is_429_code_10048_and_counted_per_account() {
        let kv = mock(None);
        kv.set_limits(Limits {
            writes: Some(1),
            ..Limits::PAID
        });
        assert_eq!(authed(&kv, "PUT", "/values/k1", "v").await.0, 200);
        let (s, v) = authed(&kv, "PUT", "/values/k2", "v").await;
        assert_eq!(s, 429);
        assert_eq!(
            v["errors"][0],
            json!({"code": 10048, "message": DAILY_LIMIT_MESSAGE})
        );
        // The binding door counts against its own account.
        let (s, _) = call(&kv, "PUT", "/k", None, "v").await;
        assert_eq!(s, 200);
        kv.add_fault("kind=daily-limit,ops=get".parse().unwrap())
            .unwrap();
        let (s, v) = authed(&kv, "GET", "/values/k1", Body::empty()).await;
        assert_eq!((s, v["errors"][0]["code"].clone()), (429, json!(10048)));
    }

    #[tokio::test]
    async fn stale_reads_from_another_location_see_old_values_and_misses() {
        let kv = mock(None);
        kv.add_fault("kind=stale-reads,lag=60s,p=0".parse().unwrap())
            .unwrap();
        kv.set_same_key_write_limit(false);
        let read = |remote: bool| {
            let kv = kv.clone();
            async move {
                let mut req = http::Request::builder().uri("/ns/N/k");
                if remote {
                    req = req.header(LOCATION_HEADER, "far");
                }
                let resp = router(kv)
                    .oneshot(req.body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        call(&kv, "PUT", "/ns/N/k", None, "v1").await;
        assert_eq!(read(false).await, (200, "v1".into()));
        assert_eq!(
            read(true).await.0,
            404,
            "a cached miss: the far location has not seen the write"
        );
        kv.clock().advance(Duration::from_secs(61));
        call(&kv, "PUT", "/ns/N/k", None, "v2").await;
        assert_eq!(read(true).await, (200, "v1".into()));
        assert_eq!(read(false).await, (200, "v2".into()));
        kv.clock().advance(Duration::from_secs(61));
        assert_eq!(read(true).await, (200, "v2".into()));
    }
}
