//! The Cloudflare REST API v4 client of `kvchaos kv`: one keep-alive HTTP/1.1 connection
//! (hyper, TLS through [`crate::engine::tls`]), pacing under the API's request limit, 429
//! handling with `Retry-After`, the `{success, errors, result}` envelope, and the KV and D1
//! calls the commands make.
//!
//! Owns: every byte sent to the API and every limit on what is read back (bodies are capped
//! at [`MAX_RESPONSE_BYTES`]); the request counter. Does not own: what the commands do with
//! answers, checkpoints, or printing. The token is sent only in the Authorization header and
//! never appears in an error message.
//!
//! hyper rather than reqwest: the project already speaks HTTP through hyper and rustls, and a
//! CLI that sends ~100 requests in sequence needs one connection, not a pool.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::engine::client::Endpoint;
use crate::mockkv::RestRateLimit;

/// Largest response body read (a value is at most 25 MiB; a bulk get of 100 text values is
/// capped well below this by Cloudflare).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long one exchange may take, connect included.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Waits after 429s in a row before giving up, however short each `Retry-After`.
const MAX_RATE_RETRIES: u32 = 5;
/// `Retry-After` assumed when a 429 carries none: Cloudflare's lock-out.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The base URL is not usable.
    #[error(
        "invalid --api-base '{url}': {reason}; expected e.g. https://api.cloudflare.com/client/v4"
    )]
    BaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection or no complete answer.
    #[error("{what}: cannot reach {base}: {reason}")]
    Unreachable {
        /// The call.
        what: String,
        /// The API base URL.
        base: String,
        /// The transport error.
        reason: String,
    },
    /// Still 429 after waiting, or a `Retry-After` longer than `--max-retry-wait`.
    #[error(
        "{what}: rate limited by the API (429); retry after {}s; raise --max-retry-wait to wait instead of stopping",
        retry_after.as_secs()
    )]
    RateLimited {
        /// The call.
        what: String,
        /// How long the API asked to wait.
        retry_after: Duration,
    },
    /// The API answered with an error.
    #[error("{what}: the API answered {status}{}: {message}{}", code.map(|c| format!(" (code {c})")).unwrap_or_default(), hint(*status, *code))]
    Status {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// Cloudflare's error code, if the body had one.
        code: Option<u64>,
        /// Cloudflare's message (or the start of the body).
        message: String,
    },
    /// A 2xx answer that is not what the API documents.
    #[error("{what}: unexpected answer: {reason}")]
    Body {
        /// The call.
        what: String,
        /// What was wrong.
        reason: String,
    },
}

fn hint(status: u16, code: Option<u64>) -> &'static str {
    match (status, code) {
        (404, Some(10013)) => "; check --account-id and --namespace-id",
        (429, Some(10048)) => "; the daily KV quota is spent: it resets at 00:00 UTC",
        (400 | 401 | 403, _) => "; check the token in CLOUDFLARE_API_TOKEN and its permissions",
        _ => "",
    }
}

impl ApiError {
    /// Whether the user's input is at fault (4xx other than 429) rather than the target.
    pub fn is_usage(&self) -> bool {
        match self {
            ApiError::BaseUrl { .. } => true,
            ApiError::Status { status, .. } => (400..500).contains(status) && *status != 429,
            _ => false,
        }
    }
}

/// One page of `GET …/keys`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct ListedKey {
    /// Key name.
    pub name: String,
    /// Absolute expiration, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<u64>,
    /// Metadata (JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A client for one API base URL and token.
pub struct Client {
    endpoint: Endpoint,
    base: String,
    token: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    sent: VecDeque<Instant>,
    pace: RestRateLimit,
    max_retry_wait: Duration,
    requests: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// Percent-encode one path segment (everything but unreserved characters).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for `base` (e.g. `https://api.cloudflare.com/client/v4`).
    pub async fn new(
        base: &str,
        token: String,
        pace: RestRateLimit,
        max_retry_wait: Duration,
    ) -> Result<Client, ApiError> {
        let bad = |reason: String| ApiError::BaseUrl {
            url: base.to_owned(),
            reason,
        };
        let url = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        let endpoint = Endpoint::resolve(&url, None)
            .await
            .map_err(|e| bad(e.to_string()))?;
        Ok(Client {
            endpoint,
            base: base.trim_end_matches('/').to_owned(),
            token,
            sender: None,
            sent: VecDeque::new(),
            pace,
            max_retry_wait,
            requests: 0,
        })
    }

