//! The HTTP/1.1 client of one load worker: one keep-alive connection, opened lazily and
//! reopened after any failure, driven directly through hyper's connection API.
//!
//! hyper rather than reqwest: a worker owns exactly one connection, so a pool, URL parsing and
//! redirect handling per request are pure overhead on the hot path (see the benchmark notes).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::outcome::Outcome;

/// Where requests go, resolved once before the run.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// TLS client for https targets.
    tls: Option<super::tls::Tls>,
    /// Socket address of the target.
    addr: SocketAddr,
    /// `Host` header value (host and, when not default, port).
    authority: HeaderValue,
    /// The target URL's path without a trailing slash; request paths are appended to it.
    base_path: String,
}

/// Errors preparing the endpoint (before any load is sent).
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The scheme is neither http nor https.
    #[error("target url \"{0}\": the scheme must be http or https")]
    Scheme(String),
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(String),
    /// The URL has no host.
    #[error("target url \"{0}\" has no host")]
    NoHost(String),
    /// Name resolution failed.
    #[error("cannot resolve target host \"{host}\": {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver error.
        source: std::io::Error,
    },
    /// The host part is not a valid header value.
    #[error("target host \"{0}\" is not a valid Host header")]
    Authority(String),
}

impl Endpoint {
    /// A plain-HTTP endpoint at a known address, without name resolution.
    pub fn http(addr: SocketAddr, authority: HeaderValue, base_path: &str) -> Endpoint {
        Endpoint {
            tls: None,
            addr,
            authority,
            base_path: base_path.trim_end_matches('/').to_owned(),
        }
    }

    /// The `Host` header value: host and, when not the scheme's default, port.
    pub fn authority(&self) -> &HeaderValue {
        &self.authority
    }

    /// The target URL's path without a trailing slash; request paths are appended to it.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The target's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS client for an https target; `None` for plain HTTP.
    pub fn tls(&self) -> Option<&super::tls::Tls> {
        self.tls.as_ref()
    }

    /// Resolves `url` (first IPv4 address preferred); https targets also trust the roots in
    /// `ca_file`.
    pub async fn resolve(
        url: &url::Url,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Endpoint, EndpointError> {
        let host = url
            .host_str()
            .ok_or_else(|| EndpointError::NoHost(url.as_str().to_owned()))?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some(
                super::tls::Tls::new(host.trim_start_matches('[').trim_end_matches(']'), ca_file)
                    .map_err(EndpointError::Tls)?,
            ),
            _ => return Err(EndpointError::Scheme(url.as_str().to_owned())),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let lookup_host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup_host, port))
            .await
            .map_err(|source| EndpointError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| EndpointError::Resolve {
                host: host.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
            })?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let authority = HeaderValue::from_str(&authority)
            .map_err(|_| EndpointError::Authority(authority.clone()))?;
        Ok(Endpoint {
            tls,
            addr,
            authority,
            base_path: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// Connects once within `timeout` (with the TLS handshake for https): the pre-flight check
    /// that the target is up and, for https, that its certificate is trusted.
    pub async fn probe(&self, timeout: Duration) -> Result<(), String> {
        let connect = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
            if let Some(tls) = &self.tls {
                tls.connect(tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {} failed: {e}", self.addr))?;
            }
            Ok(())
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "cannot connect to {}: no answer within {timeout:?}",
                self.addr
            )),
        }
    }
}

/// How an exchange ended: its outcome, body bytes received and, for failures, a message.
#[derive(Debug)]
pub struct Exchange {
    /// Outcome class.
    pub outcome: Outcome,
    /// Response body bytes received.
    pub bytes: u64,
    /// Why it failed, for transport failures.
    pub error: Option<String>,
    /// For a 4xx or 5xx answer, the start of its body (see [`super::errors::BODY_START`]) and
    /// whether the body was longer; `None` for any other outcome, so 2xx answers cost nothing.
    pub answer: Option<(Bytes, bool)>,
    /// The canary shim's `x-kvchaos-shim` header, when the answer carried one.
    pub shim: Option<http::HeaderValue>,
    /// A response head arrived (false for a connect, reset or timeout failure before it).
    pub answered: bool,
}

