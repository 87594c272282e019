//! Targets: where a run sends its load. Starts and stops whatever the target needs (for now a
//! URL needs nothing and the built-in server runs in-process); the local Worker target under
//! miniflare will join here.

pub mod builtin;

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::scenario::plan::TargetKind;

/// A target that is up, with its base URL.
pub struct Running {
    /// Base URL requests are sent to.
    pub url: url::Url,
    /// `url` for a URL target, `builtin` for the built-in server.
    pub kind: &'static str,
    stop: CancellationToken,
}

impl Running {
    /// Stops whatever was started for the target.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the target. A URL target is used as is.
pub async fn start(kind: &TargetKind) -> std::io::Result<Running> {
    let stop = CancellationToken::new();
    match kind {
        TargetKind::Url(url) => Ok(Running {
            url: url.clone(),
            kind: "url",
            stop,
        }),
        TargetKind::Builtin => {
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            let addr = listener.local_addr()?;
            tokio::spawn(builtin::serve(listener, stop.clone()));
            let url = url::Url::parse(&format!("http://{addr}/"))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(Running {
                url,
                kind: "builtin",
                stop,
            })
        }
    }
}
