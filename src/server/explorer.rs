//! The job explorer and the bulk actions: `GET /jobs` (newest first, filtered, a bounded walk
//! per call with a cursor to go on), `POST /jobs/retry`, `/jobs/delete` and `/jobs/cancel` (by
//! filter, with a dry run whose `as_of` pins the selection), and `DELETE /jobs/{id}`.

use serde::Deserialize;
use serde_json::json;

use super::input::{as_of, job_id, parse_json, read_body, Query};
use super::router::Call;
use super::{ApiError, Reply};
use crate::context::note_job_events;
use crate::handler::is_valid_type_name;
use crate::job::{api_time, check_group, check_queue_name, from_micros};
use crate::store::{DlqSelect, Index, JobFilter, Place, Search, StoreError, Stores};

/// Every status a filter may name (`scheduled`: pending with a due time, `pending`: ready).
const STATUSES: [&str; 8] = [
    "waiting",
    "pending",
    "scheduled",
    "running",
    "completed",
    "failed",
    "cancelled",
    "expired",
];
/// The statuses of jobs that have ended: what `POST /jobs/delete` may select.
const ENDED: [&str; 4] = ["completed", "failed", "cancelled", "expired"];
/// The statuses `POST /jobs/cancel` may select.
const CANCELLABLE: [&str; 4] = ["pending", "scheduled", "waiting", "running"];

/// Index entries one script call looks at: 3-4 ms of Redis's time at most (about 2.5 µs an
/// entry for the status, queue, type and group, 4 µs with a text search), so a walk never holds
/// Redis up for long.
const STEP: usize = 1000;
/// Index entries one `GET /jobs` looks at, over several script calls, before it answers with a
/// cursor and `cut_short`: about 20 ms for the costliest search, measured with scripts/bench.
pub const LIST_BUDGET: usize = 5000;
/// Index entries one bulk action looks at before it answers `more` with a cursor.
pub const BULK_BUDGET: usize = 100_000;
/// Most jobs one `POST /jobs/cancel` cancels; the answer says when more were left.
pub const MAX_BULK_CANCEL: usize = 10_000;
/// Longest `q`.
const MAX_SEARCH: usize = 200;

/// `GET /jobs?status=&queue=&type=&group=&q=&limit=&cursor=`.
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let q = Query::parse(
        call.query,
        &["status", "queue", "type", "group", "q", "limit", "cursor"],
    )?;
    let limit = q.number("limit", 20, 100)? as usize;
    if limit == 0 {
        return Err(ApiError::BadRequest(
            "limit must be 1-100 (jobs per page)".into(),
        ));
    }
    let statuses = match q.get("status") {
        None => Vec::new(),
        Some(s) => statuses(s.split(',').map(str::to_string).collect(), &STATUSES, "")?,
    };
    let filter = JobFilter {
        statuses,
        queue: q.get("queue").map(str::to_string),
        job_type: q.get("type").map(str::to_string),
        group: q.get("group").map(str::to_string),
        search: search(q.get("q"))?,
        upto: None,
    };
    check_filter(&filter)?;
    let index = index_for(&filter.statuses);
    let mut from = q.get("cursor").map(|c| cursor(c, index)).transpose()?;
    let (mut ids, mut seen) = (Vec::new(), 0);
    while ids.len() < limit && seen < LIST_BUDGET {
        let w = call.store.explore(
            index,
            &filter,
            from.as_ref(),
            limit - ids.len(),
            STEP.min(LIST_BUDGET - seen),
        )?;
        seen += w.seen as usize;
        ids.extend(w.ids);
        from = w.next;
        if from.is_none() {
            break;
        }
    }
    let jobs = call.store.jobs(&ids)?;
    Ok(Reply::json(
        200,
        &json!({
            "jobs": jobs,
            "next_cursor": from.as_ref().map(|p| cursor_text(index, p)),
            "scanned": seen,
            "cut_short": from.is_some() && ids.len() < limit,
        }),
    ))
}

/// What a bulk action acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    Retry,
    Delete,
    Cancel,
}

