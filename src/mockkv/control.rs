//! The control API under `/__kvchaos/`: what a scenario driver or a human
//! with curl uses to steer the mock while it serves.
//!
//! Owns: these routes (all JSON unless noted):
//! - `GET /__kvchaos/health` → `ok` (text)
//! - `GET /__kvchaos/faults` → active rules
//! - `POST /__kvchaos/faults` with a JSON [`FaultSpec`] or a compact
//!   one-line spec as text → `201 {"id": N}`
//! - `DELETE /__kvchaos/faults/{id}` → clear one rule
//! - `DELETE /__kvchaos/faults` (or `POST /__kvchaos/faults/clear`) → clear
//!   every rule (the kill switch) → `{"cleared": N}`
//! - `GET /__kvchaos/stats` → [`super::Snapshot`]
//! - `GET /__kvchaos/clock`, `POST /__kvchaos/clock` with
//!   `{"set_ms"?, "advance_ms"?, "speed"?}` → `{"now_ms", "speed"}`
//! - `POST /__kvchaos/reset` → forget all keys; `?stats=true` also clears
//!   counters and quota use.
//!
//! Does not own: what the operations do (the [`MockKv`] handle does).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::MockKv;
use super::clock::ClockView;
use super::fault::{FaultId, FaultSpec};

/// Routes to nest under `/__kvchaos`.
pub fn router() -> Router<MockKv> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_all),
        )
        .route("/faults/clear", post(clear_all))
        .route("/faults/{id}", axum::routing::delete(clear_one))
        .route("/stats", get(stats))
        .route("/clock", get(clock).post(set_clock))
        .route("/reset", post(reset))
        .fallback(|| async { not_found() })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(crate) fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown control route: see /__kvchaos/faults, /stats, /clock, /reset, /health",
    )
}

async fn list_faults(State(kv): State<MockKv>) -> Response {
    Json(kv.faults()).into_response()
}

async fn add_fault(State(kv): State<MockKv>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t.trim(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "fault spec is not UTF-8"),
    };
    let spec = if text.starts_with('{') {
        serde_json::from_str::<FaultSpec>(text).map_err(|e| format!("invalid fault spec: {e}"))
    } else {
        text.parse::<FaultSpec>().map_err(|e| e.to_string())
    };
    match spec.and_then(|s| kv.add_fault(s).map_err(|e| e.to_string())) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(msg) => error(StatusCode::BAD_REQUEST, msg),
    }
}

async fn clear_all(State(kv): State<MockKv>) -> Response {
    Json(json!({ "cleared": kv.clear_all_faults() })).into_response()
}

async fn clear_one(State(kv): State<MockKv>, Path(id): Path<FaultId>) -> Response {
    if kv.clear_fault(id) {
        Json(json!({ "cleared": 1 })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no fault rule with id '{id}'"),
        )
    }
}

async fn stats(State(kv): State<MockKv>) -> Response {
    Json(kv.stats()).into_response()
}

async fn clock(State(kv): State<MockKv>) -> Json<ClockView> {
    Json(kv.clock().view())
}

/// Body of `POST /__kvchaos/clock`; applied in the order set, advance, speed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    set_ms: Option<u64>,
    advance_ms: Option<u64>,
    speed: Option<f64>,
}

async fn set_clock(State(kv): State<MockKv>, body: Bytes) -> Response {
    let change: ClockChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid clock change: {e}; expected e.g. {{\"advance_ms\": 60000}}"),
            );
        }
    };
    if change.speed.is_some_and(|s| !s.is_finite() || s < 0.0) {
        return error(StatusCode::BAD_REQUEST, "speed must be a number >= 0");
    }
    let clock = kv.clock();
    if let Some(ms) = change.set_ms {
        clock.set_ms(ms);
    }
    if let Some(ms) = change.advance_ms {
        clock.advance(Duration::from_millis(ms));
    }
    if let Some(speed) = change.speed {
        clock.set_speed(speed);
    }
    Json(clock.view()).into_response()
}

#[derive(Debug, Deserialize)]
struct ResetQuery {
    #[serde(default)]
    stats: bool,
}

async fn reset(State(kv): State<MockKv>, Query(q): Query<ResetQuery>) -> Response {
    kv.reset_data();
    if q.stats {
        kv.reset_stats();
    }
    Json(json!({ "reset": true, "stats": q.stats })).into_response()
}
