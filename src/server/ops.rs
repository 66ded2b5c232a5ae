//! The routes for operators and tools: `/health`, `/metrics`, `/stats`, `/stats/history` and the
//! API document.

use serde_json::json;

use super::input::Query;
use super::router::Call;
use super::{ApiError, Reply};
use crate::job::{check_queue_name, from_micros};
use crate::store::history::{HISTORY_MINUTES, QUEUE_TOTALS, TOTALS};

/// `GET /health`: 200 while Redis answers PING, else 503 with the reason (a body of its own
/// shape, `{"status": "unhealthy", "error": …}`, that load balancers and `jobq health` read).
pub fn health(call: &mut Call) -> Result<Reply, ApiError> {
    Ok(match call.store.ping() {
        Ok(()) => Reply::json(200, &json!({"status": "healthy"})),
        Err(e) => Reply::json(503, &json!({"status": "unhealthy", "error": e.to_string()})),
    })
}

/// `GET /access` (no token needed): what the caller's token allows (`full`, `read_only` or
/// `none`) and whether this server asks for a token at all.
pub fn access(call: &mut Call) -> Result<Reply, ApiError> {
    let config = &call.shared.config;
    Ok(Reply::json(
        200,
        &json!({
            "access": super::auth::access_level(call.req, config),
            "token_required": config.api_token.is_some(),
        }),
    ))
}

/// `GET /metrics`: the Prometheus text, with the queue sizes, latencies and type states read
/// from Redis (left out when Redis does not answer, so a scrape still gets the process's
/// counters).
pub fn metrics(call: &mut Call) -> Result<Reply, ApiError> {
    let queues = call.store.queues(None).ok();
    let types = super::queues::type_names(call)
        .and_then(|names| call.store.types(&names).map_err(ApiError::from))
        .ok();
    let live = call.store.live_processes().ok();
    let state = match (queues.as_deref(), types.as_deref(), &live) {
        (Some(q), Some(t), Some(l)) => Some((q, t, l.processes.as_slice())),
        _ => None,
    };
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

/// `GET /stats/history?minutes=&queue=`: the counts of each of the last `minutes` minutes (60
/// by default, at most 72 hours), oldest first, the current minute's so far last; for every
/// queue or one. A minute that no jobq process saw start (or end) has null counts.
pub fn history(call: &mut Call) -> Result<Reply, ApiError> {
    let q = Query::parse(call.query, &["minutes", "queue"])?;
    let minutes = q.number("minutes", 60, HISTORY_MINUTES)?;
    if minutes == 0 {
        return Err(ApiError::BadRequest(format!(
            "minutes must be from 1 to {HISTORY_MINUTES} (72 hours), got 0"
        )));
    }
    let queue = q.get("queue").map(str::to_string);
    if let Some(name) = &queue {
        check_queue_name(name).map_err(ApiError::BadRequest)?;
    }
    let points: Vec<_> = call
        .store
        .history(minutes, queue.as_deref())?
        .into_iter()
        .map(|m| {
            let at = from_micros(m.minute * 60_000_000)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let mut point = serde_json::Map::new();
            point.insert("at".into(), json!(at));
            match m.counts {
                Some(counts) => {
                    for (name, n) in counts {
                        point.insert(name.into(), json!(n));
                    }
                }
                None => {
                    let names: &[&str] = if queue.is_some() {
                        &QUEUE_TOTALS
                    } else {
                        &TOTALS
                    };
                    for name in names {
                        point.insert((*name).into(), serde_json::Value::Null);
                    }
                }
            }
            serde_json::Value::Object(point)
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({"minutes": minutes, "queue": queue, "points": points}),
    ))
}