    /// Requests sent so far (retries included).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Wait until one more request keeps within the pace (a sliding window).
    async fn pace(&mut self) {
        let window = self.pace.window;
        let max = usize::try_from(self.pace.requests)
            .unwrap_or(usize::MAX)
            .max(1);
        loop {
            let now = Instant::now();
            while self
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                self.sent.pop_front();
            }
            if self.sent.len() < max {
                self.sent.push_back(now);
                return;
            }
            if let Some(oldest) = self.sent.front() {
                tokio::time::sleep_until(*oldest + window).await;
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect(self.endpoint.addr())
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        match self.endpoint.tls() {
            Some(tls) => handshake(tls.connect(tcp).await.map_err(|e| e.to_string())?).await,
            None => handshake(tcp).await,
        }
    }

    /// One exchange on the kept connection; a stale connection is replaced once.
    async fn exchange(
        &mut self,
        method: &Method,
        path: &str,
        body: &Option<(&'static str, Bytes)>,
    ) -> Result<(u16, http::HeaderMap, Bytes), String> {
        for attempt in 0..2 {
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => self.connect().await?,
            };
            let fresh = attempt == 1;
            if sender.ready().await.is_err() {
                if fresh {
                    return Err("the connection closed".into());
                }
                continue;
            }
            let req = self.request(method, path, body)?;
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let (parts, incoming) = resp.into_parts();
                    let bytes = Limited::new(incoming, MAX_RESPONSE_BYTES)
                        .collect()
                        .await
                        .map_err(|e| {
                            format!("reading the answer (at most {MAX_RESPONSE_BYTES} bytes): {e}")
                        })?
                        .to_bytes();
                    self.sender = Some(sender);
                    return Ok((status, parts.headers, bytes));
                }
                Err(e) if fresh || !e.is_canceled() && !e.is_incomplete_message() => {
                    return Err(e.to_string());
                }
                Err(_) => continue,
            }
        }
        Err("the connection closed".into())
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        body: &Option<(&'static str, Bytes)>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let auth = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| "the API token is not a valid header value".to_owned())?;
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.endpoint.base_path()))
            .header(header::HOST, self.endpoint.authority().clone())
            .header(header::AUTHORIZATION, auth)
            .header(
                header::USER_AGENT,
                concat!("kvchaos/", env!("CARGO_PKG_VERSION")),
            );
        let payload = match body {
            Some((ctype, bytes)) => {
                req = req.header(header::CONTENT_TYPE, *ctype);
                bytes.clone()
            }
            None => Bytes::new(),
        };
        req.body(Full::new(payload)).map_err(|e| e.to_string())
    }

    /// Send one call, paced, waiting out 429s up to `--max-retry-wait`; the body of a 2xx.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
        what: &str,
    ) -> Result<Bytes, ApiError> {
        let mut waits = 0;
        loop {
            self.pace().await;
            self.requests += 1;
            let exchange =
                tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(&method, path, &body));
            let (status, headers, bytes) = match exchange.await {
                Ok(Ok(r)) => r,
                Ok(Err(reason)) => return Err(self.unreachable(what, reason)),
                Err(_) => {
                    return Err(
                        self.unreachable(what, format!("no answer within {EXCHANGE_TIMEOUT:?}"))
                    );
                }
            };
            if (200..300).contains(&status) {
                return Ok(bytes);
            }
            let (code, message) = error_of(&bytes);
            if status == 429 && code != Some(10048) {
                let retry_after = retry_after(&headers).unwrap_or(DEFAULT_RETRY_AFTER);
                if retry_after > self.max_retry_wait || waits >= MAX_RATE_RETRIES {
                    return Err(ApiError::RateLimited {
                        what: what.to_owned(),
                        retry_after,
                    });
                }
                waits += 1;
                tokio::time::sleep(retry_after).await;
                continue;
            }
            return Err(ApiError::Status {
                what: what.to_owned(),
                status,
                code,
                message,
            });
        }
    }

    fn unreachable(&mut self, what: &str, reason: String) -> ApiError {
        self.sender = None;
        ApiError::Unreachable {
            what: what.to_owned(),
            base: self.base.clone(),
            reason,
        }
    }

    /// A call whose answer is the JSON envelope; returns the whole envelope.
    pub async fn envelope(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Value, ApiError> {
        let body = body.map(|v| ("application/json", Bytes::from(v.to_string())));
        let bytes = self.call(method, path, body, what).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::Body {
            what: what.to_owned(),
            reason: format!("not JSON: {e}"),
        })?;
        if v["success"] != Value::Bool(true) {
            let (code, message) = error_of(&bytes);
            return Err(ApiError::Status {
                what: what.to_owned(),
                status: 200,
                code,
                message,
            });
        }
        Ok(v)
    }

    /// The token's id (`GET /user/tokens/verify`), or `None` when the API will not say.
    pub async fn token_id(&mut self) -> Option<String> {
        let v = self
            .envelope(Method::GET, "/user/tokens/verify", None, "verify the token")
            .await
            .ok()?;
        v["result"]["id"].as_str().map(|s| format!("token:{s}"))
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Cloudflare's first error code and message, or the start of a body that has none.
fn error_of(body: &[u8]) -> (Option<u64>, String) {
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(first) = v["errors"].get(0)
    {
        return (
            first["code"].as_u64(),
            first["message"].as_str().unwrap_or("").to_owned(),
        );
    }
    let text = String::from_utf8_lossy(body);
    (None, text.chars().take(200).collect())
}

/// The KV calls on one namespace.
pub struct Namespace<'c> {
    /// The client.
    pub client: &'c mut Client,
    path: String,
}

