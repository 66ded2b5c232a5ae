//! The schedule routes: `PUT`, `GET` and `DELETE /schedules/{name}`, `GET /schedules`, and
//! `POST /schedules/{name}/pause`, `/resume` and `/trigger`. A schedule declared in
//! SCHEDULES_FILE may be paused, resumed and triggered here, not changed or deleted (409): the
//! file is its source and the next start-up would put it back.

use serde_json::{json, Value};

use super::input::{parse_json, path_segment, read_body};
use super::router::Call;
use super::{ApiError, Reply};
use crate::config::schedules::check_schedule_name;
use crate::config::ScheduleSpec;
use crate::job::api_time_value;
use crate::store::{Control, ControlOutcome, Fired, PutOutcome, ScheduleRecord, Source};

/// How many fire times `GET /schedules/{name}` shows.
const NEXT_RUNS: usize = 5;

/// `GET /schedules`: every schedule, by name.
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let (_, all) = call.store.schedules(None)?;
    let out: Vec<Value> = all.iter().map(schedule_json).collect();
    Ok(Reply::json(200, &json!({ "schedules": out })))
}

/// `GET /schedules/{name}`.
pub fn get(call: &mut Call) -> Result<Reply, ApiError> {
    let name = schedule_name(call.id)?;
    let s = one(call, &name)?;
    Ok(Reply::json(200, &schedule_json(&s)))
}

/// `PUT /schedules/{name}`: creates (201) or replaces (200) a schedule made through the API.
pub fn put(call: &mut Call) -> Result<Reply, ApiError> {
    let name = schedule_name(call.id)?;
    let body = read_body(call.req, call.shared.config.max_body_bytes)?;
    let doc: Value = parse_json(
        &body,
        "{\"cron\": \"*/5 * * * *\", \"timezone\": \"UTC\", \"job\": {\"type\": \"...\", \"payload\": {...}}}",
    )?;
    let spec = ScheduleSpec::from_json(&doc).map_err(ApiError::BadRequest)?;
    call.shared
        .schedule_job(&spec, true)
        .map_err(|e| ApiError::BadRequest(format!("job: {e}")))?;
    let (now, _) = call.store.schedules(Some(&name))?;
    let first = spec.timing.next_after(now).ok_or_else(|| {
        ApiError::BadRequest(format!("cron: {:?} gives no next fire time", spec.cron))
    })?;
    let outcome = call.store.put_schedule(
        &name,
        &spec.to_json().to_string(),
        &spec.timing_key(),
        Source::Api,
        first,
    )?;
    let status = match outcome {
        PutOutcome::Created => 201,
        PutOutcome::Updated | PutOutcome::Unchanged => 200,
        PutOutcome::Conflict(_) => return Err(declared_in_file(&name, "changed")),
    };
    if outcome != PutOutcome::Unchanged {
        log::info!(
            "schedule {name} {}: {} ({}), job {}",
            if status == 201 { "created" } else { "changed" },
            spec.cron,
            spec.timezone,
            spec.job.get("type").and_then(Value::as_str).unwrap_or("?")
        );
    }
    let s = one(call, &name)?;
    Ok(Reply::json(status, &schedule_json(&s)))
}

/// `DELETE /schedules/{name}`.
pub fn delete(call: &mut Call) -> Result<Reply, ApiError> {
    let name = schedule_name(call.id)?;
    match call
        .store
        .control_schedule(&name, Control::Delete(Source::Api))?
    {
        ControlOutcome::Done => {
            log::info!("schedule {name} deleted");
            Ok(Reply::json(200, &json!({ "deleted": name })))
        }
        ControlOutcome::Missing => Err(not_found(&name)),
        ControlOutcome::Conflict(_) => Err(declared_in_file(&name, "deleted")),
    }
}

/// `POST /schedules/{name}/pause`: no tick is made until it is resumed.
pub fn pause(call: &mut Call) -> Result<Reply, ApiError> {
    let name = schedule_name(call.id)?;
    control(call, &name, Control::Pause)
}

/// `POST /schedules/{name}/resume`: ticks resume with the next fire time after now; the ticks of
/// the pause are not made up.
pub fn resume(call: &mut Call) -> Result<Reply, ApiError> {
    let name = schedule_name(call.id)?;
    let (now, found) = call.store.schedules(Some(&name))?;
    let s = found.into_iter().next().ok_or_else(|| not_found(&name))?;
    let spec = stored_spec(&s)?;
    let first = spec
        .timing
        .next_after(now)
        .ok_or_else(|| ApiError::BadRequest(format!("schedule {name} has no next fire time")))?;
    control(call, &name, Control::Resume(first))
}

