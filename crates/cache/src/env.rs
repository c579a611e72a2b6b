//! Reading a [`CacheConfig`] from the environment, through `vitals_env`'s typed readers.

use base64::Engine as _;
#[cfg(feature = "redis")]
use vitals_env::{encode_userinfo, mask_bad_url};
use vitals_env::{Env, Var};

use crate::config::CacheConfig;
use crate::keyring::{valid_key_id, EncryptionKey, Keyring, KEY_ID_EXPECTED};

impl CacheConfig {
    vitals_env::from_env_methods! {
        /// Reads the configuration from the process environment.
        ///
        /// Variables: `REDIS_URL`, or `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`,
        /// `REDIS_PASSWORD`, or `REDIS_CLUSTER_NODES` (with `REDIS_CLUSTER_WAIT_REPLICAS`,
        /// `REDIS_CLUSTER_WAIT_MS`); `REDIS_TTL_DEFAULT` (s), `CACHE_ENABLE_L1`,
        /// `CACHE_L1_MAX_SIZE`, `CACHE_L1_MAX_BYTES`, `CACHE_L1_TTL` (s), `CACHE_L1_SHARDS`,
        /// `CACHE_COMPRESS_THRESHOLD` (bytes), `CACHE_ENCRYPTION_KEY` (base64 of 32
        /// bytes), `CACHE_ENCRYPTION_KEY_ID`, `CACHE_ENCRYPTION_OLD_KEYS`
        /// (`id:base64,...`), `CACHE_ALLOW_PLAINTEXT`, `CACHE_KEY_PREFIX`, `CACHE_REDIS_TIMEOUT_MS`,
        /// `CACHE_REDIS_CONNECT_TIMEOUT_MS`, `CACHE_RECONNECT_INTERVAL_MS`,
        /// `CACHE_BREAKER_THRESHOLD`, `CACHE_BREAKER_COOLDOWN_MS`,
        /// `CACHE_SUBSCRIPTION_PING_MS`, `CACHE_STATS_REFRESH_MS`, `CACHE_LOAD_LOCK`,
        /// `CACHE_LOAD_LOCK_TTL_MS`, `CACHE_LOAD_LOCK_WAIT_MS`,
        /// `CACHE_WARMING_ENABLED`, `CACHE_WARMING_DELAY` (s),
        /// `CACHE_WARMING_INTERVAL` (s), `CACHE_WARMING_BATCH_SIZE`,
        /// `CACHE_WARMING_CONCURRENCY`, `CACHE_FAIL_SAFE_MAX` (s), `CACHE_EAGER_REFRESH`
        /// (a fraction of the TTL, `0.9` or `90%`). Unset or empty variables keep their default.
        ///
        /// # Errors
        /// [`ConfigError`](vitals_env::ConfigError) (component `cache`) listing every variable
        /// with a bad value; secrets are masked in it.
        component: "cache",
        read: read,
    }
}

/// L1's size and life, read before the keys.
const L1_VARS: &[Var<CacheConfig>] = vitals_env::vars!(fields CacheConfig {
    default_ttl: Secs("REDIS_TTL_DEFAULT", 1),
    l1_enabled: Boolean("CACHE_ENABLE_L1"),
    l1_max_size: Usize("CACHE_L1_MAX_SIZE", 1),
    l1_max_bytes: Usize("CACHE_L1_MAX_BYTES", 1),
    l1_ttl: Secs("CACHE_L1_TTL", 1),
    l1_shards: Usize("CACHE_L1_SHARDS", 1),
    compress_threshold: Usize("CACHE_COMPRESS_THRESHOLD", 0),
});

