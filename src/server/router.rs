//! The route table and the dispatch of one request through it. Adding a route is one entry in
//! [`ROUTES`] plus its handler (in `jobs.rs`, `explorer.rs`, `dlq.rs`, `dlq_groups.rs`, `queues.rs`, `schedules.rs`,
//! `subscriptions.rs`, `workers.rs` or `ops.rs`) and its operation in
//! `openapi.json`; a test checks that the table and the document list the same operations.
//! The dashboard's files under `/ui/` are not operations: `ui.rs` answers them before the table.

use std::sync::Arc;
use tiny_http::{Method, Request};

use super::auth::{authorize, Access};
use super::cross_site::refuse_cross_site;
use super::{
    dlq, dlq_groups, explorer, jobs, ops, queues, schedules, subscriptions, ui, workers, workflows,
    ApiError, Reply,
};
use crate::context::Shared;
use crate::job::NewJob;
use crate::store::Stores;

/// What a handler gets: the request, what the process shares, this thread's Redis handle, the
/// `{id}` or `{name}` of the path (empty if none) and the query string.
pub struct Call<'a> {
    pub req: &'a mut Request,
    pub shared: &'a Shared,
    pub store: &'a mut Stores,
    pub id: &'a str,
    pub query: &'a str,
}

/// What an endpoint does with a call.
#[derive(Clone, Copy)]
pub enum Action {
    /// Answers at once.
    Answer(fn(&mut Call) -> Result<Reply, ApiError>),
    /// Validates a job for the caller to create with the others it gathered (one round trip).
    Gather(fn(&mut Call) -> Result<NewJob, ApiError>),
}

/// One route: method, path pattern (`{id}` matches one segment), who may call it, whether a
/// `ROLE=worker` process serves it, and what it does.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    /// Served whatever the ROLE (health, metrics, the API document); the rest only where
    /// ROLE serves the API.
    pub any_role: bool,
    pub action: Action,
}

const fn api(method: &'static str, path: &'static str, action: Action) -> Endpoint {
    Endpoint {
        method,
        path,
        access: Access::Token,
        any_role: false,
        action,
    }
}

/// A route of the API that needs no token (it says what the caller's token allows).
const fn api_public(method: &'static str, path: &'static str, action: Action) -> Endpoint {
    Endpoint {
        access: Access::Public,
        ..api(method, path, action)
    }
}

const fn any_role(
    method: &'static str,
    path: &'static str,
    access: Access,
    action: Action,
) -> Endpoint {
    Endpoint {
        access,
        any_role: true,
        ..api(method, path, action)
    }
}

use Action::{Answer, Gather};