/// `POST /schedules/{name}/trigger`: one job now, outside the rhythm (the overlap rule does not
/// apply; a paused schedule may be triggered).
pub fn trigger(call: &mut Call) -> Result<Reply, ApiError> {
    let name = schedule_name(call.id)?;
    let s = one(call, &name)?;
    let spec = stored_spec(&s)?;
    let mut job = call
        .shared
        .schedule_job(&spec, false)
        .map_err(|e| ApiError::BadRequest(format!("schedule {name}: job: {e}")))?;
    job.schedule = Some(name.clone());
    let cfg = &call.shared.config;
    match call.store.trigger(&name, &job, cfg.max_queue_size)? {
        Fired::Job(id) => {
            let m = &call.shared.metrics;
            m.jobs_created
                .with_label_values(&[m.queue_label(&job.queue)])
                .inc();
            log::info!("schedule {name} triggered: job {id} ({})", job.kind);
            Ok(Reply::json(201, &json!({ "job_id": id, "schedule": name })))
        }
        Fired::Full => Err(ApiError::Busy(format!(
            "queue {:?} is full: {} jobs are waiting in it (MAX_QUEUE_SIZE); retry later or add workers",
            job.queue, cfg.max_queue_size
        ))),
        _ => Err(not_found(&name)),
    }
}

fn control(call: &mut Call, name: &str, what: Control) -> Result<Reply, ApiError> {
    match call.store.control_schedule(name, what)? {
        ControlOutcome::Done => {
            log::info!(
                "schedule {name} {}",
                if what == Control::Pause {
                    "paused"
                } else {
                    "resumed"
                }
            );
            let s = one(call, name)?;
            Ok(Reply::json(200, &schedule_json(&s)))
        }
        _ => Err(not_found(name)),
    }
}

/// The stored document, parsed by this process (a process built without the "tz" feature
/// cannot read a schedule in another time zone).
fn stored_spec(s: &ScheduleRecord) -> Result<ScheduleSpec, ApiError> {
    serde_json::from_str(&s.spec)
        .map_err(|e| e.to_string())
        .and_then(|v| ScheduleSpec::from_json(&v))
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "schedule {} cannot be used by this process: {e}",
                s.name
            ))
        })
}

fn one(call: &mut Call, name: &str) -> Result<ScheduleRecord, ApiError> {
    let (_, found) = call.store.schedules(Some(name))?;
    found.into_iter().next().ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no schedule named {name:?}; GET /schedules lists the schedules, PUT /schedules/{{name}} creates one"
    ))
}

fn declared_in_file(name: &str, done: &str) -> ApiError {
    ApiError::Conflict {
        message: format!(
            "schedule {name:?} is declared in SCHEDULES_FILE and cannot be {done} through the API (the file is its source: change the file and restart); it can be paused, resumed and triggered"
        ),
        job_id: None,
    }
}

/// The schedule named by the path segment `raw`, percent-decoded.
fn schedule_name(raw: &str) -> Result<String, ApiError> {
    let name = path_segment(raw);
    check_schedule_name(&name).map_err(ApiError::BadRequest)?;
    Ok(name)
}

fn schedule_json(s: &ScheduleRecord) -> Value {
    let doc: Value = serde_json::from_str(&s.spec).unwrap_or(Value::Null);
    let spec = ScheduleSpec::from_json(&doc).ok();
    let next_runs: Vec<Value> = match (&spec, s.next_us) {
        (Some(spec), Some(next)) => spec
            .timing
            .runs_from(next, NEXT_RUNS)
            .into_iter()
            .map(api_time_value)
            .collect(),
        _ => Vec::new(),
    };
    let last_run = s.last.as_ref().map_or(Value::Null, |l| {
        json!({
            "fire_time": api_time_value(l.fire_us),
            "enqueued_at": api_time_value(l.at_us),
            "job_id": l.job_id,
            "kind": l.kind,
            "status": l.status,
        })
    });
    json!({
        "name": s.name,
        "source": s.source,
        "cron": doc["cron"],
        "timezone": doc["timezone"],
        "job": doc["job"],
        "overlap": doc["overlap"],
        "missed": doc["missed"],
        "paused": s.paused,
        "next_runs": next_runs,
        "last_run": last_run,
        "counts": {
            "fires": s.fires,
            "misses": s.misses,
            "skips": s.skips,
            "triggers": s.triggers,
        },
        "created_at": api_time_value(s.created_at_us),
        "updated_at": api_time_value(s.updated_at_us),
    })
}
