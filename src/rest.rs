//! The REST client: a small one-request-at-a-time HTTP(S) client for the commands beside the run: REST APIs
//! (Cloudflare KV and D1), webhooks, status probes. Built on the engine's connection
//! ([`crate::engine::client`]) so TLS roots, timeouts and body limits behave the same
//! everywhere.
//!
//! Owns: URL → endpoint resolution (cached per origin), one keep-alive connection per origin, a
//! per-request timeout and a cap on the body read. Does not own: retries, pacing or what a
//! status means (each caller decides), nor secrets (callers pass headers and redact what they
//! print with [`crate::redact`]).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;

use crate::engine::client::{Conn, Endpoint};

/// The largest response body read unless the caller asks otherwise (16 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used (scheme, host, header values).
    #[error("{0}")]
    Url(String),
    /// Connecting, TLS, writing or reading failed (the message says which).
    #[error("{url}: {message}")]
    Transport {
        /// The URL without its query.
        url: String,
        /// What failed.
        message: String,
    },
    /// No complete answer within the timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL without its query.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// One answer, whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body (at most the limit asked for).
    pub body: Bytes,
}

impl Response {
    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method.
    pub method: Method,
    /// The absolute http(s) URL.
    pub url: String,
    /// Extra headers (`Host` is set from the URL).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Call {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Call {
        Call {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Call {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets a JSON body and its content type.
    pub fn json(mut self, body: &serde_json::Value) -> Call {
        self.body = Bytes::from(body.to_string());
        self.header("content-type", "application/json")
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Call {
        self.body = body.into();
        self
    }
}

/// A client: one connection per origin, reused.
pub struct Client {
    timeout: Duration,
    body_limit: usize,
    ca_file: Option<std::path::PathBuf>,
    origins: HashMap<String, (Endpoint, Conn)>,
}

impl Client {
    /// A client whose requests each get `timeout` for the whole exchange.
    pub fn new(timeout: Duration) -> Client {
        Client {
            timeout,
            body_limit: DEFAULT_BODY_LIMIT,
            ca_file: None,
            origins: HashMap::new(),
        }
    }

    /// Caps the bytes read of each response body (a longer body is a transport error).
    pub fn body_limit(mut self, limit: usize) -> Client {
        self.body_limit = limit;
        self
    }

    /// Also trusts the CA certificates in `ca_file` (PEM) for https.
    pub fn ca_file(mut self, ca_file: Option<std::path::PathBuf>) -> Client {
        self.ca_file = ca_file;
        self
    }

    /// Sends `call` and reads the whole answer.
    pub async fn send(&mut self, call: Call) -> Result<Response, HttpError> {
        let url = url::Url::parse(&call.url)
            .map_err(|e| HttpError::Url(format!("invalid URL \"{}\": {e}", shown(&call.url))))?;
        let shown_url = shown(&call.url);
        let origin = url.origin().ascii_serialization();
        if !self.origins.contains_key(&origin) {
            let root = url::Url::parse(&origin).map_err(|e| HttpError::Url(e.to_string()))?;
            let ep = Endpoint::resolve(&root, self.ca_file.as_deref())
                .await
                .map_err(|e| HttpError::Url(e.to_string()))?;
            self.origins.insert(origin.clone(), (ep, Conn::default()));
        }
        let (ep, conn) = self.origins.get_mut(&origin).expect("inserted above");
        let req = build(&call, &url, ep)?;
        let limit = self.body_limit;
        match tokio::time::timeout(self.timeout, conn.fetch(ep, req, limit)).await {
            Ok(Ok((parts, body))) => Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            }),
            Ok(Err(x)) => Err(HttpError::Transport {
                url: shown_url,
                message: x
                    .error
                    .unwrap_or_else(|| x.outcome.class().name().to_owned()),
            }),
            Err(_) => {
                conn.discard();
                Err(HttpError::Timeout {
                    url: shown_url,
                    timeout: self.timeout,
                })
            }
        }
    }
}

/// The URL without its query and fragment (queries may carry tokens).
fn shown(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

fn build(call: &Call, url: &url::Url, ep: &Endpoint) -> Result<Request<Full<Bytes>>, HttpError> {
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut req = Request::builder()
        .method(call.method.clone())
        .uri(path)
        .header(http::header::HOST, ep.authority().clone());
    for (name, value) in &call.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::Url(format!("invalid header name \"{name}\"")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::Url(format!("header \"{name}\" has an invalid value")))?;
        req = req.header(name, value);
    }
    req.body(Full::new(call.body.clone()))
        .map_err(|e| HttpError::Url(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn sends_method_path_query_headers_and_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/a/b"))
            .and(query_param("x", "1"))
            .and(header("authorization", "Bearer t"))
            .and(body_json(serde_json::json!({"k": 1})))
            .respond_with(
                ResponseTemplate::new(201)
                    .insert_header("etag", "v1")
                    .set_body_string("made"),
            )
            .mount(&server)
            .await;
        let mut c = Client::new(Duration::from_secs(5));
        let call = Call::new(Method::POST, format!("{}/a/b?x=1", server.uri()))
            .header("authorization", "Bearer t")
            .json(&serde_json::json!({"k": 1}));
        let r = c.send(call.clone()).await.expect("answer");
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.header("etag"), Some("v1"));
        assert_eq!(r.text(), "made");
        // The connection is reused for the same origin.
        let r = c.send(call).await.expect("answer");
        assert_eq!(r.status, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_and_a_stall_are_errors_without_the_query() {
        let server = MockServer::start().await;
        Mock::given(path("/big"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(100)))
            .mount(&server)
            .await;
        Mock::given(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let mut c = Client::new(Duration::from_millis(300)).body_limit(10);
        let e = c
            .send(Call::new(
                Method::GET,
                format!("{}/big?token=s3cret", server.uri()),
            ))
            .await
            .expect_err("too big");
        assert!(matches!(e, HttpError::Transport { .. }), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = c
            .send(Call::new(Method::GET, format!("{}/slow", server.uri())))
            .await
            .expect_err("stalls");
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn bad_urls_and_headers_are_refused_before_sending() {
        let mut c = Client::new(Duration::from_secs(1));
        let e = c
            .send(Call::new(Method::GET, "ftp://x/y"))
            .await
            .expect_err("scheme");
        assert!(matches!(e, HttpError::Url(_)), "{e}");
        let e = c
            .send(Call::new(Method::GET, "http://127.0.0.1:9/").header("bad name", "v"))
            .await
            .expect_err("header");
        assert!(e.to_string().contains("invalid header name"), "{e}");
    }
}
