//! Small servers that behave (and misbehave) on purpose, each on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let a = l.local_addr().expect("local addr");
    (l, a)
}

/// Answers with the status named by the first path segment (`/503` → 503, anything else 200),
/// after `delay`.
pub async fn http(delay: Duration) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let status = req
                        .uri()
                        .path()
                        .trim_start_matches('/')
                        .split('/')
                        .next()
                        .and_then(|s| s.parse::<u16>().ok())
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .unwrap_or(StatusCode::OK);
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"hello")));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// Accepts connections, reads requests, never answers.
pub async fn hang() -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// Reads the request, then resets the connection (RST, no response).
pub async fn reset() -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.set_zero_linger();
                drop(s);
            });
        }
    });
    addr
}

/// An address where nothing listens.
pub async fn refused() -> SocketAddr {
    let (l, addr) = listener().await;
    drop(l);
    addr
}

/// A stand-in for a canary's shim: control routes (`/__kvchaos/...`) answer as script `script`
/// would; every other path answers 200 without the shim header, as production would.
pub async fn shim_then_production(script: &'static str) -> SocketAddr {
    shim_where(script, |path| path.starts_with("/__kvchaos/")).await
}

/// A stand-in canary whose answers to paths `shimmed` accepts carry `script`'s shim header
/// (control routes answer as an idle shim); every other answer comes as from production.
pub async fn shim_where(script: &'static str, shimmed: fn(&str) -> bool) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    let control = req.uri().path().starts_with("/__kvchaos/");
                    let body = if control {
                        r#"{"schedule":null,"injected":{},"writes":0,"capped":0,"ok":true}"#
                    } else {
                        "production"
                    };
                    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    if shimmed(req.uri().path()) {
                        resp.headers_mut().insert(
                            "x-kvchaos-shim",
                            hyper::header::HeaderValue::from_str(&format!(
                                "script={script}; schedule=none"
                            ))
                            .expect("a header value"),
                        );
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// A stand-in canary whose control routes and load answers carry `script`'s shim header, but
/// which drops every other load request's connection before answering: transport failures
/// with no response head, as a loaded runtime's reset keep-alive connections are.
pub async fn shim_dropping_every_other(script: &'static str) -> SocketAddr {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let (l, addr) = listener().await;
    let seen = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let control = req.uri().path().starts_with("/__kvchaos/");
                        if !control && seen.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
                            // An error from the service: hyper closes without a response.
                            return Err("dropped on purpose");
                        }
                        let body = if control {
                            r#"{"schedule":null,"injected":{},"writes":0,"capped":0,"ok":true}"#
                        } else {
                            "canary"
                        };
                        let mut resp =
                            Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                        resp.headers_mut().insert(
                            "x-kvchaos-shim",
                            hyper::header::HeaderValue::from_str(&format!(
                                "script={script}; schedule=none"
                            ))
                            .expect("a header value"),
                        );
                        Ok(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}
