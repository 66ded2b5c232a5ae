//! A private Redis Cluster per test: three masters and a replica of each, six `redis-server`
//! processes on free loopback ports in one temp dir ([`RedisCluster`]). It owns their start (and
//! `redis-cli --cluster create`), the wait until the cluster serves every slot, what the cluster
//! says of itself (`CLUSTER NODES` parsed into [`ClusterNode`]s), a crash of a master
//! (SIGKILL) and the wait for its replica's promotion, and stopping every process by its PID.
//!
//! Failover is quick on purpose: a node is failing after [`NODE_TIMEOUT_MS`] without an answer,
//! and any replica may stand for election however long it has been cut off from its master
//! (`cluster-replica-validity-factor 0`). Measured (Redis 7.0, two shared cores): the cluster is
//! up in 2 to 3 s; every node agrees that a killed master's replica serves its slots 3.7 to
//! 4.5 s after the kill; a restarted old master is its successor's synced replica 0.1 s after its
//! start.

use super::redis_node::{
    free_cluster_port, info_field, run_redis_cli, tear_down, wait_slowly, Kind, RedisNode,
};
use super::{grant_access, path_text, temp_dir, try_redis_cmd, Pki};
use redis::{ErrorKind, FromRedisValue, ServerErrorKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `cluster-node-timeout`: how long a node may not answer before its peers flag it as failing.
/// A replica's election follows about a second after its master is flagged. Lower than this, a
/// busy machine (two shared cores) risks flagging a node that is merely slow.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// The number of hash slots of every Redis Cluster.
pub const SLOTS: u32 = 16384;

/// The masters of every cluster this harness makes.
const MASTERS: usize = 3;

/// What [`RedisCluster::start_with`] makes; the default is [`RedisCluster::start`]'s cluster.
pub struct ClusterOptions<'a> {
    /// Replicas of each master.
    pub replicas: usize,
    /// TLS only, with this PKI: every node serves TLS on its port and no plaintext port
    /// (`--port 0`), speaks TLS on the cluster bus and for replication, and requires a client
    /// certificate signed by the CA (Redis's default); nodes present the client certificate to
    /// each other. The harness's own commands use the CA and the client certificate too.
    pub tls: Option<&'a Pki>,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions {
            replicas: 1,
            tls: None,
        }
    }
}

/// One line of `CLUSTER NODES`: a node as one member of the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    /// "myself", "master", "slave", "fail?", "fail", "handshake", "noaddr", "nofailover"...
    pub flags: Vec<String>,
    /// The node ID of its master, for a replica.
    pub master_id: Option<String>,
    /// The slot ranges it serves, inclusive (a master's).
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    /// Flagged failing by this node ("fail?") or by the cluster's majority ("fail").
    pub fn is_failing(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }

    pub fn slot_count(&self) -> u32 {
        self.slots.iter().map(|&(a, b)| u32::from(b - a) + 1).sum()
    }

    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }

    /// Parses one line: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
    /// <pong-recv> <config-epoch> <link-state> <slot>...`, a slot being `N` or `N-M`; a slot's
    /// migration (`[N->-id]`, `[N-<-id]`) is not one it serves, so it is left out.
    pub fn parse(line: &str) -> Result<ClusterNode, String> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return Err(format!("not a CLUSTER NODES line: {line:?}"));
        }
        let addr = f[1].split('@').next().unwrap_or_default();
        let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
        let port = port.ok_or_else(|| format!("no port in {:?}: {line:?}", f[1]))?;
        let slot = |s: &str| {
            s.parse::<u16>()
                .map_err(|e| format!("slot {s:?}: {e}: {line:?}"))
        };
        let mut slots = Vec::new();
        for s in f[8..].iter().filter(|s| !s.starts_with('[')) {
            slots.push(match s.split_once('-') {
                Some((a, b)) => (slot(a)?, slot(b)?),
                None => (slot(s)?, slot(s)?),
            });
        }
        Ok(ClusterNode {
            id: f[0].to_string(),
            port,
            flags: f[2].split(',').map(str::to_string).collect(),
            master_id: Some(f[3]).filter(|m| *m != "-").map(str::to_string),
            slots,
        })
    }
}