impl Exchange {
    fn failed(outcome: Outcome, error: String) -> Self {
        Exchange {
            outcome,
            bytes: 0,
            error: Some(error),
            answer: None,
            shim: None,
            answered: false,
        }
    }
}

/// The canary shim's header, parsed once (a `&str` key is parsed and checked on every lookup).
const SHIM: HeaderName = HeaderName::from_static(crate::canary::control::SHIM_HEADER);

/// One worker's connection.
#[derive(Default)]
pub struct Conn {
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The last response's header map, emptied, for the next request to reuse.
    spare: Option<HeaderMap>,
}

impl Conn {
    /// An empty header map for the next request. hyper parses a response's headers into its
    /// request's map, and [`Conn::exchange`] keeps that map here, so after the first exchange a
    /// request allocates no map and a response frees none (measured: about 900 instructions a
    /// request of the closed loop's 19,000; docs/benchmarks.md).
    pub fn spare_headers(&mut self) -> HeaderMap {
        match self.spare.take() {
            Some(mut h) => {
                h.clear();
                h
            }
            None => HeaderMap::with_capacity(super::request::RESPONSE_HEADERS),
        }
    }

    /// Forgets the connection (after a timeout the response may still arrive on it).
    pub fn discard(&mut self) {
        self.sender = None;
    }

    async fn open(&mut self, ep: &Endpoint) -> Result<&mut SendRequest<Full<Bytes>>, Exchange> {
        let stream = TcpStream::connect(ep.addr)
            .await
            .map_err(|e| Exchange::failed(Outcome::Connect, format!("connect: {e}")))?;
        // Small requests and responses: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        let sender = match &ep.tls {
            None => handshake(stream).await?,
            Some(tls) => {
                let stream = tls
                    .connect(stream)
                    .await
                    .map_err(|e| Exchange::failed(Outcome::Connect, format!("tls: {e}")))?;
                handshake(stream).await?
            }
        };
        Ok(self.sender.insert(sender))
    }

    /// Sends `req` and reads the whole response. A request that fails on a reused connection
    /// before it was written (the server closed the idle connection) is retried once on a
    /// fresh connection.
    pub async fn exchange(&mut self, ep: &Endpoint, req: Request<Full<Bytes>>) -> Exchange {
        match self.send(ep, req).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                let x = read_response(&parts, body).await;
                self.spare = Some(parts.headers);
                x
            }
            Err(x) => x,
        }
    }

    /// Sends `req` and reads the whole response, keeping its head and up to `limit` body
    /// bytes (check drivers read values from answers). A longer body is an `Outcome::Body`
    /// failure.
    pub async fn fetch(
        &mut self,
        ep: &Endpoint,
        req: Request<Full<Bytes>>,
        limit: usize,
    ) -> Result<(http::response::Parts, Bytes), Exchange> {
        let resp = self.send(ep, req).await?;
        let (parts, body) = resp.into_parts();
        match http_body_util::Limited::new(body, limit).collect().await {
            Ok(b) => Ok((parts, b.to_bytes())),
            Err(e) => {
                self.sender = None;
                Err(Exchange::failed(
                    Outcome::Body,
                    format!("reading body after status {}: {e}", parts.status.as_u16()),
                ))
            }
        }
    }

    /// Sends `req` and returns the response head with its body still to read.
    async fn send(
        &mut self,
        ep: &Endpoint,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, Exchange> {
        let reused = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        let sender = match self.sender.as_mut() {
            Some(s) if reused => s,
            _ => self.open(ep).await?,
        };
        let first = match sender.ready().await {
            Ok(()) => sender.try_send_request(req).await,
            Err(e) if reused => {
                let _ = e;
                return self.retry(ep, None).await;
            }
            Err(e) => {
                self.sender = None;
                return Err(Exchange::failed(classify(&e), describe(&e)));
            }
        };
        match first {
            Ok(resp) => Ok(resp),
            Err(mut e) => match e.take_message() {
                Some(req) if reused => self.retry(ep, Some(req)).await,
                _ => {
                    self.sender = None;
                    let err = e.into_error();
                    Err(Exchange::failed(classify(&err), describe(&err)))
                }
            },
        }
    }

    async fn retry(
        &mut self,
        ep: &Endpoint,
        req: Option<Request<Full<Bytes>>>,
    ) -> Result<http::Response<hyper::body::Incoming>, Exchange> {
        self.sender = None;
        let Some(req) = req else {
            return Err(Exchange::failed(
                Outcome::Reset,
                "connection closed before the request was sent".to_owned(),
            ));
        };
        let sender = self.open(ep).await?;
        let result = match sender.ready().await {
            Ok(()) => sender.send_request(req).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            self.sender = None;
            Exchange::failed(classify(&e), describe(&e))
        })
    }
}

