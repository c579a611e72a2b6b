//! Security through the facade: every `tracing` line of a full run (load, reads, writes, an
//! import with bad rows, a unique violation with its DETAIL, a slow query, the dashboard,
//! warming, the query summary) is scanned with the free-text scrubber's detectors and for
//! every name and literal the run used; Redis holds no plaintext with an encryption key set;
//! passwords in URLs never reach a log or an error; TLS to PostgreSQL with `sslmode`.
//!
//! Run with `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p vitals --test security`
//! (needs `redis-server` on PATH for the password-protected Redis this test starts).
//!
//! Every test of this binary writes its `tracing` output (all targets, TRACE) into one
//! buffer; each test scans the buffer after its own run, so a leak from any test is found.

mod common;
#[path = "../../cache/tests/common/redis_server.rs"]
mod redis_server;

use common::{
    cached_summary, free_port, load_postgres_school, redis_url, vitals_on_postgres, Captured,
};
use redis_server::TestRedis;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveDate;
use redis::AsyncCommands as _;
use sqlx::PgPool;
use uuid::Uuid;
use vitals::cache::{codec, EncryptionKey, Keyring};
use vitals::health::{self, HealthData, School};
use vitals::import::{Format, Source};
use vitals::querylog::scrub_text;
use vitals::{Config, Error, Vitals};

/// The configuration of these variables (the rest unset).
fn config_of(vars: &[(&str, &str)]) -> Config {
    Config::from_env_with(vitals::env::pairs(vars)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Capture of every tracing line of this binary.

/// The buffer every test's tracing output goes to: the binary's one global subscriber, at
/// TRACE (a thread-local default misses events of other runtime threads).
fn captured() -> &'static Captured {
    common::global_capture(tracing::Level::TRACE)
}

fn log_text() -> String {
    captured().text()
}

/// The scrubber's typed masks: one more of them in `scrub_text(line)` than in `line` means a
/// detector fired on the line.
const MASKS: &[&str] = &[
    "[VALUE]", "[ROW]", "[EMAIL]", "[IPV4]", "[DATE]", "[SSN]", "[CARD]", "[PHONE]", "[MRN]",
];

/// `line` with the fraction of every decimal number cut to 3 digits: a float such as
/// `duration_ms=83.72866599999999` has 16 digits in a row that may pass the card detector's
/// Luhn check (a false positive of the scrubber; see docs/reliability.md).
fn short_fractions(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut kept: Option<usize> = None; // digits kept after a decimal point
    let mut prev = ' ';
    for c in line.chars() {
        match kept {
            Some(n) if c.is_ascii_digit() => {
                if n < 3 {
                    out.push(c);
                }
                kept = Some(n + 1);
            }
            _ => {
                kept = (c == '.' && prev.is_ascii_digit()).then_some(0);
                out.push(c);
            }
        }
        prev = c;
    }
    out
}

/// The detectors that fire on `line` (loopback addresses and long float fractions, which
/// are not PHI, aside).
fn detectors_fired(line: &str) -> Vec<&'static str> {
    let line = short_fractions(&line.replace("127.0.0.1", "loopback"));
    let scrubbed = scrub_text(&line);
    MASKS
        .iter()
        .copied()
        .filter(|m| scrubbed.matches(m).count() > line.matches(m).count())
        .collect()
}

/// Whether `word` occurs in `text` as a whole word (names are capitalised words).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn keyring() -> Keyring {
    Keyring::new(EncryptionKey::new("sec-2026", [9; 32]).unwrap(), [])
}

fn config(prefix: &str, slow_ms: u64) -> Config {
    let slow = slow_ms.to_string();
    let mut c = config_of(&[
        ("DB_SLOW_QUERY_WARN_MS", slow.as_str()),
        (
            "DB_SLOW_QUERY_CRITICAL_MS",
            (slow_ms * 4).to_string().as_str(),
        ),
        ("CACHE_WARMING_ENABLED", "false"),
    ]);
    c.cache = c
        .cache
        .with_redis_url(Some(redis_url()))
        .with_key_prefix(prefix)
        .with_encryption(Some(keyring()));
    c
}

// ---------------------------------------------------------------------------------------------

