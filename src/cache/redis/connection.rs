//! The command connection (one server or a cluster) and SCAN over every primary.

use redis::aio::ConnectionManager;

use super::shared::Shared;
use crate::cache::CacheError;

/// The command connection: one server, or a cluster.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl Shared {
    /// Every key matching `pattern`, on every primary (SCAN, never KEYS).
    pub(super) async fn scan(&self, pattern: &str) -> Result<Vec<String>, CacheError> {
        let mut keys = Vec::new();
        match &self.conn {
            Connection::Single(conn) => {
                self.scan_node(pattern, &mut keys, |cmd| {
                    let mut conn = conn.clone();
                    async move { cmd.query_async::<(u64, Vec<String>)>(&mut conn).await }
                })
                .await?;
            }
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(conn) => {
                for (host, port) in self.primaries(conn.clone()).await? {
                    let conn = conn.clone();
                    self.scan_node(pattern, &mut keys, |cmd| {
                        let mut conn = conn.clone();
                        let host = host.clone();
                        async move {
                            use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host,
                                    port,
                                });
                            let value = conn.route_command(cmd, routing).await?;
                            Ok(redis::from_redis_value(value)?)
                        }
                    })
                    .await?;
                }
            }
        }
        Ok(keys)
    }

    pub(super) async fn scan_node<F, Fut>(
        &self,
        pattern: &str,
        keys: &mut Vec<String>,
        send: F,
    ) -> Result<(), CacheError>
    where
        F: Fn(redis::Cmd) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<(u64, Vec<String>)>>,
    {
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, mut found) = self.run("scan", send(cmd)).await?;
            keys.append(&mut found);
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The cluster's primaries, from `CLUSTER NODES`.
    #[cfg(feature = "redis-cluster")]
    pub(super) async fn primaries(
        &self,
        mut conn: redis::cluster_async::ClusterConnection,
    ) -> Result<Vec<(String, u16)>, CacheError> {
        let text: String = self
            .run(
                "cluster nodes",
                redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn),
            )
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = *fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let address = fields.get(1)?.split(['@', ',']).next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some((host.to_owned(), port.parse().ok()?))
            })
            .collect())
    }
}
