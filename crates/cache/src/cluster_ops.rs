//! What the Redis tier does only on a cluster: a tag's invalidation swept over its buckets
//! with one pipeline per master, deletes per bucket, memory summed over the masters, and the
//! cluster's counters.
//!
//! A data type's invalidation (`invalidate_tag("vaccinations")`) reads the tag's set in every
//! bucket (one `ZRANGE` pipeline per master), then runs the bucket script with the members it
//! read, declared as keys (one pipeline per master, with the `WAIT` for replicas at its end),
//! and once more for the buckets where members appeared between the two: at most three round
//! trips per master, the masters in parallel. If a pipeline fails (a slot moved, a master
//! failed over, a script missing), its buckets are done one by one through the cluster
//! client, which follows `MOVED` and `ASK`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::Value;

use crate::cluster_conn::{Client, Cluster};
use crate::conn::Conn;
use crate::error::CacheError;
use crate::layout::bucket_slot;
use crate::redis_conn::used_memory_of;
use crate::redis_tier::RedisTier;
use crate::scripts::{evalsha, BUCKET_INVALIDATE_SCRIPT, DELETE_SCRIPT};

/// What the bucket script returns: the members it removed, and those it was not given.
type Swept = (Vec<String>, Vec<String>);

fn not_cluster() -> CacheError {
    CacheError::Decode("a cluster operation on a single-node tier")
}

impl RedisTier {
    fn cluster(&self) -> Option<&Cluster> {
        match &self.inner.client {
            Client::Cluster(c) => Some(c),
            Client::Single(_) => None,
        }
    }

