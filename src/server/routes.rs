//! The route table and the endpoint handlers. [`ROUTES`] is the router: a request's path is
//! matched against its patterns, so the table, the OpenAPI spec (checked by a test) and what the
//! server answers cannot drift apart.

use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Read;
use std::sync::Arc;
use tiny_http::{Method, Request};

use super::Reply;
use crate::app::Shared;
use crate::job::{check_idempotency_key, parse_job_id, NewJob, NewJobRequest};
use crate::store::{CreateOutcome, DlqSelect, Store};
use crate::worker::handler::is_valid_type_name;

/// What a request asks for, once matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateJob,
    CreateBatch,
    GetJob,
    Stats,
    Health,
    Metrics,
    OpenApi,
    DlqList,
    DlqPurge,
    DlqRetryAll,
    DlqGet,
    DlqDelete,
    DlqRetryOne,
}

/// Every route: method, path pattern (`{id}` matches one segment), handler.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("POST", "/jobs", Route::CreateJob),
    ("POST", "/jobs/batch", Route::CreateBatch),
    ("GET", "/jobs/{id}", Route::GetJob),
    ("GET", "/stats", Route::Stats),
    ("GET", "/health", Route::Health),
    ("GET", "/metrics", Route::Metrics),
    ("GET", "/openapi.json", Route::OpenApi),
    ("GET", "/dlq", Route::DlqList),
    ("DELETE", "/dlq", Route::DlqPurge),
    ("POST", "/dlq/retry", Route::DlqRetryAll),
    ("GET", "/dlq/{id}", Route::DlqGet),
    ("DELETE", "/dlq/{id}", Route::DlqDelete),
    ("POST", "/dlq/{id}/retry", Route::DlqRetryOne),
];

/// The OpenAPI 3 description of [`ROUTES`]; `GET /openapi.json` serves it completed with this
/// process's job types and security (see [`super::openapi`]).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Longest batch accepted by `POST /jobs/batch`.
pub const MAX_BATCH: usize = 1000;

impl Route {
    /// Routes every process serves, whatever its ROLE.
    fn always_served(self) -> bool {
        matches!(self, Route::Health | Route::Metrics | Route::OpenApi)
    }
}

/// Matches `path` against `pattern`; on success returns the `{id}` segment, if any.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut id = None;
    let mut pat = pattern.trim_start_matches('/').split('/');
    let mut segs = path.trim_start_matches('/').split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(s)) if !s.is_empty() => id = Some(s),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// What to do with a request once it is read: answer it now, or create a job, which the
/// caller does together with the other creations it gathered (one round trip for all).
pub enum Step {
    Reply(Reply),
    Create(NewJob),
}

/// Answers a request at once, or validates a job submission for the caller to create. Every
/// answer given here is counted in `http_requests_total` (created jobs by [`create_jobs`]).
pub fn plan(req: &mut Request, shared: &Arc<Shared>, store: &mut Store) -> Step {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = match req.method() {
        Method::Head => "GET".to_string(),
        m => m.as_str().to_ascii_uppercase(),
    };
    let mut allowed: Vec<&str> = Vec::new();
    let mut found = None;
    // A literal route owns its path: `/jobs/batch` is never the job "batch".
    let literal = ROUTES.iter().any(|(_, p, _)| *p == path);
    for (m, pattern, route) in ROUTES {
        if literal && pattern.contains('{') {
            continue;
        }
        if let Some(id) = matches(pattern, path) {
            if *m == method {
                found = Some((*route, *pattern, id));
                break;
            }
            allowed.push(m);
        }
    }
    let Some((route, pattern, id)) = found else {
        let reply = if allowed.is_empty() {
            Reply::error(
                404,
                format!("no route {path}; see GET /openapi.json for the API"),
            )
        } else {
            let allow = allowed.join(", ");
            Reply::error(
                405,
                format!("{method} is not allowed on {path}; use {allow}"),
            )
            .with_header("Allow", allow)
        };
        // Not the path: clients choose it, and each would be a new time series.
        shared.metrics.count_request("unmatched", reply.status);
        return Step::Reply(reply);
    };
    let step = dispatch(
        req,
        shared,
        store,
        route,
        id.unwrap_or_default(),
        path,
        query,
    );
    if let Step::Reply(reply) = &step {
        shared.metrics.count_request(pattern, reply.status);
    }
    step
}