/// One of jobq's partitions (`QUEUE_PARTITIONS`) as the cluster holds it: a whole keyspace
/// under a hash tag of its own, so in one slot, on one master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Its key prefix: jobq's `REDIS_PREFIX` for partition 0, `{jobq~tttt}` for the others.
    pub prefix: String,
    /// The four hex digits its jobs' ids begin with; None for partition 0.
    pub tag: Option<String>,
    /// The slot of its hash tag, which every key of the partition is in.
    pub slot: u16,
    /// The port of the master serving that slot when it was read.
    pub master: u16,
}

/// The index in `parts` of the partition holding job `id`: the one whose tag its first four
/// hex digits are, else partition 0.
pub fn partition_of(parts: &[Partition], id: &str) -> usize {
    let head = id.get(..4);
    let found = parts.iter().position(|p| p.tag.as_deref() == head);
    found.unwrap_or(0)
}

/// The prefix of the partition with `tag`: the four hex digits added to the hash tag of
/// `prefix`, before its closing brace (`{jobq}` → `{jobq~0a1f}`).
fn partition_prefix(prefix: &str, tag: &str) -> String {
    let open = prefix.find('{');
    let close = open.and_then(|o| prefix[o..].find('}').map(|c| o + c));
    let close = close.unwrap_or_else(|| panic!("prefix {prefix:?} has no hash tag"));
    format!("{}~{tag}{}", &prefix[..close], &prefix[close..])
}

/// A master killed by [`RedisCluster::kill_master`], as the cluster knew it then.
struct Killed {
    port: u16,
    id: String,
    replicas: Vec<u16>,
}

/// Three masters and three replicas on loopback, every slot served. Dropping it stops every
/// process (SIGTERM, SIGKILL after 3 s) and removes the temp dir, which a failed test keeps
/// (its path and the end of every node's log are printed).
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<RedisNode>,
    /// The masters when the cluster came up, by slot: what [`RedisCluster::url`] names.
    seeds: Vec<u16>,
    killed: Vec<Killed>,
    /// Serves TLS only ([`ClusterOptions::tls`]).
    tls: bool,
}