    /// Whether this tier runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster().is_some()
    }

    /// Cluster fault replies (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `CROSSSLOT`, a master
    /// down) that reached the tier after the client's own retries: each also counts in
    /// [`errors`](Self::errors) and for the breaker; none reaches a caller of the cache.
    pub fn cluster_faults(&self) -> u64 {
        self.inner.cluster_faults.load(Ordering::Relaxed)
    }

    /// Cluster writes that their replicas did not acknowledge within the wait
    /// ([`ClusterOptions::wait_timeout`](crate::ClusterOptions::wait_timeout)).
    pub fn unreplicated_writes(&self) -> u64 {
        self.inner.unreplicated_writes.load(Ordering::Relaxed)
    }

    /// Writes kept out of the cluster because their key is not in its group's bucket (a
    /// key that does not end with its group's id; docs/cache.md, "Redis Cluster").
    pub fn layout_faults(&self) -> u64 {
        self.inner.layout_faults.load(Ordering::Relaxed)
    }

    /// Runs background work on the cluster (its topology, its memory) within the command
    /// timeout but outside the breaker: a node it finds dead says nothing of the callers'
    /// commands, which the cluster client routes elsewhere.
    async fn on_cluster<T, F, Fut>(&self, f: F) -> Result<T, CacheError>
    where
        F: FnOnce(redis::cluster_async::ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, CacheError>>,
    {
        let Some(Conn::Cluster(c)) = self.conn() else {
            return Err(CacheError::NotConnected);
        };
        tokio::time::timeout(self.inner.timeout, f(c))
            .await
            .map_err(|_| CacheError::Timeout(self.inner.timeout))?
    }

    /// Reads the cluster's masters and slots again, from the first master (as last known)
    /// that answers; returns whether a range changed master (a failover, a resharding)
    /// since the last read. Always false on one node.
    pub(crate) async fn refresh_slots(&self) -> Result<bool, CacheError> {
        let Some(cluster) = self.cluster() else {
            return Ok(false);
        };
        let mut nodes: Vec<(String, u16)> =
            cluster.slots().iter().map(|r| r.master.clone()).collect();
        nodes.dedup();
        let mut last = CacheError::NotConnected;
        for at in nodes.into_iter().map(Some).chain([None]) {
            let read = self
                .on_cluster(|mut c| async move { cluster.refresh_slots(&mut c, at).await })
                .await;
            match read {
                Ok(changed) => {
                    if changed {
                        self.inner.topology_changes.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(changed);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Replaces the cluster connection after its masters changed: the redis crate's cluster
    /// client (0.32) reconnects to a master that failed instead of reading the slots again,
    /// so until a `MOVED` it would keep sending that master's slots to a dead address.
    pub(crate) async fn reconnect_cluster(&self) -> Result<(), CacheError> {
        let cluster = self.cluster().ok_or_else(not_cluster)?;
        let conn = cluster.open(self.inner.connect_timeout).await?;
        self.set_conn(conn);
        Ok(())
    }

    /// The `WAIT` for a write to `bucket`: the configured one while its master has that many
    /// replicas (as last read), none otherwise. A master without its replica has nothing to
    /// wait for, and no replica that could be promoted with an older copy; waiting there
    /// would only hold up its connection (`WAIT` blocks the connection it is sent on).
    pub(crate) fn wait_at(&self, bucket: u16) -> Option<(u32, std::time::Duration)> {
        let (n, t) = self.inner.wait?;
        let replicas = self.cluster()?.replicas_of(bucket_slot(bucket));
        (replicas >= n as usize).then_some((n, t))
    }

    /// Times the cluster's masters were seen to change (a failover, a moved slot range):
    /// each clears L1, as a lost subscription does, since what was missed can't be known.
    pub fn topology_changes(&self) -> u64 {
        self.inner.topology_changes.load(Ordering::Relaxed)
    }

    /// `used_memory` summed over the masters that answer.
    pub(crate) async fn cluster_used_memory(&self) -> Result<u64, CacheError> {
        let cluster = self.cluster().ok_or_else(not_cluster)?;
        let mut total = 0;
        let mut answered = false;
        for range in cluster.slots().iter() {
            let (host, port) = range.master.clone();
            let info = self
                .on_cluster(|mut c| async move {
                    let at = SingleNodeRoutingInfo::ByAddress { host, port };
                    let v = c
                        .route_command(
                            redis::cmd("INFO").arg("memory"),
                            RoutingInfo::SingleNode(at),
                        )
                        .await?;
                    Ok(redis::from_redis_value::<String>(&v)?)
                })
                .await;
            if let Ok(info) = info {
                total += used_memory_of(&info)?;
                answered = true;
            }
        }
        if answered {
            Ok(total)
        } else {
            Err(CacheError::NotConnected)
        }
    }

    /// Deletes `keys`, one script per bucket (the buckets concurrently), each publishing its
    /// keys' delete.
    pub(crate) async fn delete_in_buckets(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let layout = &self.inner.layout;
        let mut by_bucket: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for k in keys {
            by_bucket.entry(layout.bucket(k)).or_default().push(k);
        }
        let deletes = by_bucket.into_values().map(|ks| async move {
            let mut names: Vec<String> = ks.iter().map(|k| layout.data_key(k)).collect();
            names.extend(ks.iter().map(|k| layout.gen_key(k)));
            let msg = self.message(ks.iter().map(|k| (*k).to_owned()).collect(), None);
            let mut cmd = evalsha(&self.inner.delete_script, &names);
            cmd.arg(&self.inner.channel).arg(&msg);
            let n = self
                .eval::<u64>(DELETE_SCRIPT, &cmd, layout.bucket(ks[0]))
                .await?;
            self.inner.sent.fetch_add(1, Ordering::Relaxed);
            Ok::<_, CacheError>(n)
        });
        let mut total = 0;
        let mut first_err = None;
        for r in futures::future::join_all(deletes).await {
            match r {
                Ok(n) => total += n,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(total), Err)
    }

    /// Invalidates `tag` in each of its buckets (one for a group's tag, all for another),
    /// one pipeline per master; returns the removed keys.
    pub(crate) async fn sweep_tag(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        let cluster = self.cluster().ok_or_else(not_cluster)?;
        let buckets = self.inner.layout.tag_buckets(tag);
        if cluster.slots().is_empty() {
            let _ = self.refresh_slots().await;
        }
        let mut by_master: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for &b in &buckets {
            let master = cluster
                .master_of(bucket_slot(b))
                .map_or_else(|| format!("?{b}"), |(h, p)| format!("{h}:{p}"));
            by_master.entry(master).or_default().push(b);
        }
        // One bucket publishes even when Redis held nothing: the other instances' L1 may
        // hold entries of the tag that never reached Redis.
        let always = buckets.first().copied();
        let sweeps = by_master
            .values()
            .map(|group| self.sweep_group(group, tag, always));
        let mut removed = Vec::new();
        let mut first_err = None;
        for r in futures::future::join_all(sweeps).await {
            match r {
                Ok(mut keys) => removed.append(&mut keys),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        first_err.map_or(Ok(removed), Err)
    }

    /// The buckets of one master, pipelined; one by one if a pipeline fails.
    async fn sweep_group(
        &self,
        group: &[u16],
        tag: &str,
        always: Option<u16>,
    ) -> Result<Vec<String>, CacheError> {
        match self.sweep_pipelined(group, tag, always).await {
            Ok(removed) => Ok(removed),
            Err(e) => {
                tracing::debug!(target: "vitals_cache", error = %e, buckets = group.len(), "tag sweep pipeline failed: bucket by bucket");
                let _ = self.refresh_slots().await;
                let mut removed = Vec::new();
                for &b in group {
                    removed.extend(self.sweep_one(b, tag, always == Some(b)).await?);
                }
                Ok(removed)
            }
        }
    }

    /// A pipeline routed to the master of `slot`, through the breaker and timeout.
    async fn routed(
        &self,
        pipe: &redis::Pipeline,
        count: usize,
        slot: u16,
    ) -> Result<Vec<Value>, CacheError> {
        self.run(|conn| async move {
            let Conn::Cluster(mut c) = conn else {
                return Ok(Vec::new());
            };
            let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
            c.route_pipeline(pipe, 0, count, route).await
        })
        .await
    }

    /// The bucket script's invocation for `bucket` with `members` declared.
    fn bucket_cmd(&self, bucket: u16, tag: &str, members: &[String], always: bool) -> redis::Cmd {
        let layout = &self.inner.layout;
        let mut keys = vec![layout.tag_key(bucket, tag), layout.tag_gen_key(bucket, tag)];
        let prefix = layout.data_prefix(bucket);
        keys.extend(members.iter().map(|m| format!("{prefix}{m}")));
        let mut cmd = evalsha(&self.inner.bucket_invalidate_script, &keys);
        cmd.arg(&self.inner.channel)
            .arg(&self.inner.origin)
            .arg(tag)
            .arg(if always { "1" } else { "0" })
            .arg(members);
        cmd
    }

    async fn sweep_pipelined(
        &self,
        group: &[u16],
        tag: &str,
        always: Option<u16>,
    ) -> Result<Vec<String>, CacheError> {
        let layout = &self.inner.layout;
        let slot = bucket_slot(group[0]);
        let mut read = redis::pipe();
        for &b in group {
            read.cmd("ZRANGE")
                .arg(layout.tag_key(b, tag))
                .arg(0)
                .arg(-1);
        }
        let members = self.routed(&read, group.len(), slot).await?;
        let mut pass: Vec<(u16, Vec<String>, bool)> = Vec::with_capacity(group.len());
        for (&b, v) in group.iter().zip(&members) {
            pass.push((b, redis::from_redis_value(v)?, always == Some(b)));
        }
        let mut removed = Vec::new();
        // The second pass takes the members written between the read and the first.
        for _ in 0..2 {
            if pass.is_empty() {
                break;
            }
            let mut p = redis::pipe();
            for (b, declared, always) in &pass {
                p.add_command(self.bucket_cmd(*b, tag, declared, *always));
            }
            let wait = self.wait_at(group[0]);
            if let Some((n, t)) = wait {
                p.cmd("WAIT")
                    .arg(n)
                    .arg(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
            }
            let count = pass.len() + usize::from(wait.is_some());
            let replies = self.routed(&p, count, slot).await?;
            if wait.is_some() {
                let acks = replies
                    .last()
                    .map(redis::from_redis_value::<u32>)
                    .transpose()?;
                self.count_acks(acks);
            }
            let mut next = Vec::new();
            for ((b, _, _), v) in pass.iter().zip(&replies) {
                let (mut gone, left): Swept = redis::from_redis_value(v)?;
                removed.append(&mut gone);
                if !left.is_empty() {
                    next.push((*b, left, false));
                }
            }
            pass = next;
        }
        Ok(removed)
    }

    /// One bucket through the cluster client's own routing (it follows redirections).
    async fn sweep_one(
        &self,
        bucket: u16,
        tag: &str,
        always: bool,
    ) -> Result<Vec<String>, CacheError> {
        let set = self.inner.layout.tag_key(bucket, tag);
        let mut declared: Vec<String> = self
            .run(|mut conn| async move {
                redis::cmd("ZRANGE")
                    .arg(&set)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut removed = Vec::new();
        let mut always = always;
        for _ in 0..2 {
            let cmd = self.bucket_cmd(bucket, tag, &declared, always);
            let (mut gone, left): Swept = self.eval(BUCKET_INVALIDATE_SCRIPT, &cmd, bucket).await?;
            removed.append(&mut gone);
            if left.is_empty() {
                break;
            }
            declared = left;
            always = false;
        }
        Ok(removed)
    }
}
