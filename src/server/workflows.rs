//! The workflow routes: `POST /workflows` (a DAG of jobs created all or none), `GET
//! /workflows/{id}` (each node's status and the edges) and `POST /workflows/{id}/cancel`.
//! A node is a job submission with a `ref` naming it and `depends_on` naming its parents (refs
//! of the same workflow, or ids of existing jobs).

use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};

use super::input::{from_object, job_id, parse_json, read_body, Query};
use super::jobs::{note_created, refusal};
use super::router::Call;
use super::{ApiError, Reply};
use crate::config::queues::is_valid_queue_name;
use crate::context::note_job_events;
use crate::job::{api_time, from_micros, JobId, NewJob, NewJobRequest, MAX_PARENTS};
use crate::store::{CancelOutcome, CreateOutcome};

/// Most nodes one workflow may have.
pub const MAX_NODES: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowRequest {
    jobs: Vec<Value>,
}

/// Checks a node's ref: the rule of queue names, 1-64 of `A-Z a-z 0-9 _ - . :`.
fn check_ref(r: &str) -> Result<(), String> {
    if !is_valid_queue_name(r) {
        return Err(format!(
            "\"ref\" {r:?} must be 1-64 characters of A-Z a-z 0-9 _ - . :"
        ));
    }
    Ok(())
}

/// The nodes in an order where every parent comes before its children (Kahn's algorithm), or
/// the refs caught in a cycle.
fn topological(refs: &[String], deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<String>> {
    let n = refs.len();
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut children = vec![Vec::new(); n];
    for (child, parents) in deps.iter().enumerate() {
        for &p in parents {
            children[p].push(child);
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    if order.len() < n {
        return Err((0..n)
            .filter(|&i| indegree[i] > 0)
            .map(|i| refs[i].clone())
            .collect());
    }
    Ok(order)
}

/// `POST /workflows`: creates every node or none; answers the workflow's id and each node's
/// job id by ref.
pub fn create(call: &mut Call) -> Result<Reply, ApiError> {
    let shared = call.shared;
    let trace = super::jobs::TraceHeaders::of(call.req);
    let body = read_body(call.req, shared.config.max_body_bytes)?;
    let req: WorkflowRequest = parse_json(
        &body,
        "{\"jobs\": [{\"ref\": \"fetch\", \"type\": \"...\"}, {\"ref\": \"resize\", \"type\": \"...\", \"depends_on\": [\"fetch\"]}]}",
    )?;
    if req.jobs.is_empty() || req.jobs.len() > MAX_NODES {
        return Err(ApiError::BadRequest(format!(
            "\"jobs\" must hold 1 to {MAX_NODES} nodes, got {}",
            req.jobs.len()
        )));
    }
    let bad = |i: usize, m: String| ApiError::BadRequest(format!("jobs[{i}]: {m}"));
    let mut refs = Vec::with_capacity(req.jobs.len());
    let mut wanted = Vec::with_capacity(req.jobs.len());
    let mut jobs = Vec::with_capacity(req.jobs.len());
    for (i, node) in req.jobs.into_iter().enumerate() {
        let Value::Object(mut node) = node else {
            return Err(bad(i, "a node must be a JSON object".into()));
        };
        let r = match node.remove("ref") {
            Some(Value::String(r)) => r,
            Some(_) => return Err(bad(i, "\"ref\" must be a string".into())),
            None => return Err(bad(i, "missing \"ref\": name each node".into())),
        };
        check_ref(&r).map_err(|m| bad(i, m))?;
        if refs.contains(&r) {
            return Err(bad(i, format!("ref {r:?} is used twice")));
        }
        let deps: Vec<String> = match node.remove("depends_on") {
            None => Vec::new(),
            Some(v) => serde_json::from_value(v)
                .map_err(|_| bad(i, "\"depends_on\" must be a list of refs".into()))?,
        };
        if deps.len() > MAX_PARENTS {
            return Err(bad(
                i,
                format!(
                    "\"depends_on\" names {} jobs; at most {MAX_PARENTS} are allowed",
                    deps.len()
                ),
            ));
        }
        let mut request: NewJobRequest = from_object(Value::Object(node)).map_err(|m| bad(i, m))?;
        trace.apply(&mut request);
        if request.idempotency_key.is_some() {
            return Err(bad(
                i,
                "\"idempotency_key\" is not taken on workflow nodes; the workflow is created all or none".into(),
            ));
        }
        let job = shared.validate_job(request).map_err(|m| bad(i, m))?;
        refs.push(r);
        wanted.push(deps);
        jobs.push(job);
    }
    // Parents by index (refs of this workflow) or by id (existing jobs).
    let index: HashMap<&str, usize> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mut deps = vec![Vec::new(); refs.len()];
    let mut outside = vec![Vec::new(); refs.len()];
    for (i, names) in wanted.iter().enumerate() {
        for name in names {
            match (index.get(name.as_str()), JobId::parse(name)) {
                (Some(&p), _) if p == i => {
                    return Err(bad(i, format!("node {name:?} depends on itself")))
                }
                (Some(&p), _) if !deps[i].contains(&p) => deps[i].push(p),
                (Some(_), _) => {}
                (None, Some(id)) if !outside[i].contains(&id.to_string()) => {
                    outside[i].push(id.to_string())
                }
                (None, Some(_)) => {}
                (None, None) => {
                    return Err(bad(
                        i,
                        format!("\"depends_on\" names {name:?}, which is neither a ref of this workflow nor a job id"),
                    ))
                }
            }
        }
    }
    let order = topological(&refs, &deps).map_err(|cycle| {
        ApiError::BadRequest(format!(
            "the dependencies form a cycle through {}; a workflow must be acyclic",
            cycle.join(", ")
        ))
    })?;
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    let mut ordered: Vec<NewJob> = Vec::with_capacity(jobs.len());
    for &i in &order {
        let mut job = jobs[i].clone();
        job.node_ref = Some(refs[i].clone());
        job.parents = deps[i].iter().map(|&p| ids[p].clone()).collect();
        job.parents.extend(outside[i].iter().cloned());
        ordered.push(job);
    }
    // With QUEUE_PARTITIONS, the nodes take ids of the one partition they are created in.
    call.store.place(&mut ordered)?;
    let nodes: Map<String, Value> = ordered
        .iter()
        .map(|j| {
            let node = j.node_ref.clone().unwrap_or_default();
            (node, Value::String(j.id.to_string()))
        })
        .collect();
    let workflow_id = call.store.sibling_id(&ordered[0].id)?;
    let outcome = call.store.create_workflow(
        &workflow_id,
        &Value::Object(nodes.clone()).to_string(),
        &ordered,
        shared.config.max_queue_size,
    )?;
    match outcome {
        CreateOutcome::Created(_) => {
            for job in &ordered {
                note_created(shared, job);
            }
            log::info!("workflow {workflow_id} created: {} node(s)", ordered.len());
            Ok(Reply::json(
                201,
                &json!({"workflow_id": workflow_id, "jobs": nodes}),
            ))
        }
        refused => Err(refusal(shared, refused, Some(ordered.len()))),
    }
}

/// `GET /workflows?limit=`: the newest workflows still kept (of the last 10,000 created),
/// newest first, with their sizes; `GET /workflows/{id}` shows one.
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let q = Query::parse(call.query, &["limit"])?;
    let limit = q.number("limit", 50, 500)? as usize;
    let list = call.store.workflows(limit)?;
    let shown: Vec<_> = list
        .iter()
        .map(|w| {
            json!({
                "id": w.id,
                "created_at": api_time(&w.created_at),
                "nodes": w.nodes,
                "left": w.left,
            })
        })
        .collect();
    Ok(Reply::json(200, &json!({ "workflows": shown })))
}

/// `GET /workflows/{id}`: every node's status, its parents by ref, and the edges.
pub fn get(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?;
    let Some(wf) = call.store.workflow(&id)? else {
        return Err(not_found(&id));
    };
    let by_id: HashMap<&str, &str> = wf
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.node_ref.as_str()))
        .collect();
    let name = |p: &String| by_id.get(p.as_str()).map_or(p.clone(), |r| r.to_string());
    let mut nodes: Vec<Value> = Vec::with_capacity(wf.nodes.len());
    let mut edges = Vec::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for n in &wf.nodes {
        let status = if n.status.is_empty() {
            "expired_record"
        } else {
            n.status.as_str()
        };
        *counts.entry(status.to_string()).or_default() += 1;
        for p in &n.parents {
            edges.push(json!([name(p), n.node_ref]));
        }
        nodes.push(json!({
            "ref": n.node_ref,
            "job_id": n.id,
            "type": n.job_type,
            "status": status,
            "depends_on": n.parents.iter().map(name).collect::<Vec<_>>(),
            "error": (!n.error.is_empty()).then_some(&n.error),
        }));
    }
    nodes.sort_by(|a, b| a["ref"].as_str().cmp(&b["ref"].as_str()));
    let status = if wf.left > 0 {
        "running"
    } else if counts.len() == 1 && counts.contains_key("completed") {
        "completed"
    } else {
        "finished"
    };
    Ok(Reply::json(
        200,
        &json!({
            "workflow_id": id.as_str(),
            "created_at": from_micros(wf.created_at_us)
                .map(|t| api_time(&t)),
            "status": status,
            "unfinished": wf.left.max(0),
            "counts": counts,
            "nodes": nodes,
            "edges": edges,
        }),
    ))
}

