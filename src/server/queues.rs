//! The flow-control routes: queues and job types, their counts, pause and resume, and their
//! limits (concurrency, rate, per group, circuit breaker), all durable in Redis.

use serde_json::{json, Value};

use super::input::{parse_json, path_segment};
use super::router::Call;
use super::{ApiError, Reply};
use crate::config::{Limits, LimitsPatch, Scope};
use crate::handler::{is_valid_type_name, MAX_TYPE_LEN};
use crate::job::{api_time, check_queue_name, from_micros};
use crate::store::{QueueInfo, Target, TypeInfo};

/// `GET /queues`: every queue that has had a job or a setting, or that a process serves.
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let queues = call.store.queues(None)?;
    let out: Vec<Value> = queues.iter().map(|q| queue_json(call, q)).collect();
    Ok(Reply::json(200, &json!({ "queues": out })))
}

/// `GET /queues/{name}`.
pub fn get(call: &mut Call) -> Result<Reply, ApiError> {
    let name = queue_name(call.id)?;
    let q = one_queue(call, &name)?;
    Ok(Reply::json(200, &queue_json(call, &q)))
}

/// `POST /queues/{name}/pause`.
pub fn pause(call: &mut Call) -> Result<Reply, ApiError> {
    set_paused(call, Scope::Queue, true)
}

/// `POST /queues/{name}/resume`.
pub fn resume(call: &mut Call) -> Result<Reply, ApiError> {
    set_paused(call, Scope::Queue, false)
}

/// `GET /queues/{name}/limits`.
pub fn get_queue_limits(call: &mut Call) -> Result<Reply, ApiError> {
    get_limits(call, Scope::Queue)
}

/// `PUT /queues/{name}/limits`: a field left out is unchanged, `null` removes that limit.
pub fn put_queue_limits(call: &mut Call) -> Result<Reply, ApiError> {
    put_limits(call, Scope::Queue)
}

/// `GET /types`: every job type this process runs, and every type with a setting.
pub fn list_types(call: &mut Call) -> Result<Reply, ApiError> {
    let names = type_names(call)?;
    let types = call.store.types(&names)?;
    let out: Vec<Value> = types.iter().map(|t| type_json(call, t)).collect();
    Ok(Reply::json(200, &json!({ "types": out })))
}

/// `GET /types/{name}`.
pub fn get_type(call: &mut Call) -> Result<Reply, ApiError> {
    let name = type_name(call.id)?;
    let t = one_type(call, &name)?;
    Ok(Reply::json(200, &type_json(call, &t)))
}

/// `POST /types/{name}/pause`.
pub fn pause_type(call: &mut Call) -> Result<Reply, ApiError> {
    set_paused(call, Scope::Type, true)
}

/// `POST /types/{name}/resume`.
pub fn resume_type(call: &mut Call) -> Result<Reply, ApiError> {
    set_paused(call, Scope::Type, false)
}

/// `GET /types/{name}/limits`.
pub fn get_type_limits(call: &mut Call) -> Result<Reply, ApiError> {
    get_limits(call, Scope::Type)
}

/// `PUT /types/{name}/limits`.
pub fn put_type_limits(call: &mut Call) -> Result<Reply, ApiError> {
    put_limits(call, Scope::Type)
}

/// The queue or type named by the path, checked by the rule of its kind.
fn name_in_path(call: &Call, scope: Scope) -> Result<String, ApiError> {
    match scope {
        Scope::Queue => queue_name(call.id),
        Scope::Type => type_name(call.id),
    }
}

fn target(scope: Scope, name: &str) -> Target<'_> {
    match scope {
        Scope::Queue => Target::Queue(name),
        Scope::Type => Target::Type(name),
    }
}

/// Pauses or resumes a queue or a type, and answers its state.
fn set_paused(call: &mut Call, scope: Scope, paused: bool) -> Result<Reply, ApiError> {
    let name = name_in_path(call, scope)?;
    call.store.set_paused(target(scope, &name), paused)?;
    log::info!(
        "{} {name} {}{}",
        scope.as_str(),
        if paused {
            "paused: running jobs finish, no new job of it starts"
        } else {
            "resumed"
        },
        if scope == Scope::Type {
            " in every queue"
        } else {
            ""
        }
    );
    let state = match scope {
        Scope::Queue => {
            let q = one_queue(call, &name)?;
            queue_json(call, &q)
        }
        Scope::Type => {
            let t = one_type(call, &name)?;
            type_json(call, &t)
        }
    };
    Ok(Reply::json(200, &state))
}