/// Answers a request that matched `route`, or validates a job submission.
fn dispatch(
    req: &mut Request,
    shared: &Arc<Shared>,
    store: &mut Store,
    route: Route,
    id: &str,
    path: &str,
    query: &str,
) -> Step {
    if let Some(denied) = authorize(req, shared, route) {
        return Step::Reply(denied);
    }
    let cfg = &shared.config;
    if !route.always_served() && !cfg.role.serves_api() {
        return Step::Reply(Reply::error(
            404,
            format!(
                "{path} is not served by this process (ROLE={}); send job requests to a process with ROLE=api or ROLE=all",
                cfg.role.as_str()
            ),
        ));
    }
    let result = match route {
        Route::Health => Ok(health(store)),
        Route::Metrics => Ok(metrics(shared, store)),
        Route::OpenApi => Ok(Reply::text(200, "application/json", shared.openapi.clone())),
        Route::CreateJob => return prepare_job(req, shared).map_or_else(Step::Reply, Step::Create),
        Route::CreateBatch => create_batch(req, shared, store),
        Route::GetJob => get_job(id, store),
        Route::Stats => store
            .stats()
            .map(|s| Reply::json(200, &s))
            .map_err(Reply::from),
        Route::DlqList => dlq_list(query, store),
        Route::DlqGet => dlq_get(id, store),
        Route::DlqRetryOne => dlq_retry_one(id, store),
        Route::DlqRetryAll => dlq_type(query).and_then(|kind| {
            let ids = store.dlq_retry(select(&kind))?;
            if !ids.is_empty() {
                let which = dlq_jobs(ids.len(), &kind);
                log::info!("{which} sent back from the DLQ to pending");
            }
            Ok(Reply::json(
                200,
                &json!({"retried": ids.len(), "job_ids": ids}),
            ))
        }),
        Route::DlqDelete => dlq_delete_one(id, store),
        Route::DlqPurge => dlq_type(query).and_then(|kind| {
            let n = store.dlq_delete(select(&kind))?;
            if n > 0 {
                let which = dlq_jobs(n as usize, &kind);
                log::info!("{which} deleted from the DLQ");
            }
            Ok(Reply::json(200, &json!({"deleted": n})))
        }),
    };
    Step::Reply(result.unwrap_or_else(|r| r))
}

/// With API_TOKEN set, checks the bearer token (in constant time) on every route but `/health`
/// (and `/metrics` when METRICS_PUBLIC is set). Returns the 401 to send, if any.
fn authorize(req: &Request, shared: &Shared, route: Route) -> Option<Reply> {
    let token = shared.config.api_token.as_deref()?;
    if route == Route::Health || (route == Route::Metrics && shared.config.metrics_public) {
        return None;
    }
    let given = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| bearer_token(h.value.as_str()));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => None,
        Some(_) => Some(unauthorized("the bearer token is wrong")),
        None => Some(unauthorized(
            "this server requires a token: send Authorization: Bearer <API_TOKEN>",
        )),
    }
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme is matched without
/// regard to case (RFC 7235 section 2.1), so `bearer` and `BEARER` work too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(msg: &str) -> Reply {
    Reply::error(401, msg).with_header("WWW-Authenticate", "Bearer realm=\"jobq\"")
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
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

fn job_id(raw: &str) -> Result<String, Reply> {
    parse_job_id(raw).ok_or_else(|| {
        Reply::error(
            400,
            format!("{raw:?} is not a job id; job ids are UUIDs as returned by POST /jobs"),
        )
    })
}