impl<'c> Namespace<'c> {
    /// Calls on `namespace` of `account`.
    pub fn new(client: &'c mut Client, account: &str, namespace: &str) -> Self {
        let path = format!(
            "/accounts/{}/storage/kv/namespaces/{}",
            segment(account),
            segment(namespace)
        );
        Namespace { client, path }
    }

    /// One page of keys under `prefix` after `cursor`: (keys, next cursor when more follow).
    pub async fn list(
        &mut self,
        prefix: &str,
        cursor: Option<&str>,
    ) -> Result<(Vec<ListedKey>, Option<String>), ApiError> {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("limit", "1000");
        if !prefix.is_empty() {
            q.append_pair("prefix", prefix);
        }
        if let Some(c) = cursor {
            q.append_pair("cursor", c);
        }
        let path = format!("{}/keys?{}", self.path, q.finish());
        let v = self
            .client
            .envelope(Method::GET, &path, None, "list keys")
            .await?;
        let keys: Vec<ListedKey> =
            serde_json::from_value(v["result"].clone()).map_err(|e| ApiError::Body {
                what: "list keys".into(),
                reason: format!("result is not a key list: {e}"),
            })?;
        let next = v["result_info"]["cursor"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok((keys, next))
    }

    /// Bulk get (≤ 100 keys) as text with metadata: the `values` object.
    pub async fn bulk_get(
        &mut self,
        keys: &[String],
    ) -> Result<serde_json::Map<String, Value>, ApiError> {
        let body = json!({"keys": keys, "type": "text", "withMetadata": true});
        let path = format!("{}/bulk/get", self.path);
        let v = self
            .client
            .envelope(Method::POST, &path, Some(body), "bulk get")
            .await?;
        match v["result"]["values"].clone() {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::Body {
                what: "bulk get".into(),
                reason: "result.values is not an object".into(),
            }),
        }
    }

    /// One value's raw bytes; `None` when the key is gone.
    pub async fn get_value(&mut self, key: &str) -> Result<Option<Bytes>, ApiError> {
        let path = format!("{}/values/{}", self.path, segment(key));
        match self
            .client
            .call(Method::GET, &path, None, "get a value")
            .await
        {
            Ok(b) => Ok(Some(b)),
            Err(ApiError::Status {
                status: 404,
                code: Some(10009),
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Bulk delete (≤ 10,000 keys).
    pub async fn bulk_delete(&mut self, keys: &[String]) -> Result<(), ApiError> {
        let path = format!("{}/bulk/delete", self.path);
        self.client
            .envelope(Method::POST, &path, Some(json!(keys)), "bulk delete")
            .await
            .map(|_| ())
    }

    /// Bulk write (≤ 10,000 pairs, the `[{key, value, base64?, metadata?, expiration?}]` body).
    pub async fn bulk_put(&mut self, pairs: Value) -> Result<(), ApiError> {
        let path = format!("{}/bulk", self.path);
        self.client
            .envelope(Method::PUT, &path, Some(pairs), "bulk write")
            .await
            .map(|_| ())
    }
}

/// Rows of a D1 query through `POST /accounts/{a}/d1/database/{db}/query`.
pub async fn d1_query(
    client: &mut Client,
    account: &str,
    database: &str,
    sql: &str,
) -> Result<Vec<Value>, ApiError> {
    let path = format!(
        "/accounts/{}/d1/database/{}/query",
        segment(account),
        segment(database)
    );
    let v = client
        .envelope(Method::POST, &path, Some(json!({"sql": sql})), "D1 query")
        .await?;
    match v["result"].get(0).map(|r| r["results"].clone()) {
        Some(Value::Array(rows)) => Ok(rows),
        _ => Err(ApiError::Body {
            what: "D1 query".into(),
            reason: "result[0].results is not a row list".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("a:b/c d"), "a%3Ab%2Fc%20d");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn errors_name_the_fix_and_never_the_token() {
        let e = ApiError::Status {
            what: "list keys".into(),
            status: 404,
            code: Some(10013),
            message: "namespace not found".into(),
        };
        assert!(e.is_usage());
        assert!(e.to_string().contains("check --account-id"), "{e}");
        let (code, msg) = error_of(br#"{"errors":[{"code":971,"message":"slow down"}]}"#);
        assert_eq!((code, msg.as_str()), (Some(971), "slow down"));
    }

    #[tokio::test]
    async fn the_pace_is_a_sliding_window() {
        let mut c = Client::new(
            "http://127.0.0.1:9/client/v4",
            "t".into(),
            "2/300ms".parse().unwrap(),
            Duration::ZERO,
        )
        .await
        .unwrap();
        let t0 = Instant::now();
        c.pace().await;
        c.pace().await;
        assert!(
            t0.elapsed() < Duration::from_millis(250),
            "two requests fit in the window"
        );
        c.pace().await;
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "the third waits for the window"
        );
    }
}
