//! The job routes: `POST /jobs` (validated here, created with the other submissions a thread
//! gathered), `POST /jobs/batch` (all or none), `GET /jobs/{id}`, and `POST /jobs/{id}/cancel`.
//! The explorer and the bulk actions by filter are in `explorer.rs`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::input::{from_object, header, job_id, parse_json, read_body};
use super::router::Call;
use super::{ApiError, Reply};
use crate::context::note_job_events;
use crate::context::Shared;
use crate::job::trace::{check_tracestate, parse_traceparent};
use crate::job::{check_idempotency_key, NewJob, NewJobRequest};
use crate::store::{CancelOutcome, CreateOutcome, Stores};

/// Longest batch accepted by `POST /jobs/batch`.
pub const MAX_BATCH: usize = 1000;

/// The W3C trace context headers of a request (`traceparent`, `tracestate`), given to each
/// job of it that names no `traceparent` in its body. As the W3C specification asks of a
/// receiver, a malformed `traceparent` header is ignored (with its `tracestate`) rather than
/// refused: it may come from a proxy the client does not control. The same fields in the body
/// are the client's own, and a malformed one is a 400.
pub struct TraceHeaders(Option<(String, Option<String>)>);

impl TraceHeaders {
    pub fn of(req: &tiny_http::Request) -> TraceHeaders {
        TraceHeaders(
            header(req, "traceparent")
                .and_then(|tp| parse_traceparent(tp).ok())
                .map(|tp| {
                    let state = header(req, "tracestate")
                        .filter(|s| check_tracestate(s).is_ok())
                        .map(str::to_string);
                    (tp, state)
                }),
        )
    }

    /// Gives `job` the headers' trace context unless it names its own.
    pub fn apply(&self, job: &mut NewJobRequest) {
        if let (Some((tp, state)), None) = (&self.0, &job.traceparent) {
            job.traceparent = Some(tp.clone());
            job.tracestate = job.tracestate.take().or_else(|| state.clone());
        }
    }
}

/// `POST /jobs`: reads and validates a submission; the caller creates it.
pub fn prepare(call: &mut Call) -> Result<NewJob, ApiError> {
    let trace = TraceHeaders::of(call.req);
    let header_key = header(call.req, "Idempotency-Key").map(str::to_string);
    let body = read_body(call.req, call.shared.config.max_body_bytes)?;
    let mut parsed: NewJobRequest = parse_json(&body, "{\"type\": \"...\", \"payload\": {...}}")?;
    if let Some(key) = header_key {
        check_idempotency_key(&key)
            .map_err(|e| ApiError::BadRequest(format!("Idempotency-Key header: {e}")))?;
        match &parsed.idempotency_key {
            Some(k) if *k != key => {
                return Err(ApiError::BadRequest(
                    "the Idempotency-Key header and \"idempotency_key\" differ; send one of them"
                        .into(),
                ))
            }
            _ => parsed.idempotency_key = Some(key),
        }
    }
    trace.apply(&mut parsed);
    call.shared
        .validate_job(parsed)
        .map_err(ApiError::BadRequest)
}

/// Creates the validated submissions gathered from several requests, each with its own
/// outcome, in one round trip; returns each one's answer, in order.
pub fn create_gathered(jobs: &mut [NewJob], shared: &Shared, store: &mut Stores) -> Vec<Reply> {
    let cfg = &shared.config;
    for job in jobs.iter_mut() {
        if let Err(e) = store.place(std::slice::from_mut(job)) {
            let reply = ApiError::from(e).into_reply();
            return jobs.iter().map(|_| reply.clone()).collect();
        }
    }
    let jobs = &*jobs;
    let outcomes = match jobs {
        [] => Vec::new(),
        [one] => vec![store.create(
            std::slice::from_ref(one),
            cfg.max_queue_size,
            cfg.idempotency_ttl_secs,
        )],
        many => store.create_each(many, cfg.max_queue_size, cfg.idempotency_ttl_secs),
    };
    jobs.iter()
        .zip(outcomes)
        .map(|(job, outcome)| match outcome {
            Ok(CreateOutcome::Created(created)) => match created.first() {
                Some(c) if c.new => {
                    note_created(shared, job);
                    Reply::json(201, &json!({"job_id": c.id}))
                }
                Some(c) => Reply::json(200, &json!({"job_id": c.id})),
                None => ApiError::Internal("create script answered no job".into()).into_reply(),
            },
            Ok(refused) => refusal(shared, refused, None).into_reply(),
            Err(e) => ApiError::from(e).into_reply(),
        })
        .inspect(|reply| shared.metrics.count_request("/jobs", reply.status))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    jobs: Vec<Value>,
}

/// `POST /jobs/batch`: every job or none, in one script call.
pub fn create_batch(call: &mut Call) -> Result<Reply, ApiError> {
    let shared = call.shared;
    let trace = TraceHeaders::of(call.req);
    let body = read_body(call.req, shared.config.max_body_bytes)?;
    let batch: BatchRequest = parse_json(&body, "{\"jobs\": [{\"type\": \"...\"}, ...]}")?;
    if batch.jobs.is_empty() || batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "\"jobs\" must hold 1 to {MAX_BATCH} jobs, got {}",
            batch.jobs.len()
        )));
    }
    let mut jobs = Vec::with_capacity(batch.jobs.len());
    for (i, v) in batch.jobs.into_iter().enumerate() {
        let job = from_object::<NewJobRequest>(v)
            .and_then(|mut r| {
                trace.apply(&mut r);
                shared.validate_job(r)
            })
            .map_err(|m| ApiError::BadRequest(format!("jobs[{i}]: {m}")))?;
        jobs.push(job);
    }
    let cfg = &shared.config;
    call.store.place(&mut jobs)?;
    match call
        .store
        .create(&jobs, cfg.max_queue_size, cfg.idempotency_ttl_secs)?
    {
        CreateOutcome::Created(created) => {
            let mut ids = Vec::with_capacity(created.len());
            for (job, c) in jobs.iter().zip(created) {
                if c.new {
                    note_created(shared, job);
                }
                ids.push(c.id);
            }
            Ok(Reply::json(201, &json!({ "job_ids": ids })))
        }
        refused => Err(refusal(shared, refused, Some(jobs.len()))),
    }
}