fn get_job(raw: &str, store: &mut Store) -> Result<Reply, Reply> {
    let id = job_id(raw)?;
    match store.job(&id)? {
        Some(job) => Ok(Reply::json(200, &job)),
        None => Err(Reply::error(
            404,
            format!("no job {id}; it never existed, its record expired (completed jobs are kept for JOB_TTL_SECS) or it was deleted from the DLQ"),
        )),
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

/// Most nested arrays and objects a request body may have; deeper input is refused before
/// parsing so no request can exhaust the stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses a JSON object body into `T`, with errors that say whether the JSON or its shape is
/// wrong.
fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, Reply> {
    if json_depth(body) > MAX_JSON_DEPTH {
        return Err(Reply::error(
            400,
            format!("JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten the payload"),
        ));
    }
    let malformed = |e| Reply::error(400, format!("malformed JSON: {e}; send {shape}"));
    let invalid = |e| Reply::error(400, format!("invalid request: {e}; send {shape}"));
    // The common case, an object, is parsed once, straight into `T`; anything else goes
    // through `from_object` for the error that names what was sent.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                invalid(e.to_string())
            } else {
                malformed(e.to_string())
            }
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    from_object(value).map_err(invalid)
}

/// Deserializes a JSON object into `T`. serde's derived structs would also take an array of
/// the fields in order, which is not the API.
fn from_object<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, String> {
    if !value.is_object() {
        return Err(format!("expected a JSON object, got {}", kind_of(&value)));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The deepest nesting of `[` and `{` outside strings.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Validates one submission against the registry and configuration.
fn validate(shared: &Shared, req: NewJobRequest) -> Result<NewJob, String> {
    if let Some(kind) = &req.kind {
        if !is_valid_type_name(kind) {
            return Err(format!(
                "\"type\" must be 1-64 characters of A-Z a-z 0-9 _ - . : (got {} characters)",
                kind.chars().count()
            ));
        }
    }
    let registry = &shared.registry;
    let types = registry.types();
    req.validate(shared.config.max_attempts, &types, |kind, payload| {
        registry.get(kind).map_or(Ok(()), |h| h.validate(payload))
    })
}

/// The 503 for a submission the queue has no room for; `batch` is the number of jobs of a
/// `POST /jobs/batch`, which is refused whole when they do not all fit, however many are waiting.
fn queue_full(shared: &Shared, batch: Option<usize>) -> Reply {
    let max = shared.config.max_queue_size;
    let message = match batch {
        None => format!(
            "queue is full: {max} jobs are waiting (MAX_QUEUE_SIZE); retry later or add workers"
        ),
        Some(n) if n as u64 > max => format!(
            "a batch of {n} jobs is larger than MAX_QUEUE_SIZE ({max}) and cannot fit; send at most {max} jobs per batch"
        ),
        Some(n) => format!(
            "queue is full for this batch: its {n} jobs do not fit under MAX_QUEUE_SIZE ({max} waiting jobs); none was created; retry later, send a smaller batch or add workers"
        ),
    };
    Reply::error(503, message).with_header("Retry-After", "1")
}

/// Reads and validates a `POST /jobs` submission.
fn prepare_job(req: &mut Request, shared: &Shared) -> Result<NewJob, Reply> {
    let header_key = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Idempotency-Key"))
        .map(|h| h.value.as_str().trim().to_string());
    let body = read_body(req, shared.config.max_body_bytes)?;
    let mut parsed: NewJobRequest = parse_json(&body, "{\"type\": \"...\", \"payload\": {...}}")?;
    if let Some(key) = header_key {
        check_idempotency_key(&key)
            .map_err(|e| Reply::error(400, format!("Idempotency-Key header: {e}")))?;
        match &parsed.idempotency_key {
            Some(k) if *k != key => {
                return Err(Reply::error(
                    400,
                    "the Idempotency-Key header and \"idempotency_key\" differ; send one of them",
                ))
            }
            _ => parsed.idempotency_key = Some(key),
        }
    }
    validate(shared, parsed).map_err(|m| Reply::error(400, m))
}

/// Creates the validated submissions gathered from several requests, each with its own
/// outcome, in one round trip; returns each one's answer, in order.
pub fn create_jobs(jobs: &[NewJob], shared: &Shared, store: &mut Store) -> Vec<Reply> {
    let cfg = &shared.config;
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
                None => Reply::error(500, "create script answered no job"),
            },
            Ok(CreateOutcome::Full) => queue_full(shared, None),
            Err(e) => e.into(),
        })
        .inspect(|reply| shared.metrics.count_request("/jobs", reply.status))
        .collect()
}

/// Counts and logs a job the store created (not one an idempotency key named again).
fn note_created(shared: &Shared, job: &NewJob) {
    shared.metrics.jobs_created.inc();
    if job.delay_ms > 0 || job.run_at_us.is_some() {
        log::info!("job {} ({}) created, scheduled for later", job.id, job.kind);
    } else {
        log::info!("job {} ({}) created", job.id, job.kind);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    jobs: Vec<Value>,
}

fn create_batch(req: &mut Request, shared: &Shared, store: &mut Store) -> Result<Reply, Reply> {
    let body = read_body(req, shared.config.max_body_bytes)?;
    let batch: BatchRequest = parse_json(&body, "{\"jobs\": [{\"type\": \"...\"}, ...]}")?;
    if batch.jobs.is_empty() || batch.jobs.len() > MAX_BATCH {
        return Err(Reply::error(
            400,
            format!(
                "\"jobs\" must hold 1 to {MAX_BATCH} jobs, got {}",
                batch.jobs.len()
            ),
        ));
    }
    let mut jobs = Vec::with_capacity(batch.jobs.len());
    for (i, v) in batch.jobs.into_iter().enumerate() {
        let job = from_object::<NewJobRequest>(v)
            .and_then(|r| validate(shared, r))
            .map_err(|m| Reply::error(400, format!("jobs[{i}]: {m}")))?;
        jobs.push(job);
    }
    let cfg = &shared.config;
    match store.create(&jobs, cfg.max_queue_size, cfg.idempotency_ttl_secs)? {
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
        CreateOutcome::Full => Err(queue_full(shared, Some(jobs.len()))),
    }
}

/// Decoded `name=value` pairs of a query string.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads optional query parameters, refusing unknown names and bad values.
fn query_params<'q>(
    query: &'q [(String, String)],
    known: &[&str],
) -> Result<impl Fn(&str) -> Option<&'q str>, Reply> {
    if let Some((k, _)) = query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(Reply::error(
            400,
            format!(
                "unknown query parameter {k:?}; this endpoint takes {}",
                known.join(", ")
            ),
        ));
    }
    Ok(move |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    })
}