impl RedisCluster {
    /// Starts six nodes, makes them a cluster of three masters with a replica each, and waits
    /// until every node says the cluster is ok and every replica has synced with its master.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(ClusterOptions::default())
    }

    /// Starts three masters with `options.replicas` replicas each, over TLS if `options.tls`,
    /// and waits as [`RedisCluster::start`] does.
    pub fn start_with(options: ClusterOptions) -> RedisCluster {
        let dir = temp_dir("cluster");
        let nodes = MASTERS * (1 + options.replicas);
        let mut cluster = RedisCluster {
            nodes: Vec::with_capacity(nodes),
            dir,
            seeds: Vec::new(),
            killed: Vec::new(),
            tls: options.tls.is_some(),
        };
        for i in 1..=nodes {
            let name = format!("node{i}");
            let node = RedisNode::start(
                &cluster.dir,
                &name,
                Kind::Data,
                free_cluster_port,
                |port, dir| tls_node_args(node_args(port, dir), options.tls),
            );
            if let Some(pki) = options.tls {
                grant_access(node.port(), pki.access());
            }
            cluster.nodes.push(node);
        }
        // redis-cli picks three masters, splits the slots among them, gives each a replica of
        // the other three and waits until all six have met (a second or two); the roles then
        // spread by gossip, which wait_until_ok waits for.
        let mut args = options.tls.map(Pki::cli_args).unwrap_or_default();
        args.extend(["--cluster", "create"].map(String::from));
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        let replicas = options.replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"].map(String::from));
        let log = cluster.dir.join("cluster-create.log");
        if let Err(e) = run_redis_cli(&args, &log, Duration::from_secs(30)) {
            panic!("could not create the cluster: {e}");
        }
        cluster.wait_until_ok(Duration::from_secs(20));
        cluster.seeds = cluster.masters();
        assert_eq!(
            cluster.seeds.len(),
            MASTERS,
            "masters: {:?}",
            cluster.nodes()
        );
        cluster
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` (`rediss+cluster://` for TLS):
    /// the three masters the cluster started with (ordered by slot), whether they still run or
    /// not.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .seeds
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("{}+cluster://{}", self.scheme(), nodes.join(","))
    }

    /// `redis://127.0.0.1:P` (`rediss://` for TLS) for each node of [`RedisCluster::url`].
    pub fn seed_urls(&self) -> Vec<String> {
        self.seeds
            .iter()
            .map(|p| format!("{}://127.0.0.1:{p}", self.scheme()))
            .collect()
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "rediss"
        } else {
            "redis"
        }
    }

    /// The temp dir: a folder per node (`node1`...) with its `redis.log` and `nodes.conf`, and
    /// `cluster-create.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ports of the nodes that run (not killed), masters and replicas.
    pub fn ports(&self) -> Vec<u16> {
        self.live().map(RedisNode::port).collect()
    }

    fn live(&self) -> impl Iterator<Item = &RedisNode> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    fn node(&mut self, port: u16) -> &mut RedisNode {
        let node = self.nodes.iter_mut().find(|n| n.port() == port);
        node.unwrap_or_else(|| panic!("no node of this cluster has port {port}"))
    }

    /// `CLUSTER NODES` as the first running node that answers sees the cluster.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let mut errors = Vec::new();
        for node in self.live() {
            match view(node.port()) {
                Ok(nodes) => return nodes,
                Err(e) => errors.push(format!("port {}: {e}", node.port())),
            }
        }
        panic!("no node answered CLUSTER NODES: {errors:?}");
    }

    /// The ports of the masters serving slots and not failing, by their first slot.
    pub fn masters(&self) -> Vec<u16> {
        let mut masters: Vec<ClusterNode> = self.nodes().into_iter().filter(serving).collect();
        masters.sort_by_key(|m| m.slots.first().map(|s| s.0));
        masters.iter().map(|m| m.port).collect()
    }

    /// The ports of the replicas not failing, in the order of their masters'.
    pub fn replicas(&self) -> Vec<u16> {
        self.masters()
            .into_iter()
            .flat_map(|m| self.replicas_of(m))
            .collect()
    }

    /// The ports of master `master_port`'s replicas not failing.
    pub fn replicas_of(&self, master_port: u16) -> Vec<u16> {
        replicas_in(&self.nodes(), master_port)
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`, so hash tags count as Redis counts them).
    pub fn key_slot(&self, key: &str) -> u16 {
        let slot: u16 = self.cmd_any(&["CLUSTER", "KEYSLOT", key]);
        slot
    }

    /// The port of the master serving `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        let nodes = self.nodes();
        let master = nodes.iter().find(|n| serving(n) && n.serves(slot));
        master
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {nodes:?}"))
            .port
    }

    /// The port of the master serving `key`'s slot.
    pub fn master_for_key(&self, key: &str) -> u16 {
        self.master_of_slot(self.key_slot(key))
    }

    /// The number of keys in `slot` on the master serving it (`CLUSTER COUNTKEYSINSLOT`).
    pub fn count_keys_in_slot(&self, slot: u16) -> u64 {
        let port = self.master_of_slot(slot);
        self.node_cmd(port, &["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
    }

    /// jobq's partitions under `prefix` (its REDIS_PREFIX, `{jobq}` by default), in order:
    /// partition 0, the prefix itself, then one per tag of the list `<prefix>:partitions`, read
    /// from the master serving the prefix's slot; each with its slot and that slot's master.
    pub fn partitions(&self, prefix: &str) -> Vec<Partition> {
        let home = self.master_for_key(prefix);
        let list = format!("{prefix}:partitions");
        let tags: Vec<String> = self.node_cmd(home, &["LRANGE", &list, "0", "-1"]);
        let tags = std::iter::once(None).chain(tags.into_iter().map(Some));
        tags.map(|tag| {
            let prefix = match &tag {
                None => prefix.to_string(),
                Some(t) => partition_prefix(prefix, t),
            };
            let slot = self.key_slot(&format!("{prefix}:x"));
            Partition {
                master: self.master_of_slot(slot),
                prefix,
                tag,
                slot,
            }
        })
        .collect()
    }

    /// The ids of the job records (`<prefix>:job:<id>`) of `part` on the master now serving
    /// its slot (`CLUSTER GETKEYSINSLOT`).
    pub fn job_ids_in(&self, part: &Partition) -> Vec<String> {
        let port = self.master_of_slot(part.slot);
        let count = self.count_keys_in_slot(part.slot).to_string();
        let slot = part.slot.to_string();
        let keys: Vec<String> = self.node_cmd(port, &["CLUSTER", "GETKEYSINSLOT", &slot, &count]);
        let records = format!("{}:job:", part.prefix);
        let ids = keys.iter().filter_map(|k| k.strip_prefix(&records));
        ids.filter(|id| !id.contains(':'))
            .map(str::to_string)
            .collect()
    }

    /// One command to the node on `port`; panics on an error reply (a `MOVED` too: this is
    /// not cluster-aware, see [`RedisCluster::cmd`]).
    pub fn node_cmd<T: FromRedisValue>(&self, port: u16, args: &[&str]) -> T {
        try_redis_cmd(port, args).unwrap_or_else(|e| panic!("{args:?} to node {port}: {e}"))
    }

    /// One command to the first running node, wherever the keys are; panics if it fails.
    fn cmd_any<T: FromRedisValue>(&self, args: &[&str]) -> T {
        let port = self.live().next().expect("a running node").port();
        self.node_cmd(port, args)
    }

    /// One command, cluster-aware: sent to the first running node and on to the node a
    /// `MOVED` reply names, as a cluster client would (up to 5 hops). `ASK` (a slot being
    /// migrated) is not followed: this harness migrates no slots. Panics if it fails.
    pub fn cmd<T: FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} to the cluster: {e}"))
    }

    /// [`RedisCluster::cmd`] giving the error back, with the port that answered it.
    pub fn try_cmd<T: FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let mut port = self.live().next().expect("a running node").port();
        for _ in 0..5 {
            match try_redis_cmd(port, args) {
                Ok(v) => return Ok(v),
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::Moved) => {
                    let (addr, _slot) = e.redirect_node().ok_or(format!("{e}"))?;
                    let next = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                    port = next.ok_or_else(|| format!("node {port}: MOVED to {addr:?}"))?;
                }
                Err(e) => return Err(format!("node {port}: {e}")),
            }
        }
        Err(format!("{args:?}: more than 5 MOVED replies"))
    }

    /// Waits, up to `timeout`, until every running replica has every write its master has
    /// (replication is asynchronous: a write a master acknowledged is lost if the master dies
    /// before sending it on).
    pub fn wait_for_replication(&self, timeout: Duration) {
        wait_slowly("the replicas to catch up", timeout, || {
            let nodes = view(self.ports()[0])?;
            for master in nodes.iter().filter(|n| serving(n)) {
                let info: String = try_redis_cmd(master.port, &["INFO", "replication"])
                    .map_err(|e| format!("INFO on {}: {e}", master.port))?;
                let offset = info_field(&info, "master_repl_offset").unwrap_or("?");
                for replica in replicas_in(&nodes, master.port) {
                    // slaveN:ip=127.0.0.1,port=P,state=online,offset=N,lag=0
                    let line = info
                        .lines()
                        .find(|l| l.contains(&format!(",port={replica},")));
                    let caught_up = line.is_some_and(|l| {
                        l.contains("state=online") && l.contains(&format!(",offset={offset},"))
                    });
                    if !caught_up {
                        return Err(format!("master {} at {offset}: {line:?}", master.port));
                    }
                }
            }
            Ok(())
        })
    }

    /// Waits, up to `timeout`, until every running node says `cluster_state:ok` with every slot
    /// served and knows every node, there are three masters serving slots, and every running
    /// replica's link to its master is up (so it has had its full sync).
    pub fn wait_until_ok(&self, timeout: Duration) {
        wait_slowly("the cluster to be ok on every node", timeout, || {
            for node in self.live() {
                let port = node.port();
                let info: String = node
                    .cmd(&["CLUSTER", "INFO"])
                    .map_err(|e| format!("CLUSTER INFO on {port}: {e}"))?;
                let want = [
                    ("cluster_state", "ok".to_string()),
                    ("cluster_slots_ok", SLOTS.to_string()),
                    ("cluster_known_nodes", self.nodes.len().to_string()),
                ];
                for (field, value) in want {
                    if info_field(&info, field) != Some(value.as_str()) {
                        return Err(format!(
                            "node {port}: {field}: {:?}",
                            info_field(&info, field)
                        ));
                    }
                }
                // Right after `--cluster create`, a node may still see a replica as an empty
                // master: the roles spread by gossip. Every running node must be a serving
                // master or a replica of one, in every running node's view.
                let nodes = view(port)?;
                let masters: Vec<&ClusterNode> = nodes.iter().filter(|n| serving(n)).collect();
                let in_place = |n: &&ClusterNode| {
                    masters.iter().any(|m| m.id == n.id)
                        || n.flags.iter().any(|f| f == "slave")
                            && masters.iter().any(|m| n.master_id.as_ref() == Some(&m.id))
                };
                let live = self.ports();
                let live_nodes = nodes.iter().filter(|n| live.contains(&n.port));
                if masters.len() != MASTERS || !live_nodes.clone().all(|n| in_place(&n)) {
                    return Err(format!("node {port} sees {nodes:?}"));
                }
                let me = nodes.iter().find(|n| n.flags.iter().any(|f| f == "myself"));
                if me.is_some_and(|me| !me.is_master()) {
                    let info: String = node
                        .cmd(&["INFO", "replication"])
                        .map_err(|e| format!("INFO on {port}: {e}"))?;
                    if info_field(&info, "master_link_status") != Some("up") {
                        return Err(format!("replica {port}'s link: {info}"));
                    }
                }
            }
            Ok(())
        })
    }

    /// Kills master `port` with SIGKILL (a crash: it tells its peers nothing). Its replicas go on
    /// serving reads of its keys but refuse writes until one of them is promoted
    /// ([`RedisCluster::wait_for_failover`]); until then its slots are down and so, with the
    /// default `cluster-require-full-coverage yes`, is the whole cluster (`CLUSTERDOWN`).
    pub fn kill_master(&mut self, port: u16) {
        let nodes = self.nodes();
        let master = nodes.iter().find(|n| n.port == port && serving(n));
        let id = master
            .unwrap_or_else(|| panic!("{port} is not a master: {nodes:?}"))
            .id
            .clone();
        let replicas = replicas_in(&nodes, port);
        assert!(
            !replicas.is_empty(),
            "master {port} has no replica: {nodes:?}"
        );
        self.node(port).kill();
        self.killed.push(Killed { port, id, replicas });
    }

    /// Waits, up to `timeout`, until every running node agrees that killed master
    /// `old_master_port` has failed and that one of its replicas is the master of its slots,
    /// and says the cluster is ok with every slot served. Returns the new master's port.
    pub fn wait_for_failover(&self, old_master_port: u16, timeout: Duration) -> u16 {
        let killed = self.killed.iter().find(|k| k.port == old_master_port);
        let killed =
            killed.unwrap_or_else(|| panic!("{old_master_port} was not killed by kill_master"));
        let what = format!("a replica of {old_master_port} to take over");
        wait_slowly(&what, timeout, || {
            let mut promoted = None;
            for node in self.live() {
                let port = node.port();
                let info: String = node
                    .cmd(&["CLUSTER", "INFO"])
                    .map_err(|e| format!("CLUSTER INFO on {port}: {e}"))?;
                let state = info_field(&info, "cluster_state");
                let slots_ok = info_field(&info, "cluster_slots_ok");
                if state != Some("ok") || slots_ok != Some(&SLOTS.to_string()) {
                    return Err(format!(
                        "node {port}: cluster_state {state:?}, slots ok {slots_ok:?}"
                    ));
                }
                let nodes = view(port)?;
                let old = nodes.iter().find(|n| n.id == killed.id);
                if !old.is_some_and(|o| o.flags.iter().any(|f| f == "fail")) {
                    return Err(format!("node {port} sees the old master as {old:?}"));
                }
                let new = nodes
                    .iter()
                    .find(|n| killed.replicas.contains(&n.port) && serving(n));
                let new =
                    new.ok_or_else(|| format!("node {port} sees no promoted replica: {nodes:?}"))?;
                if promoted.is_some_and(|p| p != new.port) {
                    return Err(format!(
                        "nodes disagree on the new master: {promoted:?}, {}",
                        new.port
                    ));
                }
                promoted = Some(new.port);
            }
            promoted.ok_or_else(|| "no node runs".to_string())
        })
    }

    /// Starts a killed node again on its port, from its own `nodes.conf`: it rejoins the
    /// cluster, and a master that was failed over comes back as a replica of its successor.
    /// Does not wait; [`RedisCluster::wait_until_ok`] does.
    pub fn restart_node(&mut self, port: u16) {
        self.node(port).restart();
        self.killed.retain(|k| k.port != port);
    }
}

