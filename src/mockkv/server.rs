//! Serving the mock: binding a loopback listener, accepting connections,
//! and the per-connection control that lets a `reset` fault really close
//! the socket.
//!
//! Owns: the accept loop, HTTP/1.1 connections (hyper), graceful stop on
//! the caller's cancellation token, and the loopback-only rule. Does not
//! own: routing or any KV behaviour (see [`super::router`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::conns::{ConnLimits, ConnState, Registry};
use super::{MockKv, router};

/// How long open connections get to finish after the server is cancelled.
const DRAIN: Duration = Duration::from_secs(1);

/// Refusal to listen where the mock must not.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A non-loopback address without the explicit flag.
    #[error(
        "refusing to listen on non-loopback address '{0}': the mock KV has no authentication; use 127.0.0.1, or pass --allow-non-loopback"
    )]
    NotLoopback(SocketAddr),
    /// The OS refused.
    #[error("cannot listen on '{addr}': {source}")]
    Io {
        /// Requested address.
        addr: SocketAddr,
        /// Underlying error.
        source: io::Error,
    },
}

/// Bind a listener for the mock, refusing non-loopback addresses unless
/// `allow_non_loopback`.
pub async fn bind(addr: SocketAddr, allow_non_loopback: bool) -> Result<TcpListener, ListenError> {
    if !addr.ip().is_loopback() && !allow_non_loopback {
        return Err(ListenError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Io { addr, source })
}

/// Handle a request uses to reset its own connection.
#[derive(Clone, Debug)]
pub struct ConnControl {
    reset: CancellationToken,
}

impl ConnControl {
    /// Close this connection abruptly (RST), without an answer.
    pub fn reset(&self) {
        self.reset.cancel();
    }
}

/// A TCP stream that, when dropped after a reset request, closes with
/// SO_LINGER 0 so that the peer gets a RST instead of an orderly FIN.
struct ResettableStream {
    stream: TcpStream,
    reset: CancellationToken,
    /// Bytes moving count as activity for the idle timeout.
    state: Arc<ConnState>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.is_cancelled() {
            // A zero linger does not block on close (unlike a positive one):
            // the kernel discards unsent data and sends RST.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.touch();
        }
        r
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.touch();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serve the mock on `listener` until `cancel` fires, then give open
/// connections a moment to finish and return. Refuses a non-loopback
/// listener unless the mock was configured to allow it. Connections get the
/// default [`ConnLimits`].
pub async fn serve(listener: TcpListener, kv: MockKv, cancel: CancellationToken) -> io::Result<()> {
    serve_with(listener, kv, cancel, ConnLimits::default()).await
}

/// [`serve`] with explicit header-read and idle timeouts and connection cap.
pub async fn serve_with(
    listener: TcpListener,
    kv: MockKv,
    cancel: CancellationToken,
    limits: ConnLimits,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() && !kv.config().allow_non_loopback {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            ListenError::NotLoopback(local),
        ));
    }
    let app = router(kv);
    let registry = Registry::default();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Per-connection accept errors (e.g. too many open files)
                // must not stop the server; back off briefly.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let Some(state) = registry.admit(limits.max_connections) else {
            // Every connection is busy answering: refuse this one (closed at once).
            drop(stream);
            continue;
        };
        conns.spawn(connection(
            stream,
            app.clone(),
            state,
            limits,
            cancel.clone(),
        ));
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(DRAIN * 2, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    Ok(())
}

