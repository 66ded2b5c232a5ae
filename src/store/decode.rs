//! Turning the scripts' replies into Rust values. Each script answers with a flat array (Lua
//! has no richer type Redis can carry); its layout is decoded in this one place, next to tests
//! that pin it, so a script and its caller cannot silently disagree.

use redis::Value as RV;

use std::fmt::Display;

use super::conn;
use super::ends::{counted_events, events};
use super::{
    Acked, BreakerChange, Claimed, CreateOutcome, Created, FailOutcome, LiveProcess, LiveProcesses,
    Reaped, StoreError,
};

/// A reply that did not have the shape its script promises.
pub fn odd(what: impl Display, e: redis::ParsingError) -> StoreError {
    StoreError::Redis {
        message: format!("{what}: {e}"),
        source: Some(e.into()),
    }
}

/// The workers script's answer: `{now µs, then per process: id, heartbeat JSON, pttl ms, n,
/// n × (started_at µs, progress)}` (a missing field is nil).
pub fn live_processes(reply: Vec<RV>) -> Result<LiveProcesses, StoreError> {
    let bad = || StoreError::redis("workers script answered oddly");
    let int = |v: Option<&RV>| v.and_then(|v| redis::from_redis_value_ref::<i64>(v).ok());
    let text = |v: Option<&RV>| v.and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
    let mut it = reply.iter();
    let now_us = int(it.next()).ok_or_else(bad)?;
    let mut processes = Vec::new();
    while let Some(id) = it.next() {
        let id = text(Some(id)).ok_or_else(bad)?;
        let beat = text(it.next()).ok_or_else(bad)?;
        let pttl_ms = int(it.next()).ok_or_else(bad)?;
        let n = int(it.next()).ok_or_else(bad)?;
        let jobs = (0..n)
            .map(|_| {
                let started = text(it.next()).and_then(|s| s.parse().ok());
                (started, text(it.next()))
            })
            .collect();
        processes.push(LiveProcess {
            id,
            beat,
            pttl_ms,
            jobs,
        });
    }
    Ok(LiveProcesses { now_us, processes })
}

/// The create script's answer: `{1, id, new, ...}`, `{0, queue}` when that queue is full,
/// `{-1, id}` on a clash.
pub fn create_outcome(reply: Vec<RV>) -> Result<CreateOutcome, StoreError> {
    let code = reply
        .first()
        .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok());
    let text = |i: usize| {
        reply
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .unwrap_or_default()
    };
    match code {
        Some(0) => Ok(CreateOutcome::Full { queue: text(1) }),
        Some(1) => {
            let flat: Vec<String> = redis::from_redis_value(RV::Array(reply[1..].to_vec()))
                .map_err(|e| odd("create script answered oddly", e))?;
            Ok(CreateOutcome::Created(
                flat.chunks_exact(2)
                    .map(|c| Created {
                        id: c[0].clone(),
                        new: c[1] == "1",
                    })
                    .collect(),
            ))
        }
        Some(-2) => Ok(CreateOutcome::UniqueTaken {
            holder: text(1),
            key: text(2),
        }),
        Some(-3) => Ok(CreateOutcome::UnknownParent {
            id: text(1),
            parent: text(2),
        }),
        Some(-4) => Ok(CreateOutcome::ParentEnded {
            id: text(1),
            parent: text(2),
            status: text(3),
        }),
        _ => Err(StoreError::redis(format!(
            "create script refused the jobs: {reply:?}"
        ))),
    }
}

pub fn is_noscript(v: &RV) -> bool {
    matches!(v, RV::ServerError(e) if e.code() == "NOSCRIPT")
}

/// One reply of a pipeline sent with `ignore_errors`: a server error there is a value, which
/// `conn::classify` sorts exactly as it sorts the error of a single command (a passing state
/// or OOM is [`StoreError::Unavailable`], a refusal [`StoreError::Rejected`]).
pub fn pipeline_error(e: &redis::ServerError) -> StoreError {
    conn::classify(e.clone().into())
}

/// Entries per job in the claim step's answer.
const CLAIMED_WIDTH: usize = 14;

/// Jobs as the claim step returns them: 14 entries each (`start_claimed` in common.lua).
pub fn claimed_jobs(flat: &[String]) -> Vec<Claimed> {
    flat.chunks_exact(CLAIMED_WIDTH)
        .map(|c| Claimed {
            id: c[0].clone(),
            kind: c[1].clone(),
            payload: c[2].clone(),
            attempt: c[3].parse().unwrap_or(1),
            max_attempts: c[4].parse().unwrap_or(1),
            timeout_secs: c[5].parse().ok(),
            claim: c[6].clone(),
            queue: c[7].clone(),
            group: c[8].clone(),
            priority: c[9].parse().unwrap_or_default(),
            ready_since_us: c[10].parse().unwrap_or(0),
            parents: c[11]
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            trace: (!c[12].is_empty()).then(|| crate::job::Trace {
                traceparent: c[12].clone(),
                tracestate: (!c[13].is_empty()).then(|| c[13].clone()),
            }),
            part: 0,
        })
        .collect()
}

/// A breaker change reported by an acknowledgement: `opened`, `closed` or empty.
fn breaker_change(v: Option<&String>) -> Option<BreakerChange> {
    match v.map(String::as_str) {
        Some("opened") => Some(BreakerChange::Opened),
        Some("closed") => Some(BreakerChange::Closed),
        _ => None,
    }
}

/// The complete script's answer: `{1, breaker change, n, events..., claimed...}` or `{0}`.
pub fn complete_reply(reply: &[String]) -> Acked<bool> {
    let (events, claimed) = counted_events(reply, 2);
    Acked {
        outcome: reply.first().map(String::as_str) == Some("1"),
        breaker: breaker_change(reply.get(1)),
        next: claimed_jobs(claimed).pop(),
        events,
    }
}