/// The arguments of cluster node on `port` in `dir`.
fn node_args(port: u16, dir: &Path) -> Vec<String> {
    let port = port.to_string();
    let timeout = NODE_TIMEOUT_MS.to_string();
    let dir = dir.to_str().expect("a UTF-8 temp dir").to_string();
    #[rustfmt::skip]
    let args = [
        "--port", &port, "--bind", "127.0.0.1", "--dir", &dir,
        "--appendonly", "no", "--save", "",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", &timeout,
        // A replica may stand for election however long its link to its master has been down
        // (by default not if longer than 10 node timeouts): a test wants a failover, not
        // a cluster that stays down for lack of a fresh enough replica.
        "--cluster-replica-validity-factor", "0",
        // A replica stays with its master: no moving to another master left without one.
        "--cluster-allow-replica-migration", "no",
        // A replica's full sync starts at once, not after the default 5 s wait for others.
        "--repl-diskless-sync-delay", "0",
    ];
    args.map(String::from).to_vec()
}

/// `args` (a node's, from [`node_args`]) for a TLS-only node if `tls`: its port becomes its TLS
/// port, with no plaintext one.
fn tls_node_args(mut args: Vec<String>, tls: Option<&Pki>) -> Vec<String> {
    let Some(pki) = tls else { return args };
    let at = args.iter().position(|a| a == "--port").expect("--port");
    args[at] = "--tls-port".to_string();
    #[rustfmt::skip]
    args.extend([
        "--port", "0", "--tls-cluster", "yes", "--tls-replication", "yes",
        // What a node shows the others on the bus and its master: its server certificate is
        // for serverAuth only.
        "--tls-client-cert-file", &path_text(&pki.client.0),
        "--tls-client-key-file", &path_text(&pki.client.1),
    ].map(String::from));
    args.extend(pki.server_args(true));
    args
}

/// `CLUSTER NODES` of node `port`, parsed.
fn view(port: u16) -> Result<Vec<ClusterNode>, String> {
    let text: String = try_redis_cmd(port, &["CLUSTER", "NODES"])
        .map_err(|e| format!("CLUSTER NODES on {port}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(ClusterNode::parse)
        .collect()
}

/// A master that serves slots and is not failing.
fn serving(n: &ClusterNode) -> bool {
    n.is_master() && !n.is_failing() && !n.slots.is_empty()
}

/// The ports of `master_port`'s replicas (not failing) in `nodes`.
fn replicas_in(nodes: &[ClusterNode], master_port: u16) -> Vec<u16> {
    let Some(master) = nodes.iter().find(|n| n.port == master_port) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = nodes
        .iter()
        .filter(|n| n.master_id.as_ref() == Some(&master.id) && !n.is_failing() && !n.is_master())
        .map(|n| n.port)
        .collect();
    ports.sort_unstable();
    ports
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        tear_down(self.nodes.iter_mut().collect(), &self.dir, "the cluster's");
    }
}
