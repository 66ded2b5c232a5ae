//! Cron schedules in Redis: creating, changing, pausing and deleting one (`schedule_put.lua`,
//! `schedule_control.lua`), reading them (`schedule_read.lua`), the due ticks every process's
//! scheduler looks at (`schedule_due.lua`), and one tick or trigger (`fire.lua`, which makes
//! the job). The fire times themselves are computed by the caller (`config::Timing`); every
//! time compared here is Redis's. Replies of these scripts are decoded here, beside their types.

use redis::Value as RV;
use std::collections::HashMap;

use super::decode::odd;
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::NewJob;

/// Where a schedule comes from: the HTTP API, or SCHEDULES_FILE (whose sync never touches the
/// API's schedules, and which the API may not change or delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    File,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::File => "file",
        }
    }
}

/// What [`Store::put_schedule`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Updated,
    /// The same document was there already.
    Unchanged,
    /// A schedule of that name comes from the other source (its source named).
    Conflict(String),
}

/// What pause, resume or delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    Done,
    Missing,
    /// Delete of a schedule of the other source (its source named).
    Conflict(String),
}

/// A schedule's change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    /// With the next fire time after now (µs).
    Resume(i64),
    /// Allowed only for schedules of this source.
    Delete(Source),
}

/// The last job a schedule made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// The tick it was made for (for a trigger: when it was made), µs.
    pub fire_us: i64,
    /// When it was made, µs.
    pub at_us: i64,
    pub job_id: String,
    /// `tick`, `catch_up` (missed ticks, `run_once`) or `trigger`.
    pub kind: String,
    /// The job's status now; None once its record has expired.
    pub status: Option<String>,
}

/// One schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub name: String,
    /// The document (canonical JSON, see `config::ScheduleSpec::to_json`).
    pub spec: String,
    pub source: String,
    pub paused: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    /// The next tick's fire time (µs); None while paused.
    pub next_us: Option<i64>,
    pub last: Option<LastRun>,
    pub fires: u64,
    pub misses: u64,
    pub skips: u64,
    pub triggers: u64,
}

/// A schedule whose tick is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTick {
    pub name: String,
    pub fire_us: i64,
    /// The schedule's revision when read; the tick does nothing if it has changed since.
    pub rev: String,
    pub spec: String,
}

/// The due ticks and the time they were judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTicks {
    pub now_us: i64,
    /// The earliest fire time still to come, if any.
    pub next_us: Option<i64>,
    pub due: Vec<DueTick>,
}

/// One tick as the caller computed it, for [`Store::fire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick<'a> {
    pub due: &'a DueTick,
    /// The fire time after this one.
    pub next_us: i64,
    /// The first fire time after now, where the rhythm resumes after missed ticks.
    pub future_us: i64,
    /// Ticks from this one up to `future_us` (itself excluded): those missed together if this
    /// one is found more than `grace_us` late.
    pub ticks: u64,
    pub grace_us: i64,
    /// `allow` or `skip`.
    pub overlap: &'a str,
    /// `skip` or `run_once`.
    pub missed: &'a str,
}

/// What one tick or trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Another process made this tick, or the schedule changed or was deleted.
    Gone,
    /// Not due yet by Redis's clock.
    Early,
    /// One job made.
    Job(String),
    /// One job made for `missed + 1` ticks that passed with no process to fire them.
    CaughtUp { job: String, missed: u64 },
    /// No job: the last tick's job is still pending or running (`overlap: skip`); `missed`
    /// earlier ticks went with it.
    Skipped { running: String, missed: u64 },
    /// No job for `ticks` ticks; `reason` is `late` or `queue_full`.
    Missed { ticks: u64, reason: String },
    /// A trigger found the job's queue full.
    Full,
}

impl Fired {
    /// The job this made, if any.
    pub fn job(&self) -> Option<&str> {
        match self {
            Fired::Job(id) | Fired::CaughtUp { job: id, .. } => Some(id),
            _ => None,
        }
    }
}

