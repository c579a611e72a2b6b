//! Patient data at rest in Redis, end to end (issue 13, item 4): the real `health_server`
//! binary on PostgreSQL (a schema of its own, `VITALS_PG_SCHEMA`, dropped at the end) and a
//! `redis-server` this test starts on a free loopback port (so the whole keyspace is this
//! run's); a student's summary and vaccinations fetched over HTTP; then every key of that
//! Redis read (`SCAN`, and each value by its type) and searched for the student's data.
//!
//! - No `CACHE_ENCRYPTION_KEY` (the default): the server starts, warns that values stay in L1,
//!   and says so in `/api/health/cache/stats` and `/metrics`; Redis holds generation counters
//!   and tag indexes only, no value key, and none of the student's data: 0 hits.
//! - A key: the values are in Redis, encrypted (and decrypt to the student's data): 0 hits.
//! - `CACHE_ALLOW_PLAINTEXT=true`, no key (the positive control): the same scan finds the
//!   student's names and dates, so the scan can fail.
//!
//! Run with `cargo test -p vitals --test at_rest` (PostgreSQL from `DATABASE_URL`; needs
//! `redis-server` on `PATH`). The first test builds the example (`cargo build --example`).
#![cfg(feature = "http")]

// Only the helpers this test uses (tests/common/{example,health_server}.rs).
mod common {
    #![allow(dead_code)]
    pub mod child;
    pub mod example;
    pub mod health_server;
}
#[path = "../../cache/tests/common/redis_server.rs"]
mod redis_server;

use common::health_server::HealthServer;
use redis_server::TestRedis;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::cache::{codec, Codec, EncryptionKey, Keyring};
use vitals::health::HealthData;

/// Synthetic: 32 bytes of 7, base64 (never a real key).
const KEY_B64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
/// The cache's default key prefix (the test leaves `CACHE_KEY_PREFIX` unset).
const PREFIX: &str = "vitals";
/// The warning `TieredCache::build` logs without a key.
const KEPT_IN_L1: &str = "no CACHE_ENCRYPTION_KEY: cached values are kept in L1 only";
/// The warning with `CACHE_ALLOW_PLAINTEXT=true` and no key.
const IN_THE_CLEAR: &str = "cached values are written to Redis in the clear";

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of this test's own, dropped (with everything in it) when this is dropped, even
/// after a failure.
struct Schema(String);

