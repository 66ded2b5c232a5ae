//! jobq against a Redis Cluster (`redis+cluster://`) and a Sentinel group (`redis+sentinel://`),
//! through a failover of the master that holds its keys, and `REDIS_WAIT_REPLICAS`: a create is
//! acknowledged once replicas confirm it, and otherwise answered 503 naming the job stored; a
//! master killed during a run of 2,000 jobs, every accepted job accounted for. With
//! QUEUE_PARTITIONS=3 the queue is spread over the cluster's three masters: the lifecycle runs
//! across them, each holding its partition's keys, and the run loses a master of one partition.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The job id in a 503's "job <id> was stored on the Redis master…" message.
fn stored_id(body: &Value) -> String {
    let text = body["error"].as_str().unwrap_or_default();
    let after = text
        .split_once("job ")
        .unwrap_or_else(|| panic!("no job named in {text:?}"))
        .1;
    after.split(' ').next().unwrap().to_string()
}

#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
/// Polls `POST /jobs` until a job is stored: a 201, or a 503 saying the job was stored on the
/// master but not confirmed by a replica (after a failover the new master may have none left,
/// and that answer comes after REDIS_WAIT_TIMEOUT_MS). Returns its id and when the request that
/// stored it was sent. Any other 503 is "not yet".
fn stored_when_back(server: &TestServer, timeout: Duration) -> (String, Instant) {
    wait_for("POST /jobs to store a job", timeout, || {
        let sent = Instant::now();
        let r = server
            .try_request(
                "POST",
                "/jobs",
                json!({"type": "noop"}).to_string().as_bytes(),
            )
            .map_err(|e| e.to_string())?;
        match r.status {
            201 => Ok((r.json()["job_id"].as_str().unwrap().to_string(), sent)),
            503 if r.body.contains("stored on the Redis master") => {
                Ok((stored_id(&r.json()), sent))
            }
            503 => Err(format!("503 {}", r.body)),
            s => panic!("POST /jobs answered {s}: {}", r.body),
        }
    })
}

#[test]
fn a_create_that_replicas_do_not_confirm_answers_503_naming_the_stored_job() {
    // A Redis without replicas: WAIT 1 can never be satisfied.
    let redis = RedisServer::start();
    let server = TestServer::with_url(redis.url(), redis.dir(), |c| {
        c.num_workers = 0;
        c.redis_wait_replicas = 1;
        c.redis_wait_timeout_ms = 50;
    });
    let job = json!({"type": "noop", "idempotency_key": "k1"});
    let r = server.post_json("/jobs", &job);
    r.expect_status(503, "an unconfirmed create");
    assert_eq!(r.header("Retry-After"), Some("1"));
    let body = r.json();
    let text = body["error"].as_str().unwrap();
    assert!(
        text.contains("stored on the Redis master but not confirmed on 1 replica(s)")
            && text.contains("WAIT saw 0 of 1")
            && text.contains("same idempotency key is safe"),
        "{text}"
    );
    // It was stored, and a retry with the key names it rather than making another.
    let id = stored_id(&body);
    assert_eq!(server.job(&id)["status"], json!("pending"));
    let again = server.post_json("/jobs", &job);
    again.expect_status(200, "the retry");
    assert_eq!(again.json()["job_id"], json!(id));
    // A batch: the same, every job named.
    let r = server.post_json(
        "/jobs/batch",
        &json!({"jobs": [{"type": "noop"}, {"type": "noop"}]}),
    );
    r.expect_status(503, "an unconfirmed batch");
    assert!(
        r.body.contains("jobs ") && r.body.contains(" were stored"),
        "{}",
        r.body
    );
    assert_eq!(server.stat("total_jobs"), 3);
}

