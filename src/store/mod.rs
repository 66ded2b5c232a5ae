//! The only code that speaks Redis. One method per state transition, each a single script call
//! (see `lua/`), plus the reads the API needs. Each thread opens its own [`Store`] from the shared
//! [`Backend`], so no mutex sits between threads and Redis.

pub mod analytics;
pub mod conn;
pub mod keys;
mod scripts;

use redis::Value as RV;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::job::{Job, NewJob};
pub use conn::Health;
use conn::{Conn, COMMAND_TIMEOUT};
use keys::Keys;
use scripts::scripts;

/// How many recently completed ids the completed list keeps (it is trimmed back to this size
/// once it has grown 100 past it).
pub const COMPLETED_LIST_MAX: u64 = 1000;

/// What can go wrong talking to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Redis cannot be reached or did not answer in time: retry later (HTTP 503).
    Unavailable(String),
    /// Redis answered with an error: a bug or a Redis that is not what jobq expects.
    Redis(String),
    /// A record that does not parse.
    Corrupt(String),
    /// Redis refused us: a wrong password, a failed TLS handshake or certificate check, or
    /// settings that cannot work. Waiting will not help; the configuration must change.
    Rejected(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "Redis is unavailable: {m}"),
            StoreError::Redis(m) => write!(f, "Redis refused a command: {m}"),
            StoreError::Corrupt(m) => write!(f, "corrupt job record: {m}"),
            StoreError::Rejected(m) => write!(f, "Redis refused the connection: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Shared by all threads of a process: where Redis is, the key names, and Redis's health.
#[derive(Clone)]
pub struct Backend {
    client: redis::Client,
    keys: Arc<Keys>,
    health: Arc<Health>,
}

impl Backend {
    /// Where Redis is (REDIS_URL), with the TLS files of a `rediss://` URL, and the key prefix.
    pub fn from_config(c: &Config) -> Result<Backend, StoreError> {
        let info = redis::IntoConnectionInfo::into_connection_info(c.redis_url.as_str())
            .map_err(|e| StoreError::Rejected(format!("REDIS_URL: {e}")))?;
        // No CLIENT SETINFO on connect: two more round trips, each of which would wait out the
        // read timeout when Redis hangs, and nothing jobq needs.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(settings);
        let tls_files = c.redis_ca_cert.is_some() || c.redis_client_cert.is_some();
        let client = if tls_files {
            tls_client(c, info)?
        } else {
            redis::Client::open(info)
                .map_err(|e| StoreError::Rejected(format!("REDIS_URL: {e}")))?
        };
        Ok(Backend {
            client,
            keys: Arc::new(Keys::new(&c.key_prefix)),
            health: Health::new(&c.redis_url),
        })
    }

    /// A connection for ordinary commands.
    pub fn open(&self) -> Store {
        self.open_with_read_timeout(COMMAND_TIMEOUT)
    }

    /// A connection that may block in `BLMOVE` for up to `block`.
    pub fn open_blocking(&self, block: Duration) -> Store {
        self.open_with_read_timeout(block + COMMAND_TIMEOUT)
    }

    fn open_with_read_timeout(&self, read_timeout: Duration) -> Store {
        Store {
            conn: Conn::new(self.client.clone(), self.health.clone(), read_timeout),
            keys: self.keys.clone(),
        }
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }
}

#[cfg(feature = "redis-tls")]
fn tls_client(c: &Config, info: redis::ConnectionInfo) -> Result<redis::Client, StoreError> {
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| StoreError::Rejected(format!("{what} {path}: {e}")))
    };
    let root_cert = match &c.redis_ca_cert {
        Some(p) => Some(read("REDIS_CA_CERT", p)?),
        None => None,
    };
    let client_tls = match (&c.redis_client_cert, &c.redis_client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("REDIS_CLIENT_CERT", cert)?,
            client_key: read("REDIS_CLIENT_KEY", key)?,
        }),
        _ => None,
    };
    redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| StoreError::Rejected(format!("Redis TLS settings: {e}")))
}

