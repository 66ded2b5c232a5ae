//! jobq against a TLS-only Redis Cluster (`rediss+cluster://`): nodes that serve TLS on their
//! one port, speak it on the cluster bus, and require a client certificate signed by their CA,
//! reached with REDIS_CA_CERT, REDIS_CLIENT_CERT and REDIS_CLIENT_KEY as for `rediss://`, with
//! QUEUE_PARTITIONS spreading the queue over every master.

#[cfg(all(feature = "cluster", feature = "redis-tls"))]
use crate::harness::*;
#[cfg(all(feature = "cluster", feature = "redis-tls"))]
use serde_json::json;
#[cfg(all(feature = "cluster", feature = "redis-tls"))]
use std::collections::BTreeSet;
#[cfg(all(feature = "cluster", feature = "redis-tls"))]
use std::time::Duration;

/// Sends `PING` in plain text to `port`: the error, or what it answered.
#[cfg(all(feature = "cluster", feature = "redis-tls"))]
fn plain_ping(port: u16) -> Result<String, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map_err(|e| e.to_string())
}

#[cfg(all(feature = "cluster", feature = "redis-tls"))]
#[test]
fn jobq_runs_on_a_tls_redis_cluster_with_a_partition_on_every_master() {
    let pki = make_pki();
    let cluster = RedisCluster::start_with(ClusterOptions {
        replicas: 0,
        tls: Some(&pki),
    });
    let url = cluster.url();
    assert!(url.starts_with("rediss+cluster://127.0.0.1:"), "{url}");
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3, "{:?}", cluster.nodes());

    // TLS only: no plaintext port, and plain text to the TLS port gets no answer.
    for port in cluster.ports() {
        let conf: Vec<String> = cluster.node_cmd(port, &["CONFIG", "GET", "port"]);
        assert_eq!(conf, ["port", "0"], "node {port}");
        let tls: Vec<String> = cluster.node_cmd(port, &["CONFIG", "GET", "tls-cluster"]);
        assert_eq!(tls, ["tls-cluster", "yes"], "node {port}");
        let plain = plain_ping(port);
        assert!(plain.is_err(), "plain text to node {port}: {plain:?}");
    }

    let ca = path_text(&pki.ca);
    let (cert, key) = (path_text(&pki.client.0), path_text(&pki.client.1));
    let server = TestServer::with_url(url, cluster.dir(), |c| {
        c.redis_ca_cert = Some(ca);
        c.redis_client_cert = Some(cert);
        c.redis_client_key = Some(key);
        c.queue_partitions.default = 3;
    });
    server.run_lifecycle();
    let more: Vec<String> = (0..9)
        .map(|_| server.submit(&json!({"type": "noop"})))
        .collect();
    for id in &more {
        server.wait_for_status(id, "completed", Duration::from_secs(10));
    }
    let stats = server.stats();
    assert_eq!(stats["total_jobs"], json!(5 + 9), "{stats}");
    assert_eq!(stats["dlq_size"], json!(1), "{stats}");

    // Partitions 1 and 2, whose tags partition 0 lists, sit on the two masters that do not
    // hold partition 0: one partition per master.
    let tags: Vec<String> = cluster.cmd(&["LRANGE", "{jobq}:partitions", "0", "-1"]);
    assert_eq!(tags.len(), 2, "{tags:?}");
    let mut prefixes = vec!["{jobq}".to_string()];
    prefixes.extend(tags.iter().map(|t| format!("{{jobq~{t}}}")));
    let holders: BTreeSet<u16> = prefixes
        .iter()
        .map(|p| cluster.master_for_key(&format!("{p}:x")))
        .collect();
    assert_eq!(
        holders,
        masters.iter().copied().collect(),
        "partitions {prefixes:?}"
    );
    // Each master holds jobs: nine creates in a row went round the three partitions, and a
    // job's id begins with its partition's tag (partition 0's with no partition's tag).
    let partition_of = |id: &str| tags.iter().position(|t| id.starts_with(t.as_str()));
    let used: BTreeSet<Option<usize>> = more.iter().map(|id| partition_of(id)).collect();
    assert_eq!(used.len(), 3, "partitions of {more:?}: {used:?}");
    for (prefix, master) in prefixes.iter().zip(&holders) {
        let slot = cluster.key_slot(&format!("{prefix}:x"));
        assert!(
            cluster.count_keys_in_slot(slot) > 0,
            "no key of {prefix} on {master}"
        );
    }
}

/// jobq given the nodes' TLS-only port without TLS (`redis+cluster://`) cannot reach them: it
/// starts (an outage is no reason to stop) but is not healthy.
#[cfg(all(feature = "cluster", feature = "redis-tls"))]
#[test]
fn jobq_without_tls_is_not_served_by_a_tls_redis_cluster() {
    let pki = make_pki();
    let cluster = RedisCluster::start_with(ClusterOptions {
        replicas: 0,
        tls: Some(&pki),
    });
    let plain = cluster.url().replacen("rediss+", "redis+", 1);
    let server = TestServer::with_url(plain, cluster.dir(), |_| {});
    let r = server.get("/health");
    assert_eq!(r.status, 503, "{}", r.body);
    let r = server.post_json("/jobs", &json!({"type": "noop"}));
    assert_eq!(r.status, 503, "{}", r.body);
}
