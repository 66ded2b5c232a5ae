//! Event subscriptions in Redis: the subscriptions themselves (`subscriptions.lua`, in every
//! partition, so each event step reads its own), each partition's outbox of events as the
//! dispatcher reads it (`outbox.lua`), and one event turned into its webhook delivery jobs
//! (`publish.lua`). Which subscriptions an event goes to, and what its webhook carries, is
//! `events.rs`'s business; here are the steps and their replies.

use redis::Value as RV;
use serde::{Deserialize, Serialize};

use super::decode::odd;
use super::scripts::scripts;
use super::{Store, StoreError, Stores};

/// The events a subscription may ask for, in the order the API lists them.
pub const EVENT_KINDS: [&str; 7] = [
    "job.completed",
    "job.failed",
    "job.dead",
    "job.cancelled",
    "job.expired",
    "schedule.missed",
    "breaker.opened",
];

/// The job type that delivers events: a subscription's deliveries are jobs of this type.
pub const DELIVERY_TYPE: &str = "webhook";

/// Which jobs' events a subscription wants; `None` matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// What a subscription is, as the API took it (checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    /// Where its webhooks go.
    pub url: String,
    /// The kinds of [`EVENT_KINDS`] it wants.
    pub events: Vec<String>,
    #[serde(default)]
    pub filter: SubscriptionFilter,
    /// The queue its delivery jobs go to.
    pub queue: String,
    /// Attempts of each delivery; `None`: MAX_ATTEMPTS of the process that delivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// A subscription as stored: its spec and when it was created and last put (ms, Redis's clock).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subscription {
    #[serde(skip)]
    pub name: String,
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

impl Subscription {
    /// Reads a stored value; `None` when it is not one (it is then passed over, and logged).
    pub fn parse(name: &str, stored: &str) -> Option<Subscription> {
        let mut s: Subscription = serde_json::from_str(stored).ok()?;
        s.name = name.to_string();
        Some(s)
    }
}

/// One partition's outbox as the dispatcher sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outbox {
    /// Events dropped since the last look because the outbox was full (taken: one look sees
    /// each drop).
    pub dropped: u64,
    /// The version of the subscriptions held (0: never any).
    pub version: i64,
    /// The oldest events, as stored (`publish` names an event by this text).
    pub events: Vec<String>,
    /// The subscriptions (name, stored JSON) by name, when there are any.
    pub subscriptions: Vec<(String, String)>,
}

/// Partition 0's subscriptions at one version: what the other partitions are given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionSet {
    pub version: i64,
    /// (name, stored JSON), by name.
    pub all: Vec<(String, String)>,
}

/// One webhook job that delivers an event to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// An id of the event's partition.
    pub id: String,
    /// The `webhook` payload, JSON.
    pub payload: String,
    pub max_attempts: u32,
    pub queue: String,
    pub subscription: String,
}

/// What [`Store::publish`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Its jobs were created and it left the outbox.
    Done,
    /// It was no longer in the outbox: another process published it.
    Gone,
    /// This queue has no room for its deliveries (MAX_QUEUE_SIZE): nothing changed.
    Full(String),
}