/// HTTP/1.1 handshake over `io`, with the connection driven by its own task (its errors
/// surface on the request that hits them).
async fn handshake<I>(io: I) -> Result<SendRequest<Full<Bytes>>, Exchange>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| Exchange::failed(Outcome::Connect, format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn read_response(parts: &http::response::Parts, mut body: hyper::body::Incoming) -> Exchange {
    let status = parts.status.as_u16();
    let shim = parts.headers.get(&SHIM).cloned();
    let mut bytes = 0u64;
    let mut start = (status >= 400).then(super::errors::BodyStart::default);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    bytes += d.len() as u64;
                    if let Some(s) = start.as_mut() {
                        s.push(d);
                    }
                }
            }
            Err(e) => {
                return Exchange {
                    outcome: Outcome::Body,
                    bytes,
                    error: Some(format!(
                        "reading body after status {status}: {}",
                        describe(&e)
                    )),
                    answer: None,
                    shim,
                    answered: true,
                };
            }
        }
    }
    Exchange {
        outcome: Outcome::Status(status),
        bytes,
        error: None,
        answer: start.map(super::errors::BodyStart::finish),
        shim,
        answered: true,
    }
}

/// Outcome class of a hyper error that happened before a response head arrived.
fn classify(e: &hyper::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        Outcome::Body
    } else {
        // Closed, canceled, incomplete message, or an I/O error (reset, broken pipe).
        Outcome::Reset
    }
}

/// The error and its causes on one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The reused header map must not carry a response's headers into the next request.
    #[tokio::test]
    async fn a_reused_header_map_sends_none_of_the_last_responses_headers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut heads = Vec::new();
            let mut buf = Vec::new();
            while heads.len() < 2 {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    heads.push(String::from_utf8_lossy(&buf[..end]).to_lowercase());
                    buf.drain(..end + 4);
                    let answer = b"HTTP/1.1 200 OK\r\nx-leak: yes\r\ncontent-length: 2\r\n\r\nok";
                    s.write_all(answer).await.unwrap();
                }
            }
            heads
        });
        let ep = Endpoint::http(addr, HeaderValue::from_static("t"), "");
        let mut conn = Conn::default();
        for _ in 0..2 {
            let mut headers = conn.spare_headers();
            headers.insert(http::header::HOST, HeaderValue::from_static("t"));
            let mut req = Request::new(Full::new(Bytes::new()));
            *req.uri_mut() = http::Uri::from_static("/");
            *req.headers_mut() = headers;
            let x = conn.exchange(&ep, req).await;
            assert_eq!(x.outcome, Outcome::Status(200), "{:?}", x.error);
        }
        let heads = server.await.unwrap();
        assert!(conn.spare.is_some(), "the response's map was not kept");
        assert!(!heads[1].contains("x-leak"), "second request: {}", heads[1]);
        assert!(
            !heads[1].contains("content-length"),
            "second request: {}",
            heads[1]
        );
    }
}