impl Store {
    /// Creates or changes a schedule. `first_us` is its first fire time, used when its rhythm
    /// starts or its pattern or time zone changed.
    pub fn put_schedule(
        &mut self,
        name: &str,
        spec_json: &str,
        timing: &str,
        source: Source,
        first_us: i64,
    ) -> Result<PutOutcome, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().schedule_put.prepare_invoke();
        inv.key(k.schedule(name))
            .key(&k.schedules)
            .key(&k.schedules_due);
        inv.arg(name)
            .arg(spec_json)
            .arg(timing)
            .arg(source.as_str())
            .arg(first_us);
        let r: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(match r.first().map(String::as_str) {
            Some("created") => PutOutcome::Created,
            Some("updated") => PutOutcome::Updated,
            Some("unchanged") => PutOutcome::Unchanged,
            _ => PutOutcome::Conflict(r.get(1).cloned().unwrap_or_default()),
        })
    }

    /// Pauses, resumes or deletes a schedule.
    pub fn control_schedule(
        &mut self,
        name: &str,
        control: Control,
    ) -> Result<ControlOutcome, StoreError> {
        let k = &self.keys;
        let (op, source, first) = match control {
            Control::Pause => ("pause", "", 0),
            Control::Resume(first) => ("resume", "", first),
            Control::Delete(s) => ("delete", s.as_str(), 0),
        };
        let mut inv = scripts().schedule_control.prepare_invoke();
        inv.key(k.schedule(name))
            .key(&k.schedules)
            .key(&k.schedules_due);
        inv.arg(name).arg(op).arg(source).arg(first);
        let r: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(match r.first().map(String::as_str) {
            Some("ok") => ControlOutcome::Done,
            Some("missing") => ControlOutcome::Missing,
            _ => ControlOutcome::Conflict(r.get(1).cloned().unwrap_or_default()),
        })
    }

    /// Every schedule (`None`, by name) or one, and Redis's time (µs).
    pub fn schedules(
        &mut self,
        name: Option<&str>,
    ) -> Result<(i64, Vec<ScheduleRecord>), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().schedule_read.prepare_invoke();
        inv.key(&k.schedules).key(&k.schedules_due);
        inv.arg(k.prefix()).arg(name.unwrap_or(""));
        let reply: Vec<RV> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let now = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
            .unwrap_or(0);
        let mut out = Vec::new();
        for item in reply.into_iter().skip(1) {
            type Row = (String, HashMap<String, String>, String, String);
            let (name, h, score, status): Row = redis::from_redis_value(item)
                .map_err(|e| odd("schedule_read answered oddly", e))?;
            out.push(record(name, &h, &score, status));
        }
        Ok((now, out))
    }

    /// Up to `limit` due ticks, by Redis's clock.
    pub fn due_ticks(&mut self, limit: usize) -> Result<DueTicks, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().schedule_due.prepare_invoke();
        inv.key(&k.schedules_due).arg(k.prefix()).arg(limit);
        let reply: Vec<RV> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let flat: Vec<String> =
            redis::from_redis_value(RV::Array(reply)).map_err(|e| odd("schedule_due", e))?;
        let num = |s: &String| s.parse::<i64>().unwrap_or(-1);
        let (now_us, next) = match flat.get(..2) {
            Some([n, x]) => (num(n), num(x)),
            _ => return Err(StoreError::redis("schedule_due answered too little")),
        };
        Ok(DueTicks {
            now_us,
            next_us: (next >= 0).then_some(next),
            due: flat[2..]
                .chunks_exact(4)
                .map(|c| DueTick {
                    name: c[0].clone(),
                    fire_us: num(&c[1]),
                    rev: c[2].clone(),
                    spec: c[3].clone(),
                })
                .collect(),
        })
    }

    /// Makes one tick (its job, or the reason for none), unless another process did.
    pub fn fire(&mut self, tick: &Tick, job: &NewJob, max_queue: u64) -> Result<Fired, StoreError> {
        let mut inv = self.fire_invocation(&tick.due.name, "tick", job, max_queue);
        inv.arg(tick.due.fire_us)
            .arg(&tick.due.rev)
            .arg(tick.next_us)
            .arg(tick.future_us)
            .arg(tick.ticks)
            .arg(tick.grace_us)
            .arg(tick.overlap)
            .arg(tick.missed);
        job_args(&mut inv, job);
        inv.arg(self.job_ttl_secs);
        let r: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        let fired = fired(&r);
        if let Some(id) = fired.job() {
            // Nobody waits for a tick's answer: an unconfirmed one is told to the log, and the
            // tick stays made (firing it again would make a second job).
            let name = &tick.due.name;
            if let Err(e) = self.confirm_replicas(|| format!("job {id} of schedule {name} was")) {
                log::warn!("{e}");
            }
        }
        Ok(fired)
    }

    /// Makes one job of schedule `name` now, outside its rhythm.
    pub fn trigger(
        &mut self,
        name: &str,
        job: &NewJob,
        max_queue: u64,
    ) -> Result<Fired, StoreError> {
        let mut inv = self.fire_invocation(name, "trigger", job, max_queue);
        inv.arg(0)
            .arg("")
            .arg(0)
            .arg(0)
            .arg(0)
            .arg(0)
            .arg("")
            .arg("");
        job_args(&mut inv, job);
        inv.arg(self.job_ttl_secs);
        let r: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        let fired = fired(&r);
        if let Some(id) = fired.job() {
            self.confirm_replicas(|| format!("job {id} of schedule {name} was"))?;
        }
        Ok(fired)
    }

    fn fire_invocation(
        &self,
        name: &str,
        mode: &str,
        job: &NewJob,
        max_queue: u64,
    ) -> redis::ScriptInvocation<'static> {
        let k = &self.keys;
        let mut inv = scripts().fire.prepare_invoke();
        inv.key(&k.counters)
            .key(k.schedule(name))
            .key(&k.schedules_due)
            .key(k.job(&job.id));
        inv.arg(k.prefix()).arg(max_queue).arg(name).arg(mode);
        inv
    }
}

