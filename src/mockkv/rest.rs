//! The Cloudflare REST API v4 for KV.
use axum::extract::Request;
use axum::response::Response;

use super::MockKv;

/// Answer one REST request.
pub(crate) async fn handle(_kv: MockKv, _req: Request) -> Response {
    super::binding::status_with_reason(404, "Not Found")
}
