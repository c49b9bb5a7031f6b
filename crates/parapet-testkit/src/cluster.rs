//! A 3-master Redis Cluster of real `redis-server` processes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::RedisServer;

/// Three `redis-server` processes in cluster mode with all 16384 slots assigned.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// One cluster for the whole test binary, started on first use; its tests keep apart
    /// by key prefix.
    pub fn shared() -> &'static RedisCluster {
        static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
        CLUSTER.get_or_init(Self::start)
    }

    /// Starts three masters, splits the slots between them and waits for `cluster_state:ok`.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (node, (start, end)) in nodes.iter().zip(ranges) {
            let reply = node.command(&[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &start.to_string(),
                &end.to_string(),
            ]);
            assert_eq!(reply, "+OK", "CLUSTER ADDSLOTSRANGE");
        }
        for other in &nodes[1..] {
            let reply =
                nodes[0].command(&["CLUSTER", "MEET", "127.0.0.1", &other.port().to_string()]);
            assert_eq!(reply, "+OK", "CLUSTER MEET");
        }
        let cluster = Self { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// The nodes, in slot order.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Sum of a command's calls over all nodes (`INFO commandstats`).
    pub fn command_calls(&self, name: &str) -> u64 {
        self.nodes.iter().map(|n| n.command_calls(name)).sum()
    }

    /// Waits (up to 30 s) until every node reports `cluster_state:ok` and knows the other
    /// two. A master frozen past the node timeout (2 s) is marked failed, and the cluster
    /// refuses commands (`CLUSTERDOWN`) for a while after it is back: a test that pauses a
    /// node that long waits here before its next command.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self.nodes.iter().all(|n| {
                let info = n.command(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
