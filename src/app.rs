//! Starting and stopping one jobq process: which threads run for which ROLE, in what order they
//! start, and the drain on shutdown.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::context::{note_job_events, Shared};
use crate::handler::Registry;
use crate::metrics::Metrics;
use crate::server::HttpServer;
use crate::shutdown::Shutdown;
use crate::store::{Backend, StoreError, StorePool};
use crate::worker::{dispatch, maintenance, Pool};

/// Why jobq could not start or stop cleanly.
#[derive(Debug)]
pub enum Error {
    /// A setting is wrong (exit status 2).
    Config(ConfigError),
    /// Redis refused us at start-up: a wrong password, a certificate that does not verify, a
    /// Redis too old.
    Store(StoreError),
    /// The HTTP port cannot be had (taken, or not allowed).
    Http(String),
    /// The system would not start a thread.
    Thread(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::Store(e) => write!(f, "{e}"),
            Error::Http(e) => write!(f, "{e}"),
            Error::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Store(e) => Some(e),
            Error::Thread(e) => Some(e),
            Error::Http(_) => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Thread(e)
    }
}

/// What the drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs that were running when the stop began and finished within SHUTDOWN_TIMEOUT_SECS.
    pub finished: usize,
    /// Jobs put back to pending because they outlived the drain.
    pub requeued: usize,
}

/// A started jobq process. Dropping it without [`Running::shutdown`] leaves threads running.
pub struct Running {
    shared: Arc<Shared>,
    shutdown: Shutdown,
    worker_id: Option<String>,
    http: Option<HttpServer>,
    addr: Option<SocketAddr>,
    pool: Option<Pool>,
    periodic: Vec<JoinHandle<()>>,
    beat_stop: Shutdown,
    /// The heartbeat and the cancellation watch, which go on through the drain.
    heartbeat: Vec<JoinHandle<()>>,
}

/// This machine's host name, as the process id and `GET /workers` show it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// A name for this process in Redis, unique across restarts: host, pid and a random suffix.
fn process_id(host: &str) -> String {
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &rand[..6])
}

/// Writes LIMITS_FILE's limits into Redis, replacing those of every queue and type it names
/// (the others keep what `PUT …/limits` set). Redis down at start-up: said in the log.
fn apply_limits_file(shared: &Shared, file: &crate::config::LimitsFile) {
    use crate::config::Limits;
    use crate::store::Target;
    let mut store = shared.backend.open();
    let targets = file
        .queues
        .iter()
        .map(|(q, l)| (Target::Queue(q), l))
        .chain(file.types.iter().map(|(t, l)| (Target::Type(t), l)));
    for (target, limits) in targets {
        if let Err(e) = store.set_limits(target, &Limits::FIELDS, &limits.to_fields()) {
            log::error!(
                "LIMITS_FILE {}: could not write the limits of {target:?} ({e}); they apply once written, restart when Redis answers or set them with PUT …/limits",
                file.path
            );
            return;
        }
    }
    log::info!(
        "LIMITS_FILE {}: limits of {} queue(s) and {} type(s) applied",
        file.path,
        file.queues.len(),
        file.types.len()
    );
}