/// Why the store created nothing, as the client's error; `batch` as for [`queue_full`].
pub fn refusal(shared: &Shared, outcome: CreateOutcome, batch: Option<usize>) -> ApiError {
    match outcome {
        CreateOutcome::Full { queue } => queue_full(shared, &queue, batch),
        CreateOutcome::UniqueTaken { key, holder } if holder.is_empty() => {
            ApiError::BadRequest(format!(
                "two jobs of this request share unique key {key:?}, which allows one job at a time; give each its own key or send one of them"
            ))
        }
        CreateOutcome::UniqueTaken { key, holder } => ApiError::Conflict {
            message: format!(
                "unique key {key:?} is held by job {holder}, which has not finished; submit again once it has, or cancel it first (POST /jobs/{holder}/cancel)"
            ),
            job_id: Some(holder),
        },
        CreateOutcome::UnknownParent { parent, .. } => ApiError::BadRequest(format!(
            "\"depends_on\": there is no job {parent} (it never existed or its record expired)"
        )),
        CreateOutcome::ParentEnded { parent, status, .. } => ApiError::Conflict {
            message: format!(
                "parent job {parent} has already ended {status}, so this job would never run; set \"on_parent_failure\": \"run\" to run it anyway"
            ),
            job_id: Some(parent),
        },
        CreateOutcome::ParentElsewhere { parent, .. } => ApiError::BadRequest(format!(
            "\"depends_on\": job {parent} is in another partition (QUEUE_PARTITIONS), and a job can depend only on jobs of its own partition: submit them together as a workflow (POST /workflows), or keep their queue in one partition (QUEUE_PARTITIONS=…,<queue>=1)"
        )),
        CreateOutcome::Created(_) => ApiError::Internal("a created job reported as refused".into()),
    }
}

/// `GET /jobs/{id}`.
pub fn get(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?;
    match call.store.job(&id)? {
        Some(job) => Ok(Reply::json(200, &job)),
        None => Err(ApiError::NotFound(format!(
            "no job {id}; it never existed, its record expired (completed jobs are kept for JOB_TTL_SECS) or it was deleted from the DLQ"
        ))),
    }
}

/// The 503 for a submission the queue has no room for; `batch` is the number of jobs of a
/// `POST /jobs/batch`, which is refused whole when they do not all fit, however many are waiting.
fn queue_full(shared: &Shared, queue: &str, batch: Option<usize>) -> ApiError {
    let max = shared.config.max_queue_size;
    ApiError::Busy(match batch {
        None => format!(
            "queue {queue:?} is full: {max} jobs are waiting in it (MAX_QUEUE_SIZE); retry later or add workers"
        ),
        Some(n) if n as u64 > max => format!(
            "a batch of {n} jobs is larger than MAX_QUEUE_SIZE ({max}) and cannot fit; send at most {max} jobs per batch"
        ),
        Some(n) => format!(
            "queue {queue:?} is full for this batch: its {n} jobs do not fit under MAX_QUEUE_SIZE ({max} waiting jobs per queue); none was created; retry later, send a smaller batch or add workers"
        ),
    })
}

/// Counts and logs a job the store created (not one an idempotency key named again).
pub fn note_created(shared: &Shared, job: &NewJob) {
    let m = &shared.metrics;
    m.jobs_created
        .with_label_values(&[m.queue_label(&job.queue)])
        .inc();
    if !job.parents.is_empty() {
        log::info!(
            "job {} ({}) created, waiting for {} parent(s)",
            job.id,
            job.kind_label(),
            job.parents.len()
        );
    } else if job.delay_ms > 0 || job.run_at_us.is_some() {
        log::info!(
            "job {} ({}) created, scheduled for later",
            job.id,
            job.kind_label()
        );
    } else {
        log::info!("job {} ({}) created", job.id, job.kind_label());
    }
}

/// `POST /jobs/{id}/cancel`: 200 `cancelled` (it was pending, scheduled or waiting), 202
/// `cancelling` (it is running: its process stops it), 409 when it has already ended.
pub fn cancel(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?.to_string();
    let (outcomes, events) = call.store.cancel(std::slice::from_ref(&id))?;
    note_job_events(call.shared, &events);
    match outcomes.into_iter().next() {
        Some(CancelOutcome::Cancelled) => Ok(Reply::json(
            200,
            &json!({"job_id": id, "status": "cancelled"}),
        )),
        Some(CancelOutcome::Cancelling) => {
            log::info!("job {id} cancellation asked for while it runs: its process stops it");
            Ok(Reply::json(
                202,
                &json!({"job_id": id, "status": "cancelling"}),
            ))
        }
        Some(CancelOutcome::Ended(status)) => Err(ApiError::Conflict {
            message: format!("job {id} has already ended ({status}); nothing to cancel"),
            job_id: Some(id),
        }),
        Some(CancelOutcome::Missing) | None => Err(ApiError::NotFound(format!(
            "no job {id}; it never existed or its record expired"
        ))),
    }
}
