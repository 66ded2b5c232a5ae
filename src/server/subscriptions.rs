//! The event subscription routes: `PUT`, `GET` and `DELETE /subscriptions/{name}` and `GET
//! /subscriptions`. A subscription names a URL, the events it wants and a filter; each event
//! it wants is delivered as a `webhook` job of its own (see `store/events.rs`), so its URL is
//! checked by the `webhook` handler's own rules (WEBHOOK_ALLOW), and a process without that
//! job type refuses subscriptions.

use serde_json::{json, Map, Value};

use super::input::{parse_json, path_segment, read_body};
use super::router::Call;
use super::{ApiError, Reply};
use crate::config::queues::{is_valid_queue_name, MAX_QUEUE_NAME_LEN};
use crate::handler::is_valid_type_name;
use crate::job::{api_time_value, DEFAULT_QUEUE};
use crate::store::{
    Subscription, SubscriptionFilter, SubscriptionSpec, DELIVERY_TYPE, EVENT_KINDS,
};

/// Longest URL a subscription may name.
const MAX_URL_LEN: usize = 2048;
/// Most attempts a delivery may be given (as a job's `max_attempts`).
const MAX_ATTEMPTS: u64 = 1000;

/// `GET /subscriptions`: every subscription, by name.
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let all: Vec<Value> = call
        .store
        .subscriptions()?
        .iter()
        .filter_map(|(name, stored)| Subscription::parse(name, stored))
        .map(|s| subscription_json(&s))
        .collect();
    Ok(Reply::json(200, &json!({ "subscriptions": all })))
}

/// `GET /subscriptions/{name}`.
pub fn get(call: &mut Call) -> Result<Reply, ApiError> {
    let name = subscription_name(call.id)?;
    let stored = call
        .store
        .subscription(&name)?
        .ok_or_else(|| not_found(&name))?;
    let s = Subscription::parse(&name, &stored).ok_or_else(|| {
        ApiError::Internal(format!(
            "subscription {name:?} is stored unreadably; put it again"
        ))
    })?;
    Ok(Reply::json(200, &subscription_json(&s)))
}

/// `PUT /subscriptions/{name}`: creates (201) or replaces (200) a subscription.
pub fn put(call: &mut Call) -> Result<Reply, ApiError> {
    let name = subscription_name(call.id)?;
    let body = read_body(call.req, call.shared.config.max_body_bytes)?;
    let doc: Value = parse_json(
        &body,
        "{\"url\": \"https://...\", \"events\": [\"job.completed\", ...], \"filter\": {\"queue\": \"...\", \"type\": \"...\"}}",
    )?;
    let spec = spec_from(&doc).map_err(ApiError::BadRequest)?;
    let handler = call.shared.registry.get(DELIVERY_TYPE).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "this jobq has no {DELIVERY_TYPE:?} job type registered, and subscriptions deliver each event as a {DELIVERY_TYPE:?} job: build jobq with it (or register a handler of that name) to use subscriptions"
        ))
    })?;
    // The URL by the webhook type's own rules (WEBHOOK_ALLOW), on a payload as a client
    // would submit one (a delivery's also carries `event`, which only jobq may write).
    let sample = json!({
        "url": spec.url,
        "body": {"id": "", "type": spec.events[0], "at": ""},
    });
    handler.validate(&sample).map_err(|e| {
        // The webhook type names the field itself; another handler of that name may not.
        ApiError::BadRequest(if e.starts_with("\"url\"") {
            e
        } else {
            format!("\"url\": {e}")
        })
    })?;
    let spec_json = serde_json::to_string(&spec).expect("a subscription serializes");
    let (created, stored) = call.store.put_subscription(&name, &spec_json)?;
    let s = Subscription::parse(&name, &stored)
        .ok_or_else(|| ApiError::Internal(format!("Redis stored {stored:?}")))?;
    log::info!(
        "subscription {name} {}: {} to {} (deliveries in queue {})",
        if created { "created" } else { "replaced" },
        spec.events.join(", "),
        origin(&spec.url),
        spec.queue
    );
    Ok(Reply::json(
        if created { 201 } else { 200 },
        &subscription_json(&s),
    ))
}