/// Every route.
pub const ROUTES: &[Endpoint] = &[
    api("POST", "/jobs", Gather(jobs::prepare)),
    api("POST", "/jobs/batch", Answer(jobs::create_batch)),
    api("GET", "/jobs", Answer(explorer::list)),
    api("POST", "/jobs/cancel", Answer(explorer::cancel_matching)),
    api("POST", "/jobs/retry", Answer(explorer::retry)),
    api("POST", "/jobs/delete", Answer(explorer::delete_matching)),
    api("GET", "/jobs/{id}", Answer(jobs::get)),
    api("DELETE", "/jobs/{id}", Answer(explorer::delete)),
    api("POST", "/jobs/{id}/cancel", Answer(jobs::cancel)),
    api("GET", "/workflows", Answer(workflows::list)),
    api("POST", "/workflows", Answer(workflows::create)),
    api("GET", "/workflows/{id}", Answer(workflows::get)),
    api("POST", "/workflows/{id}/cancel", Answer(workflows::cancel)),
    api("GET", "/stats", Answer(ops::stats)),
    api("GET", "/stats/history", Answer(ops::history)),
    api("GET", "/workers", Answer(workers::list)),
    api_public("GET", "/access", Answer(ops::access)),
    any_role("GET", "/health", Access::Public, Answer(ops::health)),
    any_role("GET", "/metrics", Access::Metrics, Answer(ops::metrics)),
    any_role("GET", "/openapi.json", Access::Token, Answer(ops::openapi)),
    api("GET", "/dlq", Answer(dlq::list)),
    api("DELETE", "/dlq", Answer(dlq::purge)),
    api("POST", "/dlq/retry", Answer(dlq::retry_all)),
    api("GET", "/dlq/groups", Answer(dlq_groups::list)),
    api(
        "POST",
        "/dlq/groups/{fingerprint}/retry",
        Answer(dlq_groups::retry),
    ),
    api(
        "DELETE",
        "/dlq/groups/{fingerprint}",
        Answer(dlq_groups::delete),
    ),
    api("GET", "/dlq/{id}", Answer(dlq::get)),
    api("DELETE", "/dlq/{id}", Answer(dlq::delete)),
    api("POST", "/dlq/{id}/retry", Answer(dlq::retry)),
    api("GET", "/queues", Answer(queues::list)),
    api("GET", "/queues/{name}", Answer(queues::get)),
    api("POST", "/queues/{name}/pause", Answer(queues::pause)),
    api("POST", "/queues/{name}/resume", Answer(queues::resume)),
    api(
        "GET",
        "/queues/{name}/limits",
        Answer(queues::get_queue_limits),
    ),
    api(
        "PUT",
        "/queues/{name}/limits",
        Answer(queues::put_queue_limits),
    ),
    api("GET", "/types", Answer(queues::list_types)),
    api("GET", "/types/{name}", Answer(queues::get_type)),
    api("POST", "/types/{name}/pause", Answer(queues::pause_type)),
    api("POST", "/types/{name}/resume", Answer(queues::resume_type)),
    api(
        "GET",
        "/types/{name}/limits",
        Answer(queues::get_type_limits),
    ),
    api(
        "PUT",
        "/types/{name}/limits",
        Answer(queues::put_type_limits),
    ),
    api("GET", "/schedules", Answer(schedules::list)),
    api("GET", "/schedules/{name}", Answer(schedules::get)),
    api("PUT", "/schedules/{name}", Answer(schedules::put)),
    api("DELETE", "/schedules/{name}", Answer(schedules::delete)),
    api("POST", "/schedules/{name}/pause", Answer(schedules::pause)),
    api(
        "POST",
        "/schedules/{name}/resume",
        Answer(schedules::resume),
    ),
    api(
        "POST",
        "/schedules/{name}/trigger",
        Answer(schedules::trigger),
    ),
    api("GET", "/subscriptions", Answer(subscriptions::list)),
    api("GET", "/subscriptions/{name}", Answer(subscriptions::get)),
    api("PUT", "/subscriptions/{name}", Answer(subscriptions::put)),
    api(
        "DELETE",
        "/subscriptions/{name}",
        Answer(subscriptions::delete),
    ),
];

/// Matches `path` against `pattern`; on success returns the `{id}` (or `{name}`) segment, if
/// any.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut id = None;
    let mut pat = pattern.trim_start_matches('/').split('/');
    let mut segs = path.trim_start_matches('/').split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(id),
            (Some(p), Some(s)) if p.starts_with('{') && !s.is_empty() => id = Some(s),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// The endpoint for `method` and `path`, with the `{id}` segment; or the 404 or 405.
fn route<'p>(method: &str, path: &'p str) -> Result<(&'static Endpoint, &'p str), ApiError> {
    let mut allowed: Vec<&str> = Vec::new();
    // A literal route owns its path: `/jobs/batch` is never the job "batch". (A pattern is not
    // a literal: `/queues/{name}` sent as is names the queue "{name}".)
    let literal = ROUTES
        .iter()
        .any(|e| !e.path.contains('{') && e.path == path);
    for e in ROUTES {
        if literal && e.path.contains('{') {
            continue;
        }
        if let Some(id) = matches(e.path, path) {
            if e.method == method {
                return Ok((e, id.unwrap_or_default()));
            }
            allowed.push(e.method);
        }
    }
    if allowed.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no route {path}; see GET /openapi.json for the API"
        )));
    }
    let allow = allowed.join(", ");
    Err(ApiError::MethodNotAllowed {
        message: format!("{method} is not allowed on {path}; use {allow}"),
        allow,
    })
}

/// What to do with a request once it is read: answer it now, or create a job, which the
/// caller does together with the other creations it gathered (one round trip for all).
// The large variant is the common one (a submission): boxing it would cost an allocation per
// request, for a value that lives only until its request is gathered.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    Reply(Reply),
    Create(NewJob),
}