/// What a full run used that must never be logged: names, and every literal bound.
struct Secrets {
    words: Vec<String>,
    literals: Vec<String>,
}

async fn full_run(vitals: &Vitals, pool: &PgPool, school: &School) -> Secrets {
    let mut literals = Vec::new();
    // Reads of every kind, for every student (misses, then hits).
    for _ in 0..2 {
        for s in &school.students {
            let h = vitals.health_cache();
            h.student_health_summary(s.id).await.unwrap().unwrap();
            h.vaccinations(s.id).await.unwrap();
            h.allergies(s.id).await.unwrap();
            h.chronic_conditions(s.id).await.unwrap();
        }
    }
    // A write with invalidation, all values bound.
    let student = &school.students[1];
    let (vaccine, lot, given_by) = ("Zostavax", "LOT-77812", "Nurse Quintessa Marlowe");
    literals.extend([vaccine.to_owned(), lot.to_owned(), given_by.to_owned()]);
    let n = vitals::with_db!(vitals.db(), |db| {
        sqlx::query(
            "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, administered_on, administered_by, lot_number) \
             VALUES ($1, $2, $3, 1, $4, $5, $6)",
        )
        .bind(Uuid::new_v4())
        .bind(student.id)
        .bind(vaccine)
        .bind(NaiveDate::from_ymd_opt(2026, 3, 14).unwrap())
        .bind(given_by)
        .bind(lot)
        .execute(db)
        .await
        .map(|r| r.rows_affected())
    })
    .unwrap();
    assert_eq!(n, 1);
    vitals.health_cache().invalidate_student(student.id).await;
    let summary = cached_summary(vitals, student.id).await;
    assert!(summary
        .vaccinations
        .iter()
        .any(|v| v.vaccine_name == vaccine));

    // A unique violation: PostgreSQL's DETAIL names the value; the host logs the error.
    let taken = &school.students[2].student_number;
    literals.push(taken.clone());
    let dup = vitals::with_db!(vitals.db(), |db| {
        sqlx::query(
            "INSERT INTO students (id, student_number, first_name, last_name, date_of_birth, grade) \
             VALUES ($1, $2, $3, $4, $5, '4')",
        )
        .bind(Uuid::new_v4())
        .bind(taken)
        .bind("Philomena")
        .bind("Vandersloot")
        .bind(NaiveDate::from_ymd_opt(2013, 7, 21).unwrap())
        .execute(db)
        .await
        .map(|_| ())
    })
    .unwrap_err();
    literals.extend(["Philomena".to_owned(), "Vandersloot".to_owned()]);
    let raw = dup.to_string();
    let err = Error::from(dup);
    tracing::error!(error = %err, "host: could not add the student");
    tracing::error!(error = ?err, "host: could not add the student (debug)");
    assert!(!err.to_string().contains(taken.as_str()), "{err}");
    assert!(raw.contains("duplicate key"), "{raw}");

    // A slow query with a bound name.
    let slow: (String,) = vitals::with_db!(vitals.db(), |db| {
        sqlx::query_as("SELECT $1::text FROM pg_sleep(0.08)")
            .bind("Cordelia Blackwood-Ashe")
            .fetch_one(db)
            .await
    })
    .unwrap();
    literals.push(slow.0);

    // An import with good and bad rows, names and ids in them.
    let new_id = Uuid::new_v4();
    let unknown = Uuid::new_v4();
    literals.extend([
        new_id.to_string(),
        unknown.to_string(),
        "Evangelina".into(),
        "Thistlewood".into(),
        "Quercetin".into(),
    ]);
    let ndjson = format!(
        "{{\"type\":\"student\",\"id\":\"{new_id}\",\"student_number\":\"SEC-5521\",\"first_name\":\"Evangelina\",\"last_name\":\"Thistlewood\",\"date_of_birth\":\"2012-12-12\",\"grade\":\"7\"}}\n\
         {{\"type\":\"allergy\",\"student_id\":\"{new_id}\",\"allergen\":\"Quercetin\",\"severity\":\"SEVERE\",\"reaction\":\"Evangelina wheezes\"}}\n\
         {{\"type\":\"allergy\",\"student_id\":\"{unknown}\",\"allergen\":\"Quercetin\",\"severity\":\"MILD\"}}\n\
         {{\"type\":\"vaccination\",\"student_id\":\"{new_id}\",\"vaccine_name\":\"Thistlewood\",\"dose_number\":99,\"administered_on\":\"2015-02-30\"}}\n\
         {{\"type\":\"student\",\"id\":\"{new_id}\",\"first_name\":\"Evangelina\"}}\n\
         not json Evangelina Thistlewood 2012-12-12\n"
    );
    literals.push("SEC-5521".into());
    let report = vitals
        .import(
            Source::from_reader(std::io::Cursor::new(ndjson.into_bytes()), Format::Ndjson).unwrap(),
            None,
        )
        .await
        .unwrap()
        .report;
    assert_eq!((report.imported, report.rejected), (2, 4), "{report:#?}");
    tracing::info!(report = %serde_json::to_string(&report).unwrap(), "host: import report");

    // The dashboard, warming, pool health and the query summary.
    let stats = vitals.dashboard().stats().await;
    assert!(stats.failures.is_empty(), "{stats:?}");
    vitals.dashboard().recent_activities(20).await.unwrap();
    let warmed = vitals.warm_now().await;
    assert!(warmed.warmed > 0, "{warmed:?}");
    vitals.pool_health(Duration::from_secs(2)).await;
    vitals.query_logger().log_summary();
    tracing::info!(report = %vitals.query_logger().report().to_text(), "host: query report");
    let slow = vitals.query_logger().slow_queries(10);
    assert!(!slow.is_empty(), "the pg_sleep query counted as slow");
    let _ = pool;

    let mut words = Vec::new();
    for s in &school.students {
        words.extend([s.first_name.clone(), s.last_name.clone()]);
        literals.push(s.student_number.clone());
    }
    Secrets { words, literals }
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn tracing_output_of_a_full_run_holds_no_phi(pool: PgPool) {
    captured();
    let prefix = format!("vt-sec-{}", Uuid::new_v4().simple());
    let vitals = vitals_on_postgres(
        config(&prefix, 40),
        pool.clone(),
        Some(Duration::from_millis(200)),
    )
    .await;
    let school = load_postgres_school(&pool, 30, 99).await;
    let secrets = full_run(&vitals, &pool, &school).await;
    vitals.shutdown().await;

    let log = log_text();
    if let Ok(path) = std::env::var("VITALS_SECURITY_LOG") {
        std::fs::write(path, &log).unwrap();
    }
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 50, "the run logged: {} lines", lines.len());
    // The run's events are there: the host's error (scrubbed), the slow query, the summary.
    for needle in [
        "host: could not add the student",
        "duplicate key value",
        "query summary",
        "import finished",
    ] {
        assert!(log.contains(needle), "{needle} not logged");
    }
    // The scanner finds what it looks for.
    assert_eq!(
        detectors_fired("DETAIL: Key (email)=(ann.lee@example.com) already exists"),
        ["[VALUE]"]
    );
    assert!(has_word("first Arnor then", "Arnor") && !has_word("Arnorx", "Arnor"));
    assert_eq!(
        short_fractions("ms=83.72866599999999 v1.2.3 x."),
        "ms=83.728 v1.2.3 x."
    );
    assert_eq!(detectors_fired("card 4111 1111 1111 1111"), ["[CARD]"]);
    let mut findings = Vec::new();
    for line in &lines {
        // sqlx's own statement events carry SQL with constant literals ('SEVERE'); they are
        // checked for names and bound values below, not with the quoted-value detector.
        if !line.contains("sqlx::query") {
            for d in detectors_fired(line) {
                findings.push(format!("{d}: {line}"));
            }
        }
        for w in &secrets.words {
            if has_word(line, w) {
                findings.push(format!("name {w:?}: {line}"));
            }
        }
        for l in &secrets.literals {
            if line.contains(l.as_str()) {
                findings.push(format!("literal {l:?}: {line}"));
            }
        }
    }
    eprintln!("scanned {} log lines of a full run", lines.len());
    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn with_an_encryption_key_redis_holds_no_plaintext(pool: PgPool) {
    captured();
    let prefix = format!("vt-sec-enc-{}", Uuid::new_v4().simple());
    let vitals = vitals_on_postgres(config(&prefix, 1000), pool.clone(), None).await;
    let school = load_postgres_school(&pool, 25, 5).await;
    for s in &school.students {
        let h = vitals.health_cache();
        h.student_health_summary(s.id).await.unwrap();
        h.vaccinations(s.id).await.unwrap();
        h.allergies(s.id).await.unwrap();
        h.chronic_conditions(s.id).await.unwrap();
    }
    vitals.warm_now().await;

    // Plaintext JSON would hold these quoted (7+ bytes each: no chance match in ciphertext).
    let mut needles: Vec<String> = [
        "\"first_name\"",
        "\"allergen\"",
        "\"vaccine_name\"",
        "\"student_number\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in &school.students {
        needles.extend([
            format!("\"{}\"", s.first_name),
            format!("\"{}\"", s.last_name),
            format!("\"{}\"", s.student_number),
            format!("\"{}\"", s.date_of_birth),
        ]);
    }
    for a in &school.allergies {
        needles.push(format!("\"{}\"", a.allergen));
    }
    for c in &school.chronic_conditions {
        needles.push(format!("\"{}\"", c.condition));
    }

    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // KEYS is fine here: a prefix of this test's own, a few hundred keys.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut values = 0;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for key in &keys {
        for s in &school.students {
            assert!(
                !key.contains(&s.last_name) && !key.contains(&s.first_name),
                "a name in a key: {key}"
            );
        }
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        *kinds.entry(kind.clone()).or_default() += 1;
        let blobs: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![conn.get(key).await.unwrap()],
            "set" => conn.smembers(key).await.unwrap(),
            // Tag indexes: members are keys (ids), scored by expiry.
            "zset" => conn.zrange(key, 0, -1).await.unwrap(),
            other => panic!("unexpected redis type {other} at {key}"),
        };
        for blob in blobs {
            // `{prefix}:v:…` holds values; `{prefix}:g:…` holds generation counters (numbers).
            if key.starts_with(&format!("{prefix}:v:")) {
                values += 1;
                assert!(
                    codec::is_encrypted(&blob),
                    "a value stored without encryption at {key}: {} bytes, {:?}",
                    blob.len(),
                    String::from_utf8_lossy(&blob[..blob.len().min(40)])
                );
            }
            for n in &needles {
                assert!(
                    !blob.windows(n.len()).any(|w| w == n.as_bytes()),
                    "{n} in clear in redis at {key}"
                );
            }
        }
    }
    eprintln!(
        "redis: {} keys under the prefix ({kinds:?}), {values} values, all encrypted",
        keys.len()
    );
    assert!(values >= 4 * school.students.len(), "{values} values");
    // And the cache reads them back (a second instance, from Redis).
    let other = vitals_on_postgres(config(&prefix, 1000), pool.clone(), None).await;
    let s = &school.students[0];
    let back = other
        .cache()
        .get::<health::HealthSummary>(&HealthData::Summary.key(s.id))
        .await;
    assert_eq!(back.map(|b| b.student.clone()), Some(s.clone()));
    let _: () = conn.del(&keys).await.unwrap();
    other.shutdown().await;
    vitals.shutdown().await;
}