/// `DELETE /subscriptions/{name}`: no event is published to it from now on; deliveries already
/// made stay (they are jobs like any other).
pub fn delete(call: &mut Call) -> Result<Reply, ApiError> {
    let name = subscription_name(call.id)?;
    if !call.store.delete_subscription(&name)? {
        return Err(not_found(&name));
    }
    log::info!("subscription {name} deleted");
    Ok(Reply::json(200, &json!({ "deleted": name })))
}

/// `url` up to its path: the scheme, host and port. The log names a subscription's destination
/// as webhook errors and logs do, since a webhook URL's path or query often carries a token.
fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    &url[..end]
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no subscription named {name:?}; GET /subscriptions lists them, PUT /subscriptions/{{name}} creates one"
    ))
}

/// The subscription named by the path segment `raw`, percent-decoded.
fn subscription_name(raw: &str) -> Result<String, ApiError> {
    let name = path_segment(raw);
    if !is_valid_queue_name(&name) {
        return Err(ApiError::BadRequest(format!(
            "subscription name {name:?} must be 1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :"
        )));
    }
    Ok(name)
}

/// A field as an optional string (absent or null: none).
fn opt_text<'a>(
    m: &'a Map<String, Value>,
    field: &str,
    at: &str,
) -> Result<Option<&'a str>, String> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{at}{field}\" must be a string")),
    }
}

/// Checks a subscription document; the error names the field.
fn spec_from(doc: &Value) -> Result<SubscriptionSpec, String> {
    const FIELDS: [&str; 5] = ["url", "events", "filter", "queue", "max_attempts"];
    let m = doc.as_object().ok_or("expected a JSON object")?;
    if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {k:?}: a subscription has {}",
            FIELDS.join(", ")
        ));
    }
    let url = opt_text(m, "url", "")?
        .ok_or("\"url\" is required: where each event is sent (POST, JSON body)")?;
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(format!("\"url\" must be 1-{MAX_URL_LEN} characters"));
    }
    let known = EVENT_KINDS.join(", ");
    let events = match m.get("events") {
        None | Some(Value::Null) => {
            return Err(format!(
                "\"events\" is required: a list of one or more of {known}"
            ))
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(format!(
                "\"events\" must be a list of one or more of {known}"
            ))
        }
    };
    if events.is_empty() {
        return Err(format!("\"events\" is empty: name one or more of {known}"));
    }
    let mut kinds: Vec<String> = Vec::new();
    for e in events {
        let k = e
            .as_str()
            .filter(|k| EVENT_KINDS.contains(k))
            .ok_or_else(|| format!("\"events\": unknown event {e}; the events are {known}"))?;
        if !kinds.iter().any(|x| x == k) {
            kinds.push(k.to_string());
        }
    }
    let filter = match m.get("filter") {
        None | Some(Value::Null) => SubscriptionFilter::default(),
        Some(Value::Object(f)) => {
            if let Some(k) = f.keys().find(|k| *k != "queue" && *k != "type") {
                return Err(format!(
                    "\"filter\": unknown field {k:?}: a filter has queue and type"
                ));
            }
            let queue = opt_text(f, "queue", "filter.")?;
            if let Some(q) = queue.filter(|q| !is_valid_queue_name(q)) {
                return Err(format!(
                    "\"filter.queue\": {q:?} is not a queue name (1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :)"
                ));
            }
            let kind = opt_text(f, "type", "filter.")?;
            if let Some(t) = kind.filter(|t| !is_valid_type_name(t)) {
                return Err(format!(
                    "\"filter.type\": {t:?} is not a job type name (1-64 characters of A-Z a-z 0-9 _ - . :)"
                ));
            }
            SubscriptionFilter {
                queue: queue.map(str::to_string),
                kind: kind.map(str::to_string),
            }
        }
        Some(_) => {
            return Err(
                "\"filter\" must be an object: {\"queue\": \"...\", \"type\": \"...\"}".into(),
            )
        }
    };
    let queue = opt_text(m, "queue", "")?.unwrap_or(DEFAULT_QUEUE);
    if !is_valid_queue_name(queue) {
        return Err(format!(
            "\"queue\": {queue:?} is not a queue name (1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :)"
        ));
    }
    let max_attempts = match m.get("max_attempts") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|n| (1..=MAX_ATTEMPTS).contains(n)) {
            Some(n) => Some(n as u32),
            None => {
                return Err(format!(
                    "\"max_attempts\" must be a whole number from 1 to {MAX_ATTEMPTS}, got {v}"
                ))
            }
        },
    };
    Ok(SubscriptionSpec {
        url: url.to_string(),
        events: kinds,
        filter,
        queue: queue.to_string(),
        max_attempts,
    })
}

