//! The built-in target: a minimal HTTP/1.1 server that answers every request with `200 ok`.
//! Used by the quickstart scenario, by tests, and by the benchmark when nginx is absent.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves connections from `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or a connection aborted while queued: keep serving.
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stop = stop.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
                }),
            );
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}