#[tokio::test]
async fn passwords_in_urls_never_appear_in_a_log_or_an_error() {
    captured();
    let pg_password = "PgPass-Xq81z";
    let redis_password = "RedisPass-Wy52k";
    let wrong_password = "WrongPass-Vz33j";

    // PostgreSQL with a password, nothing listening: an error, retried and logged.
    let url = format!(
        "postgres://vitals:{pg_password}@127.0.0.1:{}/school",
        free_port()
    );
    let config = config_of(&[
        ("DATABASE_URL", url.as_str()),
        ("DB_RETRY_MAX", "2"),
        ("DB_RETRY_BASE_DELAY", "10"),
        ("DB_ACQUIRE_TIMEOUT", "500"),
    ]);
    let config_debug = format!("{config:?}");
    let err = Vitals::builder().config(config).build().await.unwrap_err();
    let mut texts = vec![err.to_string(), format!("{err:?}"), config_debug];

    // Redis with a password: right (connects), wrong (runs on L1), dead port (runs on L1).
    let server = TestRedis::with_password(redis_password).await;
    let dir = tempfile::tempdir().unwrap();
    for (i, (password, port, should_connect)) in [
        (redis_password, server.port, true),
        (wrong_password, server.port, false),
        (redis_password, free_port(), false),
    ]
    .into_iter()
    .enumerate()
    {
        let redis = format!("redis://:{password}@127.0.0.1:{port}/0");
        let sqlite = format!(
            "sqlite://{}",
            dir.path().join(format!("{i}.sqlite")).display()
        );
        let config = config_of(&[
            ("REDIS_URL", redis.as_str()),
            ("DATABASE_URL", sqlite.as_str()),
            ("CACHE_REDIS_CONNECT_TIMEOUT_MS", "300"),
            ("CACHE_REDIS_TIMEOUT_MS", "300"),
        ]);
        texts.push(format!("{config:?}"));
        let vitals = Vitals::builder().config(config).build().await.unwrap();
        let connected = vitals.cache().wait_subscribed(Duration::from_secs(3)).await;
        assert_eq!(
            connected, should_connect,
            "password {password} on port {port}"
        );
        vitals
            .cache()
            .set("probe", &1, Duration::from_secs(5), &[])
            .await
            .unwrap();
        vitals.cache().get::<i32>("absent").await;
        texts.push(format!("{vitals:?}"));
        texts.push(format!("{:?}", vitals.config()));
        texts.push(serde_json::to_string(&vitals.cache_stats()).unwrap());
        vitals.shutdown().await;
    }
    drop(server);
    let log = log_text();
    texts.push(log);
    for t in &texts {
        for p in [pg_password, redis_password, wrong_password] {
            assert!(!t.contains(p), "password {p} shown in: {t}");
        }
    }
    assert!(
        texts[0].contains("***"),
        "the URL is shown masked: {}",
        texts[0]
    );
}

