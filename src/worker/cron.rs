//! The schedules' side of the scheduler thread, which runs in every process: read the ticks
//! that are due by Redis's clock, compute each one's next fire time from its pattern, and make
//! it with one `fire.lua` call. No process leads: `fire.lua` acts only if the tick is still
//! the schedule's due one, so of the processes that computed the same tick exactly one makes
//! its job. One log line per tick made, missed or skipped; nothing per poll.

use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::time::Duration;

use crate::config::ScheduleSpec;
use crate::context::Shared;
use crate::job::NewJob;
use crate::store::{DueTick, Fired, StoreError, Stores, Tick};

/// A tick found later than this was missed: every process was away (or stalled) at its time.
/// The ticks from it up to now are then handled together, by the schedule's `missed` rule.
pub const GRACE: Duration = Duration::from_secs(2);
/// Most due ticks read per call.
const DUE_BATCH: usize = 50;
/// Most missed ticks counted one by one (a per-second schedule down for a day is 86400).
const MAX_COUNTED: u64 = 1_000_000;

/// A schedule's document as parsed, kept while its text is unchanged.
struct Parsed {
    text: String,
    spec: Result<(ScheduleSpec, NewJob), String>,
}

/// The parsed documents of the schedules this process has fired, by name.
#[derive(Default)]
pub struct Ticker {
    parsed: HashMap<String, Parsed>,
}

impl Ticker {
    /// Makes every due tick. Returns how long until the next tick is due (None: no schedule
    /// is waiting), or zero when this call made ticks and more may be due already.
    pub fn run(
        &mut self,
        shared: &Shared,
        store: &mut Stores,
    ) -> Result<Option<Duration>, StoreError> {
        let mut due = store.due_ticks(DUE_BATCH)?;
        // Processes that read the same due ticks take them in different orders, so that with
        // many ticks due at once each mostly makes its own rather than finding them made.
        due.due.shuffle(&mut rand::rng());
        let mut acted = false;
        for t in &due.due {
            acted |= self.fire(shared, store, t, due.now_us)?;
        }
        if acted {
            return Ok(Some(Duration::ZERO));
        }
        Ok(due
            .next_us
            .map(|next| Duration::from_micros((next - due.now_us).max(0) as u64)))
    }

    /// One due tick; false when it could not be parsed here (nothing done).
    fn fire(
        &mut self,
        shared: &Shared,
        store: &mut Stores,
        t: &DueTick,
        now_us: i64,
    ) -> Result<bool, StoreError> {
        let entry = self.parsed.entry(t.name.clone());
        let parsed = match entry {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if o.get().text != t.spec {
                    o.insert(parse(shared, t));
                }
                o.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(v) => v.insert(parse(shared, t)),
        };
        let Ok((spec, template)) = &parsed.spec else {
            return Ok(false);
        };
        let timing = &spec.timing;
        let (Some(next_us), Some(future_us)) =
            (timing.next_after(t.fire_us), timing.next_after(now_us))
        else {
            log::error!(
                "schedule {}: its pattern {:?} gives no next fire time; it does not fire",
                t.name,
                spec.cron
            );
            return Ok(false);
        };
        let grace_us = GRACE.as_micros() as i64;
        let ticks = if now_us - t.fire_us > grace_us {
            count_ticks(spec, t.fire_us, future_us)
        } else {
            1
        };
        let job = NewJob {
            id: crate::job::JobId::new_random(),
            schedule: Some(t.name.clone()),
            ..template.clone()
        };
        let tick = Tick {
            due: t,
            next_us,
            future_us,
            ticks,
            grace_us,
            overlap: spec.overlap.as_str(),
            missed: spec.missed.as_str(),
        };
        let outcome = store.fire(&tick, &job, shared.config.max_queue_size)?;
        note(shared, &t.name, t.fire_us, &job, &outcome);
        Ok(true)
    }
}

fn parse(shared: &Shared, t: &DueTick) -> Parsed {
    let spec = serde_json::from_str(&t.spec)
        .map_err(|e| e.to_string())
        .and_then(|v| ScheduleSpec::from_json(&v))
        .and_then(|spec| {
            let job = shared.schedule_job(&spec, false)?;
            Ok((spec, job))
        });
    if let Err(e) = &spec {
        // Once per document: another process (another build, say with the "tz" feature) may
        // fire it.
        log::error!("schedule {}: this process cannot fire it: {e}", t.name);
    }
    Parsed {
        text: t.spec.clone(),
        spec,
    }
}

/// The ticks from `from_us` (included) to `until_us` (excluded).
fn count_ticks(spec: &ScheduleSpec, from_us: i64, until_us: i64) -> u64 {
    let mut n = 0;
    let mut t = Some(from_us);
    while let Some(at) = t.filter(|at| *at < until_us && n < MAX_COUNTED) {
        n += 1;
        t = spec.timing.next_after(at);
    }
    n.max(1)
}

/// The log line and the counters of one tick.
fn note(shared: &Shared, name: &str, fire_us: i64, job: &NewJob, outcome: &Fired) {
    let m = &shared.metrics;
    let label = m.schedule_label(name);
    let at = crate::job::from_micros(fire_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    match outcome {
        Fired::Gone | Fired::Early | Fired::Full => {}
        Fired::Job(id) => {
            m.schedule_fires.with_label_values(&[label]).inc();
            m.jobs_created
                .with_label_values(&[m.queue_label(&job.queue)])
                .inc();
            log::info!("schedule {name} fired for {at}: job {id} ({})", job.kind);
        }
        Fired::CaughtUp { job: id, missed } => {
            m.schedule_fires.with_label_values(&[label]).inc();
            m.schedule_misses
                .with_label_values(&[label])
                .inc_by(*missed);
            m.jobs_created
                .with_label_values(&[m.queue_label(&job.queue)])
                .inc();
            log::warn!(
                "schedule {name}: {} tick(s) from {at} passed while no process fired them (missed: run_once): one job {id} ({}) for all of them",
                missed + 1,
                job.kind
            );
        }
        Fired::Skipped { running, missed } => {
            m.schedule_skips.with_label_values(&[label]).inc();
            if *missed > 0 {
                m.schedule_misses
                    .with_label_values(&[label])
                    .inc_by(*missed);
            }
            log::info!(
                "schedule {name} skipped the tick of {at}: its last job {running} is still pending or running (overlap: skip)"
            );
        }
        Fired::Missed { ticks, reason } => {
            m.schedule_misses.with_label_values(&[label]).inc_by(*ticks);
            if reason == "queue_full" {
                log::warn!(
                    "schedule {name} missed the tick of {at}: queue {:?} is full (MAX_QUEUE_SIZE); no job made",
                    job.queue
                );
            } else {
                log::warn!(
                    "schedule {name} missed {ticks} tick(s) from {at}: no process fired them within {} s (missed: skip); next tick as planned",
                    GRACE.as_secs()
                );
            }
        }
    }
}
