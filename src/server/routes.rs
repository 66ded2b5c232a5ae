//! Routing and the endpoint handlers. The route table is the one `match` in [`handle`].

use serde_json::json;
use std::io::Read;
use std::sync::Arc;
use tiny_http::{Method, Request};

use super::Reply;
use crate::app::Shared;
use crate::job::{parse_job_id, NewJobRequest};
use crate::store::{CreateOutcome, Store};

/// Answers one request.
pub fn handle(req: &mut Request, shared: &Arc<Shared>, store: &mut Store) -> Reply {
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let api = shared.config.role.serves_api();
    match (segments.as_slice(), &method) {
        (["health"], Method::Get | Method::Head) => health(store),
        (["health"], _) => not_allowed("GET"),
        (["metrics"], Method::Get | Method::Head) => metrics(shared, store),
        (["metrics"], _) => not_allowed("GET"),
        (["jobs"] | ["jobs", _] | ["stats"], _) if !api => Reply::error(
            404,
            format!(
                "{path} is not served by this process (ROLE={}); send job requests to a process with ROLE=api or ROLE=all",
                shared.config.role.as_str()
            ),
        ),
        (["jobs"], Method::Post) => create_job(req, shared, store),
        (["jobs"], _) => not_allowed("POST"),
        (["jobs", id], Method::Get | Method::Head) => get_job(id, store),
        (["jobs", _], _) => not_allowed("GET"),
        (["stats"], Method::Get | Method::Head) => match store.stats() {
            Ok(s) => Reply::json(200, &s),
            Err(e) => e.into(),
        },
        (["stats"], _) => not_allowed("GET"),
        _ => Reply::error(
            404,
            format!(
                "no route {path}; the API has POST /jobs, GET /jobs/{{id}}, GET /stats, GET /health, GET /metrics"
            ),
        ),
    }
}

fn not_allowed(allow: &'static str) -> Reply {
    Reply::error(405, format!("method not allowed here; use {allow}")).with_header("Allow", allow)
}

fn health(store: &mut Store) -> Reply {
    match store.ping() {
        Ok(()) => Reply::json(200, &json!({"status": "healthy"})),
        Err(e) => Reply::json(503, &json!({"status": "unhealthy", "error": e.to_string()})),
    }
}

fn metrics(shared: &Shared, store: &mut Store) -> Reply {
    let stats = store.stats().ok();
    Reply::text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        shared.metrics.render(stats.as_ref()),
    )
}

fn get_job(id: &str, store: &mut Store) -> Reply {
    let Some(id) = parse_job_id(id) else {
        return Reply::error(
            400,
            format!("{id:?} is not a job id; job ids are UUIDs as returned by POST /jobs"),
        );
    };
    match store.job(&id) {
        Ok(Some(job)) => Reply::json(200, &job),
        Ok(None) => Reply::error(
            404,
            format!("no job {id}; it never existed or its record expired (finished jobs are kept for JOB_TTL_SECS)"),
        ),
        Err(e) => e.into(),
    }
}

/// Reads the body, refusing more than `max` bytes without reading them all.
fn read_body(req: &mut Request, max: usize) -> Result<Vec<u8>, Reply> {
    let too_large = || {
        Reply::error(
            413,
            format!(
                "request body is larger than {max} bytes (MAX_BODY_BYTES); send a smaller payload"
            ),
        )
    };
    if req.body_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(req.body_length().unwrap_or(256).min(max));
    req.as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("could not read the request body: {e}")))?;
    if body.len() > max {
        return Err(too_large());
    }
    Ok(body)
}

fn create_job(req: &mut Request, shared: &Shared, store: &mut Store) -> Reply {
    let cfg = &shared.config;
    let body = match read_body(req, cfg.max_body_bytes) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: NewJobRequest = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) if e.is_data() => return Reply::error(400, format!("invalid job: {e}")),
        Err(e) => {
            return Reply::error(
                400,
                format!("malformed JSON: {e}; send {{\"type\": \"...\", \"payload\": {{...}}}}"),
            )
        }
    };
    let registry = &shared.registry;
    let types = registry.types();
    let job = match parsed.validate(cfg.max_attempts, &types, |kind, payload| {
        registry.get(kind).map_or(Ok(()), |h| h.validate(payload))
    }) {
        Ok(j) => j,
        Err(msg) => return Reply::error(400, msg),
    };
    match store.create(std::slice::from_ref(&job), cfg.max_queue_size) {
        Ok(CreateOutcome::Created) => {
            shared.metrics.jobs_created.inc();
            if job.delay_ms > 0 || job.run_at_ms.is_some() {
                log::info!("job {} ({}) created, scheduled for later", job.id, job.kind);
            } else {
                log::info!("job {} ({}) created", job.id, job.kind);
            }
            Reply::json(201, &json!({"job_id": job.id}))
        }
        Ok(CreateOutcome::Full) => Reply::error(
            503,
            format!(
                "queue is full: {} jobs are waiting (MAX_QUEUE_SIZE); retry later or add workers",
                cfg.max_queue_size
            ),
        )
        .with_header("Retry-After", "1"),
        Err(e) => e.into(),
    }
}
