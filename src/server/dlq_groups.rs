//! Failures grouped by cause: `GET /dlq/groups`, and retrying or deleting one group with a dry
//! run first. A dry run answers the count and `as_of` (when the group's newest counted job
//! entered the DLQ); the action with that `as_of` takes only the group's jobs buried up to it,
//! so jobs that failed after the dry run are left alone.

use serde_json::{json, Value};

use super::input::{as_of, Query};
use super::router::Call;
use super::{ApiError, Reply};
use crate::job::api_time;
use crate::store::{DlqGroup, DlqSelect};

/// `GET /dlq/groups?limit=`: the largest groups first (then the most recently seen).
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let q = Query::parse(call.query, &["limit"])?;
    let limit = q.number("limit", 100, 1000)? as usize;
    let (dlq_size, mut groups) = call.store.dlq_groups(None, None)?;
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_seen_us.cmp(&a.last_seen_us))
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    let grouped: u64 = groups.iter().map(|g| g.count).sum();
    let total = groups.len();
    groups.truncate(limit);
    Ok(Reply::json(
        200,
        &json!({
            "total_groups": total,
            "dlq_size": dlq_size,
            // Jobs buried before groups existed and not indexed yet (each call indexes 1000).
            "ungrouped": dlq_size.saturating_sub(grouped),
            "groups": groups.iter().map(shown).collect::<Vec<_>>(),
        }),
    ))
}

/// `POST /dlq/groups/{fingerprint}/retry[?dry_run=true][&as_of=T]`.
pub fn retry(call: &mut Call) -> Result<Reply, ApiError> {
    let (fingerprint, dry_run, upto) = selection(call)?;
    if dry_run {
        return dry_run_reply(call, &fingerprint, upto);
    }
    let ids = call.store.dlq_retry(DlqSelect::Group {
        fingerprint: &fingerprint,
        upto,
    })?;
    log::info!(
        "dlq group retry: fingerprint {fingerprint}{}, {} job(s) sent back to pending",
        as_of_note(upto),
        ids.len()
    );
    Ok(Reply::json(
        200,
        &json!({"fingerprint": fingerprint, "retried": ids.len(), "job_ids": ids}),
    ))
}

/// `DELETE /dlq/groups/{fingerprint}[?dry_run=true][&as_of=T]`.
pub fn delete(call: &mut Call) -> Result<Reply, ApiError> {
    let (fingerprint, dry_run, upto) = selection(call)?;
    if dry_run {
        return dry_run_reply(call, &fingerprint, upto);
    }
    let n = call.store.dlq_delete(DlqSelect::Group {
        fingerprint: &fingerprint,
        upto,
    })?;
    log::info!(
        "dlq group delete: fingerprint {fingerprint}{}, {n} job(s) deleted",
        as_of_note(upto)
    );
    Ok(Reply::json(
        200,
        &json!({"fingerprint": fingerprint, "deleted": n}),
    ))
}

/// The count a group action would take now, and the `as_of` that makes it take exactly those.
/// An unknown or emptied group counts 0 (as a type with no dead jobs does): it may have been
/// emptied a moment ago by another client.
fn dry_run_reply(call: &mut Call, fp: &str, upto: Option<i64>) -> Result<Reply, ApiError> {
    let (_, groups) = call.store.dlq_groups(Some(fp), upto)?;
    let group = groups.first();
    Ok(Reply::json(
        200,
        &json!({
            "fingerprint": fp,
            "dry_run": true,
            "count": group.map_or(0, |g| g.count),
            "as_of": group.map(|g| api_time(&g.last_seen)),
        }),
    ))
}

/// The fingerprint of the path and the `dry_run` and `as_of` of the query.
fn selection(call: &Call) -> Result<(String, bool, Option<i64>), ApiError> {
    let fp = call.id;
    if fp.len() != 16
        || !fp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ApiError::BadRequest(format!(
            "{fp:?} is not a failure group's fingerprint (16 lower-case hex digits, as GET /dlq/groups lists them)"
        )));
    }
    let q = Query::parse(call.query, &["dry_run", "as_of"])?;
    let dry_run = match q.get("dry_run") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "dry_run must be true or false, got {v:?}"
            )))
        }
    };
    let upto = q.get("as_of").map(as_of).transpose()?;
    Ok((fp.to_string(), dry_run, upto))
}

fn shown(g: &DlqGroup) -> Value {
    json!({
        "fingerprint": g.fingerprint,
        "type": g.kind,
        "count": g.count,
        "pattern": g.pattern,
        "sample_error": g.sample,
        "first_seen": api_time(&g.first_seen),
        "last_seen": api_time(&g.last_seen),
    })
}

fn as_of_note(upto: Option<i64>) -> String {
    upto.and_then(crate::job::from_micros)
        .map(|t| format!(" as of {}", api_time(&t)))
        .unwrap_or_default()
}