fn number(name: &str, raw: Option<&str>, default: u64, max: u64) -> Result<u64, Reply> {
    match raw {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            Reply::error(
                400,
                format!("{name} must be an integer from 0 to {max}, got {v:?}"),
            )
        }),
    }
}

fn dlq_list(query: &str, store: &mut Store) -> Result<Reply, Reply> {
    let pairs = query_pairs(query);
    let q = query_params(&pairs, &["offset", "limit"])?;
    let offset = number("offset", q("offset"), 0, 1_000_000_000)?;
    let limit = number("limit", q("limit"), 50, 1000)?;
    let (total, jobs) = store.dlq_page(offset, limit)?;
    Ok(Reply::json(
        200,
        &json!({"total": total, "offset": offset, "limit": limit, "jobs": jobs}),
    ))
}

/// The `?type=X` of a DLQ-wide operation; none means every dead-letter job.
fn dlq_type(query: &str) -> Result<Option<String>, Reply> {
    let pairs = query_pairs(query);
    let q = query_params(&pairs, &["type"])?;
    match q("type") {
        None => Ok(None),
        Some(t) if is_valid_type_name(t) => Ok(Some(t.to_string())),
        Some(t) => Err(Reply::error(
            400,
            format!("type {t:?} is not a job type name"),
        )),
    }
}

/// The jobs a DLQ-wide operation acted on, for its log line: "3 job(s) of type email" or
/// "all 5 job(s)".
fn dlq_jobs(n: usize, kind: &Option<String>) -> String {
    match kind {
        Some(t) => format!("{n} job(s) of type {t}"),
        None => format!("all {n} job(s)"),
    }
}

fn select(kind: &Option<String>) -> DlqSelect<'_> {
    kind.as_deref().map_or(DlqSelect::All, DlqSelect::Type)
}

fn not_in_dlq(id: &str) -> Reply {
    Reply::error(404, format!("job {id} is not in the dead-letter queue"))
}

fn dlq_get(raw: &str, store: &mut Store) -> Result<Reply, Reply> {
    let id = job_id(raw)?;
    match store.dlq_job(&id)? {
        Some(job) => Ok(Reply::json(200, &job)),
        None => Err(not_in_dlq(&id)),
    }
}

fn dlq_retry_one(raw: &str, store: &mut Store) -> Result<Reply, Reply> {
    let id = job_id(raw)?;
    if store.dlq_retry(DlqSelect::One(&id))?.is_empty() {
        return Err(not_in_dlq(&id));
    }
    log::info!("job {id} sent back from the DLQ to pending");
    Ok(Reply::json(
        200,
        &json!({"job_id": id, "status": "pending"}),
    ))
}

fn dlq_delete_one(raw: &str, store: &mut Store) -> Result<Reply, Reply> {
    let id = job_id(raw)?;
    if store.dlq_delete(DlqSelect::One(&id))? == 0 {
        return Err(not_in_dlq(&id));
    }
    log::info!("job {id} deleted from the DLQ");
    Ok(Reply::json(200, &json!({"deleted": 1})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        assert_eq!(matches("/jobs/{id}", "/jobs/abc"), Some(Some("abc")));
        assert_eq!(matches("/jobs", "/jobs"), Some(None));
        assert_eq!(matches("/jobs/{id}", "/jobs/"), None);
        assert_eq!(matches("/jobs/{id}", "/jobs/a/b"), None);
        assert_eq!(matches("/dlq/{id}/retry", "/dlq/x/retry"), Some(Some("x")));
        assert_eq!(matches("/jobs/batch", "/jobs/batch"), Some(None));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer tok", "bearer tok", "BEARER  tok ", " Bearer tok"] {
            assert_eq!(bearer_token(value), Some("tok"), "{value:?}");
        }
        for value in ["Basic tok", "Bearertok", "Bearer", "tok"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a": [1, {"b": "[[[["}]}"#), 3);
        assert_eq!(json_depth(br#""\"[""#), 0);
        assert_eq!(json_depth(&[b'['; 100]), 100);
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_pairs("type=image%5Fresize&limit=5&x"),
            vec![
                ("type".to_string(), "image_resize".to_string()),
                ("limit".to_string(), "5".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%e2%82%ac%zz"), "€%zz");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
