//! Publishing the outbox: an event record (written by `lua/events.lua` in the step where the
//! event happened) becomes one webhook job per subscription that wants it, with the event as
//! the webhook's body. [`Stores::dispatch`] does one round over every partition (read its
//! outbox, publish each event in one `publish.lua` step, copy partition 0's subscriptions to a
//! partition that holds others); the dispatcher thread (`worker/dispatch.rs`) calls it, logs
//! and counts what it did.
//!
//! Each event makes its jobs exactly once (the step that creates them takes the event out of
//! the outbox, and does nothing if it is gone). Its id is drawn here, when it is published,
//! and is the same in every delivery of it and every retry of a delivery: a receiver dedupes
//! by it, since a delivery is retried until its receiver answers (at least once).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::subscriptions::{Delivery, Published, Subscription, SubscriptionSet};
use super::{StoreError, Stores};
use crate::job::{api_time_value, JobId};

/// An outbox record as `lua/events.lua` writes it (short names: records may be many).
#[derive(Debug, Clone, Default, Deserialize)]
struct Record {
    /// The event's kind.
    k: String,
    /// When it happened, µs (Redis's clock), as text.
    at: String,
    /// Job id (job events; for `breaker.opened`, the job whose failure opened it).
    j: Option<String>,
    /// Job type (every kind).
    #[serde(default)]
    t: String,
    /// Queue (every kind).
    #[serde(default)]
    q: String,
    /// The job's attempt and status after the step.
    a: Option<String>,
    s: Option<String>,
    /// Result (JSON text), or 1 in `rt` when it was longer than the record takes.
    r: Option<String>,
    rt: Option<u8>,
    /// Error (cut to 16 KiB).
    e: Option<String>,
    /// A retry's due time (µs) or a cancellation's stage.
    d: Option<String>,
    /// `schedule.missed`: the schedule, its ticks, why, and the first missed tick's time (µs).
    n: Option<String>,
    ticks: Option<u64>,
    reason: Option<String>,
    f: Option<String>,
    /// `breaker.opened`: the end of the cool-down (µs).
    u: Option<String>,
}

/// One event read from an outbox.
#[derive(Debug, Clone)]
pub struct Event {
    rec: Record,
}

/// A record's µs time (text) as the API writes times; null when absent or unreadable.
fn time(us: Option<&str>) -> Value {
    us.and_then(|s| s.parse::<i64>().ok())
        .map_or(Value::Null, api_time_value)
}

impl Event {
    /// Reads a record; `None` when it is not one (it is then removed, and logged).
    pub fn parse(raw: &str) -> Option<Event> {
        let rec: Record = serde_json::from_str(raw).ok()?;
        Some(Event { rec })
    }

    /// Its kind: `job.completed`, … (see `EVENT_KINDS`).
    pub fn kind(&self) -> &str {
        &self.rec.k
    }

    /// What the event is about, for the log: `job <id> (<type>)`, `schedule <name>`, …
    pub fn about(&self) -> String {
        let r = &self.rec;
        match (r.k.as_str(), &r.j, &r.n) {
            ("breaker.opened", j, _) => format!(
                "breaker of type {} (opened by job {})",
                r.t,
                j.as_deref().unwrap_or("?")
            ),
            (_, _, Some(n)) => format!("schedule {n} ({})", r.t),
            (_, Some(j), _) => format!("job {j} ({})", r.t),
            _ => format!("type {}", r.t),
        }
    }

    /// Whether `s` wants this event: its kind among the subscription's events, and its queue
    /// and type within the filter.
    pub fn wanted_by(&self, s: &Subscription) -> bool {
        let f = &s.spec.filter;
        s.spec.events.contains(&self.rec.k)
            && f.queue.as_deref().is_none_or(|q| q == self.rec.q)
            && f.kind.as_deref().is_none_or(|t| t == self.rec.t)
    }

