//! The admin endpoint for tests (127.0.0.1 only):
//! - `GET /healthz` → `ok`;
//! - `GET /chains` → every chain, summarized;
//! - `GET /chains/<namespace>/<name>[?from=N]` → one chain: head, validators, tallies,
//!   nodes, node events and every block from `N` (default 0) on.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::{Shared, now_ms};

async fn chains(State(s): State<Arc<Shared>>) -> Response {
    Json(s.world().summaries()).into_response()
}

async fn chain(
    State(s): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let from = q.get("from").and_then(|f| f.parse().ok()).unwrap_or(0);
    match s.world().view(&namespace, &name, from, now_ms()) {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!("no chain {namespace}/{name}\n"),
        )
            .into_response(),
    }
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/chains", get(chains))
        .route("/chains/{namespace}/{name}", get(chain))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin endpoint failed");
    }
}