impl Store {
    fn subscriptions_call(&mut self, args: &[&str]) -> Result<Vec<String>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().subscriptions.prepare_invoke();
        inv.key(&k.subscriptions)
            .key(&k.subscriptions_index)
            .key(&k.subscriptions_version);
        inv.arg(k.prefix());
        for a in args {
            inv.arg(*a);
        }
        self.conn.run(|c| inv.invoke(c))
    }

    /// Creates or replaces subscription `name` (`spec`, JSON) in this partition (partition 0:
    /// see [`Stores::put_subscription`]); returns whether it was new, the stored JSON (with
    /// its times) and the set it belongs to now.
    pub fn put_subscription(
        &mut self,
        name: &str,
        spec: &str,
    ) -> Result<(bool, String, SubscriptionSet), StoreError> {
        let r = self.subscriptions_call(&["put", name, spec])?;
        let (how, stored, set) = changed(r)?;
        Ok((how == "created", stored, set))
    }

    /// Deletes subscription `name` in this partition (partition 0); whether it had it, and the
    /// set left.
    pub fn delete_subscription(
        &mut self,
        name: &str,
    ) -> Result<(bool, SubscriptionSet), StoreError> {
        let r = self.subscriptions_call(&["delete", name])?;
        let (how, _, set) = changed(r)?;
        Ok((how == "deleted", set))
    }

    /// Makes this partition's subscriptions `set`, unless it holds a newer version; whether
    /// it did.
    pub fn replace_subscriptions(&mut self, set: &SubscriptionSet) -> Result<bool, StoreError> {
        let version = set.version.to_string();
        let mut args: Vec<&str> = vec!["replace", &version];
        for (n, v) in &set.all {
            args.push(n);
            args.push(v);
        }
        let r = self.subscriptions_call(&args)?;
        Ok(r.first().map(String::as_str) == Some("replaced"))
    }

    /// Every subscription (name, stored JSON), by name.
    pub fn subscriptions(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let key = &self.keys.subscriptions;
        let mut all: Vec<(String, String)> = self
            .conn
            .run_idempotent(|c| redis::cmd("HGETALL").arg(key).query(c))?;
        all.sort();
        Ok(all)
    }

    /// One subscription's stored JSON.
    pub fn subscription(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        let key = &self.keys.subscriptions;
        self.conn
            .run_idempotent(|c| redis::cmd("HGET").arg(key).arg(name).query(c))
    }

    /// The outbox's oldest `n` events and what goes with them (see [`Outbox`]).
    pub fn outbox(&mut self, n: usize) -> Result<Outbox, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().outbox.prepare_invoke();
        inv.key(&k.events)
            .key(&k.subscriptions)
            .key(&k.subscriptions_index)
            .key(&k.events_dropped)
            .key(&k.subscriptions_version);
        inv.arg(n);
        // Not sent twice: the dropped count is taken by the call.
        let reply: Vec<RV> = self.conn.run(|c| inv.invoke(c))?;
        let flat: Vec<String> =
            redis::from_redis_value(RV::Array(reply)).map_err(|e| odd("outbox", e))?;
        let (Some(dropped), Some(version), Some(count)) = (flat.first(), flat.get(1), flat.get(2))
        else {
            return Err(StoreError::redis("outbox answered too little"));
        };
        let count: usize = count.parse().unwrap_or(0);
        let events = flat.get(3..3 + count).unwrap_or_default().to_vec();
        Ok(Outbox {
            dropped: dropped.parse().unwrap_or(0),
            version: version.parse().unwrap_or(0),
            events,
            subscriptions: pairs(flat.get(3 + count..).unwrap_or_default()),
        })
    }

    /// Turns `event` (as read from the outbox) into `jobs` and removes it, in one step.
    #[cfg(test)]
    pub fn publish(
        &mut self,
        event: &str,
        jobs: &[Delivery],
        max_queue: u64,
    ) -> Result<Published, StoreError> {
        self.publish_each(&[(event, jobs)], max_queue)
            .pop()
            .unwrap_or_else(|| Err(StoreError::redis("no answer for an event")))
    }

    /// Publishes each event with its jobs as [`Store::publish`] does, each in a step of its
    /// own, all in one round trip ([`Store::invoke_each`]). An event whose call failed (a
    /// timeout may have published it) is found gone by the next round if it was.
    pub fn publish_each(
        &mut self,
        events: &[(&str, &[Delivery])],
        max_queue: u64,
    ) -> Vec<Result<Published, StoreError>> {
        let invs: Vec<_> = events
            .iter()
            .map(|(event, jobs)| self.publish_invocation(event, jobs, max_queue))
            .collect();
        let out = self.invoke_each(&scripts().publish, &invs, |reply| {
            redis::from_redis_value::<Vec<String>>(reply)
                .map(|r| published(&r))
                .map_err(|e| odd("publish", e))
        });
        let made: usize = events
            .iter()
            .zip(&out)
            .filter(|(_, o)| matches!(o, Some(Ok(Published::Done))))
            .map(|((_, jobs), _)| jobs.len())
            .sum();
        if made > 0 {
            // Nobody waits for the answer: an unconfirmed one is told to the log, and the jobs
            // stay (publishing again would make them twice). One WAIT covers the round trip.
            if let Err(e) = self.confirm_replicas(|| format!("{made} webhook delivery job(s) were"))
            {
                log::warn!("{e}");
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::unavailable(
                        "Redis kept losing jobq's scripts (SCRIPT FLUSH?); the event waits for the next round",
                    ))
                })
            })
            .collect()
    }

    fn publish_invocation(
        &self,
        event: &str,
        jobs: &[Delivery],
        max_queue: u64,
    ) -> redis::ScriptInvocation<'static> {
        let k = &self.keys;
        let mut inv = scripts().publish.prepare_invoke();
        inv.key(&k.counters).key(&k.events);
        inv.arg(k.prefix())
            .arg(max_queue)
            .arg(self.job_ttl_secs)
            .arg(event)
            .arg(DELIVERY_TYPE);
        for j in jobs {
            inv.key(k.job(&j.id));
            inv.arg(&j.id)
                .arg(&j.payload)
                .arg(j.max_attempts)
                .arg(&j.queue)
                .arg(&j.subscription);
        }
        inv
    }
}

fn published(r: &[String]) -> Published {
    match r.first().map(String::as_str) {
        Some("done") => Published::Done,
        Some("full") => Published::Full(r.get(1).cloned().unwrap_or_default()),
        _ => Published::Gone,
    }
}

impl Stores {
    /// Creates or replaces subscription `name`: in partition 0 (its answer is returned:
    /// whether it was new, the stored JSON), then partition 0's whole set in the others. One
    /// that fails is reported once the others have it; the dispatcher gives a partition
    /// holding an older set partition 0's, and the same call again writes it there too.
    pub fn put_subscription(
        &mut self,
        name: &str,
        spec: &str,
    ) -> Result<(bool, String), StoreError> {
        let (created, stored, set) = self.parts[0].put_subscription(name, spec)?;
        self.spread(&set)?;
        Ok((created, stored))
    }

    /// Deletes subscription `name` in every partition; whether partition 0 had it.
    pub fn delete_subscription(&mut self, name: &str) -> Result<bool, StoreError> {
        let (had, set) = self.parts[0].delete_subscription(name)?;
        self.spread(&set)?;
        Ok(had)
    }

    /// Partition 0's `set` into every other partition that holds an older one.
    fn spread(&mut self, set: &SubscriptionSet) -> Result<(), StoreError> {
        let mut failed = None;
        for s in self.all()?.iter_mut().skip(1) {
            if let Err(e) = s.replace_subscriptions(set) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// (name, value) pairs of a flat list, by name.
fn pairs(flat: &[String]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = flat
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    all.sort();
    all
}

/// A put's or delete's answer: `{how, stored, version, the set...}`.
fn changed(r: Vec<String>) -> Result<(String, String, SubscriptionSet), StoreError> {
    match r.as_slice() {
        [how, stored, version, rest @ ..] => Ok((
            how.clone(),
            stored.clone(),
            SubscriptionSet {
                version: version.parse().unwrap_or(0),
                all: pairs(rest),
            },
        )),
        _ => Err(StoreError::redis(format!("subscriptions answered {r:?}"))),
    }
}
