//! The bare redis-rs peers of the cache's L2 reads: a GET of the bytes the cache stored, and
//! the same GET followed by the decode the cache does. `benches/benches/cache.rs` (one Redis,
//! a multiplexed connection and a `ConnectionManager`) and `benches/benches/cache_cluster.rs`
//! (a Redis Cluster connection) include this file with `#[path]`, next to `summary.rs`, so
//! each peer does the same work on either.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use redis::aio::ConnectionLike;
use tokio::runtime::Runtime;
use vitals_cache::Codec;

use super::summary::Summary;

/// A GET of `data_key`'s bytes on `conn`, as a bare redis-rs client sends it.
pub async fn get_raw<C: ConnectionLike>(conn: &mut C, data_key: &str) -> Vec<u8> {
    redis::cmd("GET")
        .arg(data_key)
        .query_async(conn)
        .await
        .unwrap()
}

/// The decode the cache does of the entry it stored for `key`: the header (and lz4) by
/// `Codec::decode`, then the JSON.
pub fn decode(codec: &Codec, key: &str, stored: &[u8]) -> Summary {
    let plain = codec.decode(key, stored).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// What a bare peer does with the bytes it read.
#[derive(Clone, Copy)]
pub enum Then {
    /// Nothing: the GET alone.
    Keep,
    /// [`decode`] them as the entry they are.
    Decode,
}

/// A bare redis-rs reader of what the cache stored for `key`: the bytes under `data_key`,
/// read on a clone of `conn`, decoded with `codec`.
pub struct BareGet<'a, C> {
    conn: &'a C,
    data_key: &'a str,
    codec: &'a Codec,
    key: &'a str,
}

impl<'a, C: ConnectionLike + Clone> BareGet<'a, C> {
    pub fn new(conn: &'a C, data_key: &'a str, codec: &'a Codec, key: &'a str) -> Self {
        Self {
            conn,
            data_key,
            codec,
            key,
        }
    }

    /// Bench `name` in `g`: [`get_raw`], then what `then` says.
    pub fn bench(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        rt: &Runtime,
        name: &str,
        then: Then,
    ) {
        g.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                let mut conn = self.conn.clone();
                async move {
                    let stored = get_raw(&mut conn, self.data_key).await;
                    match then {
                        Then::Keep => drop(black_box(stored)),
                        Then::Decode => drop(black_box(decode(self.codec, self.key, &stored))),
                    }
                }
            })
        });
    }
}