#[cfg(not(feature = "redis-tls"))]
fn tls_client(_: &Config, _: redis::ConnectionInfo) -> Result<redis::Client, StoreError> {
    Err(StoreError::Rejected(
        "REDIS_CA_CERT and REDIS_CLIENT_CERT need the redis-tls feature; rebuild with it".into(),
    ))
}

/// The counts `GET /stats` shows: all O(1) reads (counters and list lengths).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Jobs ever accepted.
    pub total_jobs: u64,
    pub pending_jobs: u64,
    pub running_jobs: u64,
    /// Jobs ever completed.
    pub completed_jobs: u64,
    /// Jobs ever moved to the dead-letter queue.
    pub failed_jobs: u64,
    /// Jobs in the dead-letter queue now.
    pub dlq_size: u64,
    /// Delayed jobs and retries waiting for their time.
    pub scheduled_jobs: u64,
}

/// A job handed to this process by [`Store::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_secs: Option<u64>,
    /// This claim's number: the acknowledgement presents it, so only this claim can record an
    /// outcome (a late outcome of an earlier claim of the same job changes nothing).
    pub claim: String,
}

/// What an acknowledgement did, and the worker's next job if it claimed one.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked<T> {
    pub outcome: T,
    pub next: Option<Claimed>,
}

/// The create script's answer: `{1, id, new, ...}`, `{0}` when full, `{-1, id}` on a clash.
fn create_outcome(reply: Vec<RV>) -> Result<CreateOutcome, StoreError> {
    let code = reply
        .first()
        .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok());
    match code {
        Some(0) => Ok(CreateOutcome::Full),
        Some(1) => {
            let flat: Vec<String> = redis::from_redis_value(RV::Array(reply[1..].to_vec()))
                .map_err(|e| StoreError::Redis(format!("create script answered oddly: {e}")))?;
            Ok(CreateOutcome::Created(
                flat.chunks_exact(2)
                    .map(|c| Created {
                        id: c[0].clone(),
                        new: c[1] == "1",
                    })
                    .collect(),
            ))
        }
        _ => Err(StoreError::Redis(format!(
            "create script refused the jobs: {reply:?}"
        ))),
    }
}

fn is_noscript(v: &RV) -> bool {
    matches!(v, RV::ServerError(e) if e.code() == "NOSCRIPT")
}

/// One reply of a pipeline sent with `ignore_errors`: a server error there is a value, which is
/// classified here as [`Conn`] classifies the error of a single command.
fn pipeline_error(e: &redis::ServerError) -> StoreError {
    match conn::transient_state(e.code()) {
        Some(what) => StoreError::Unavailable(format!(
            "{what}; nothing was changed, retry shortly ({e:?})"
        )),
        None => StoreError::Redis(format!("{e:?}")),
    }
}

/// Jobs as the claim step returns them: 7 entries each.
fn claimed_jobs(flat: &[String]) -> Vec<Claimed> {
    flat.chunks_exact(7)
        .map(|c| Claimed {
            id: c[0].clone(),
            kind: c[1].clone(),
            payload: c[2].clone(),
            attempt: c[3].parse().unwrap_or(1),
            max_attempts: c[4].parse().unwrap_or(1),
            timeout_secs: c[5].parse().ok(),
            claim: c[6].clone(),
        })
        .collect()
}

/// What [`Store::fail`] did with a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled to run again at this time (µs since the epoch).
    Retry { due_us: i64 },
    /// Moved to the dead-letter queue; `evicted` are the oldest DLQ entries dropped past the cap.
    Dead { evicted: Vec<String> },
    /// This process no longer held the job; nothing was written.
    NotOwned,
}

/// What [`Store::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// One entry per submitted job, in order.
    Created(Vec<Created>),
    /// Pending plus scheduled jobs would exceed the limit; nothing was written.
    Full,
}

/// One job of a [`CreateOutcome::Created`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    /// False when an idempotency key named an earlier job, whose id this is.
    pub new: bool,
}

