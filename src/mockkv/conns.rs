//! The mock's defences for its own sockets: a cap on open connections (the longest-idle one
//! is closed to make room for a new client), an idle timeout between requests, and the state
//! each connection task shares with the accept loop. A request in flight is never idle, so a
//! `hang` fault still holds its connection until the client gives up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The limits of [`super::server::serve_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Longest a client may take to send a request's headers (slowloris).
    pub header_read: Duration,
    /// Longest a connection may sit with no request in flight and no bytes moving.
    pub idle: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read: Duration::from_secs(10),
            // Long enough that workerd's pooled connections, busy in a run, are never cut
            // between two requests; short enough that a held socket is freed.
            idle: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// What a connection task and the accept loop share about one connection.
#[derive(Debug)]
pub struct ConnState {
    /// Milliseconds since `epoch` of the last byte read or written, or request finished.
    last_ms: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Fired to close the connection.
    pub close: CancellationToken,
    epoch: Instant,
}

impl ConnState {
    fn new(epoch: Instant) -> ConnState {
        let s = ConnState {
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            close: CancellationToken::new(),
            epoch,
        };
        s.touch();
        s
    }

    /// Notes activity now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// A request started.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// A request's answer was produced.
    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// How long it has been idle (zero while a request is in flight).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let now = self.epoch.elapsed().as_millis();
        let last = u128::from(self.last_ms.load(Ordering::Relaxed));
        Duration::from_millis(u64::try_from(now.saturating_sub(last)).unwrap_or(u64::MAX))
    }
}

/// The open connections, for the cap.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    // A std Mutex: held only to push, retain or scan, never across an await.
    conns: Arc<Mutex<Vec<Arc<ConnState>>>>,
}

impl Registry {
    /// Registers a new connection; when `max` are open, first closes the longest-idle one (or,
    /// when every one is busy, returns `None`: the new connection is refused).
    pub fn admit(&self, max: usize) -> Option<Arc<ConnState>> {
        let epoch = Instant::now();
        let mut conns = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conns.retain(|c| !c.close.is_cancelled() && Arc::strong_count(c) > 1);
        if conns.len() >= max {
            let victim = conns
                .iter()
                .filter(|c| c.idle_for() > Duration::ZERO)
                .max_by_key(|c| c.idle_for())
                .cloned();
            let victim = victim?;
            victim.close.cancel();
            conns.retain(|c| !Arc::ptr_eq(c, &victim));
        }
        let state = Arc::new(ConnState::new(epoch));
        conns.push(state.clone());
        Some(state)
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        let mut conns = self
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conns.retain(|c| !c.close.is_cancelled() && Arc::strong_count(c) > 1);
        conns.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resolves when `state` has been idle for `idle` (checked a few times a second).
pub async fn idle_expired(state: &ConnState, idle: Duration) {
    let step = (idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        tokio::time::sleep(step).await;
        if state.idle_for() >= idle {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_util::sync::CancellationToken;

    use super::ConnLimits;
    use crate::mockkv::{MockKv, MockKvConfig, VirtualClock};

    async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // A 408 or similar before the close is fine; keep reading to the end.
                Ok(Ok(_)) => {}
            }
        }
    }

    #[tokio::test]
    async fn slowloris_connections_are_closed_and_normal_clients_still_served() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let kv = MockKv::new(
            MockKvConfig::default(),
            VirtualClock::frozen(1_704_110_400_000),
        );
        let stop = CancellationToken::new();
        let limits = ConnLimits {
            header_read: Duration::from_millis(300),
            idle: Duration::from_millis(600),
            max_connections: 40,
        };
        tokio::spawn(super::super::server::serve_with(
            listener,
            kv,
            stop.clone(),
            limits,
        ));
        // 50 clients: half send a partial request line and stall, half send nothing.
        let mut held = Vec::new();
        for i in 0..50 {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            if i % 2 == 0 {
                s.write_all(b"GET /k HTTP/1.1\r\nHost: fake-host\r\nX-Slow: ")
                    .await
                    .expect("write");
            }
            held.push(s);
        }
        // A normal client is answered while they are held (the cap closes idle ones for it).
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET /missing HTTP/1.1\r\nHost: fake-host\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 404"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        for (i, s) in held.iter_mut().enumerate() {
            assert!(
                closed_within(s, Duration::from_secs(5)).await,
                "connection {i} still open"
            );
        }
        stop.cancel();
    }
}