/// The limits of a queue or a type.
fn get_limits(call: &mut Call, scope: Scope) -> Result<Reply, ApiError> {
    let name = name_in_path(call, scope)?;
    let fields = call.store.limit_fields(target(scope, &name))?;
    Ok(Reply::json(200, &Limits::from_fields(&fields)))
}

/// Applies a limits document (a patch: see `LimitsPatch`) and answers the limits now in force.
fn put_limits(call: &mut Call, scope: Scope) -> Result<Reply, ApiError> {
    let name = name_in_path(call, scope)?;
    let target = target(scope, &name);
    let body = super::input::read_body(call.req, call.shared.config.max_body_bytes)?;
    let doc: Value = parse_json(&body, "a limits document")?;
    let patch = LimitsPatch::from_json(&doc, scope).map_err(ApiError::BadRequest)?;
    // Only the fields of the limits the document names are written (one script): a limit it
    // leaves out is not read and written back, so a concurrent change of it is not lost.
    let touched = patch.fields();
    let set: Vec<(&str, String)> = patch
        .apply(&Limits::default())
        .to_fields()
        .into_iter()
        .filter(|(f, _)| touched.contains(f))
        .collect();
    call.store.set_limits(target, &touched, &set)?;
    let new = Limits::from_fields(&call.store.limit_fields(target)?);
    log::info!(
        "limits of {} {name} set: {}",
        scope.as_str(),
        serde_json::to_string(&new).unwrap_or_default()
    );
    Ok(Reply::json(200, &new))
}

/// The job types `GET /types` and the metrics show: this process's and those with settings.
pub fn type_names(call: &mut Call) -> Result<Vec<String>, ApiError> {
    let mut names: Vec<String> = call
        .shared
        .registry
        .types()
        .iter()
        .map(|t| t.to_string())
        .collect();
    names.extend(call.store.known_types()?);
    names.sort();
    names.dedup();
    Ok(names)
}

fn one_queue(call: &mut Call, name: &str) -> Result<QueueInfo, ApiError> {
    call.store.queues(Some(name))?.pop().ok_or_else(|| {
        ApiError::NotFound(format!(
            "no queue named {name:?}: it has had no job and no setting yet; GET /queues lists the queues"
        ))
    })
}

/// A job type this process runs or that has had a setting (what `GET /types` lists); 404 for
/// any other name, which the store would otherwise answer as a type with nothing set.
fn one_type(call: &mut Call, name: &str) -> Result<TypeInfo, ApiError> {
    if !call.shared.registry.contains(name) && !call.store.known_types()?.iter().any(|t| t == name)
    {
        return Err(ApiError::NotFound(format!(
            "no job type named {name:?}: this process has no handler for it and it has had no setting; GET /types lists the types"
        )));
    }
    call.store
        .types(std::slice::from_ref(&name.to_string()))?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("no job type named {name:?}")))
}

/// The queue named by the path segment `raw`, percent-decoded.
fn queue_name(raw: &str) -> Result<String, ApiError> {
    let name = path_segment(raw);
    check_queue_name(&name).map_err(ApiError::BadRequest)?;
    Ok(name)
}

/// The job type named by the path segment `raw`, percent-decoded.
fn type_name(raw: &str) -> Result<String, ApiError> {
    let name = path_segment(raw);
    if !is_valid_type_name(&name) {
        return Err(ApiError::BadRequest(format!(
            "job type name {name:?} must be 1-{MAX_TYPE_LEN} characters of A-Z a-z 0-9 _ - . :"
        )));
    }
    Ok(name)
}

fn queue_json(call: &Call, q: &QueueInfo) -> Value {
    json!({
        "name": q.name,
        "pending": q.pending,
        "scheduled": q.scheduled,
        "waiting": q.waiting,
        "running": q.running,
        "failed": q.failed,
        "paused": q.paused,
        "latency_secs": q.latency_secs,
        "weight": call.shared.selection.weight(&q.name),
        "limits": Limits::from_fields(&q.limit_fields),
    })
}

fn type_json(call: &Call, t: &TypeInfo) -> Value {
    json!({
        "name": t.name,
        "registered": call.shared.registry.contains(&t.name),
        "paused": t.paused,
        "running": t.running,
        "parked": t.parked,
        "limits": Limits::from_fields(&t.fields),
        "breaker": {
            "state": t.breaker_state,
            "until": t
                .breaker_until_us
                .and_then(from_micros)
                .map(|d| api_time(&d)),
        },
    })
}