#[cfg(feature = "cluster")]
#[test]
fn jobq_runs_on_a_redis_cluster_and_follows_a_failover() {
    let mut cluster = RedisCluster::start();
    let server = TestServer::with_url(cluster.url(), cluster.dir(), |c| {
        c.redis_wait_replicas = 1;
        c.redis_wait_timeout_ms = 2000;
    });
    // The lifecycle, every create confirmed by the slot's replica.
    server.run_lifecycle();
    // The scripts that name no key of their own (queues, pause, explorer, workflows) route by
    // the key they declare for the purpose.
    server
        .post_json("/queues/default/pause", &json!({}))
        .expect_status(200, "pause");
    server
        .post_json("/queues/default/resume", &json!({}))
        .expect_status(200, "resume");
    server.get("/queues").expect_status(200, "GET /queues");
    server
        .get("/workflows")
        .expect_status(200, "GET /workflows");
    let listed = server.get("/jobs?status=completed");
    listed.expect_status(200, "explorer");
    let stats = server.stats();
    assert_eq!(stats["total_jobs"], json!(5), "{stats}");
    assert_eq!(stats["dlq_size"], json!(1), "{stats}");
    // Every key lies in the prefix's slot, on its master.
    let slot = cluster.key_slot("{jobq}");
    assert!(cluster.count_keys_in_slot(slot) > 5);
    let master = cluster.master_of_slot(slot);
    let keys: u64 = cluster.node_cmd(master, &["DBSIZE"]);
    assert_eq!(keys, cluster.count_keys_in_slot(slot));

    // Created before the crash, confirmed by the replica: still there after it.
    let before: Vec<String> = (0..10)
        .map(|_| server.submit(&json!({"type": "noop", "delay_ms": 600_000})))
        .collect();
    cluster.kill_master(master);
    let killed = Instant::now();
    let new_master = cluster.wait_for_failover(master, Duration::from_secs(30));
    let promoted = Instant::now();
    let (_, sent) = stored_when_back(&server, Duration::from_secs(10));
    let resumed = sent.saturating_duration_since(promoted);
    eprintln!(
        "cluster: master {master} killed, {new_master} promoted after {:?}, jobq created again {resumed:?} after the promotion",
        promoted - killed
    );
    assert!(resumed < Duration::from_secs(10), "{resumed:?}");
    for id in &before {
        assert_eq!(server.job(id)["status"], json!("pending"), "{id}");
    }
    // The old master comes back as the new one's replica: creates are confirmed again, and
    // jobs run.
    cluster.restart_node(master);
    cluster.wait_until_ok(Duration::from_secs(30));
    let after = wait_for("a confirmed create", Duration::from_secs(10), || {
        let r = server.post_json("/jobs", &json!({"type": "noop"}));
        match r.status {
            201 => Ok(r.json()["job_id"].as_str().unwrap().to_string()),
            _ => Err(format!("{} {}", r.status, r.body)),
        }
    });
    server.wait_for_status(&after, "completed", Duration::from_secs(10));
}

#[cfg(feature = "cluster")]
#[test]
fn jobq_follows_a_sentinel_failover_and_keeps_the_jobs_replicas_confirmed() {
    let mut group = RedisSentinel::start();
    let server = TestServer::with_url(group.url(), group.dir(), |c| {
        c.redis_wait_replicas = 1;
        c.redis_wait_timeout_ms = 2000;
    });
    let done = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&done, "completed", Duration::from_secs(10));
    let before: Vec<String> = (0..20)
        .map(|_| server.submit(&json!({"type": "noop", "delay_ms": 600_000})))
        .collect();
    let batch = server.post_json(
        "/jobs/batch",
        &json!({"jobs": [{"type": "noop", "delay_ms": 600_000}, {"type": "noop", "delay_ms": 600_000}]}),
    );
    batch.expect_status(201, "batch");

    group.kill_master();
    let killed = Instant::now();
    let new_master = group.wait_for_promotion(Duration::from_secs(30));
    let promoted = Instant::now();
    let (_, sent) = stored_when_back(&server, Duration::from_secs(10));
    let resumed = sent.saturating_duration_since(promoted);
    eprintln!(
        "sentinel: master {} killed, {new_master} promoted after {:?}, jobq created again {resumed:?} after the promotion",
        group.master_port(),
        promoted - killed
    );
    assert!(resumed < Duration::from_secs(10), "{resumed:?}");
    let mut ids = before;
    ids.extend(
        batch.json()["job_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string()),
    );
    for id in &ids {
        assert_eq!(server.job(id)["status"], json!("pending"), "{id}");
    }
    assert_eq!(server.stat("total_jobs"), 1 + 22 + 1);
    assert_eq!(server.stat("scheduled_jobs"), 22);
    // Workers claim and finish on the new master (which has no replica left to confirm).
    let (after, _) = stored_when_back(&server, Duration::from_secs(3));
    server.wait_for_status(&after, "completed", Duration::from_secs(10));
}