/// `{config:?}` of a configuration whose `DATABASE_URL` has a password.
#[test]
fn config_debug_masks_the_database_password() {
    let config = Config::from_env_with(|name| {
        (name == "DATABASE_URL")
            .then(|| "postgres://vitals:PgPass-Xq81z@127.0.0.1:1/school".to_owned())
    })
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("PgPass-Xq81z"), "{debug}");
}

/// TLS to PostgreSQL: `sslmode=require` and `verify-full` (with the server's certificate as
/// the root) connect over TLS through the facade; `sslmode=require` to a server without TLS
/// is a clear error. Uses the main server only to connect (no migration, nothing written).
#[tokio::test]
async fn postgres_over_tls_with_sslmode() {
    captured();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let plain = sqlx::PgPool::connect(&base).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&plain)
        .await
        .unwrap();
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&plain)
        .await
        .unwrap();
    plain.close().await;
    if ssl != "on" {
        eprintln!("SKIPPED: the PostgreSQL at DATABASE_URL has ssl=off; nothing to test");
        return;
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut modes = vec![format!("{base}{sep}sslmode=require")];
    if std::path::Path::new(&cert).exists() {
        let host_url = base.replace("127.0.0.1", "localhost");
        modes.push(format!(
            "{host_url}{sep}sslmode=verify-full&sslrootcert={cert}"
        ));
    }
    for url in &modes {
        let config = config_of(&[
            ("DATABASE_URL", url.as_str()),
            ("VITALS_MIGRATE", "false"),
            ("DB_RETRY_MAX", "1"),
            ("DB_POOL_MIN", "0"),
        ]);
        let vitals = match Vitals::builder().config(config).build().await {
            Ok(v) => v,
            Err(e) => panic!("{url}: {e}"),
        };
        let on_tls: bool = vitals::with_db!(vitals.db(), |db| {
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(db)
                .await
        })
        .unwrap();
        assert!(on_tls, "{url}: the connection is not encrypted");
        eprintln!("TLS ok: {}", vitals::pool::mask_url(url));
        vitals.shutdown().await;
    }
}
