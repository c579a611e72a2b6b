//! The L2 contenders interleaved get by get, beside criterion's one-after-another groups:
//! on a shared machine criterion's samples drift with the load, so each round times one get
//! of every contender in turn (the order rotated each round) and the load falls on all of
//! them alike. `benches/benches/cache.rs` (one Redis) and `benches/benches/cache_cluster.rs`
//! (a Redis Cluster) include this file with `#[path]`, next to `redis_get.rs`.

use std::hint::black_box;
use std::time::Instant;

use hdrhistogram::Histogram;
use redis::aio::ConnectionLike;
use tokio::runtime::Runtime;
use vitals_cache::{Codec, Tier as _, TieredCache};

use super::redis_get::{decode, get_raw};
use super::summary::Summary;

/// Rounds of the interleaved comparison (one get of every contender each).
pub const ROUNDS: usize = 10_000;

/// A histogram of nanoseconds, from 1 ns to 100 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).unwrap()
}

/// `ns` nanoseconds in microseconds, for the printed tables.
pub fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

/// The GET + PTTL pipeline `TieredCache::get` sends for `data_key` when it has an L1 (whose
/// copy lives no longer than the rest of the TTL): the stored bytes and their remaining life
/// in ms.
pub async fn get_pttl<C: ConnectionLike>(conn: &mut C, data_key: &str) -> (Vec<u8>, i64) {
    redis::pipe()
        .cmd("GET")
        .arg(data_key)
        .cmd("PTTL")
        .arg(data_key)
        .query_async(conn)
        .await
        .unwrap()
}

/// Where the interleaved contenders read: the bare peers (named `{peer}_get...`, reading
/// `bare_key` on clones of `conn`) and the cache (`key`, with L1 off).
pub struct Contenders<'a, C> {
    /// The bench group the printed lines are of, e.g. `cache/l2_hit`.
    pub group: &'a str,
    /// The bare client's name in the contenders' names, e.g. `redis_rs_bare`.
    pub peer: &'a str,
    pub conn: &'a C,
    /// What the bare peers read: the bytes the cache stored for `key`.
    pub bare_key: &'a str,
    pub codec: &'a Codec,
    pub cache: &'a TieredCache,
    pub key: &'a str,
}

impl<C: ConnectionLike + Clone> Contenders<'_, C> {
    /// [`ROUNDS`] rounds, each timing one get of every contender in turn. Prints each one's
    /// median and p99 per-get time and its median's ratio to the bare GET + decode's.
    /// Besides the criterion groups' contenders: the bare GET + PTTL pipeline with and
    /// without the decode, and `RedisTier::get_with_ttl` (the pipeline and the entry's
    /// decode, no JSON), which `TieredCache::get` calls when it has an L1, to say where the
    /// time goes.
    pub fn run(&self, rt: &Runtime) {
        let names = [
            format!("{}_get", self.peer),
            format!("{}_get_and_decode", self.peer),
            format!("{}_get_pttl_pipeline", self.peer),
            format!("{}_get_pttl_pipeline_and_decode", self.peer),
            "vitals_redis_tier_get".to_owned(),
            "vitals_redis_tier_get_with_ttl".to_owned(),
            "vitals_tiered_get_l1_off".to_owned(),
        ];
        let tier = self.cache.redis().unwrap();
        let (data_key, codec, key) = (self.bare_key, self.codec, self.key);
        let mut hists: Vec<Histogram<u64>> = names.iter().map(|_| histogram()).collect();
        let get = |c: usize| {
            let mut conn = self.conn.clone();
            async move {
                let t0 = Instant::now();
                match c {
                    0 => drop(black_box(get_raw(&mut conn, data_key).await)),
                    1 => {
                        let v = get_raw(&mut conn, data_key).await;
                        black_box(decode(codec, key, &v));
                    }
                    2 | 3 => {
                        let (v, ttl) = get_pttl(&mut conn, data_key).await;
                        if c == 3 {
                            black_box(decode(codec, key, &v));
                        }
                        black_box((v, ttl));
                    }
                    4 => drop(black_box(tier.get(key).await.ok())),
                    5 => drop(black_box(tier.get_with_ttl(key).await.ok())),
                    _ => drop(black_box(self.cache.get::<Summary>(key).await)),
                }
                t0.elapsed().as_nanos() as u64
            }
        };
        rt.block_on(async {
            for round in 0..ROUNDS {
                for i in 0..names.len() {
                    let c = (round + i) % names.len();
                    let ns = get(c).await;
                    hists[c].saturating_record(ns);
                }
            }
        });
        let base = hists[1].value_at_quantile(0.5) as f64;
        for (name, h) in names.iter().zip(&hists) {
            let p50 = h.value_at_quantile(0.5);
            eprintln!(
                "{} interleaved ({ROUNDS} rounds, one get each): {name}: p50 {} p99 {}; \
                 p50 {:.2}x the bare GET + decode's",
                self.group,
                micros(p50),
                micros(h.value_at_quantile(0.99)),
                p50 as f64 / base
            );
        }
    }
}