/// Answers a request at once, or validates a job submission for the caller to create. Every
/// answer given here is counted in `http_requests_total` (created jobs by
/// [`jobs::create_gathered`]).
pub fn plan(req: &mut Request, shared: &Arc<Shared>, store: &mut Stores) -> Step {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = match req.method() {
        Method::Head => "GET".to_string(),
        m => m.as_str().to_ascii_uppercase(),
    };
    if ui::owns(path) {
        let cfg = &shared.config;
        let reply = ui::answer(req, &method, path, cfg.role.serves_api(), || {
            not_served(path, cfg)
        });
        shared.metrics.count_request("/ui", reply.status);
        return Step::Reply(reply);
    }
    let (endpoint, id) = match route(&method, path) {
        Ok(found) => found,
        Err(e) => {
            let reply = e.into_reply();
            // Not the path: clients choose it, and each would be a new time series.
            shared.metrics.count_request("unmatched", reply.status);
            return Step::Reply(reply);
        }
    };
    let step = dispatch(req, shared, store, endpoint, id, path, query);
    if let Step::Reply(reply) = &step {
        shared.metrics.count_request(endpoint.path, reply.status);
    }
    step
}

/// Checks where a state change comes from, access and role, then runs the endpoint's action.
fn dispatch(
    req: &mut Request,
    shared: &Shared,
    store: &mut Stores,
    endpoint: &Endpoint,
    id: &str,
    path: &str,
    query: &str,
) -> Step {
    let cfg = &shared.config;
    let changes_state = endpoint.method != "GET";
    // The cross-site rule first: it holds whatever credentials the request carries.
    let mut checked = if changes_state {
        refuse_cross_site(req)
    } else {
        Ok(())
    };
    checked = checked.and_then(|()| authorize(req, cfg, endpoint.access, changes_state));
    if checked.is_ok() && !endpoint.any_role && !cfg.role.serves_api() {
        checked = Err(not_served(path, cfg));
    }
    if let Err(e) = checked {
        return Step::Reply(e.into_reply());
    }
    let mut call = Call {
        req,
        shared,
        store,
        id,
        query,
    };
    match endpoint.action {
        Answer(f) => Step::Reply(f(&mut call).unwrap_or_else(ApiError::into_reply)),
        Gather(f) => f(&mut call).map_or_else(|e| Step::Reply(e.into_reply()), Step::Create),
    }
}

/// The 404 of a route this process's ROLE does not serve.
fn not_served(path: &str, cfg: &crate::config::Config) -> ApiError {
    ApiError::NotFound(format!(
        "{path} is not served by this process (ROLE={}); send job requests to a process with ROLE=api or ROLE=all",
        cfg.role.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

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
    fn literal_paths_win_and_wrong_methods_say_what_is_allowed() {
        assert_eq!(route("POST", "/jobs/batch").unwrap().0.path, "/jobs/batch");
        assert_eq!(route("GET", "/jobs/abc").unwrap().1, "abc");
        assert_eq!(route("GET", "/queues/{name}").unwrap().1, "{name}");
        match route("PUT", "/dlq") {
            Err(ApiError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "GET, DELETE"),
            _ => panic!("PUT /dlq should be 405"),
        }
        assert!(matches!(route("GET", "/nope"), Err(ApiError::NotFound(_))));
    }

    /// The route table and src/server/openapi.json list the same operations, so neither can
    /// drift from the other.
    #[test]
    fn the_route_table_and_the_api_document_agree() {
        let doc: serde_json::Value =
            serde_json::from_str(super::super::openapi::BASE).expect("openapi.json parses");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .expect("operations")
                    .keys()
                    .filter(|m| *m != "parameters")
                    .map(|m| (m.to_uppercase(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|e| (e.method.to_string(), e.path.to_string()))
            .collect();
        assert_eq!(
            routed.len(),
            ROUTES.len(),
            "ROUTES lists an operation twice"
        );
        assert_eq!(
            routed, documented,
            "ROUTES (src/server/router.rs) and src/server/openapi.json differ"
        );
    }
}
