//! Handler tests of the REST door (oneshot through the router, no sockets).

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
    let kv = MockKv::new(config, VirtualClock::frozen(T0));
    // The REST door never creates a namespace by writing to it.
    kv.create_namespace("NS");
    kv
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

#[tokio::test]
async fn namespaces_exist_once_created_or_written_by_a_binding() {
    let kv = mock(None);
    let path = "/client/v4/accounts/acc/storage/kv/namespaces/fresh/keys";
    let (s, b) = call(&kv, "GET", path, Some("Bearer t"), Body::empty()).await;
    assert_eq!(s, 404);
    assert!(b.contains(r#""code":10013"#), "{b}");
    let (s, _) = call(
        &kv,
        "PUT",
        "/client/v4/accounts/acc/storage/kv/namespaces/fresh/values/k",
        Some("Bearer t"),
        "v",
    )
    .await;
    assert_eq!(s, 404, "a REST write does not create the namespace");
    let create = "/client/v4/accounts/acc/storage/kv/namespaces";
    let (s, b) = call(
        &kv,
        "POST",
        create,
        Some("Bearer t"),
        r#"{"title":"fresh"}"#,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(b.contains(r#""id":"fresh""#), "{b}");
    let (s, _) = call(
        &kv,
        "POST",
        create,
        Some("Bearer t"),
        r#"{"title":"fresh"}"#,
    )
    .await;
    assert_eq!(s, 400, "created twice");
    assert_eq!(
        call(&kv, "GET", path, Some("Bearer t"), Body::empty())
            .await
            .0,
        200
    );
    // The binding door creates by writing.
    call(&kv, "PUT", "/ns/bound/k", None, "v").await;
    assert!(kv.namespace_exists("bound"));
    kv.reset_data();
    assert!(
        kv.namespace_exists("bound"),
        "a reset forgets keys, not namespaces"
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_and_requests_are_counted() {
    let kv = mock(None);
    kv.set_rest_rate_limit(Some("2/60s".parse().unwrap()));
    assert_eq!(authed(&kv, "GET", "/keys", Body::empty()).await.0, 200);
    assert_eq!(authed(&kv, "GET", "/keys", Body::empty()).await.0, 200);
    let req = http::Request::builder()
        .uri(format!("{BASE}/keys"))
        .header("authorization", "Bearer t")
        .body(Body::empty())
        .unwrap();
    let resp = router(kv.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "60");
    assert_eq!(kv.rest_requests(), 3);
    kv.clock().advance(Duration::from_secs(60));
    assert_eq!(authed(&kv, "GET", "/keys", Body::empty()).await.0, 200);
    let (s, v) = call(
        &kv,
        "GET",
        "/client/v4/user/tokens/verify",
        Some("Bearer t"),
        Body::empty(),
    )
    .await;
    assert_eq!(s, 200);
    assert!(v.contains(TOKEN_ID), "{v}");
}

#[tokio::test]
async fn bulk_writes_take_base64_and_bulk_calls_stop_at_10000() {
    let kv = mock(None);
    kv.set_limits(Limits::PAID);
    let bulk = json!([{"key": "bin", "value": "AP8=", "base64": true}]);
    assert_eq!(authed(&kv, "PUT", "/bulk", bulk.to_string()).await.0, 200);
    assert_eq!(kv.peek("NS", "bin").as_deref(), Some(&[0u8, 255][..]));
    let bad = json!([{"key": "bin", "value": "!!", "base64": true}]);
    assert_eq!(authed(&kv, "PUT", "/bulk", bad.to_string()).await.0, 400);
    let keys: Vec<String> = (0..10_001).map(|i| format!("k{i}")).collect();
    let (s, v) = authed(&kv, "POST", "/bulk/delete", json!(keys).to_string()).await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = authed(
        &kv,
        "POST",
        "/bulk/delete",
        json!(keys[..10_000]).to_string(),
    )
    .await;
    assert_eq!(s, 200);
}