/// Redis's timings, the breaker and warming, read after the keys.
const REDIS_VARS: &[Var<CacheConfig>] = vitals_env::vars!(fields CacheConfig {
    allow_plaintext: Boolean("CACHE_ALLOW_PLAINTEXT"),
    redis_timeout: Millis("CACHE_REDIS_TIMEOUT_MS", 1),
    connect_timeout: Millis("CACHE_REDIS_CONNECT_TIMEOUT_MS", 1),
    reconnect_interval: Millis("CACHE_RECONNECT_INTERVAL_MS", 1),
    breaker_threshold: Usize("CACHE_BREAKER_THRESHOLD", 1) => |c, n| {
        c.breaker_threshold = u32::try_from(n).unwrap_or(u32::MAX);
    },
    breaker_cooldown: Millis("CACHE_BREAKER_COOLDOWN_MS", 1),
    subscription_ping: Millis("CACHE_SUBSCRIPTION_PING_MS", 1),
    stats_refresh: Millis("CACHE_STATS_REFRESH_MS", 1),
    load_lock: Boolean("CACHE_LOAD_LOCK"),
    load_lock_ttl: Millis("CACHE_LOAD_LOCK_TTL_MS", 1),
    load_lock_wait: Millis("CACHE_LOAD_LOCK_WAIT_MS", 1),
    warming_enabled: Boolean("CACHE_WARMING_ENABLED"),
    warming_delay: Secs("CACHE_WARMING_DELAY", 0),
    warming_interval: Secs("CACHE_WARMING_INTERVAL", 1),
    warming_batch_size: Usize("CACHE_WARMING_BATCH_SIZE", 1),
    warming_concurrency: Usize("CACHE_WARMING_CONCURRENCY", 1),
});

/// Fail-safe's horizon (its eager-refresh sibling is a fraction, read in `read`).
const LOAD_VARS: &[Var<CacheConfig>] = vitals_env::vars!(fields CacheConfig {
    fail_safe_max: Secs("CACHE_FAIL_SAFE_MAX", 0),
});

/// Every variable in the order its problems are reported; then `validate`'s checks of the
/// fields together (and of a field's value, such as the prefix's length), named by their
/// variables, as for a configuration set in code.
fn read(env: &mut Env<'_>) -> Option<CacheConfig> {
    let mut c = CacheConfig {
        redis_url: redis_url(env),
        redis_cluster: crate::cluster_config::read(env),
        ..CacheConfig::default()
    };
    if let Some(prefix) = env.string("CACHE_KEY_PREFIX") {
        c.key_prefix = prefix; // checked by `validate` below
    }
    if let Some(path) = env.string("REDIS_TLS_CA_FILE") {
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => c.redis_tls_ca = Some(path.into()),
            _ => env.problem("REDIS_TLS_CA_FILE", &path, "a readable PEM file"),
        }
    }
    let mut c = env.apply(c, L1_VARS);
    c.encryption = keyring(env);
    let mut c = env.apply(c, REDIS_VARS);
    c = env.apply(c, LOAD_VARS);
    c.eager_refresh = env
        .parse(
            "CACHE_EAGER_REFRESH",
            crate::fraction::EAGER_EXPECTED,
            crate::fraction::parse_fraction,
        )
        .flatten();
    env.adopt(c.validate().map(|()| c))
}

/// The variables that name a single Redis node.
const REDIS_NODE_VARS: [&str; 5] = [
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_PASSWORD",
];

/// Without the `redis` feature: each variable naming a Redis node that is set is a problem
/// (the password's value is never shown), and there is no URL.
#[cfg(not(feature = "redis"))]
fn redis_url(env: &mut Env<'_>) -> Option<String> {
    for name in REDIS_NODE_VARS {
        if env.is_set(name) {
            env.relation_problem(name, crate::error::NO_REDIS_FEATURE);
        }
    }
    None
}

