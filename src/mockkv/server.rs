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
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

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
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
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
/// listener unless the mock was configured to allow it.
pub async fn serve(listener: TcpListener, kv: MockKv, cancel: CancellationToken) -> io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() && !kv.config().allow_non_loopback {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            ListenError::NotLoopback(local),
        ));
    }
    let app = router(kv);
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
        let _ = stream.set_nodelay(true);
        let reset = CancellationToken::new();
        let conn_ctl = ConnControl {
            reset: reset.clone(),
        };
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(conn_ctl.clone());
            let mut app = app.clone();
            async move {
                let resp = app.call(req.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(match resp {
                    Ok(r) => r,
                    Err(never) => match never {},
                })
            }
        });
        let io = TokioIo::new(ResettableStream {
            stream,
            reset: reset.clone(),
        });
        let cancel = cancel.clone();
        conns.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(64 * 1024)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // Dropping the connection drops the stream: RST (see above).
                () = reset.cancelled() => {}
                () = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
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