fn job_args(inv: &mut redis::ScriptInvocation<'static>, job: &NewJob) {
    inv.arg(job.id.as_str())
        .arg(&job.kind)
        .arg(&job.payload)
        .arg(job.max_attempts)
        .arg(job.timeout_secs.map(|t| t.to_string()).unwrap_or_default())
        .arg(&job.queue)
        .arg(job.priority.as_str())
        .arg(job.group.as_deref().unwrap_or_default());
}

fn fired(r: &[String]) -> Fired {
    let at = |i: usize| r.get(i).cloned().unwrap_or_default();
    let n = |i: usize| at(i).parse::<u64>().unwrap_or(0);
    match r.first().map(String::as_str) {
        Some("early") => Fired::Early,
        Some("fired") => Fired::Job(at(1)),
        Some("caught_up") => Fired::CaughtUp {
            job: at(1),
            missed: n(2),
        },
        Some("skipped") => Fired::Skipped {
            running: at(1),
            missed: n(2),
        },
        Some("missed") => Fired::Missed {
            ticks: n(1),
            reason: at(2),
        },
        Some("full") => Fired::Full,
        _ => Fired::Gone,
    }
}

fn record(
    name: String,
    h: &HashMap<String, String>,
    score: &str,
    status: String,
) -> ScheduleRecord {
    let int = |f: &str| h.get(f).and_then(|v| v.parse::<i64>().ok());
    let count = |f: &str| int(f).unwrap_or(0).max(0) as u64;
    let last = h.get("last_job").map(|id| LastRun {
        fire_us: int("last_fire").unwrap_or(0),
        at_us: int("last_at").unwrap_or(0),
        job_id: id.clone(),
        kind: h.get("last_kind").cloned().unwrap_or_else(|| "tick".into()),
        status: (!status.is_empty()).then_some(status),
    });
    ScheduleRecord {
        name,
        spec: h.get("spec").cloned().unwrap_or_default(),
        source: h.get("source").cloned().unwrap_or_else(|| "api".into()),
        paused: h.contains_key("paused"),
        created_at_us: int("created_at").unwrap_or(0),
        updated_at_us: int("updated_at").unwrap_or(0),
        next_us: score.parse::<f64>().ok().map(|f| f as i64),
        last,
        fires: count("fires"),
        misses: count("misses"),
        skips: count("skips"),
        triggers: count("triggers"),
    }
}
