//! The Redis tier's reads, writes, deletes and tag invalidations: the `Tier` seam
//! `TieredCache` goes through, each write one script (with the `WAIT` for replicas on a
//! cluster) that also publishes its invalidation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::error::CacheError;
use crate::message::Message;
use crate::redis_tier::RedisTier;
use crate::scripts::SET_SCRIPT;
use crate::tier::{Generations, Placement, Tier, Written};

impl RedisTier {
    /// An invalidation of `keys` (and `tag`) from this instance, as published.
    pub(crate) fn message(&self, keys: Vec<String>, tag: Option<String>) -> String {
        Message::encode(&self.inner.origin, keys, tag)
    }

    /// Decodes a payload read from under `key`, counting a failure in
    /// `decode_errors`.
    fn decode(&self, key: &str, raw: &[u8]) -> Result<Arc<[u8]>, CacheError> {
        self.inner
            .codec
            .decode(key, raw)
            .map(Arc::from)
            .inspect_err(|_| {
                self.inner.decode_errors.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// Stores the encoded value and broadcasts the overwrite so other
    /// instances drop `at.key` from their L1. With `expected` generations (from
    /// [`Tier::generations`]), writes only if they did not move; says which way it went.
    async fn set_inner(
        &self,
        at: Placement<'_>,
        plain: &[u8],
        expected: Option<&[String]>,
    ) -> Result<Written, CacheError> {
        let Placement { key, ttl, tags } = at;
        let store = !self.inner.refuse_values;
        let payload = if store {
            self.inner.codec.encode(key, plain)?
        } else {
            Vec::new()
        };
        let layout = &self.inner.layout;
        if !layout.misplaced_groups(key, tags).is_empty() {
            // Its group's set is in another slot: indexing it there is not atomic with the
            // write, so the entry stays out of Redis (a delete keeps the others coherent).
            if self.inner.layout_faults.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(target: "vitals_cache", "a key not ending with its group's id is kept out of the Redis Cluster (docs/cache.md, Redis Cluster)");
            }
            self.delete_inner(&[key]).await?;
            return Ok(Written::Misplaced);
        }
        let ttl_ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let bucket = layout.bucket(key);
        let mut keys = vec![layout.data_key(key)];
        keys.extend(tags.iter().map(|t| layout.tag_key(bucket, t)));
        keys.extend(layout.gen_keys(key, tags));
        let msg = self.message(vec![key.to_owned()], None);
        let mut cmd = crate::scripts::evalsha(&self.inner.set_script, &keys);
        cmd.arg(payload)
            .arg(ttl_ms)
            .arg(key)
            .arg(&self.inner.channel)
            .arg(&msg)
            .arg(tags.len())
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(if store { "1" } else { "0" });
        for g in expected.unwrap_or_default() {
            cmd.arg(g);
        }
        let written = self.eval::<i64>(SET_SCRIPT, &cmd, bucket).await? == 1;
        if written {
            self.inner.sent.fetch_add(1, Ordering::Relaxed);
            if !store {
                self.inner.refused_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(if written {
            Written::Stored
        } else {
            Written::Stale
        })
    }

    /// [`Tier::set_if_unchanged`], telling a stale value from one the cluster's layout keeps
    /// out of Redis.
    pub(crate) async fn set_loaded(
        &self,
        at: Placement<'_>,
        value: &[u8],
        since: &Generations,
    ) -> Result<Written, CacheError> {
        let r = self.set_inner(at, value, Some(since.values())).await;
        self.repair_on_error(r, &[at.key], None)
    }

    /// Runs a script's `EVALSHA` (loading the script once if Redis lacks it) and, on a
    /// cluster, the `WAIT` for replicas in the same round trip.
    pub(crate) async fn eval<T: redis::FromRedisValue + Send>(
        &self,
        src: &str,
        cmd: &redis::Cmd,
        bucket: u16,
    ) -> Result<T, CacheError> {
        let wait = self.wait_at(bucket);
        let (v, acks) =
            self.run(|mut conn| async move {
                crate::scripts::eval::<T>(&mut conn, src, cmd, wait).await
            })
            .await?;
        self.count_acks(acks);
        Ok(v)
    }

    /// Counts a write its replicas did not acknowledge in time.
    pub(crate) fn count_acks(&self, acks: Option<u32>) {
        if let (Some(acks), Some((want, _))) = (acks, self.inner.wait) {
            if acks < want {
                self.inner
                    .unreplicated_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Deletes keys and broadcasts it.
    pub(crate) async fn delete_inner(&self, keys: &[&str]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        if self.inner.layout.is_cluster() {
            return self.delete_in_buckets(keys).await;
        }
        let layout = &self.inner.layout;
        let data_keys: Vec<String> = keys.iter().map(|k| layout.data_key(k)).collect();
        let gen_keys: Vec<String> = keys.iter().map(|k| layout.gen_key(k)).collect();
        let msg = self.message(keys.iter().map(|k| (*k).to_owned()).collect(), None);
        let channel = &self.inner.channel;
        let (n,): (u64,) = self
            .run(|mut conn| async move {
                let mut p = redis::pipe();
                p.atomic().cmd("DEL").arg(&data_keys);
                // A delete moves the generation, so in-flight loads don't
                // write back what was deleted.
                for g in &gen_keys {
                    p.cmd("INCR").arg(g).ignore();
                    p.cmd("PEXPIRE").arg(g).arg(60_000).ignore();
                }
                p.cmd("PUBLISH").arg(channel).arg(&msg).ignore();
                p.query_async(&mut conn).await
            })
            .await?;
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Deletes the entries of `tag` and broadcasts it; returns their keys.
    pub(crate) async fn invalidate_tag_inner(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        if self.inner.layout.is_cluster() {
            return self.sweep_tag(tag).await;
        }
        let layout = &self.inner.layout;
        let tag_key = layout.tag_key(0, tag);
        let tag_gen = layout.tag_gen_key(0, tag);
        let data_prefix = layout.data_prefix(0);
        let script = &self.inner.invalidate_script;
        let channel = &self.inner.channel;
        let origin = &self.inner.origin;
        // One round trip: the script publishes the invalidation itself.
        let members: Vec<String> = self
            .run(|mut conn| async move {
                script
                    .key(&tag_key)
                    .key(&tag_gen)
                    .arg(&data_prefix)
                    .arg(channel)
                    .arg(origin)
                    .arg(tag)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        self.inner.sent.fetch_add(1, Ordering::Relaxed);
        Ok(members)
    }
}

impl Tier for RedisTier {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, CacheError> {
        if self.inner.refuse_values {
            return Ok(None);
        }
        let data_key = self.data_key(key);
        let raw: Option<Vec<u8>> = self
            .run(|mut conn| async move {
                redis::cmd("GET")
                    .arg(&data_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        self.decode(key, &raw).map(Some)
    }

    async fn set(&self, at: Placement<'_>, value: Arc<[u8]>) -> Result<(), CacheError> {
        let r = self.set_inner(at, &value, None).await;
        self.repair_on_error(r, &[at.key], None).map(drop)
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let r = self.delete_inner(&[key]).await;
        Ok(self.repair_on_error(r, &[key], None)? > 0)
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let r = self.delete_inner(keys).await;
        self.repair_on_error(r, keys, None)
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<Vec<String>, CacheError> {
        let r = self.invalidate_tag_inner(tag).await;
        self.repair_on_error(r, &[], Some(tag))
    }

    /// GET and PTTL in one round trip.
    async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Option<(Arc<[u8]>, Option<Duration>)>, CacheError> {
        if self.inner.refuse_values {
            // Nothing of ours is there to read: no round trip.
            return Ok(None);
        }
        let data_key = self.data_key(key);
        let (raw, pttl): (Option<Vec<u8>>, i64) = self
            .run(|mut conn| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&data_key)
                    .cmd("PTTL")
                    .arg(&data_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
        Ok(Some((self.decode(key, &raw)?, ttl)))
    }

    /// One MGET of the generation keys of `key` and of `tags`.
    async fn generations(&self, key: &str, tags: &[&str]) -> Result<Generations, CacheError> {
        let keys = self.inner.layout.gen_keys(key, tags);
        let gens: Vec<Option<String>> =
            self.run(|mut conn| async move {
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
            })
            .await?;
        Ok(Generations::new(
            gens.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }

    /// The write script in its conditional form: the generations are compared in Redis,
    /// atomically with the write.
    async fn set_if_unchanged(
        &self,
        at: Placement<'_>,
        value: Arc<[u8]>,
        since: &Generations,
    ) -> Result<bool, CacheError> {
        Ok(self.set_loaded(at, &value, since).await? == Written::Stored)
    }
}
