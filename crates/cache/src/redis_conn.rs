//! The Redis tier's connection: made lazily (and again after a cluster's failover), every
//! command run through the circuit breaker and the timeout, the PING that probes it, the
//! `INFO memory` its stats read, and the invalidation subscription.

use std::future::Future;
use std::sync::atomic::Ordering;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::cluster_conn::{is_cluster_fault, Client};
use crate::conn::Conn;
use crate::error::CacheError;
use crate::message::Message;
use crate::redis_tier::RedisTier;

impl RedisTier {
    /// Connects if no connection is established yet.
    ///
    /// # Errors
    /// [`CacheError::Redis`] or [`CacheError::Timeout`] if the connection
    /// can't be made within the connect timeout.
    pub async fn ensure_connected(&self) -> Result<(), CacheError> {
        if self.is_connected() {
            return Ok(());
        }
        let _guard = self.inner.connecting.lock().await;
        if self.is_connected() {
            return Ok(());
        }
        let cm = match &self.inner.client {
            Client::Single(client) => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.inner.connect_timeout)
                    .set_response_timeout(self.inner.timeout)
                    .set_number_of_retries(1)
                    .set_factor(10)
                    .set_max_delay(self.inner.reconnect_interval.as_millis() as u64);
                let fut = ConnectionManager::new_with_config(client.clone(), cfg);
                let budget = self.inner.connect_timeout * 3;
                match tokio::time::timeout(budget, fut).await {
                    Ok(Ok(cm)) => Conn::Single(cm),
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(CacheError::Timeout(budget)),
                }
            }
            Client::Cluster(cluster) => cluster.open(self.inner.connect_timeout).await?,
        };
        self.set_conn(cm);
        if !self.inner.connected_once.swap(true, Ordering::Relaxed) {
            tracing::info!(target: "vitals_cache", url = %self.inner.url_masked, "redis connected");
        }
        Ok(())
    }

    /// Whether a connection (manager) is established.
    pub fn is_connected(&self) -> bool {
        crate::poison::read(&self.inner.conn).is_some()
    }

    /// New pub/sub connections subscribed to the invalidation channel: one on a single node.
    ///
    /// On a cluster, one on every master (see `ClusterConn::master_clients`; a message heard
    /// on several is applied each time, which is harmless: an invalidation is idempotent), or,
    /// before the slots are known, one on the next node in turn (a `PUBLISH` reaches every
    /// node of a cluster).
    pub(crate) async fn subscribe(&self) -> Result<Vec<redis::aio::PubSub>, redis::RedisError> {
        let clients = match &self.inner.client {
            Client::Single(client) => vec![client.clone()],
            Client::Cluster(cluster) => match cluster.master_clients()? {
                masters if masters.is_empty() => vec![cluster.subscription_client()?],
                masters => masters,
            },
        };
        let mut subscriptions = Vec::with_capacity(clients.len());
        for client in clients {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&self.inner.channel).await?;
            subscriptions.push(ps);
        }
        Ok(subscriptions)
    }

    /// Whether this instance sent `message` (an instance ignores its own).
    pub(crate) fn is_own(&self, message: &Message) -> bool {
        message.o == self.inner.origin
    }

    /// Puts `conn` in place of the connection (the old one closes when its last clone goes).
    pub(crate) fn set_conn(&self, conn: Conn) {
        *crate::poison::write(&self.inner.conn) = Some(conn);
    }

    /// The connection, if made.
    pub(crate) fn conn(&self) -> Option<Conn> {
        crate::poison::read(&self.inner.conn).clone()
    }

    /// Runs one command through the breaker and the timeout.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.inner.breaker.allow() {
            return Err(CacheError::BreakerOpen);
        }
        let Some(conn) = self.conn() else {
            self.inner.breaker.failure();
            return Err(CacheError::NotConnected);
        };
        match tokio::time::timeout(self.inner.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.inner.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                if is_cluster_fault(&e) {
                    self.inner.cluster_faults.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: "vitals_cache", kind = ?e.kind(), "redis cluster fault reply");
                }
                self.inner.breaker.failure();
                Err(e.into())
            }
            Err(_) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                self.inner.breaker.failure();
                Err(CacheError::Timeout(self.inner.timeout))
            }
        }
    }

    /// Sends a PING (through the breaker and timeout).
    ///
    /// # Errors
    /// Any Redis error, timeout or open breaker.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.run(|conn| async move {
            match conn {
                // One node, not the cluster client's default of every node.
                Conn::Cluster(mut c) => {
                    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                    let random = SingleNodeRoutingInfo::Random;
                    c.route_command(&redis::cmd("PING"), RoutingInfo::SingleNode(random))
                        .await
                        .map(drop)
                }
                mut single => redis::cmd("PING")
                    .query_async::<String>(&mut single)
                    .await
                    .map(drop),
            }
        })
        .await
    }

    /// Reads `INFO memory` and keeps `used_memory` for [`RedisTier::used_memory`].
    ///
    /// # Errors
    /// Any Redis error, timeout or open breaker.
    pub async fn refresh_used_memory(&self) -> Result<u64, CacheError> {
        if self.inner.layout.is_cluster() {
            let used = self.cluster_used_memory().await?;
            self.inner.used_memory.store(used, Ordering::Relaxed);
            return Ok(used);
        }
        let info: String = self
            .run(|mut conn| async move {
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let used = used_memory_of(&info)?;
        self.inner.used_memory.store(used, Ordering::Relaxed);
        Ok(used)
    }
}

/// `used_memory` of an `INFO memory` reply.
pub(crate) fn used_memory_of(info: &str) -> Result<u64, CacheError> {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(CacheError::Decode("INFO memory without used_memory"))
}
