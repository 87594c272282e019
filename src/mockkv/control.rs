//! The control API.
use axum::Router;
use axum::response::IntoResponse;

use super::MockKv;

/// Routes under `/__kvchaos`.
pub fn router() -> Router<MockKv> {
    Router::new()
}

pub(crate) fn not_found() -> impl IntoResponse {
    http::StatusCode::NOT_FOUND
}