    /// The event as its webhook's body, with id `id`.
    pub fn body(&self, id: &str) -> Value {
        let r = &self.rec;
        let mut out = Map::new();
        out.insert("id".into(), json!(id));
        out.insert("type".into(), json!(r.k));
        out.insert("at".into(), time(Some(&r.at)));
        match r.k.as_str() {
            "schedule.missed" => {
                out.insert("schedule".into(), json!(r.n));
                out.insert("ticks".into(), json!(r.ticks.unwrap_or(1)));
                out.insert("reason".into(), json!(r.reason));
                out.insert("fire_time".into(), time(r.f.as_deref()));
                out.insert("job_type".into(), json!(r.t));
                out.insert("queue".into(), json!(r.q));
            }
            "breaker.opened" => {
                out.insert("job_type".into(), json!(r.t));
                out.insert("queue".into(), json!(r.q));
                out.insert("job_id".into(), json!(r.j));
                out.insert("open_until".into(), time(r.u.as_deref()));
            }
            kind => {
                let mut job = Map::new();
                job.insert("id".into(), json!(r.j));
                job.insert("type".into(), json!(r.t));
                job.insert("queue".into(), json!(r.q));
                let attempt = r.a.as_deref().and_then(|a| a.parse::<u64>().ok());
                job.insert("attempt".into(), json!(attempt.unwrap_or(0)));
                job.insert("status".into(), json!(r.s));
                if let Some(result) = &r.r {
                    let v = serde_json::from_str(result).unwrap_or_else(|_| json!(result));
                    job.insert("result".into(), v);
                }
                if r.rt.is_some() {
                    job.insert("result_truncated".into(), json!(true));
                }
                if let Some(e) = &r.e {
                    job.insert("error".into(), json!(e));
                }
                match kind {
                    "job.failed" => {
                        job.insert("retry_at".into(), time(r.d.as_deref()));
                    }
                    "job.cancelled" => {
                        job.insert("stage".into(), json!(r.d));
                    }
                    _ => {}
                }
                out.insert("job".into(), Value::Object(job));
            }
        }
        Value::Object(out)
    }
}

/// The webhook payload that delivers `body` (an event of `kind` with id `event_id`) for
/// subscription `s`: a POST of the event to its URL, its `event` sent by the `webhook` type as
/// the headers `X-Jobq-Event`, `X-Jobq-Event-Id` and `X-Jobq-Subscription` (X-Jobq-* headers
/// are jobq's own: a payload's `headers` may not set them, and a submitted payload may not
/// carry `event`).
pub fn delivery_payload(s: &Subscription, kind: &str, event_id: &str, body: Value) -> String {
    json!({
        "url": s.spec.url,
        "body": body,
        "event": {"type": kind, "id": event_id, "subscription": s.name},
    })
    .to_string()
}

/// One event published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedEvent {
    pub event_id: String,
    pub kind: String,
    /// What it is about (see [`Event::about`]).
    pub about: String,
    /// (subscription, delivery job id), one per subscription that wants it; none when no
    /// subscription wants it any more.
    pub deliveries: Vec<(String, String)>,
}

/// What one round did in one partition.
#[derive(Debug, Default)]
pub struct PartitionRound {
    pub partition: usize,
    /// Events the outbox dropped (full) since the last look.
    pub dropped: u64,
    pub published: Vec<PublishedEvent>,
    /// (event kind, queue) of events left in the outbox because that queue had no room for
    /// their deliveries (MAX_QUEUE_SIZE).
    pub full: Vec<(String, String)>,
    /// Records that were not events (removed).
    pub unreadable: Vec<String>,
    /// Subscriptions that could not be read (left out).
    pub bad_subscriptions: Vec<String>,
    /// The round read a whole batch: more may wait.
    pub more: bool,
    /// Partition 0's subscriptions were copied here (it held an older set).
    pub synced: bool,
    /// The call that stopped this partition's round, if one failed.
    pub error: Option<StoreError>,
}