/// Checks the jobs of SCHEDULES_FILE's schedules against this process's job types (their
/// handlers' payload checks too), as `POST /jobs` would: a bad one stops the start-up, named by
/// file, line and column (exit status 2).
fn check_schedules_file(shared: &Shared, file: &crate::config::SchedulesFile) -> Result<(), Error> {
    let problems: Vec<String> = file
        .schedules
        .iter()
        .filter_map(|(name, s)| {
            shared.schedule_job(&s.spec, true).err().map(|e| {
                format!(
                    "SCHEDULES_FILE={:?}: {}: [schedules.{name}] job: {e}",
                    file.path, s.job_at
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(ConfigError { problems }))
    }
}

/// Writes SCHEDULES_FILE's schedules into Redis: those it names are added or changed, the
/// file schedules it no longer names are removed; schedules made through the API are left
/// alone (one of the file's with the name of an API schedule is not written, and said so).
/// Every process with the file does this at start-up; the scripts make a repeat a no-op, and
/// an unchanged pattern keeps its next fire time. Redis down at start-up: said in the log.
fn sync_schedules_file(shared: &Shared, file: &crate::config::SchedulesFile) {
    use crate::store::{Control, ControlOutcome, PutOutcome, Source};
    let mut store = shared.backend.open();
    let fail = |e: &dyn std::fmt::Display| {
        log::error!(
            "SCHEDULES_FILE {}: could not sync the schedules ({e}); restart when Redis answers",
            file.path
        );
    };
    let (now, existing) = match store.schedules(None) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let (mut added, mut changed, mut removed) = (0, 0, 0);
    for (name, s) in &file.schedules {
        let Some(first) = s.spec.timing.next_after(now) else {
            continue;
        };
        let spec = s.spec.to_json().to_string();
        match store.put_schedule(name, &spec, &s.spec.timing_key(), Source::File, first) {
            Ok(PutOutcome::Created) => added += 1,
            Ok(PutOutcome::Updated) => changed += 1,
            Ok(PutOutcome::Unchanged) => {}
            Ok(PutOutcome::Conflict(_)) => log::warn!(
                "SCHEDULES_FILE {}: schedule {name} is not applied: a schedule of that name was made through the API (DELETE /schedules/{name}, or rename it in the file)",
                file.path
            ),
            Err(e) => return fail(&e),
        }
    }
    for gone in existing
        .iter()
        .filter(|s| s.source == Source::File.as_str() && !file.schedules.contains_key(&s.name))
    {
        match store.control_schedule(&gone.name, Control::Delete(Source::File)) {
            Ok(ControlOutcome::Done) => removed += 1,
            Ok(_) => {}
            Err(e) => return fail(&e),
        }
    }
    log::info!(
        "SCHEDULES_FILE {}: {} schedule(s); {added} added, {changed} changed, {removed} removed",
        file.path,
        file.schedules.len()
    );
}

/// Starts the threads `config.role` asks for and returns once the HTTP port is listening.
/// Installs no signal handler and no logger: the binary does that, so a test or an embedding
/// program can run several instances in one process.
pub fn start(config: Config, registry: Registry) -> Result<Running, Error> {
    let backend = Backend::from_config(&config).map_err(Error::Store)?;
    let selection = crate::store::Selection::from_config(&config.queues, config.queue_order);
    let shared = Arc::new(Shared {
        openapi: crate::server::openapi::document(&config, &registry),
        config,
        registry,
        store_pool: StorePool::new(backend.clone()),
        backend,
        metrics: Arc::new(Metrics::new()),
        selection,
    });
    let cfg = &shared.config;
    if let Some(file) = &cfg.schedules_file {
        check_schedules_file(&shared, file)?;
    }
    let queues = shared
        .selection
        .named()
        .unwrap_or_else(|| vec![crate::job::DEFAULT_QUEUE.to_string()]);
    shared
        .metrics
        .init_series(&queues, &shared.registry.types());
    for spec in cfg.handlers_file.iter().flat_map(|f| &f.commands) {
        shared
            .metrics
            .init_command_limits(&spec.kind, &spec.limits.counted());
    }
    let shutdown = Shutdown::new();
    match shared
        .backend
        .open()
        .durability_warnings(shared.config.redis_wait_replicas)
    {
        Ok(warnings) => warnings.iter().for_each(|w| log::warn!("{w}")),
        // A wrong password or a certificate that does not verify will not fix itself.
        Err(e) if e.is_rejected() => return Err(Error::Store(e)),
        Err(e) => log::warn!(
            "{e}; starting anyway: requests get 503 and workers wait until Redis answers"
        ),
    }
    if let Err(e) = shared.backend.open().declare_queues(&queues) {
        log::debug!("queues not declared at start-up: {e}");
    }
    if let Some(file) = &cfg.limits_file {
        apply_limits_file(&shared, file);
    }
    if let Some(file) = &cfg.schedules_file {
        sync_schedules_file(&shared, file);
    }
    let runs_jobs = cfg.role.runs_workers() && cfg.num_workers > 0;
    let host = host_name();
    let worker_id = runs_jobs.then(|| process_id(&host));

    // The port first: when it cannot be had, nothing else has started (no job claimed, no
    // process registered) that would need stopping.
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let http = HttpServer::start(&shared, &addr, &shutdown).map_err(Error::Http)?;
    let bound = http.addr();

    let periodic = vec![
        maintenance::spawn_scheduler(&shared, &shutdown)?,
        maintenance::spawn_reaper(&shared, worker_id.clone(), &shutdown)?,
        dispatch::spawn_dispatcher(&shared, &shutdown)?,
    ];
    let mut pool = None;
    // The heartbeat has a stop of its own: it must go on through the drain, or other processes
    // would take back the jobs still finishing here.
    let beat_stop = Shutdown::new();
    let mut heartbeat = Vec::new();
    if let Some(id) = &worker_id {
        // Register before claiming anything, so no reaper can see this process's jobs without
        // also seeing its heartbeat.
        let live = maintenance::Liveness::from_recovery_secs(cfg.recovery_secs);
        let serves = shared.selection.named();
        let info = crate::worker::BeatInfo::new(cfg, &host, live.ttl);
        let _ = shared
            .backend
            .open()
            .heartbeat(id, live.ttl, &info.json(None), serves.as_deref());
        let workers = Pool::start(&shared, id, &shutdown)?;
        heartbeat.push(maintenance::spawn_heartbeat(
            &shared,
            id,
            info,
            workers.in_flight(),
            &beat_stop,
        )?);
        heartbeat.push(maintenance::spawn_cancel_watch(
            &shared,
            workers.in_flight(),
            &beat_stop,
        )?);
        pool = Some(workers);
    }
    if !bound.ip().is_loopback() && cfg.api_token.is_none() {
        log::warn!(
            "listening on {bound}, beyond this machine, without API_TOKEN: anyone who can reach the port can submit jobs (and command jobs run programs); set API_TOKEN"
        );
    }
    log::info!(
        "jobq listening on http://{bound} (role {}, {} worker thread(s){}, job types: {})",
        cfg.role.as_str(),
        if runs_jobs { cfg.num_workers } else { 0 },
        worker_id
            .as_ref()
            .map(|id| format!(", process id {id}"))
            .unwrap_or_default(),
        shared.registry.types().join(", ")
    );
    Ok(Running {
        shared,
        shutdown,
        worker_id,
        http: Some(http),
        addr: Some(bound),
        pool,
        periodic,
        beat_stop,
        heartbeat,
    })
}

impl Running {
    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("set at start")
    }

    /// The handle that stops this process; triggering it from a signal handler begins the drain.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Blocks until the shutdown handle is triggered, then drains and stops.
    pub fn wait(self) -> Result<ShutdownReport, Error> {
        while !self.shutdown.sleep(std::time::Duration::from_secs(3600)) {}
        self.shutdown()
    }

    /// Stops accepting requests and fetching jobs, lets running jobs finish within
    /// SHUTDOWN_TIMEOUT_SECS, puts any unfinished job back to pending and joins the threads.
    pub fn shutdown(mut self) -> Result<ShutdownReport, Error> {
        self.shutdown.trigger();
        let timeout = self.shared.config.shutdown_timeout();
        if let Some(http) = self.http.take() {
            http.stop();
        }
        let mut report = ShutdownReport::default();
        let mut in_flight = None;
        if let Some(pool) = self.pool.take() {
            let held = pool.in_flight();
            let busy = held.busy();
            in_flight = Some(held);
            if busy > 0 {
                log::info!(
                    "draining: waiting up to {} s for {busy} running job(s)",
                    timeout.as_secs()
                );
            }
            let left = pool.drain(timeout, self.shared.backend.health());
            report.finished = busy.saturating_sub(left);
        }
        for t in self.periodic.drain(..) {
            let _ = t.join();
        }
        // Only now, with every worker done or given up on, may the heartbeat stop; the jobs
        // left are put back below, before the registration goes.
        self.beat_stop.trigger();
        for t in self.heartbeat.drain(..) {
            let _ = t.join();
        }
        if let Some(id) = &self.worker_id {
            let mut store = self.shared.backend.open();
            match store.requeue_all(id) {
                Ok(back) => {
                    for job in &back.ids {
                        log::warn!("job {job} returned to pending: it outlived the shutdown timeout");
                    }
                    note_job_events(&self.shared, &back.events);
                    report.requeued = back.ids.len();
                    let _ = store.deregister(id);
                }
                Err(e) => log::warn!(
                    "could not check for unfinished jobs ({e}); any this process still held are recovered by another process once its heartbeat expires"
                ),
            }
        }
        if let Some(held) = in_flight {
            held.cancel_all();
        }
        log::info!(
            "stopped: {} job(s) finished during the drain, {} returned to pending",
            report.finished,
            report.requeued
        );
        Ok(report)
    }
}
