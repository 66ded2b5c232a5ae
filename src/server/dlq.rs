//! The dead-letter queue routes: list, look at, retry and delete dead jobs, one at a time or
//! all of them (optionally of one type).

use serde_json::json;

use super::input::{job_id, Query};
use super::router::Call;
use super::{ApiError, Reply};
use crate::handler::is_valid_type_name;
use crate::store::DlqSelect;

/// `GET /dlq?offset=&limit=`: one page, newest first.
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let q = Query::parse(call.query, &["offset", "limit"])?;
    let offset = q.number("offset", 0, 1_000_000_000)?;
    let limit = q.number("limit", 50, 1000)?;
    let (total, jobs) = call.store.dlq_page(offset, limit)?;
    Ok(Reply::json(
        200,
        &json!({"total": total, "offset": offset, "limit": limit, "jobs": jobs}),
    ))
}

/// `GET /dlq/{id}`.
pub fn get(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?;
    match call.store.dlq_job(&id)? {
        Some(job) => Ok(Reply::json(200, &job)),
        None => Err(not_in_dlq(&id)),
    }
}

/// `POST /dlq/{id}/retry`.
pub fn retry(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?;
    if call.store.dlq_retry(DlqSelect::One(&id))?.is_empty() {
        return Err(not_in_dlq(&id));
    }
    log::info!("job {id} sent back from the DLQ to pending");
    Ok(Reply::json(
        200,
        &json!({"job_id": id, "status": "pending"}),
    ))
}

/// `DELETE /dlq/{id}`.
pub fn delete(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?;
    if call.store.dlq_delete(DlqSelect::One(&id))? == 0 {
        return Err(not_in_dlq(&id));
    }
    log::info!("job {id} deleted from the DLQ");
    Ok(Reply::json(200, &json!({"deleted": 1})))
}

/// `POST /dlq/retry[?type=T]`.
pub fn retry_all(call: &mut Call) -> Result<Reply, ApiError> {
    let kind = type_filter(call.query)?;
    let ids = call.store.dlq_retry(select(&kind))?;
    if !ids.is_empty() {
        let which = described(ids.len(), &kind);
        log::info!("{which} sent back from the DLQ to pending");
    }
    Ok(Reply::json(
        200,
        &json!({"retried": ids.len(), "job_ids": ids}),
    ))
}

/// `DELETE /dlq[?type=T]`.
pub fn purge(call: &mut Call) -> Result<Reply, ApiError> {
    let kind = type_filter(call.query)?;
    let n = call.store.dlq_delete(select(&kind))?;
    if n > 0 {
        let which = described(n as usize, &kind);
        log::info!("{which} deleted from the DLQ");
    }
    Ok(Reply::json(200, &json!({"deleted": n})))
}

/// The `?type=X` of a DLQ-wide operation; none means every dead-letter job.
fn type_filter(query: &str) -> Result<Option<String>, ApiError> {
    let q = Query::parse(query, &["type"])?;
    match q.get("type") {
        None => Ok(None),
        Some(t) if is_valid_type_name(t) => Ok(Some(t.to_string())),
        Some(t) => Err(ApiError::BadRequest(format!(
            "type {t:?} is not a job type name"
        ))),
    }
}

/// The jobs a DLQ-wide operation acted on, for its log line: "3 job(s) of type email" or
/// "all 5 job(s)".
fn described(n: usize, kind: &Option<String>) -> String {
    match kind {
        Some(t) => format!("{n} job(s) of type {t}"),
        None => format!("all {n} job(s)"),
    }
}

fn select(kind: &Option<String>) -> DlqSelect<'_> {
    kind.as_deref().map_or(DlqSelect::All, DlqSelect::Type)
}

fn not_in_dlq(id: &str) -> ApiError {
    ApiError::NotFound(format!("job {id} is not in the dead-letter queue"))
}