impl Stores {
    /// One round over every partition: up to `batch` events of each published (each delivery
    /// job in queue and with attempts its subscription says, `default_attempts` when it says
    /// none; a queue's MAX_QUEUE_SIZE `max_queue` applies), and a partition whose
    /// subscriptions are older than partition 0's given partition 0's.
    pub fn dispatch(
        &mut self,
        batch: usize,
        max_queue: u64,
        default_attempts: u32,
    ) -> Result<Vec<PartitionRound>, StoreError> {
        let layout = self.layout()?;
        let mut rounds = Vec::new();
        // Partition 0's subscriptions, once read: the others are compared with them.
        let mut home: Option<SubscriptionSet> = None;
        for p in 0..layout.len() {
            let mut round = PartitionRound {
                partition: p,
                ..PartitionRound::default()
            };
            if let Err(e) = self.round(p, batch, max_queue, default_attempts, &mut home, &mut round)
            {
                round.error = Some(e);
            }
            rounds.push(round);
        }
        Ok(rounds)
    }

    fn round(
        &mut self,
        p: usize,
        batch: usize,
        max_queue: u64,
        default_attempts: u32,
        home: &mut Option<SubscriptionSet>,
        round: &mut PartitionRound,
    ) -> Result<(), StoreError> {
        let layout = self.layout()?;
        let mut outbox = self.parts[p].outbox(batch)?;
        round.dropped = outbox.dropped;
        round.more = outbox.events.len() >= batch;
        if p == 0 {
            *home = Some(SubscriptionSet {
                version: outbox.version,
                all: outbox.subscriptions.clone(),
            });
        } else if let Some(set) = home.as_ref().filter(|h| h.version > outbox.version) {
            if self.parts[p].replace_subscriptions(set)? {
                round.synced = true;
                outbox.subscriptions = set.all.clone();
            }
        }
        let subs: Vec<Subscription> = outbox
            .subscriptions
            .iter()
            .filter_map(|(name, stored)| {
                let s = Subscription::parse(name, stored);
                if s.is_none() {
                    round.bad_subscriptions.push(name.clone());
                }
                s
            })
            .collect();
        // Every event planned (its subscriptions, id and jobs), then all published in one
        // round trip, each in a step of its own.
        struct Planned<'a> {
            raw: &'a str,
            event: Option<Event>,
            event_id: String,
            jobs: Vec<Delivery>,
        }
        let planned: Vec<Planned> = outbox
            .events
            .iter()
            .map(|raw| {
                let event_id = JobId::new_random().to_string();
                let Some(event) = Event::parse(raw) else {
                    // Not an event: removed with no job.
                    return Planned {
                        raw,
                        event: None,
                        event_id,
                        jobs: Vec::new(),
                    };
                };
                let body = event.body(&event_id);
                let jobs = subs
                    .iter()
                    .filter(|s| event.wanted_by(s))
                    .map(|s| Delivery {
                        id: layout.id_in(JobId::new_random().as_str(), p),
                        payload: delivery_payload(s, event.kind(), &event_id, body.clone()),
                        max_attempts: s.spec.max_attempts.unwrap_or(default_attempts),
                        queue: s.spec.queue.clone(),
                        subscription: s.name.clone(),
                    })
                    .collect();
                Planned {
                    raw,
                    event: Some(event),
                    event_id,
                    jobs,
                }
            })
            .collect();
        let calls: Vec<(&str, &[Delivery])> =
            planned.iter().map(|e| (e.raw, e.jobs.as_slice())).collect();
        let answers = self.parts[p].publish_each(&calls, max_queue);
        let mut failed = None;
        for (e, answer) in planned.into_iter().zip(answers) {
            match (answer, e.event) {
                (Err(err), _) => {
                    failed.get_or_insert(err);
                }
                (Ok(Published::Done), None) => {
                    round.unreadable.push(e.raw.chars().take(200).collect());
                }
                (Ok(Published::Done), Some(event)) => round.published.push(PublishedEvent {
                    event_id: e.event_id,
                    kind: event.kind().to_string(),
                    about: event.about(),
                    deliveries: e.jobs.into_iter().map(|j| (j.subscription, j.id)).collect(),
                }),
                (Ok(Published::Full(q)), Some(event)) => {
                    round.full.push((event.kind().to_string(), q));
                }
                (Ok(_), _) => {}
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SubscriptionFilter, SubscriptionSpec};

    fn sub(events: &[&str], queue: Option<&str>, kind: Option<&str>) -> Subscription {
        Subscription {
            name: "s".into(),
            spec: SubscriptionSpec {
                url: "http://127.0.0.1:9/hook".into(),
                events: events.iter().map(|e| e.to_string()).collect(),
                filter: SubscriptionFilter {
                    queue: queue.map(str::to_string),
                    kind: kind.map(str::to_string),
                },
                queue: "default".into(),
                max_attempts: None,
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_completion_becomes_a_body_with_its_result_and_matches_by_kind_queue_and_type() {
        let raw = r#"{"k":"job.completed","at":"1700000000000001","j":"abc","t":"email","q":"mail","a":"2","s":"completed","r":"{\"sent\":true}"}"#;
        let e = Event::parse(raw).unwrap();
        let body = e.body("ev1");
        assert_eq!(body["id"], "ev1");
        assert_eq!(body["type"], "job.completed");
        assert_eq!(body["at"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(
            body["job"],
            json!({"id": "abc", "type": "email", "queue": "mail", "attempt": 2,
                "status": "completed", "result": {"sent": true}})
        );
        assert!(e.wanted_by(&sub(&["job.completed"], None, None)));
        assert!(e.wanted_by(&sub(&["job.completed"], Some("mail"), Some("email"))));
        assert!(!e.wanted_by(&sub(&["job.completed"], Some("default"), None)));
        assert!(!e.wanted_by(&sub(&["job.completed"], None, Some("report"))));
        assert!(!e.wanted_by(&sub(&["job.failed"], None, None)));
    }

    #[test]
    fn other_kinds_carry_what_they_add() {
        let e = Event::parse(r#"{"k":"job.failed","at":"1700000000000000","j":"a","t":"x","q":"default","a":"1","s":"pending","e":"boom","d":"1700000001000000"}"#).unwrap();
        let job = &e.body("i")["job"];
        assert_eq!(
            (job["error"].as_str(), job["status"].as_str()),
            (Some("boom"), Some("pending"))
        );
        assert_eq!(job["retry_at"], "2023-11-14T22:13:21.000000Z");
        let e = Event::parse(r#"{"k":"job.completed","at":"1","j":"a","t":"x","q":"default","a":"1","s":"completed","rt":1}"#).unwrap();
        assert_eq!(e.body("i")["job"]["result_truncated"], true);
        assert!(e.body("i")["job"].get("result").is_none());
        let e = Event::parse(r#"{"k":"schedule.missed","at":"1","n":"nightly","ticks":3,"reason":"late","t":"report","q":"default","f":"1700000000000000"}"#).unwrap();
        let b = e.body("i");
        assert_eq!(
            (b["schedule"].as_str(), b["ticks"].as_u64()),
            (Some("nightly"), Some(3))
        );
        assert_eq!(
            (b["reason"].as_str(), b["job_type"].as_str()),
            (Some("late"), Some("report"))
        );
        assert!(e.wanted_by(&sub(&["schedule.missed"], None, Some("report"))));
        let e = Event::parse(r#"{"k":"breaker.opened","at":"1","t":"email","q":"mail","j":"a","u":"1700000030000000"}"#).unwrap();
        let b = e.body("i");
        assert_eq!(
            (b["job_type"].as_str(), b["job_id"].as_str()),
            (Some("email"), Some("a"))
        );
        assert_eq!(b["open_until"], "2023-11-14T22:13:50.000000Z");
        assert_eq!(e.about(), "breaker of type email (opened by job a)");
        assert!(Event::parse("not json").is_none());
    }
}