/// jobq's partitions under `{jobq}` once its process has made them (its fetcher reads the
/// layout on its first claim): `n` of them, on `n` different masters.
#[cfg(feature = "cluster")]
fn partitions_on_their_masters(cluster: &RedisCluster, n: usize) -> Vec<Partition> {
    let parts = wait_for(
        &format!("{n} partitions listed"),
        Duration::from_secs(10),
        || {
            let parts = cluster.partitions("{jobq}");
            match parts.len() == n {
                true => Ok(parts),
                false => Err(format!("{parts:?}")),
            }
        },
    );
    let mut masters: Vec<u16> = parts.iter().map(|p| p.master).collect();
    masters.sort_unstable();
    masters.dedup();
    assert_eq!(masters.len(), n, "partitions on shared masters: {parts:?}");
    parts
}

/// The ids in a batch's answer.
#[cfg(feature = "cluster")]
fn job_ids(v: &Value) -> Vec<String> {
    let ids = v["job_ids"].as_array();
    let ids = ids.unwrap_or_else(|| panic!("no job_ids: {v}"));
    ids.iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

#[cfg(feature = "cluster")]
#[test]
fn a_queue_in_three_partitions_spreads_over_the_three_masters_of_a_cluster() {
    let cluster = RedisCluster::start();
    let server = TestServer::with_url(cluster.url(), cluster.dir(), |c| {
        c.queue_partitions.default = 3;
    });
    // One partition on each master: the default `--cluster create` layout places them so.
    let parts = partitions_on_their_masters(&cluster, 3);
    let mut masters: Vec<u16> = parts.iter().map(|p| p.master).collect();
    masters.sort_unstable();
    let mut all = cluster.masters();
    all.sort_unstable();
    assert_eq!(masters, all, "{parts:?}");

    // The lifecycle across the partitions: create, claim, retry, DLQ, delayed, idempotency,
    // batch.
    let mut known = vec![server.run_lifecycle()];
    // Jobs without a key go to the partitions in turn: 30 reach every one.
    let plain: Vec<String> = (0..30)
        .map(|_| server.submit(&json!({"type": "noop"})))
        .collect();
    let mut spread = vec![0; parts.len()];
    for id in &plain {
        server.wait_for_status(id, "completed", Duration::from_secs(10));
        spread[partition_of(&parts, id)] += 1;
    }
    assert!(
        spread.iter().all(|&n| n > 0),
        "plain jobs by partition: {spread:?}"
    );
    known.extend(plain);
    // A batch lands whole in one partition.
    let batch = server.post_json(
        "/jobs/batch",
        &json!({"jobs": [{"type": "noop"}, {"type": "noop"}, {"type": "noop", "delay_ms": 50}]}),
    );
    batch.expect_status(201, "batch");
    let batch = job_ids(&batch.json());
    let home = partition_of(&parts, &batch[0]);
    for id in &batch {
        assert_eq!(partition_of(&parts, id), home, "batch {batch:?}");
        server.wait_for_status(id, "completed", Duration::from_secs(10));
    }
    known.extend(batch);
    // An idempotent repeat meets its first, and the key lies beside its job.
    for k in 0..6 {
        let keyed = json!({"type": "noop", "idempotency_key": format!("key-{k}")});
        let id = server.submit(&keyed);
        let again = server.post_json("/jobs", &keyed);
        again.expect_status(200, "idempotent repeat");
        assert_eq!(again.json()["job_id"], json!(id));
        let part = &parts[partition_of(&parts, &id)];
        let key = format!("{}:idem:key-{k}", part.prefix);
        let there: u64 = cluster.node_cmd(part.master, &["EXISTS", &key]);
        assert_eq!(there, 1, "{key} on {}", part.master);
        server.wait_for_status(&id, "completed", Duration::from_secs(10));
        known.push(id);
    }

    // Each master holds its partition's keys, and each job's record lies in the partition its
    // id names.
    let mut records = 0;
    for (p, part) in parts.iter().enumerate() {
        let keys = cluster.count_keys_in_slot(part.slot);
        let ids = cluster.job_ids_in(part);
        eprintln!(
            "partition {p} {}: slot {} on master {}, {keys} keys, {} job records",
            part.prefix,
            part.slot,
            part.master,
            ids.len()
        );
        assert!(keys > 0 && !ids.is_empty(), "partition {p}: {part:?}");
        for id in &ids {
            assert_eq!(partition_of(&parts, id), p, "{id} in {part:?}");
        }
        for id in known.iter().filter(|id| partition_of(&parts, id) == p) {
            assert!(ids.contains(id), "{id} not in {part:?}");
        }
        records += ids.len();
    }
    // /stats adds the partitions up: the lifecycle's 5 jobs, 30 plain, 3 batched, 6 keyed.
    let stats = server.stats();
    let total = 5 + 30 + 3 + 6;
    assert_eq!(records, total, "{stats}");
    assert_eq!(stats["total_jobs"], json!(total), "{stats}");
    assert_eq!(stats["completed_jobs"], json!(total - 1), "{stats}");
    assert_eq!(stats["failed_jobs"], json!(1), "{stats}");
    assert_eq!(stats["dlq_size"], json!(1), "{stats}");
    assert_eq!(stats["pending_jobs"], json!(0), "{stats}");
    assert_eq!(stats["running_jobs"], json!(0), "{stats}");
}

/// What became of the jobs of a run during which the master holding a partition of jobq's keys
/// was killed.
#[cfg(feature = "cluster")]
struct Accounted {
    accepted: usize,
    completed: usize,
    /// Accepted (201), then gone after the failover: the write never reached the replica.
    lost: usize,
    /// Accepted, and lost, by partition.
    accepted_in: Vec<usize>,
    lost_in: Vec<usize>,
    /// The partition whose master was killed.
    killed: usize,
}

#[cfg(feature = "cluster")]
impl Accounted {
    fn report(&self, setting: &str) {
        eprintln!(
            "{setting}, {} partition(s), partition {}'s master killed: {} accepted ({:?} by partition), {} completed, {} lost ({:?} by partition)",
            self.accepted_in.len(),
            self.killed,
            self.accepted,
            self.accepted_in,
            self.completed,
            self.lost,
            self.lost_in
        );
    }
}

/// 2,000 jobs submitted one by one (each with an idempotency key, sent again after a 503 until
/// it is stored) while 4 workers run them, the queue spread over `partitions` partitions (one
/// per master); the master of the last partition (partition 0's when there is one) is
/// SIGKILLed once 500 are in, its replica takes over (and the old master rejoins as its
/// replica), and every accepted job is then followed to its end: completed, or lost (404),
/// which only a job of the killed master's partition may be.
#[cfg(feature = "cluster")]
fn kill_the_master_during_a_run(wait_replicas: u32, partitions: u32) -> Accounted {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const JOBS: usize = 2000;
    let mut cluster = RedisCluster::start();
    let server = TestServer::with_url(cluster.url(), cluster.dir(), |c| {
        c.num_workers = 4;
        c.redis_wait_replicas = wait_replicas;
        c.redis_wait_timeout_ms = 1000;
        c.queue_partitions.default = partitions;
    });
    let parts = partitions_on_their_masters(&cluster, partitions as usize);
    let client = server.client();
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(JOBS)));
    let count = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (accepted, count) = (accepted.clone(), count.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(90);
            for i in 0..JOBS {
                let body = json!({"type": "noop", "idempotency_key": format!("run-{i}")});
                loop {
                    assert!(Instant::now() < deadline, "job {i} was never stored");
                    let r = client.try_request("POST", "/jobs", body.to_string().as_bytes());
                    match r {
                        Ok(r) if r.status == 201 || r.status == 200 => {
                            let id = r.json()["job_id"].as_str().unwrap().to_string();
                            accepted.lock().unwrap().push(id);
                            break;
                        }
                        // Stored on the master, not confirmed: sent again with its key, which
                        // answers its id once a replica has it (or creates it anew if the
                        // failover lost it).
                        Ok(r) if r.status == 503 => std::thread::sleep(Duration::from_millis(50)),
                        Ok(r) => panic!("POST /jobs answered {}: {}", r.status, r.body),
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    wait_for("500 jobs accepted", Duration::from_secs(60), || {
        let n = count.load(Ordering::SeqCst);
        (n >= 500).then_some(()).ok_or(format!("{n} accepted"))
    });
    let killed = parts.len() - 1;
    let master = parts[killed].master;
    cluster.kill_master(master);
    let at = Instant::now();
    let new_master = cluster.wait_for_failover(master, Duration::from_secs(30));
    eprintln!(
        "master {master} of partition {killed} killed, {new_master} promoted after {:?}",
        at.elapsed()
    );
    // The old master comes back as the new one's replica, so WAIT can be satisfied again.
    cluster.restart_node(master);
    cluster.wait_until_ok(Duration::from_secs(30));
    producer.join().expect("the producer");
    let ids = accepted.lock().unwrap().clone();
    assert_eq!(ids.len(), JOBS);
    // Every accepted job ends: completed, or gone with the master.
    let (mut completed, mut lost) = (0, Vec::new());
    let at = Instant::now();
    wait_for("every accepted job to end", Duration::from_secs(90), || {
        (completed, lost) = (0, Vec::new());
        let mut open = Vec::new();
        for id in &ids {
            let r = server.get(&format!("/jobs/{id}"));
            match r.status {
                404 => lost.push(id.clone()),
                200 if r.json()["status"] == "completed" => completed += 1,
                200 => open.push(r.json()["status"].to_string()),
                s => return Err(format!("GET /jobs/{id}: {s}")),
            }
        }
        open.is_empty().then_some(()).ok_or(format!(
            "{} not ended yet, e.g. {:?}",
            open.len(),
            open.first()
        ))
    });
    eprintln!(
        "every job ended {:?} after the producer's last",
        at.elapsed()
    );
    let by_partition = |ids: &[String]| {
        let mut n = vec![0; parts.len()];
        ids.iter().for_each(|id| n[partition_of(&parts, id)] += 1);
        n
    };
    let a = Accounted {
        accepted: ids.len(),
        completed,
        lost: lost.len(),
        accepted_in: by_partition(&ids),
        lost_in: by_partition(&lost),
        killed,
    };
    assert!(a.accepted_in.iter().all(|&n| n > 0), "{:?}", a.accepted_in);
    let elsewhere: usize = (a.lost_in.iter().enumerate())
        .filter(|&(p, _)| p != killed)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        elsewhere, 0,
        "jobs lost outside partition {killed}: {:?}",
        a.lost_in
    );
    a
}

/// With REDIS_WAIT_REPLICAS=1 a create is acknowledged once a replica has it: none is lost.
#[cfg(feature = "cluster")]
fn no_confirmed_job_is_lost(partitions: u32) {
    let a = kill_the_master_during_a_run(1, partitions);
    a.report("REDIS_WAIT_REPLICAS=1");
    assert_eq!(a.lost, 0);
    assert_eq!(a.completed, a.accepted);
}

/// Without WAIT, the last writes before the kill may not have reached the replica: those jobs
/// were acknowledged and are gone. The count is reported, not bounded.
#[cfg(feature = "cluster")]
fn every_job_is_accounted_for(partitions: u32) {
    let a = kill_the_master_during_a_run(0, partitions);
    a.report("REDIS_WAIT_REPLICAS=0");
    assert_eq!(a.completed + a.lost, a.accepted);
}

#[cfg(feature = "cluster")]
#[test]
fn a_master_killed_during_a_run_loses_no_job_confirmed_by_a_replica() {
    no_confirmed_job_is_lost(1);
}

#[cfg(feature = "cluster")]
#[test]
fn a_master_killed_during_a_run_without_wait_accounts_for_every_job() {
    every_job_is_accounted_for(1);
}

#[cfg(feature = "cluster")]
#[test]
fn a_partitions_master_killed_during_a_run_loses_no_job_confirmed_by_a_replica() {
    no_confirmed_job_is_lost(3);
}

#[cfg(feature = "cluster")]
#[test]
fn a_partitions_master_killed_during_a_run_without_wait_accounts_for_every_job() {
    every_job_is_accounted_for(3);
}

/// A Sentinel group whose master and replica require a password (the sentinels know it and
/// require none, so they would refuse an AUTH: jobq must ask them without credentials): jobq
/// with the master's password in its URL runs the lifecycle; with a wrong one, `jobq::start`
/// refuses at once, saying so and without the passwords.
#[cfg(feature = "cluster")]
#[test]
fn jobq_reaches_a_sentinel_master_with_its_password_and_a_wrong_one_stops_start_up() {
    let password = "it-sentinel-pw-3f9a6c1e";
    let wrong = "it-WRONG-pw-5b0d27e4";
    let group = RedisSentinel::start_with(SentinelOptions {
        password: Some(password),
    });
    // The data nodes refuse a command without it.
    for port in [group.master_port(), group.replica_port()] {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        let e = redis::cmd("GET")
            .arg("k")
            .query::<Option<String>>(&mut conn);
        let e = e.expect_err("GET without the password");
        assert_eq!(e.code(), Some("NOAUTH"), "{e}");
    }
    let url = group.url();
    assert!(
        url.starts_with(&format!("redis+sentinel://:{password}@")),
        "{url}"
    );

    let server = TestServer::with_url(url.clone(), group.dir(), |_| {});
    server.run_lifecycle();
    assert_eq!(server.stat("total_jobs"), 5);
    drop(server);

    // Bounded: a start-up that hung would fail here, not stall the test run.
    let bad = url.replace(password, wrong);
    let dir = group.dir().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = TestServer::try_with_url(bad, &dir, |_| {})
            .map(drop)
            .map_err(|e| {
                let rejected = matches!(&e, jobq::Error::Store(s) if s.is_rejected());
                (e.to_string(), rejected)
            });
        let _ = tx.send(outcome);
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("jobq::start with a wrong password to return within 30 s");
    let (text, rejected) = outcome.expect_err("jobq::start with a wrong password");
    eprintln!("jobq::start with a wrong password: {text}");
    assert!(rejected, "{text}");
    assert!(
        text.contains("Redis refused the connection") && text.contains("wrong password"),
        "{text}"
    );
    assert!(
        !text.contains(password) && !text.contains(wrong),
        "the error shows a password: {text}"
    );
}