/// The fail script's answer: `{code, due_us, breaker change, n_evicted, evicted..., n,
/// events..., claimed...}`, where code 1 is a retry at `due_us`, 3 a snooze until `due_us`, 2 a
/// move to the DLQ, 4 a cancellation, anything else a claim no longer this process's.
pub fn fail_reply(reply: &[String]) -> Acked<FailOutcome> {
    let num = |i: usize| {
        reply
            .get(i)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let evicted = num(3).max(0) as usize;
    let rest = reply.get(4..).unwrap_or_default();
    let (evicted, rest) = rest.split_at(evicted.min(rest.len()));
    let (events, claimed) = counted_events(rest, 0);
    let outcome = match num(0) {
        4 => FailOutcome::Cancelled,
        1 => FailOutcome::Retry { due_us: num(1) },
        3 => FailOutcome::Snoozed { due_us: num(1) },
        2 => FailOutcome::Dead {
            evicted: evicted.to_vec(),
        },
        _ => FailOutcome::NotOwned,
    };
    Acked {
        outcome,
        breaker: breaker_change(reply.get(2)),
        next: claimed_jobs(claimed).pop(),
        events,
    }
}

/// The reap script's answer: nil when the process is alive, else the requeued, dead and
/// evicted ids, the queue and type of each requeued then dead job, and the events, the five
/// lists separated by `|`.
pub fn reaped(v: RV) -> Result<Option<Reaped>, StoreError> {
    let items: Vec<String> = match v {
        RV::Nil => return Ok(None),
        other => {
            redis::from_redis_value(other).map_err(|e| odd("reap script answered oddly", e))?
        }
    };
    let mut parts = items.split(|id| id == "|");
    let mut next = || parts.next().unwrap_or_default().to_vec();
    let (requeued, dead, evicted) = (next(), next(), next());
    let placement = next()
        .chunks_exact(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    Ok(Some(Reaped {
        requeued,
        dead,
        evicted,
        placement,
        events: events(&next()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn bulk(s: &str) -> RV {
        RV::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn create_replies() {
        assert_eq!(
            create_outcome(vec![RV::Int(0), bulk("mail")]).unwrap(),
            CreateOutcome::Full {
                queue: "mail".into()
            }
        );
        let created = create_outcome(vec![RV::Int(1), bulk("a"), bulk("1"), bulk("b"), bulk("0")]);
        assert_eq!(
            created.unwrap(),
            CreateOutcome::Created(vec![
                Created {
                    id: "a".into(),
                    new: true
                },
                Created {
                    id: "b".into(),
                    new: false
                },
            ])
        );
        let clash = create_outcome(vec![RV::Int(-1), bulk("a")]).unwrap_err();
        assert!(matches!(clash, StoreError::Redis { .. }), "{clash:?}");
    }

    #[test]
    fn claimed_jobs_come_in_fourteens() {
        let jobs = claimed_jobs(&strings(&[
            "id", "noop", "{}", "2", "3", "", "7", "mail", "", "high", "12", "p1,p2", "00-tp", "",
            "extra",
        ]));
        assert_eq!(
            jobs,
            vec![Claimed {
                id: "id".into(),
                kind: "noop".into(),
                payload: "{}".into(),
                attempt: 2,
                max_attempts: 3,
                timeout_secs: None,
                claim: "7".into(),
                queue: "mail".into(),
                group: String::new(),
                priority: crate::job::Priority::High,
                ready_since_us: 12,
                parents: strings(&["p1", "p2"]),
                trace: Some(crate::job::Trace {
                    traceparent: "00-tp".into(),
                    tracestate: None,
                }),
                part: 0,
            }]
        );
    }

    #[test]
    fn fail_replies() {
        let retry = fail_reply(&strings(&["1", "1234", "", "0", "0"]));
        assert_eq!(retry.outcome, FailOutcome::Retry { due_us: 1234 });
        assert_eq!(retry.next, None);
        let dead = fail_reply(&strings(&[
            "2",
            "0",
            "opened",
            "1",
            "old",
            "1",
            "cancelled",
            "c",
            "t",
            "default",
            "waiting",
            "n",
            "t",
            "{}",
            "1",
            "1",
            "",
            "1",
            "default",
            "",
            "normal",
            "5",
            "",
            "",
            "",
        ]));
        assert_eq!(dead.events.len(), 1);
        assert_eq!(dead.events[0].id, "c");
        assert_eq!(dead.breaker, Some(BreakerChange::Opened));
        assert_eq!(
            dead.outcome,
            FailOutcome::Dead {
                evicted: strings(&["old"])
            }
        );
        assert_eq!(dead.next.unwrap().id, "n");
        assert_eq!(fail_reply(&strings(&["0"])).outcome, FailOutcome::NotOwned);
        let snoozed = fail_reply(&strings(&["3", "99", "", "0", "0"]));
        assert_eq!(snoozed.outcome, FailOutcome::Snoozed { due_us: 99 });
    }

    #[test]
    fn reap_replies() {
        assert_eq!(reaped(RV::Nil).unwrap(), None);
        let v = RV::Array(
            [
                "a", "|", "b", "c", "|", "d", "|", "q", "t", "q", "t", "q", "u", "|",
            ]
            .map(bulk)
            .to_vec(),
        );
        assert_eq!(
            reaped(v).unwrap(),
            Some(Reaped {
                requeued: strings(&["a"]),
                dead: strings(&["b", "c"]),
                evicted: strings(&["d"]),
                placement: vec![
                    ("q".into(), "t".into()),
                    ("q".into(), "t".into()),
                    ("q".into(), "u".into())
                ],
                events: Vec::new(),
            })
        );
    }
}