/// Serves one accepted connection with `app` until it ends, is reset by a fault, idles out,
/// is closed to make room under the cap, or the server is cancelled (then drained).
async fn connection(
    stream: TcpStream,
    app: axum::Router,
    state: Arc<ConnState>,
    limits: ConnLimits,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let reset = CancellationToken::new();
    let conn_ctl = ConnControl {
        reset: reset.clone(),
    };
    let svc_state = state.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(conn_ctl.clone());
        let mut app = app.clone();
        let state = svc_state.clone();
        async move {
            state.begin();
            let resp = app.call(req.map(axum::body::Body::new)).await;
            state.end();
            Ok::<_, Infallible>(match resp {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let io = TokioIo::new(ResettableStream {
        stream,
        reset: reset.clone(),
        state: state.clone(),
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        // Dropping the connection drops the stream: RST (see above).
        () = reset.cancelled() => {}
        // Idle, or closed to make room under the cap: an orderly close.
        () = super::conns::idle_expired(&state, limits.idle) => {}
        () = state.close.cancelled() => {}
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::mockkv::{MockKvConfig, VirtualClock};

    async fn start() -> (
        SocketAddr,
        MockKv,
        CancellationToken,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let kv = MockKv::new(
            MockKvConfig::default(),
            VirtualClock::frozen(1_704_110_400_000),
        );
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, kv.clone(), cancel.clone()));
        (addr, kv, cancel, task)
    }

    /// Send raw bytes on a fresh connection and read until EOF or `limit`.
    async fn raw(
        addr: SocketAddr,
        request: &[u8],
        limit: Duration,
    ) -> Result<io::Result<Vec<u8>>, tokio::time::error::Elapsed> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        tokio::time::timeout(limit, async move {
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.map(|_| out)
        })
        .await
    }

    fn req(method: &str, path: &str, body: &str) -> Vec<u8> {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: fake-host\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn status_line(resp: &[u8]) -> String {
        String::from_utf8_lossy(resp)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    }

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn reason_phrases_are_byte_exact_on_the_wire() {
        let (addr, kv, cancel, task) = start().await;
        let put = raw(
            addr,
            &req("PUT", "/k?urlencoded=true&expiration_ttl=5", "v"),
            LIMIT,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            status_line(&put),
            "HTTP/1.1 400 Invalid expiration_ttl of 5. Expiration TTL must be at least 60."
        );
        kv.add_fault("kind=daily-limit,ops=put".parse().unwrap())
            .unwrap();
        let put = raw(addr, &req("PUT", "/k?urlencoded=true", "v"), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            status_line(&put),
            "HTTP/1.1 429 KV put() limit exceeded for the day."
        );
        kv.add_fault("kind=error,status=503,ops=get".parse().unwrap())
            .unwrap();
        let get = raw(addr, &req("GET", "/k?urlencoded=true", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&get), "HTTP/1.1 503 Service Unavailable");
        kv.add_fault("kind=rate-limit,ops=delete".parse().unwrap())
            .unwrap();
        let del = raw(addr, &req("DELETE", "/k?urlencoded=true", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&del), "HTTP/1.1 429 Too Many Requests");
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn hang_never_answers_until_the_client_gives_up() {
        let (addr, kv, cancel, task) = start().await;
        kv.add_fault("kind=hang,ops=get,prefix=slow:".parse().unwrap())
            .unwrap();
        let r = raw(addr, &req("GET", "/slow:1", ""), Duration::from_millis(300)).await;
        assert!(r.is_err(), "client timed out");
        // Other keys are unaffected, and the server stops despite the hung request.
        let ok = raw(addr, &req("GET", "/fast:1", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&ok), "HTTP/1.1 404 Not Found");
        let stuck = tokio::spawn(async move { raw(addr, &req("GET", "/slow:2", ""), LIMIT).await });
        while kv.stats().journal.len() < 3 {
            tokio::task::yield_now().await;
        }
        cancel.cancel();
        task.await.unwrap().unwrap();
        let r = stuck.await.unwrap().unwrap();
        assert!(
            r.map(|b| b.is_empty()).unwrap_or(true),
            "no answer, connection closed"
        );
    }

    #[tokio::test]
    async fn reset_closes_the_connection_without_an_answer() {
        let (addr, kv, cancel, task) = start().await;
        let id = kv.add_fault("kind=reset,ops=put".parse().unwrap()).unwrap();
        let r = raw(addr, &req("PUT", "/k", "v"), LIMIT).await.unwrap();
        match r {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            Ok(bytes) => assert!(
                bytes.is_empty(),
                "got {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
        assert!(kv.clear_fault(id));
        let ok = raw(addr, &req("PUT", "/k", "v"), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&ok), "HTTP/1.1 200 OK");
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn latency_delays_then_answers() {
        let (addr, kv, cancel, _task) = start().await;
        kv.add_fault("kind=latency,latency=150ms,jitter=20ms".parse().unwrap())
            .unwrap();
        let t = Instant::now();
        let r = raw(addr, &req("PUT", "/k", "v"), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150));
        assert_eq!(status_line(&r), "HTTP/1.1 200 OK");
        let stats = kv.stats();
        assert_eq!(stats.counts[0].outcome.as_str(), "latency");
        cancel.cancel();
    }

    #[tokio::test]
    async fn huge_headers_and_garbage_get_4xx_and_the_server_survives() {
        let (addr, _kv, cancel, task) = start().await;
        let huge = format!(
            "GET /k HTTP/1.1\r\nHost: fake-host\r\nX-Big: {}\r\n\r\n",
            "a".repeat(200_000)
        );
        let r = raw(addr, huge.as_bytes(), LIMIT).await.unwrap();
        if let Ok(bytes) = r {
            assert!(
                status_line(&bytes).starts_with("HTTP/1.1 431"),
                "{}",
                status_line(&bytes)
            );
        }
        let r = raw(addr, b"NOT HTTP AT ALL\r\n\r\n", LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert!(
            status_line(&r).starts_with("HTTP/1.1 400"),
            "{}",
            status_line(&r)
        );
        let ok = raw(addr, &req("GET", "/__kvchaos/health", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&ok), "HTTP/1.1 200 OK");
        cancel.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn control_api_sets_lists_and_clears_faults_over_the_socket() {
        let (addr, kv, cancel, _task) = start().await;
        let r = raw(
            addr,
            &req("POST", "/__kvchaos/faults", "kind=error,status=500,ops=get"),
            LIMIT,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(status_line(&r), "HTTP/1.1 201 Created");
        let json = r#"{"kind":"latency","latency_ms":1,"ops":["put"]}"#;
        let r = raw(addr, &req("POST", "/__kvchaos/faults", json), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&r), "HTTP/1.1 201 Created");
        let r = raw(addr, &req("POST", "/__kvchaos/faults", "kind=nope"), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
        assert_eq!(kv.faults().len(), 2);
        let r = raw(addr, &req("DELETE", "/__kvchaos/faults/1", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&r), "HTTP/1.1 200 OK");
        let r = raw(addr, &req("DELETE", "/__kvchaos/faults/1", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status_line(&r), "HTTP/1.1 404 Not Found");
        let r = raw(addr, &req("DELETE", "/__kvchaos/faults", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&r).ends_with(r#"{"cleared":1}"#));
        let r = raw(
            addr,
            &req("POST", "/__kvchaos/clock", r#"{"advance_ms":60000}"#),
            LIMIT,
        )
        .await
        .unwrap()
        .unwrap();
        assert!(String::from_utf8_lossy(&r).contains(r#""now_ms":1704110460000"#));
        let r = raw(
            addr,
            &req("POST", "/__kvchaos/clock", r#"{"jump":1}"#),
            LIMIT,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
        raw(addr, &req("PUT", "/k", "v"), LIMIT)
            .await
            .unwrap()
            .unwrap();
        let r = raw(addr, &req("GET", "/__kvchaos/stats", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&r).contains(r#""bytes_written":1"#));
        raw(addr, &req("POST", "/__kvchaos/reset?stats=true", ""), LIMIT)
            .await
            .unwrap()
            .unwrap();
        assert!(kv.peek("default", "k").is_none());
        assert!(kv.stats().counts.is_empty());
        cancel.cancel();
    }

    #[tokio::test]
    async fn refuses_non_loopback_without_the_flag() {
        let err = bind("0.0.0.0:0".parse().unwrap(), false).await.unwrap_err();
        assert!(matches!(err, ListenError::NotLoopback(_)));
        assert!(err.to_string().contains("--allow-non-loopback"));
    }
}