/// Which dead-letter jobs a DLQ operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlqSelect<'a> {
    One(&'a str),
    Type(&'a str),
    All,
}

impl DlqSelect<'_> {
    fn args(&self) -> (&str, &str) {
        match self {
            DlqSelect::One(id) => ("id", id),
            DlqSelect::Type(t) => ("type", t),
            DlqSelect::All => ("all", ""),
        }
    }
}

/// What [`Store::promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    pub moved: u64,
    /// When the next scheduled job is due, if any (µs since the epoch, Redis's clock).
    pub next_due_us: Option<i64>,
    /// Redis's clock when the script ran (µs since the epoch).
    pub now_us: i64,
}

/// The jobs recovered from a dead process by [`Store::reap`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    pub requeued: Vec<String>,
    pub dead: Vec<String>,
    /// The oldest DLQ entries dropped past the cap to make room.
    pub evicted: Vec<String>,
}

/// One thread's handle on Redis.
pub struct Store {
    conn: Conn,
    keys: Arc<Keys>,
}

impl Store {
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.conn
            .run_idempotent(|c| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }

    /// Creates `jobs` atomically: all of them, or none when the new ones would take pending plus
    /// scheduled jobs past `max_queue`. A job whose idempotency key was seen within
    /// `idempotency_ttl_secs` is not created again; the earlier job's id is returned instead.
    pub fn create(
        &mut self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let inv = self.create_invocation(jobs, max_queue, idempotency_ttl_secs);
        let reply: Vec<RV> = self.conn.run(|c| inv.invoke(c))?;
        create_outcome(reply)
    }