/// `REDIS_URL`, or a URL built from `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB` and
/// `REDIS_PASSWORD`; `None` when none is set (L1 only) or the URL or host is bad.
#[cfg(feature = "redis")]
fn redis_url(env: &mut Env<'_>) -> Option<String> {
    if let Some(url) = env.string("REDIS_URL") {
        if let Err(e) = redis::Client::open(url.as_str()) {
            env.problem(
                "REDIS_URL",
                &mask_bad_url(&url),
                format!("a redis:// URL ({e})"),
            );
            return None;
        }
        return Some(url);
    }
    if !REDIS_NODE_VARS[1..].iter().any(|name| env.is_set(name)) {
        return None;
    }
    let host = env
        .string("REDIS_HOST")
        .unwrap_or_else(|| "127.0.0.1".into());
    let host_ok = !host.contains(['/', '@', ' ']);
    if !host_ok {
        env.problem("REDIS_HOST", &host, "a host name or IP address");
    }
    let port = env
        .parse("REDIS_PORT", "a port number 1-65535", |p| {
            p.parse::<u16>().ok().filter(|n| *n > 0)
        })
        .unwrap_or(6379);
    let db = env
        .parse("REDIS_DB", "a database number >= 0", |d| {
            d.parse::<u32>().ok()
        })
        .unwrap_or(0);
    let password = env.string("REDIS_PASSWORD");
    let auth = password.map_or_else(String::new, |pw| format!(":{}@", encode_userinfo(&pw)));
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    // No URL from a bad host, so `validate` does not report it again as REDIS_URL.
    host_ok.then(|| format!("redis://{auth}{host}:{port}/{db}"))
}

/// The 32 bytes of the base64 key in `var`; a bad one is recorded without its value.
fn key(env: &mut Env<'_>, var: &str, b64: &str) -> Option<[u8; 32]> {
    match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
        Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
            Ok(k) => Some(k),
            Err(_) => {
                env.secret_problem(
                    var,
                    format!("base64 of exactly 32 bytes (got {} bytes)", bytes.len()),
                );
                None
            }
        },
        Err(_) => {
            env.secret_problem(var, "base64 of exactly 32 bytes");
            None
        }
    }
}