impl Schema {
    fn new(case: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self(format!("at_rest_{case}_{}_{nanos}", std::process::id()))
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let name = self.0.clone();
        // A runtime of its own: drop may run while the test's runtime unwinds.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(pool) = PgPool::connect(&database_url()).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// A student of the server's school with at least one allergy and one vaccination with a
/// lot number, so the summary holds every kind of datum searched for.
async fn pick_student(schema: &str) -> Uuid {
    let pool = PgPool::connect(&database_url()).await.unwrap();
    let id: Option<Uuid> = sqlx::query_scalar(&format!(
        "SELECT s.id FROM {schema}.students s \
         WHERE EXISTS (SELECT 1 FROM {schema}.allergies a WHERE a.student_id = s.id AND a.active) \
           AND EXISTS (SELECT 1 FROM {schema}.vaccinations v \
                       WHERE v.student_id = s.id AND v.lot_number IS NOT NULL) \
         ORDER BY s.student_number LIMIT 1"
    ))
    .fetch_optional(&pool)
    .await
    .unwrap();
    pool.close().await;
    id.expect("a student with allergies and vaccinations in the school")
}

/// What must not be found in Redis: every text of the student's summary as JSON writes it
/// (quoted: `"Ann"`, `"2013-04-02"`, so a short name cannot match a digit of a counter or a
/// few random bytes of ciphertext) except ids (the keys are made of them) and the short
/// codes of enums and grades, and the summary's field names (`"first_name":`). The named
/// needles (names, birth date, student number, allergen, lot number) are returned apart, to
/// check they are among them.
fn needles(summary: &Value) -> (Vec<String>, Vec<String>) {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.chars().count() >= 3 && Uuid::parse_str(s).is_err() => {
                out.push(Value::String(s.clone()).to_string());
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(format!("\"{k}\":"));
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    walk(summary, &mut all);
    all.sort();
    all.dedup();
    let quoted = |v: &Value| {
        assert!(v.is_string(), "{v}");
        v.to_string()
    };
    let s = &summary["student"];
    let named = vec![
        quoted(&s["first_name"]),
        quoted(&s["last_name"]),
        quoted(&s["date_of_birth"]),
        quoted(&s["student_number"]),
        quoted(&summary["allergies"][0]["allergen"]),
        quoted(
            summary["vaccinations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| &v["lot_number"])
                .find(|l| l.is_string())
                .unwrap(),
        ),
    ];
    for n in &named {
        assert!(all.contains(n), "{n} among the needles");
    }
    (all, named)
}

/// The needles found anywhere in `space`: in a key, in a value as stored, or in a value as
/// anyone reading Redis gets it without a key (a payload of the cache's codec decoded, lz4
/// undone: compression is no protection).
fn hits(space: &[(String, Vec<Vec<u8>>)], needles: &[String]) -> Vec<(String, String)> {
    let plain = Codec::new(0, None);
    let contains = |hay: &[u8], n: &str| hay.windows(n.len()).any(|w| w == n.as_bytes());
    let mut found = Vec::new();
    for (k, held) in space {
        let mut views: Vec<Vec<u8>> = vec![k.clone().into_bytes()];
        for v in held {
            views.push(v.clone());
            let logical = k.strip_prefix(&format!("{PREFIX}:v:")).unwrap_or(k);
            if let Ok(decoded) = plain.decode(logical, v) {
                views.push(decoded);
            }
        }
        for n in needles {
            if views.iter().any(|v| contains(v, n)) {
                found.push((k.clone(), n.clone()));
            }
        }
    }
    found
}

/// None of `student`'s `needles` is anywhere in `space` (see `hits`); says so, for `case`.
fn assert_student_not_in(
    space: &[(String, Vec<Vec<u8>>)],
    needles: &[String],
    student: Uuid,
    case: &str,
) {
    let found = hits(space, needles);
    assert!(
        found.is_empty(),
        "student {student}'s data in Redis: {found:?}"
    );
    eprintln!(
        "{case}: {} keys in Redis, {} needles, 0 hits",
        space.len(),
        needles.len()
    );
}

/// The keys of `space` that hold a cached value (`{PREFIX}:v:…`).
fn value_keys(space: &[(String, Vec<Vec<u8>>)]) -> Vec<&String> {
    space
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(&format!("{PREFIX}:v:")))
        .collect()
}

/// Starts Redis and the server with `cache_vars`, fetches one student's summary (twice: the
/// second from the cache) and vaccinations; returns the server, Redis, the student and the
/// summary.
async fn run_case(
    case: &str,
    cache_vars: &[(&str, &str)],
) -> (Schema, TestRedis, HealthServer, Uuid, Value) {
    let schema = Schema::new(case);
    let redis = TestRedis::start().await;
    let redis_url = redis.url();
    let db = database_url();
    let mut vars = vec![
        ("DATABASE_URL", db.as_str()),
        ("VITALS_PG_SCHEMA", schema.0.as_str()),
        ("REDIS_URL", redis_url.as_str()),
    ];
    vars.extend_from_slice(cache_vars);
    // No key or plaintext switch of this process's environment leaks in: only `vars`.
    let server =
        HealthServer::start(&std::env::temp_dir(), &["--demo-students", "40"], &vars).await;
    let log = server.log();
    assert!(log.contains("(PostgreSQL"), "{log}");
    assert!(log.contains("Redis L2)"), "{log}");
    let student = pick_student(&schema.0).await;
    let path = format!("/api/students/{student}/health-summary");
    let summary = server.get_json(&path).await;
    assert_eq!(summary["student"]["id"], student.to_string());
    assert_eq!(server.get_json(&path).await, summary, "the cached summary");
    let vaccinations = server
        .get_json(&format!("/api/students/{student}/vaccinations"))
        .await;
    assert!(!vaccinations.as_array().unwrap().is_empty());
    let stats = server.get_json("/api/health/cache/stats").await;
    assert_eq!(stats["redis_connected"], true, "{stats}");
    assert!(stats["l1_hits"].as_u64().unwrap() >= 1, "{stats}");
    (schema, redis, server, student, summary)
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_health_server_keeps_values_in_l1_and_redis_holds_none_of_the_student() {
    let (_schema, redis, server, student, summary) = run_case("nokey", &[]).await;

    // What the server did with no key: it ran with Redis for invalidations, values in L1
    // only, and said so at start, in the stats and in /metrics.
    let log = server.log();
    assert!(log.contains(KEPT_IN_L1), "no warning at start: {log}");
    let stats = server.get_json("/api/health/cache/stats").await;
    assert_eq!(stats["redis_plaintext_refused"], true, "{stats}");
    // The summary and the vaccinations, each loaded once.
    assert!(
        stats["redis_refused_writes"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert_eq!(stats["l2_hits"], 0, "{stats}");
    let metrics = server.get("/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    let metrics = metrics.body;
    assert_eq!(
        metric(&metrics, "vitals_cache_redis_plaintext_refused"),
        1.0
    );
    assert!(metric(&metrics, "vitals_cache_redis_refused_writes_total") >= 2.0);

    let space = redis_server::keyspace(&redis.url(), "*").await;
    // The writes still moved their keys' generations (coherence): the scan saw keys.
    assert!(
        space
            .iter()
            .any(|(k, _)| k.starts_with(&format!("{PREFIX}:g:"))),
        "no generation counter in {:?}",
        space.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let values = value_keys(&space);
    assert!(values.is_empty(), "value keys in Redis: {values:?}");
    let (needles, _) = needles(&summary);
    assert_student_not_in(&space, &needles, student, "no key");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_the_values_are_in_redis_encrypted_and_hold_none_of_the_student() {
    let (_schema, redis, server, student, summary) =
        run_case("key", &[("CACHE_ENCRYPTION_KEY", KEY_B64)]).await;
    let log = server.log();
    assert!(
        !log.contains(KEPT_IN_L1) && !log.contains(IN_THE_CLEAR),
        "{log}"
    );
    let stats = server.get_json("/api/health/cache/stats").await;
    assert_eq!(stats["redis_plaintext_refused"], false, "{stats}");
    assert_eq!(stats["redis_refused_writes"], 0, "{stats}");

    let space = redis_server::keyspace(&redis.url(), "*").await;
    let logical = HealthData::Summary.key(student);
    let data_key = format!("{PREFIX}:v:{logical}");
    let (_, held) = space
        .iter()
        .find(|(k, _)| *k == data_key)
        .unwrap_or_else(|| panic!("the summary is not in Redis under {data_key}"));
    let raw = &held[0];
    assert!(codec::is_encrypted(raw), "the summary stored unencrypted");
    // With the key it is the student's summary: the needles are what was stored.
    let ring = Keyring::new(EncryptionKey::new("k1", [7; 32]).unwrap(), []);
    let decrypted = Codec::new(0, Some(ring)).decode(&logical, raw).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&decrypted).unwrap(),
        summary
    );

    let (needles, named) = needles(&summary);
    let decrypted_space = [(data_key.clone(), vec![decrypted])];
    assert_eq!(
        hits(&decrypted_space, &named).len(),
        named.len(),
        "every named needle is in the decrypted summary"
    );
    let values = value_keys(&space).len();
    let case = format!("key ({values} values, all encrypted)");
    assert_student_not_in(&space, &needles, student, &case);
    server.stop().await;
}

/// The positive control: the same scan finds the student when values are written in the
/// clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_plaintext_allowed_the_scan_finds_the_student_in_redis() {
    let (_schema, redis, server, student, summary) =
        run_case("plain", &[("CACHE_ALLOW_PLAINTEXT", "true")]).await;
    let log = server.log();
    assert!(log.contains(IN_THE_CLEAR), "{log}");
    let stats = server.get_json("/api/health/cache/stats").await;
    assert_eq!(stats["redis_plaintext_refused"], false, "{stats}");

    let space = redis_server::keyspace(&redis.url(), "*").await;
    let (needles, named) = needles(&summary);
    let found = hits(&space, &needles);
    assert!(!found.is_empty(), "the scan found nothing in the clear");
    for n in &named {
        assert!(
            found.iter().any(|(_, f)| f == n),
            "{n} of student {student} not found in the clear: {found:?}"
        );
    }
    eprintln!(
        "plaintext allowed: {} keys in Redis, {} hits",
        space.len(),
        found.len()
    );
    server.stop().await;
}
