//! The routes for operators and tools: `/health`, `/metrics`, `/stats` and the API document.

use serde_json::json;

use super::router::Call;
use super::{ApiError, Reply};

/// `GET /health`: 200 while Redis answers PING, else 503 with the reason (a body of its own
/// shape, `{"status": "unhealthy", "error": …}`, that load balancers and `jobq health` read).
pub fn health(call: &mut Call) -> Result<Reply, ApiError> {
    Ok(match call.store.ping() {
        Ok(()) => Reply::json(200, &json!({"status": "healthy"})),
        Err(e) => Reply::json(503, &json!({"status": "unhealthy", "error": e.to_string()})),
    })
}

/// `GET /metrics`: the Prometheus text, with the queue sizes, latencies and type states read
/// from Redis (left out when Redis does not answer, so a scrape still gets the process's
/// counters).
pub fn metrics(call: &mut Call) -> Result<Reply, ApiError> {
    let queues = call.store.queues(None).ok();
    let types = super::queues::type_names(call)
        .and_then(|names| call.store.types(&names).map_err(ApiError::from))
        .ok();
    let state = queues.as_deref().zip(types.as_deref());
    Ok(Reply::text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        call.shared.metrics.render(state),
    ))
}

/// `GET /stats`.
pub fn stats(call: &mut Call) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &call.store.stats()?))
}

/// `GET /openapi.json`: built once at start-up (see `openapi.rs`).
pub fn openapi(call: &mut Call) -> Result<Reply, ApiError> {
    Ok(Reply::text(
        200,
        "application/json",
        call.shared.openapi.clone(),
    ))
}