/// `POST /workflows/{id}/cancel`: cancels every node that has not finished (running nodes are
/// told to stop); answers how many of each.
pub fn cancel(call: &mut Call) -> Result<Reply, ApiError> {
    let id = job_id(call.id)?;
    let Some(wf) = call.store.workflow(&id)? else {
        return Err(not_found(&id));
    };
    let ids: Vec<String> = wf.nodes.iter().map(|n| n.id.clone()).collect();
    let (outcomes, events) = call.store.cancel(&ids)?;
    note_job_events(call.shared, &events);
    let (mut cancelled, mut cancelling) = (0u64, 0u64);
    for o in &outcomes {
        match o {
            CancelOutcome::Cancelled => cancelled += 1,
            CancelOutcome::Cancelling => cancelling += 1,
            _ => {}
        }
    }
    // Descendants a cancellation took along were counted on their own turn, or ended with it.
    cancelled += events
        .iter()
        .filter(|e| !ids.contains(&e.id) && e.detail != "running")
        .count() as u64;
    log::info!(
        "workflow {id} cancelled: {cancelled} node(s) cancelled, {cancelling} running node(s) told to stop"
    );
    Ok(Reply::json(
        200,
        &json!({"workflow_id": id.as_str(), "cancelled": cancelled, "cancelling": cancelling}),
    ))
}

fn not_found(id: &JobId) -> ApiError {
    ApiError::NotFound(format!(
        "no workflow {id}; it never existed, or it finished more than JOB_TTL_SECS ago"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_cycles_are_named() {
        let refs: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        // d <- b, c <- a (a diamond)
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let order = topological(&refs, &deps).unwrap();
        assert_eq!(order.first(), Some(&0));
        assert_eq!(order.last(), Some(&3));
        let cyclic = vec![vec![2], vec![0], vec![1], vec![]];
        let mut cycle = topological(&refs, &cyclic).unwrap_err();
        cycle.sort();
        assert_eq!(cycle, ["a", "b", "c"]);
    }
}