/// The keyring of `CACHE_ENCRYPTION_KEY` (id `CACHE_ENCRYPTION_KEY_ID`, default `k1`) and
/// `CACHE_ENCRYPTION_OLD_KEYS`; `None` without a key or when any of them is bad.
fn keyring(env: &mut Env<'_>) -> Option<Keyring> {
    let key_b64 = env.string("CACHE_ENCRYPTION_KEY");
    let id = env
        .string("CACHE_ENCRYPTION_KEY_ID")
        .unwrap_or_else(|| "k1".into());
    let id_ok = valid_key_id(&id);
    if !id_ok {
        // A key id is no secret: it is written in the clear in every payload's header.
        env.problem("CACHE_ENCRYPTION_KEY_ID", &id, KEY_ID_EXPECTED);
    }
    let mut olds = Vec::new();
    if let Some(old) = env.string("CACHE_ENCRYPTION_OLD_KEYS") {
        for (i, item) in old.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let Some((oid, b64)) = item.split_once(':') else {
                env.secret_problem(
                    "CACHE_ENCRYPTION_OLD_KEYS",
                    format!("comma-separated id:base64 pairs (item {} is not)", i + 1),
                );
                continue;
            };
            if !valid_key_id(oid) {
                // Not shown: a pair written the wrong way round puts the key here.
                env.secret_problem(
                    "CACHE_ENCRYPTION_OLD_KEYS",
                    format!("key ids of [A-Za-z0-9._-] (item {} has not)", i + 1),
                );
                continue;
            }
            if let Some(k) = key(env, "CACHE_ENCRYPTION_OLD_KEYS", b64) {
                olds.push(EncryptionKey {
                    id: oid.to_owned(),
                    key: k,
                });
            }
        }
    }
    let k = key(env, "CACHE_ENCRYPTION_KEY", &key_b64?)?;
    id_ok.then(|| Keyring::new(EncryptionKey { id, key: k }, olds))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use vitals_env::pairs as env;

    use crate::config::CacheConfig;

    #[test]
    fn defaults_without_variables_are_l1_only() {
        let c = CacheConfig::from_env_with(|_| None).unwrap();
        assert!(c.redis_url.is_none());
        assert_eq!(c.default_ttl, Duration::from_secs(300));
        assert!(c.l1_enabled);
        assert_eq!(c.l1_max_size, 1000);
        assert_eq!(c.l1_ttl, Duration::from_secs(60));
        assert_eq!(c.compress_threshold, 1024);
        assert!(c.encryption.is_none());
        assert!(!c.warming_enabled, "scheduled warming is opt-in");
    }

    #[test]
    fn l1_max_size_has_an_upper_bound() {
        let ok = CacheConfig::from_env_with(env(&[("CACHE_L1_MAX_SIZE", "10000000")])).unwrap();
        assert_eq!(ok.l1_max_size, crate::config::MAX_L1_SIZE);
        let err = CacheConfig::from_env_with(env(&[("CACHE_L1_MAX_SIZE", "10000001")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CACHE_L1_MAX_SIZE"), "{err}");
        assert!(err.contains("1 to 10000000 entries"), "{err}");
    }

    #[test]
    #[cfg(feature = "redis")]
    fn plaintext_in_redis_is_refused_unless_allowed() {
        let c = CacheConfig::from_env_with(env(&[("REDIS_URL", "redis://h:1/0")])).unwrap();
        assert!(!c.allow_plaintext && c.refuses_plaintext());
        let c = CacheConfig::from_env_with(env(&[
            ("REDIS_URL", "redis://h:1/0"),
            ("CACHE_ALLOW_PLAINTEXT", "true"),
        ]))
        .unwrap();
        assert!(c.allow_plaintext && !c.refuses_plaintext());
        let k = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let c = CacheConfig::from_env_with(env(&[
            ("REDIS_URL", "redis://h:1/0"),
            ("CACHE_ENCRYPTION_KEY", &k),
        ]))
        .unwrap();
        assert!(!c.refuses_plaintext());
        assert!(
            !CacheConfig::default().refuses_plaintext(),
            "no Redis, nothing to refuse"
        );
    }

    /// A `REDIS_URL` that is not a URL is refused by name, its password never shown (a
    /// key=value string, a typo that drops `:` after the scheme).
    #[test]
    #[cfg(feature = "redis")]
    fn a_redis_url_that_is_no_url_never_shows_its_password() {
        for bad in [
            "host=r password=pwZq9Secret",
            "redis//app:pwZq9Secret@r:6379",
        ] {
            let e = CacheConfig::from_env_with(env(&[("REDIS_URL", bad)])).unwrap_err();
            let (shown, debug) = (e.to_string(), format!("{e:?}"));
            assert!(shown.contains("REDIS_URL"), "{shown}");
            assert!(
                !shown.contains("pwZq9Secret") && !debug.contains("pwZq9Secret"),
                "{shown}"
            );
        }
    }

    #[test]
    #[cfg(feature = "redis")]
    fn host_port_db_password_build_a_url() {
        let c = CacheConfig::from_env_with(env(&[
            ("REDIS_HOST", "cache.local"),
            ("REDIS_PORT", "6380"),
            ("REDIS_DB", "2"),
            ("REDIS_PASSWORD", "p@ss word"),
        ]))
        .unwrap();
        assert_eq!(
            c.redis_url.as_deref(),
            Some("redis://:p%40ss%20word@cache.local:6380/2")
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p%40ss"), "{dbg}");
        assert!(dbg.contains(":***@cache.local"), "{dbg}");
    }

    #[test]
    #[cfg(feature = "redis")]
    fn every_bad_variable_is_reported_at_once_and_secrets_are_masked() {
        let err = CacheConfig::from_env_with(env(&[
            ("REDIS_PORT", "seventy"),
            ("REDIS_TTL_DEFAULT", "-1"),
            ("CACHE_ENABLE_L1", "maybe"),
            ("CACHE_L1_MAX_SIZE", "0"),
            ("CACHE_ENCRYPTION_KEY", "c2VjcmV0LXNob3J0"),
            ("CACHE_BREAKER_COOLDOWN_MS", "soon"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.variables(),
            [
                "REDIS_PORT",
                "REDIS_TTL_DEFAULT",
                "CACHE_ENABLE_L1",
                "CACHE_L1_MAX_SIZE",
                "CACHE_ENCRYPTION_KEY",
                "CACHE_BREAKER_COOLDOWN_MS"
            ]
        );
        let msg = err.to_string();
        assert!(!msg.contains("c2VjcmV0"), "{msg}");
        assert!(msg.contains("REDIS_PORT=\"seventy\""), "{msg}");
    }

    #[test]
    fn the_key_prefix_has_one_rule_from_the_environment_and_from_code() {
        let long = "p".repeat(65);
        for bad in [long.as_str(), "a b"] {
            let err = CacheConfig::from_env_with(env(&[("CACHE_KEY_PREFIX", bad)])).unwrap_err();
            assert_eq!(err.variables(), ["CACHE_KEY_PREFIX"], "{bad}");
            let in_code = CacheConfig::default().with_key_prefix(bad).validate();
            assert_eq!(in_code.unwrap_err(), err, "{bad}");
        }
        let c = CacheConfig::from_env_with(env(&[("CACHE_KEY_PREFIX", &"p".repeat(64))])).unwrap();
        assert_eq!(c.key_prefix.len(), 64);
        let err = CacheConfig::from_env_with(env(&[("CACHE_L1_SHARDS", "3")])).unwrap_err();
        assert_eq!(err.problems().len(), 1, "{err}");
        assert_eq!(err.problems()[0].variable, "CACHE_L1_SHARDS");
    }

    #[test]
    fn encryption_key_and_old_keys_are_read() {
        let k = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let o = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let c = CacheConfig::from_env_with(env(&[
            ("CACHE_ENCRYPTION_KEY", &k),
            ("CACHE_ENCRYPTION_KEY_ID", "2024-09"),
            ("CACHE_ENCRYPTION_OLD_KEYS", &format!("2024-01:{o}")),
        ]))
        .unwrap();
        let ring = c.encryption.unwrap();
        assert_eq!(ring.current().id(), "2024-09");
        assert_eq!(ring.key("2024-01").unwrap().bytes(), &[9u8; 32]);
        assert!(!format!("{ring:?}").contains(&k));
    }

    #[test]
    #[cfg(feature = "redis")]
    fn tls_urls_are_accepted_and_a_missing_ca_file_is_named() {
        let c = CacheConfig::from_env_with(env(&[("REDIS_URL", "rediss://:pw@h:6380/0")])).unwrap();
        assert_eq!(c.redis_url.as_deref(), Some("rediss://:pw@h:6380/0"));
        let err = CacheConfig::from_env_with(env(&[
            ("REDIS_URL", "rediss://:pw@h:6380/0"),
            ("REDIS_TLS_CA_FILE", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err();
        assert_eq!(err.problems()[0].variable, "REDIS_TLS_CA_FILE");
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }

    #[test]
    fn malformed_old_keys_are_named_without_their_value() {
        let o = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let err = CacheConfig::from_env_with(env(&[
            ("CACHE_ENCRYPTION_KEY", &o),
            ("CACHE_ENCRYPTION_OLD_KEYS", &format!("{o},{o}:2024-01")),
        ]))
        .unwrap_err();
        assert_eq!(
            err.variables(),
            ["CACHE_ENCRYPTION_OLD_KEYS", "CACHE_ENCRYPTION_OLD_KEYS"]
        );
        let msg = err.to_string();
        assert!(!msg.contains(&o[..8]), "{msg}");
        assert!(msg.contains("item 1") && msg.contains("item 2"), "{msg}");
    }
}