fn subscription_json(s: &Subscription) -> Value {
    json!({
        "name": s.name,
        "url": s.spec.url,
        "events": s.spec.events,
        "filter": {"queue": s.spec.filter.queue, "type": s.spec.filter.kind},
        "queue": s.spec.queue,
        "max_attempts": s.spec.max_attempts,
        "created_at": api_time_value(s.created_at.saturating_mul(1000)),
        "updated_at": api_time_value(s.updated_at.saturating_mul(1000)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Value) -> String {
        spec_from(&v).unwrap_err()
    }

    #[test]
    fn the_log_names_a_destination_without_its_path_or_query() {
        assert_eq!(
            origin("https://hooks.example.com/t/0123secret?sig=x"),
            "https://hooks.example.com"
        );
        assert_eq!(origin("http://[::1]:9000?token=x"), "http://[::1]:9000");
        assert_eq!(origin("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
    }

    #[test]
    fn a_document_is_checked_field_by_field() {
        let s = spec_from(
            &json!({"url": "http://x/y", "events": ["job.dead", "job.dead"],
            "filter": {"queue": "mail", "type": null}, "max_attempts": 5}),
        )
        .unwrap();
        assert_eq!(s.events, ["job.dead"]);
        assert_eq!(s.filter.queue.as_deref(), Some("mail"));
        assert_eq!(s.filter.kind, None);
        assert_eq!((s.queue.as_str(), s.max_attempts), ("default", Some(5)));

        assert!(err(json!({"events": ["job.dead"]})).contains("\"url\" is required"));
        assert!(err(json!({"url": "u"})).contains("\"events\" is required"));
        assert!(err(json!({"url": "u", "events": []})).contains("\"events\" is empty"));
        let e = err(json!({"url": "u", "events": ["job.done"]}));
        assert!(
            e.contains("\"job.done\"") && e.contains("job.completed, job.failed"),
            "{e}"
        );
        assert!(err(json!({"url": "u", "events": ["job.dead"], "hook": 1})).contains("\"hook\""));
        let e = err(json!({"url": "u", "events": ["job.dead"], "filter": {"group": "g"}}));
        assert!(e.contains("\"filter\"") && e.contains("\"group\""), "{e}");
        let e = err(json!({"url": "u", "events": ["job.dead"], "filter": {"queue": "a b"}}));
        assert!(e.contains("filter.queue"), "{e}");
        let e = err(json!({"url": "u", "events": ["job.dead"], "filter": {"type": 3}}));
        assert!(e.contains("filter.type"), "{e}");
        assert!(
            err(json!({"url": "u", "events": ["job.dead"], "queue": ""})).contains("\"queue\"")
        );
        let e = err(json!({"url": "u", "events": ["job.dead"], "max_attempts": 0}));
        assert!(e.contains("max_attempts"), "{e}");
        assert!(err(json!([1])).contains("object"));
    }
}
