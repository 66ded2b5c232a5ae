//! The event dispatcher: a thread in every process that publishes each partition's outbox
//! (`Stores::dispatch`): every event a subscription wants becomes one webhook job per such
//! subscription, created with the event's removal in one step, so exactly one process
//! publishes each event however many run this thread. The thread logs one line per event
//! published and counts `events_published_total`; it also reports the events the outbox had no
//! room for (`events_dropped_total`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::context::Shared;
use crate::shutdown::{spawn_periodic, RetryDelay, Shutdown};
use crate::store::{PartitionRound, StoreError};

/// Most events published per partition per round (one round trip); a full round starts the
/// next at once.
const BATCH: usize = 256;
/// The wait between rounds while the outboxes are empty: bounds how late an event is
/// published (and costs each partition one small script call per round).
const IDLE: Duration = Duration::from_millis(200);
/// How long a partition whose delivery queue is full (MAX_QUEUE_SIZE) waits before its events
/// are tried again, and how often that is logged.
const FULL_WAIT: Duration = Duration::from_secs(1);

/// Starts the dispatcher.
pub fn spawn_dispatcher(
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    let shared = shared.clone();
    let mut retry = RetryDelay::default();
    spawn_periodic("jobq-events", shutdown, move || {
        let cfg = &shared.config;
        let rounds = match store.dispatch(BATCH, cfg.max_queue_size, cfg.max_attempts) {
            Ok(r) => r,
            Err(e) => {
                log_unexpected(&e);
                return retry.next_delay();
            }
        };
        let mut wait = IDLE;
        let mut failed = false;
        for r in &rounds {
            report(&shared, r);
            if let Some(e) = &r.error {
                log_unexpected(e);
                failed = true;
            } else if !r.full.is_empty() {
                wait = wait.max(FULL_WAIT);
            } else if r.more {
                wait = Duration::ZERO;
            }
        }
        if failed {
            return retry.next_delay();
        }
        retry.reset();
        wait
    })
}

/// Logs and counts what one partition's round did.
fn report(shared: &Shared, r: &PartitionRound) {
    let m = &shared.metrics;
    if r.dropped > 0 {
        m.events_dropped.inc_by(r.dropped);
        log::error!(
            "{} event(s) dropped: the outbox of partition {} was full (10,000 events waiting); their webhooks will not be sent. Are the delivery queues full, or is Redis refusing the dispatcher's calls?",
            r.dropped,
            r.partition
        );
    }
    if r.synced {
        log::warn!(
            "partition {} held an older set of subscriptions than partition 0 (a change it missed, or a partition added since): given partition 0's",
            r.partition
        );
    }
    for name in &r.bad_subscriptions {
        log::error!(
            "subscription {name:?} cannot be read; it receives no event until it is put again"
        );
    }
    for raw in &r.unreadable {
        log::error!("outbox record {raw:?} is not an event; removed");
    }
    for ev in &r.published {
        if ev.deliveries.is_empty() {
            log::debug!(
                "event {} {} of {}: no subscription wants it any more",
                ev.kind,
                ev.event_id,
                ev.about
            );
            continue;
        }
        m.events_published
            .with_label_values(&[&ev.kind])
            .inc_by(ev.deliveries.len() as u64);
        let to: Vec<String> = ev
            .deliveries
            .iter()
            .map(|(sub, job)| format!("{sub} (job {job})"))
            .collect();
        log::info!(
            "event {} {} of {} published to {}",
            ev.kind,
            ev.event_id,
            ev.about,
            to.join(", ")
        );
    }
    if let Some((kind, queue)) = r.full.first() {
        log::warn!(
            "{} event(s) of partition {} wait (the first a {kind}): queue {queue:?} has no room for their webhook jobs (MAX_QUEUE_SIZE); tried again in {} s",
            r.full.len(),
            r.partition,
            FULL_WAIT.as_secs()
        );
    }
}

/// Outages are logged once by `Health`; anything else is a bug worth reporting.
fn log_unexpected(e: &StoreError) {
    if !e.is_unavailable() {
        log::error!("event dispatcher: {e}");
    }
}