    /// Creates each job on its own (as separate `create` calls would, each with its own
    /// capacity check and outcome) in one round trip: the HTTP threads gather concurrent
    /// `POST /jobs` requests into one of these. Returns one outcome per job, in order.
    ///
    /// A pipeline sends EVALSHA only, so after a Redis restart, failover or `SCRIPT FLUSH` some
    /// of its calls may answer NOSCRIPT while others ran (another connection may load the
    /// script between two of them). Only the calls that answered NOSCRIPT are sent again,
    /// after loading the script: a job that was stored is never reported as failed. When a
    /// round trip fails, the jobs not yet answered get that error (a timeout may have stored
    /// them; the error says so).
    pub fn create_each(
        &mut self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> Vec<Result<CreateOutcome, StoreError>> {
        let invs: Vec<_> = jobs
            .iter()
            .map(|j| {
                self.create_invocation(std::slice::from_ref(j), max_queue, idempotency_ttl_secs)
            })
            .collect();
        let mut out: Vec<Option<Result<CreateOutcome, StoreError>>> = vec![None; jobs.len()];
        let mut todo: Vec<usize> = (0..jobs.len()).collect();
        // A second NOSCRIPT right after loading needs yet another SCRIPT FLUSH in between;
        // three rounds end even that, with an honest error for what is left.
        for round in 0..3 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &todo {
                pipe.invoke_script(&invs[i]);
            }
            let replies = self.conn.run(|c| {
                if round > 0 {
                    scripts().create.load(c)?;
                }
                pipe.query::<Vec<RV>>(c)
            });
            let replies = match replies {
                Ok(r) => r,
                Err(e) => {
                    for &i in &todo {
                        out[i] = Some(Err(e.clone()));
                    }
                    todo.clear();
                    break;
                }
            };
            let mut again = Vec::new();
            for (&i, reply) in todo.iter().zip(replies) {
                out[i] = Some(match reply {
                    r if is_noscript(&r) => {
                        again.push(i);
                        continue;
                    }
                    RV::Array(items) => create_outcome(items),
                    RV::ServerError(e) => Err(pipeline_error(&e)),
                    other => Err(StoreError::Redis(format!(
                        "create script answered {other:?}"
                    ))),
                });
            }
            todo = again;
            if todo.is_empty() {
                break;
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::Unavailable(
                        "Redis kept losing jobq's scripts (SCRIPT FLUSH?); the job was not created, retry shortly".into(),
                    ))
                })
            })
            .collect()
    }

    fn create_invocation(
        &self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> redis::ScriptInvocation<'static> {
        let k = &self.keys;
        let mut inv = scripts().create.prepare_invoke();
        inv.key(&k.pending).key(&k.scheduled).key(&k.counters);
        inv.arg(max_queue).arg(idempotency_ttl_secs);
        for j in jobs {
            // Without an idempotency key the bare `<prefix>:idem:` stands in: declaring '' would
            // name a key in Redis Cluster slot 0, outside the prefix's slot (CROSSSLOT).
            inv.key(k.job(&j.id))
                .key(k.idempotency(j.idempotency_key.as_deref().unwrap_or_default()));
            inv.arg(&j.id)
                .arg(&j.kind)
                .arg(&j.payload)
                .arg(j.max_attempts)
                .arg(j.delay_ms)
                .arg(j.run_at_us.map(|t| t.to_string()).unwrap_or_default())
                .arg(j.timeout_secs.map(|t| t.to_string()).unwrap_or_default())
                .arg(u8::from(j.idempotency_key.is_some()));
        }
        inv
    }

    /// A job's record, or None when there is no such job (or its record has expired).
    pub fn job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        let key = self.keys.job(id);
        let rec: HashMap<String, String> = self
            .conn
            .run_idempotent(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        if rec.is_empty() {
            return Ok(None);
        }
        Job::from_record(id, &rec)
            .map(Some)
            .map_err(StoreError::Corrupt)
    }

    /// Counts for `GET /stats` and the `queue_size` gauge, in one script call: one reply, so a
    /// Redis that hangs costs one read timeout, not one per count.
    pub fn stats(&mut self) -> Result<Stats, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().stats.prepare_invoke();
        inv.key(&k.pending)
            .key(&k.scheduled)
            .key(&k.dlq)
            .key(&k.counters);
        let n: Vec<u64> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let n = |i: usize| n.get(i).copied().unwrap_or(0);
        Ok(Stats {
            pending_jobs: n(0),
            scheduled_jobs: n(1),
            dlq_size: n(2),
            total_jobs: n(3),
            running_jobs: n(4),
            completed_jobs: n(5),
            failed_jobs: n(6),
        })
    }

    /// Claims up to `max` pending jobs for `worker`; an empty answer means pending is empty (or
    /// held only ids without records, which are dropped). None when `worker` is not registered
    /// (its heartbeat key is missing): it must beat before it claims, or a job it claimed and
    /// then died with would never be recovered.
    pub fn claim(&mut self, worker: &str, max: usize) -> Result<Option<Vec<Claimed>>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().claim.prepare_invoke();
        inv.key(&k.pending)
            .key(k.running(worker))
            .key(&k.counters)
            .key(k.heartbeat(worker))
            .arg(k.prefix())
            .arg(max);
        let flat: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(match flat.split_first() {
            Some((registered, jobs)) if registered == "1" => Some(claimed_jobs(jobs)),
            _ => None,
        })
    }

    /// Blocks until pending has a job or `timeout` passes; returns whether it has one.
    ///
    /// `BLMOVE pending pending LEFT LEFT` rotates the list onto itself, which changes nothing:
    /// it is a blocking "wait until not empty". The claim itself stays one atomic script, so a
    /// crash between waking and claiming cannot strand a job.
    pub fn wait_for_pending(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let k = &self.keys.pending;
        let got: Option<String> = self.conn.run_idempotent(|c| {
            redis::cmd("BLMOVE")
                .arg(k)
                .arg(k)
                .arg("LEFT")
                .arg("LEFT")
                .arg(timeout.as_secs_f64())
                .query(c)
        })?;
        Ok(got.is_some())
    }

    /// Marks a job this process ran as completed, storing `result` (JSON) if any, and when
    /// `claim_next` is set claims the worker's next job in the same round trip.
    /// `Acked::outcome` is false when this claim of the job was no longer this process's to
    /// finish. `job` is the claim being acknowledged (its id and claim number).
    pub fn complete(
        &mut self,
        worker: &str,
        job: &Claimed,
        result: Option<&str>,
        ttl_secs: u64,
        claim_next: bool,
    ) -> Result<Acked<bool>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().complete.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.completed)
            .key(&k.counters)
            .key(k.job(&job.id))
            .key(&k.pending)
            .key(k.heartbeat(worker))
            .arg(&job.id)
            .arg(result.unwrap_or(""))
            .arg(ttl_secs)
            .arg(COMPLETED_LIST_MAX)
            .arg(k.prefix())
            .arg(u8::from(claim_next))
            .arg(&job.claim);
        let reply: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(Acked {
            outcome: reply.first().map(String::as_str) == Some("1"),
            next: claimed_jobs(reply.get(1..).unwrap_or_default()).pop(),
        })
    }

    /// Records a failed attempt: retry after `retry_delay_ms`, or the dead-letter queue (capped
    /// at `dlq_cap` entries) when the attempts are spent or `permanent` is set. When `claim_next`
    /// is set, claims the worker's next job in the same round trip.
    #[allow(clippy::too_many_arguments)]
    pub fn fail(
        &mut self,
        worker: &str,
        job: &Claimed,
        error: &str,
        retry_delay_ms: u64,
        permanent: bool,
        dlq_cap: u64,
        claim_next: bool,
    ) -> Result<Acked<FailOutcome>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().fail.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.scheduled)
            .key(&k.dlq)
            .key(&k.counters)
            .key(k.job(&job.id))
            .key(&k.pending)
            .key(k.heartbeat(worker))
            .arg(&job.id)
            .arg(error)
            .arg(retry_delay_ms)
            .arg(if permanent { "1" } else { "0" })
            .arg(k.prefix())
            .arg(dlq_cap)
            .arg(u8::from(claim_next))
            .arg(&job.claim);
        let reply: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        let num = |i: usize| {
            reply
                .get(i)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let evicted = num(2).max(0) as usize;
        let rest = reply.get(3..).unwrap_or_default();
        let (evicted, claimed) = rest.split_at(evicted.min(rest.len()));
        let outcome = match num(0) {
            1 => FailOutcome::Retry { due_us: num(1) },
            2 => FailOutcome::Dead {
                evicted: evicted.to_vec(),
            },
            _ => FailOutcome::NotOwned,
        };
        Ok(Acked {
            outcome,
            next: claimed_jobs(claimed).pop(),
        })
    }

    /// Moves up to `limit` due scheduled jobs into pending.
    pub fn promote(&mut self, limit: usize) -> Result<Promoted, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().promote.prepare_invoke();
        inv.key(&k.scheduled)
            .key(&k.pending)
            .arg(k.prefix())
            .arg(limit);
        let (moved, next, now): (u64, i64, i64) = self.conn.run(|c| inv.invoke(c))?;
        Ok(Promoted {
            moved,
            next_due_us: (next >= 0).then_some(next),
            now_us: now,
        })
    }

    /// Puts every job `worker` holds back at the front of pending; returns their ids.
    pub fn requeue_all(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        self.requeue_script(worker, "all", &[])
    }

    /// Puts the jobs `ids` back at the front of pending if `worker` still holds them (jobs a
    /// lost reply left in its running list); returns the ids moved.
    pub fn requeue(&mut self, worker: &str, ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.requeue_script(worker, "ids", ids)
    }

    fn requeue_script(
        &mut self,
        worker: &str,
        mode: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().requeue.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.pending)
            .key(&k.counters)
            .arg(k.prefix())
            .arg(mode)
            .arg(ids);
        self.conn.run(|c| inv.invoke(c))
    }

    /// The ids in `worker`'s running list.
    pub fn held(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        let key = self.keys.running(worker);
        self.conn
            .run_idempotent(|c| redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c))
    }

    /// Refreshes `worker`'s liveness key (expiring after `ttl`) and registers it as a worker.
    pub fn heartbeat(&mut self, worker: &str, ttl: Duration, info: &str) -> Result<(), StoreError> {
        let k = &self.keys;
        let hb = k.heartbeat(worker);
        self.conn.run_idempotent(|c| {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&hb)
                .arg(info)
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .ignore()
                .cmd("SADD")
                .arg(&k.workers)
                .arg(worker)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Removes `worker`'s liveness key and registration, once it holds no jobs.
    pub fn deregister(&mut self, worker: &str) -> Result<(), StoreError> {
        let k = &self.keys;
        let hb = k.heartbeat(worker);
        self.conn.run_idempotent(|c| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&hb)
                .ignore()
                .cmd("SREM")
                .arg(&k.workers)
                .arg(worker)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Every registered worker process, alive or not.
    pub fn workers(&mut self) -> Result<Vec<String>, StoreError> {
        let key = self.keys.workers.clone();
        self.conn
            .run_idempotent(|c| redis::cmd("SMEMBERS").arg(&key).query(c))
    }

    /// Recovers the jobs of `worker` if its heartbeat has expired: each counts as a failed
    /// attempt with `error`. None when the process is alive after all.
    pub fn reap(
        &mut self,
        worker: &str,
        error: &str,
        dlq_cap: u64,
    ) -> Result<Option<Reaped>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().reap.prepare_invoke();
        inv.key(&k.workers)
            .key(&k.pending)
            .key(&k.dlq)
            .key(&k.counters)
            .key(k.heartbeat(worker))
            .key(k.running(worker))
            .arg(k.prefix())
            .arg(worker)
            .arg(error)
            .arg(dlq_cap);
        let v: RV = self.conn.run(|c| inv.invoke(c))?;
        let items: Vec<String> = match v {
            RV::Nil => return Ok(None),
            other => redis::from_redis_value(other)
                .map_err(|e| StoreError::Redis(format!("reap script answered oddly: {e}")))?,
        };
        let mut parts = items.split(|id| id == "|");
        let mut next = || parts.next().unwrap_or_default().to_vec();
        Ok(Some(Reaped {
            requeued: next(),
            dead: next(),
            evicted: next(),
        }))
    }

    /// One page of the dead-letter queue, newest first, and its total size, in one script call.
    pub fn dlq_page(&mut self, offset: u64, limit: u64) -> Result<(u64, Vec<Job>), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().dlq_page.prepare_invoke();
        inv.key(&k.dlq).arg(k.prefix()).arg(offset).arg(limit);
        let reply: Vec<RV> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let odd = |e: String| StoreError::Redis(format!("dlq_page script answered oddly: {e}"));
        let mut items = reply.into_iter();
        let total: u64 = match items.next() {
            Some(v) => redis::from_redis_value(v).map_err(|e| odd(e.to_string()))?,
            None => 0,
        };
        let mut jobs = Vec::new();
        while let (Some(id), Some(rec)) = (items.next(), items.next()) {
            let id: String = redis::from_redis_value(id).map_err(|e| odd(e.to_string()))?;
            let rec: HashMap<String, String> =
                redis::from_redis_value(rec).map_err(|e| odd(e.to_string()))?;
            if !rec.is_empty() {
                jobs.push(Job::from_record(&id, &rec).map_err(StoreError::Corrupt)?);
            }
        }
        Ok((total, jobs))
    }

    /// A job in the dead-letter queue, or None when it is not there. Only a buried job has
    /// status `failed`, and deleting one from the DLQ deletes its record, so the record alone
    /// answers (one command, one reply).
    pub fn dlq_job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self
            .job(id)?
            .filter(|j| j.status == crate::job::JobStatus::Failed))
    }

    /// Sends the selected dead-letter jobs back to pending with attempts reset; returns their ids.
    pub fn dlq_retry(&mut self, which: DlqSelect) -> Result<Vec<String>, StoreError> {
        let k = &self.keys;
        let (mode, value) = which.args();
        let mut inv = scripts().dlq_retry.prepare_invoke();
        inv.key(&k.dlq)
            .key(&k.pending)
            .arg(k.prefix())
            .arg(mode)
            .arg(value);
        self.conn.run(|c| inv.invoke(c))
    }

    /// Deletes the selected dead-letter jobs and their records; returns how many.
    pub fn dlq_delete(&mut self, which: DlqSelect) -> Result<u64, StoreError> {
        let k = &self.keys;
        let (mode, value) = which.args();
        let mut inv = scripts().dlq_delete.prepare_invoke();
        inv.key(&k.dlq).arg(k.prefix()).arg(mode).arg(value);
        self.conn.run(|c| inv.invoke(c))
    }

    /// Checks this Redis at start-up: refuses one older than 6.2 (jobq's scripts use LMOVE,
    /// BLMOVE and ZRANGE … REV), and says what a restart or memory pressure could lose, as
    /// advice for the log.
    pub fn durability_warnings(&mut self) -> Result<Vec<String>, StoreError> {
        let (server, persistence, memory): (String, String, String) =
            self.conn.run_idempotent(|c| {
                redis::pipe()
                    .cmd("INFO")
                    .arg("server")
                    .cmd("INFO")
                    .arg("persistence")
                    .cmd("INFO")
                    .arg("memory")
                    .query(c)
            })?;
        if let Some(version) = info_field(&server, "redis_version") {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if (major, minor) < (6, 2) {
                return Err(StoreError::Rejected(format!(
                    "Redis {version} is too old: jobq needs Redis 6.2 or later"
                )));
            }
        }
        let mut out = Vec::new();
        match info_field(&memory, "maxmemory_policy") {
            Some("noeviction") | None => {}
            Some(policy) => out.push(format!(
                "Redis maxmemory-policy is {policy}: when Redis fills up it may evict job records and queues, losing accepted jobs; set maxmemory-policy noeviction (POST /jobs then gets 503 instead)"
            )),
        }
        if info_field(&persistence, "aof_enabled") != Some("1") {
            // CONFIG may be disabled on managed Redis; then RDB cannot be checked.
            let save: Result<Vec<String>, StoreError> = self
                .conn
                .run(|c| redis::cmd("CONFIG").arg("GET").arg("save").query(c));
            match save {
                Ok(kv) if kv.get(1).is_some_and(|v| !v.trim().is_empty()) => out.push(
                    "Redis persists with RDB snapshots only: a Redis crash loses jobs accepted since the last snapshot; set appendonly yes to keep them".into(),
                ),
                Ok(_) => out.push(
                    "Redis has neither AOF nor RDB persistence: a Redis restart loses every job; set appendonly yes".into(),
                ),
                Err(StoreError::Unavailable(m)) => return Err(StoreError::Unavailable(m)),
                Err(_) => out.push(
                    "Redis has AOF off and CONFIG GET is refused, so RDB could not be checked: unless snapshots are on, a Redis restart loses every job; set appendonly yes".into(),
                ),
            }
        }
        Ok(out)
    }

    /// Which Redis server this is and whether it is loading its data set, from `INFO`.
    pub fn redis_state(&mut self) -> Result<RedisState, StoreError> {
        let (server, persistence): (String, String) = self.conn.run_idempotent(|c| {
            redis::pipe()
                .cmd("INFO")
                .arg("server")
                .cmd("INFO")
                .arg("persistence")
                .query(c)
        })?;
        Ok(RedisState {
            run_id: info_field(&server, "run_id")
                .unwrap_or_default()
                .to_string(),
            uptime_secs: info_field(&server, "uptime_in_seconds").and_then(|v| v.parse().ok()),
            loading: info_field(&persistence, "loading") == Some("1"),
        })
    }
}

/// What the reaper needs to know of the Redis server before it judges heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisState {
    /// Changes whenever Redis restarts (or another server answers at the same address).
    pub run_id: String,
    pub uptime_secs: Option<u64>,
    /// Loading its data set from disk (or from its master).
    pub loading: bool,
}

/// A field of an `INFO` answer (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}