impl Bulk {
    fn name(self) -> &'static str {
        match self {
            Bulk::Retry => "retry",
            Bulk::Delete => "delete",
            Bulk::Cancel => "cancel",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    status: Option<Vec<String>>,
    queue: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    group: Option<String>,
    q: Option<String>,
    #[serde(default)]
    dry_run: bool,
    as_of: Option<String>,
    cursor: Option<String>,
}

/// `POST /jobs/retry`.
pub fn retry(call: &mut Call) -> Result<Reply, ApiError> {
    bulk(call, Bulk::Retry)
}

/// `POST /jobs/delete`.
pub fn delete_matching(call: &mut Call) -> Result<Reply, ApiError> {
    bulk(call, Bulk::Delete)
}

/// `POST /jobs/cancel`.
pub fn cancel_matching(call: &mut Call) -> Result<Reply, ApiError> {
    bulk(call, Bulk::Cancel)
}

/// A bulk action by filter. A dry run counts the selection and answers `as_of` (Redis's clock);
/// the action given that `as_of` takes only jobs created (for failed jobs: dead) by then, so
/// it acts on what the dry run counted less what has changed state since, never on jobs that
/// arrived since.
fn bulk(call: &mut Call, action: Bulk) -> Result<Reply, ApiError> {
    let body = read_body(call.req, call.shared.config.max_body_bytes)?;
    let req: BulkRequest = parse_json(
        &body,
        "{\"status\": [...], \"queue\": \"...\", \"type\": \"...\", \"q\": \"...\", \"dry_run\": true}",
    )?;
    let (allowed, default): (&[&str], &[&str]) = match action {
        Bulk::Retry => (&["failed"], &["failed"]),
        Bulk::Delete => (&ENDED, &ENDED),
        Bulk::Cancel => (&CANCELLABLE, &CANCELLABLE),
    };
    let statuses = match req.status {
        None => default.iter().map(|s| s.to_string()).collect(),
        Some(list) => statuses(list, allowed, action.name())?,
    };
    let upto = req.as_of.as_deref().map(as_of).transpose()?;
    if action == Bulk::Cancel && req.cursor.is_some() {
        return Err(ApiError::BadRequest(
            "a cancellation takes no cursor: while an answer says \"more\", call again with the same filter and as_of".into(),
        ));
    }
    let filter = JobFilter {
        statuses,
        queue: req.queue,
        job_type: req.kind,
        group: req.group,
        search: search(req.q.as_deref())?,
        upto,
    };
    check_filter(&filter)?;
    let done = if action == Bulk::Cancel {
        if filter.queue.is_none() && filter.job_type.is_none() && filter.group.is_none() {
            return Err(ApiError::BadRequest(
                "name at least one of \"queue\", \"type\" and \"group\": a cancellation of every job must be asked for queue by queue".into(),
            ));
        }
        let (n, more, now, events) =
            call.store
                .cancel_matching(&filter, req.dry_run, MAX_BULK_CANCEL)?;
        note_job_events(call.shared, &events);
        Done {
            matched: n,
            more,
            cursor: None,
            now,
        }
    } else {
        let from = req.cursor.as_deref().map(bulk_cursor).transpose()?;
        walk_and_act(call.store, action, &filter, from, req.dry_run)?
    };
    let Done {
        matched,
        more,
        cursor,
        now,
    } = done;
    let as_of = upto.unwrap_or(now);
    if !req.dry_run && matched > 0 {
        log::info!(
            "bulk {} ({}, as of {}): {matched} job(s){}",
            action.name(),
            describe(&filter),
            rfc3339(as_of),
            match action {
                Bulk::Retry => " sent back from the DLQ to pending",
                Bulk::Delete => " deleted",
                Bulk::Cancel => " cancelled or told to stop",
            }
        );
    }
    let mut answer = json!({
        "action": action.name(),
        "dry_run": req.dry_run,
        "matched": matched,
        "more": more,
        "as_of": rfc3339(as_of),
    });
    if let Some(c) = cursor {
        answer["next_cursor"] = json!(c);
    }
    Ok(Reply::json(200, &answer))
}

/// What a bulk action did (or with a dry run, would do).
struct Done {
    matched: u64,
    /// It stopped at its bound with more of the selection left.
    more: bool,
    /// Where a retry or delete stopped, when `more`.
    cursor: Option<String>,
    /// Redis's clock when it began (µs).
    now: i64,
}

/// Walks the selection of a retry or delete (failed jobs along the DLQ, then the other ended
/// statuses along the journal) up to [`BULK_BUDGET`] entries, acting on each step's jobs unless
/// `dry_run`.
fn walk_and_act(
    store: &mut Stores,
    action: Bulk,
    filter: &JobFilter,
    from: Option<(Index, Place)>,
    dry_run: bool,
) -> Result<Done, ApiError> {
    let failed = filter.statuses.iter().any(|s| s == "failed");
    let others: Vec<String> = filter
        .statuses
        .iter()
        .filter(|s| *s != "failed")
        .cloned()
        .collect();
    let mut legs = Vec::new();
    if failed {
        let mut f = filter.clone();
        f.statuses = vec!["failed".into()];
        legs.push((Index::Dlq, f));
    }
    if !others.is_empty() {
        let mut f = filter.clone();
        f.statuses = others;
        legs.push((Index::Journal, f));
    }
    // A cursor names the leg it stopped in; the legs before it are done.
    let (mut leg, mut place) = match from {
        Some((index, place)) => match legs.iter().position(|(i, _)| *i == index) {
            Some(n) => (n, Some(place).filter(|(a, _)| !a.is_empty())),
            None => {
                return Err(ApiError::BadRequest(
                    "this cursor belongs to another selection; leave it out to start again".into(),
                ))
            }
        },
        None => (0, None),
    };
    let (mut matched, mut seen, mut now) = (0u64, 0usize, None);
    while leg < legs.len() {
        let (index, f) = &legs[leg];
        if seen >= BULK_BUDGET {
            let at = place.unwrap_or_default();
            return Ok(Done {
                matched,
                more: true,
                cursor: Some(cursor_text(*index, &at)),
                now: now.unwrap_or(0),
            });
        }
        let w = store.explore(*index, f, place.as_ref(), STEP, STEP)?;
        now.get_or_insert(w.now_us);
        seen += w.seen as usize;
        if !w.ids.is_empty() && !dry_run {
            act(store, action, &w.ids)?;
        }
        matched += w.ids.len() as u64;
        place = w.next;
        if place.is_none() {
            leg += 1;
        }
    }
    Ok(Done {
        matched,
        more: false,
        cursor: None,
        now: now.unwrap_or(0),
    })
}

/// Retries or deletes one step's jobs, each in its own atomic step: a job that has changed
/// state since the walk saw it is left alone.
fn act(store: &mut Stores, action: Bulk, ids: &[String]) -> Result<(), StoreError> {
    match action {
        Bulk::Retry => store.dlq_retry(DlqSelect::Ids(ids)).map(drop),
        _ => store.delete_ended(ids).map(drop),
    }
}

/// `DELETE /jobs/{id}`: a job that has ended, with its DLQ entry when it failed.
pub fn delete(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?.to_string();
    let outcome = call
        .store
        .delete_ended(std::slice::from_ref(&id))?
        .pop()
        .map(|(_, o)| o)
        .unwrap_or_default();
    match outcome.as_str() {
        "deleted" => {
            log::info!("job {id} deleted");
            Ok(Reply::json(200, &json!({"id": id, "deleted": true})))
        }
        "missing" => Err(ApiError::NotFound(format!(
            "no job {id}; it never existed, its record expired or it was deleted"
        ))),
        status => Err(ApiError::Conflict {
            message: format!(
                "job {id} is {status} and has not ended; cancel it first (POST /jobs/{id}/cancel)"
            ),
            job_id: Some(id),
        }),
    }
}

/// The index a walk for these statuses follows: the DLQ for failed jobs alone (it keeps them
/// whatever their age), else the journal.
fn index_for(statuses: &[String]) -> Index {
    if statuses.len() == 1 && statuses[0] == "failed" {
        Index::Dlq
    } else {
        Index::Journal
    }
}

/// Checks a list of statuses against those allowed here.
fn statuses(list: Vec<String>, allowed: &[&str], action: &str) -> Result<Vec<String>, ApiError> {
    if list.is_empty() {
        return Err(ApiError::BadRequest(
            "\"status\" is empty; leave it out to select every status this action takes".into(),
        ));
    }
    for s in &list {
        if !allowed.contains(&s.as_str()) {
            let what = if action.is_empty() {
                "is not a status".to_string()
            } else {
                format!("cannot be selected for {action}")
            };
            return Err(ApiError::BadRequest(format!(
                "status {s:?} {what}; choose among {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(list)
}

/// Checks the names of a filter.
fn check_filter(f: &JobFilter) -> Result<(), ApiError> {
    if let Some(q) = &f.queue {
        check_queue_name(q).map_err(ApiError::BadRequest)?;
    }
    if let Some(t) = &f.job_type {
        if !is_valid_type_name(t) {
            return Err(ApiError::BadRequest(format!(
                "type {t:?} is not a job type name (1-64 characters of A-Z a-z 0-9 _ - . :)"
            )));
        }
    }
    if let Some(g) = &f.group {
        check_group(g).map_err(ApiError::BadRequest)?;
    }
    Ok(())
}

/// `q`: a substring of the payload, result or last error (any case), or `$.path=value`.
fn search(q: Option<&str>) -> Result<Option<Search>, ApiError> {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if q.len() > MAX_SEARCH {
        return Err(ApiError::BadRequest(format!(
            "q is {} bytes long; search for at most {MAX_SEARCH}",
            q.len()
        )));
    }
    let Some(rest) = q.strip_prefix("$.") else {
        return Ok(Some(Search::Text(q.to_ascii_lowercase())));
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "q {q:?} starts like a JSON path search; write $.path=value, such as $.user.id=42 or $.items.0.sku=A1 (names of A-Z a-z 0-9 _ -)"
        ))
    };
    let (path, value) = rest.split_once('=').ok_or_else(bad)?;
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !path.split('.').all(name_ok) {
        return Err(bad());
    }
    Ok(Some(Search::Path {
        path: path.to_string(),
        value: value.to_string(),
    }))
}

/// The cursor as the API shows it: `j.<hour>.<index>` along the journal, `d.<score>.<id>`
/// along the DLQ.
fn cursor_text(index: Index, (a, b): &Place) -> String {
    let tag = match index {
        Index::Journal => "j",
        Index::Dlq => "d",
    };
    format!("{tag}.{a}.{b}")
}

/// Reads a cursor of `GET /jobs`, which must belong to the index the filter walks.
fn cursor(text: &str, index: Index) -> Result<Place, ApiError> {
    match bulk_cursor(text)? {
        (i, place) if i == index => Ok(place),
        _ => Err(ApiError::BadRequest(
            "this cursor belongs to a listing with other statuses; keep the filter of the page it came from, or leave the cursor out to start again".into(),
        )),
    }
}

/// Reads a cursor with its index.
fn bulk_cursor(text: &str) -> Result<(Index, Place), ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "cursor {text:?} is not one this server gave; pass next_cursor from the previous answer as it is"
        ))
    };
    let mut parts = text.splitn(3, '.');
    let (tag, a, b) = match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(a), Some(b)) => (t, a, b),
        _ => return Err(bad()),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|c| c.is_ascii_digit());
    // With partitions, a place past partition 0 begins `<partition>@`.
    let first = match a.split_once('@') {
        Some((p, rest)) if digits(p) => rest,
        Some(_) => return Err(bad()),
        None => a,
    };
    // Both parts empty: the start of that index (a bulk action that stopped between its legs),
    // or of a partition.
    let start = first.is_empty() && b.is_empty();
    match tag {
        "j" if start || (digits(first) && digits(b)) => Ok((Index::Journal, (a.into(), b.into()))),
        "d" if start || (digits(first) && (b.is_empty() || job_id(b).is_ok())) => {
            Ok((Index::Dlq, (a.into(), b.into())))
        }
        _ => Err(bad()),
    }
}

/// A filter in a log line: "queue mail, type send, q \"timeout\", status failed".
fn describe(f: &JobFilter) -> String {
    let mut parts = Vec::new();
    for (name, v) in [
        ("queue", &f.queue),
        ("type", &f.job_type),
        ("group", &f.group),
    ] {
        if let Some(v) = v {
            parts.push(format!("{name} {v}"));
        }
    }
    match &f.search {
        Some(Search::Text(t)) => parts.push(format!("q {t:?}")),
        Some(Search::Path { path, value }) => parts.push(format!("q $.{path}={value:?}")),
        None => {}
    }
    parts.push(format!("status {}", f.statuses.join("|")));
    parts.join(", ")
}

/// µs since the epoch in the API's time format.
fn rfc3339(us: i64) -> String {
    api_time(&from_micros(us).unwrap_or_default())
}
