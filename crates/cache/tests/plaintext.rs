//! Without an encryption key no value reaches Redis unless the operator allows plaintext:
//! the raw keyspace is read after each run. Run with `cargo test -p vitals-cache --test
//! plaintext` (needs Redis at REDIS_URL, default redis://127.0.0.1:6379).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{config, eventually, pair, received, redis_url, stored};
use vitals_cache::{codec, CacheConfig, EncryptionKey, Keyring, TieredCache};

const MIN: Duration = Duration::from_secs(60);
const KEY: &str = "student:9:allergies";
const LOADED: &str = "student:9:conditions";
/// What the values hold; none of it may be found in the clear.
const NEEDLES: [&str; 3] = ["Peanut", "Anaphylaxis", "Asthma"];

/// Every key under `prefix` with every byte string it holds.
async fn keyspace(prefix: &str) -> Vec<(String, Vec<Vec<u8>>)> {
    common::keyspace(&redis_url(), &format!("{prefix}*")).await
}

fn holds_needle(bytes: &[u8]) -> bool {
    NEEDLES
        .iter()
        .any(|n| bytes.windows(n.len()).any(|w| w == n.as_bytes()))
}

/// A write and a load on one instance, read back by a second; returns the two.
async fn run(cfg: CacheConfig) -> (TieredCache, TieredCache) {
    let (a, b) = pair(cfg).await;
    let group = TieredCache::group_tag("9");
    a.set(
        KEY,
        vec!["Peanut".to_owned(), "Anaphylaxis".to_owned()],
        MIN,
        &["allergies", &group],
    )
    .await
    .unwrap();
    let v: Result<Arc<Vec<String>>, std::io::Error> = a
        .get_or_load(LOADED, MIN, &["conditions", &group], || async {
            Ok(vec!["Asthma".to_owned()])
        })
        .await;
    assert_eq!(*v.unwrap(), ["Asthma"]);
    assert!(a.l1().unwrap().contains(KEY) && a.l1().unwrap().contains(LOADED));
    received(&b, 2).await;
    (a, b)
}

#[tokio::test]
async fn without_a_key_no_value_reaches_redis_and_invalidations_still_do() {
    let cfg = config("refuse", &redis_url()).with_allow_plaintext(false);
    let prefix = cfg.key_prefix.clone();
    let (a, b) = run(cfg).await;
    let s = a.stats();
    assert!(s.redis_plaintext_refused);
    assert_eq!(s.redis_refused_writes, 2);
    assert!(
        b.get_cloned::<Vec<String>>(KEY).await.is_none(),
        "no value to share"
    );

    let space = keyspace(&prefix).await;
    let value_prefix = format!("{prefix}:v:");
    for (k, held) in &space {
        assert!(!k.starts_with(&value_prefix), "value key {k} in redis");
        assert!(!holds_needle(k.as_bytes()), "{k}");
        for v in held {
            assert!(!holds_needle(v), "payload under {k}");
        }
    }

    // Coherence still works: B caches its own load, A's overwrite and A's group
    // invalidation drop it from B's L1.
    for change in 0..2 {
        let v: Result<Arc<String>, std::io::Error> = b
            .get_or_load(
                KEY,
                MIN,
                &["allergies", &TieredCache::group_tag("9")],
                || async { Ok("b's load".to_owned()) },
            )
            .await;
        assert_eq!(*v.unwrap(), "b's load");
        assert!(b.l1().unwrap().contains(KEY));
        if change == 0 {
            a.set(KEY, "new".to_owned(), MIN, &[]).await.unwrap();
        } else {
            a.invalidate_group("9").await;
        }
        assert!(
            eventually(Duration::from_secs(5), || async {
                !b.l1().unwrap().contains(KEY)
            })
            .await,
            "change {change} never reached B's L1"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn with_plaintext_allowed_the_value_is_in_redis_in_the_clear() {
    let cfg = config("allowed", &redis_url());
    let (a, b) = run(cfg).await;
    assert!(!a.stats().redis_plaintext_refused);
    assert_eq!(a.stats().redis_refused_writes, 0);
    assert!(holds_needle(&stored(&a, KEY).await));
    assert_eq!(
        b.get_cloned::<Vec<String>>(KEY).await.unwrap(),
        ["Peanut", "Anaphylaxis"]
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn with_a_key_the_value_is_in_redis_encrypted() {
    let ring = Keyring::new(EncryptionKey::new("k1", [3; 32]).unwrap(), []);
    let cfg = config("keyed", &redis_url())
        .with_allow_plaintext(false)
        .with_encryption(Some(ring));
    let prefix = cfg.key_prefix.clone();
    let (a, b) = run(cfg).await;
    assert!(!a.stats().redis_plaintext_refused);
    for key in [KEY, LOADED] {
        assert!(codec::is_encrypted(&stored(&a, key).await), "{key}");
    }
    for (k, held) in keyspace(&prefix).await {
        for v in held {
            assert!(!holds_needle(&v), "payload in the clear under {k}");
        }
    }
    assert_eq!(
        b.get_cloned::<Vec<String>>(KEY).await.unwrap(),
        ["Peanut", "Anaphylaxis"]
    );
    a.shutdown().await;
    b.shutdown().await;
}
