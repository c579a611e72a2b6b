//! Configuration of the cache, from the environment or built in code.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

use crate::error::{ConfigError, ConfigProblem};

/// An AES-256 key and its id; the id is written in the header of every
/// encrypted payload so that keys can rotate.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    key: [u8; 32],
}

impl EncryptionKey {
    /// A key from its id (1 to 255 bytes of ASCII letters, digits, `-`, `_`, `.`)
    /// and its 32 bytes.
    ///
    /// # Errors
    /// [`ConfigError`] if the id is empty, too long or not in that alphabet.
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Result<Self, ConfigError> {
        let id = id.into();
        if !valid_key_id(&id) {
            return Err(ConfigError::one(
                "CACHE_ENCRYPTION_KEY_ID",
                id,
                KEY_ID_EXPECTED,
            ));
        }
        Ok(Self { id, key })
    }

    /// The key id written in payload headers.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a key id must be, in configuration errors.
const KEY_ID_EXPECTED: &str = "1 to 255 characters of [A-Za-z0-9._-]";

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The keys used for payloads in Redis: the current one encrypts, every one
/// (current and old) decrypts, chosen by the id in the header.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: EncryptionKey,
    all: Arc<HashMap<String, EncryptionKey>>,
}

impl Keyring {
    /// A keyring that encrypts with `current` and also decrypts with `old`.
    pub fn new(current: EncryptionKey, old: impl IntoIterator<Item = EncryptionKey>) -> Self {
        let mut all: HashMap<String, EncryptionKey> =
            old.into_iter().map(|k| (k.id.clone(), k)).collect();
        all.insert(current.id.clone(), current.clone());
        Self {
            current,
            all: Arc::new(all),
        }
    }

    /// The key that encrypts.
    pub fn current(&self) -> &EncryptionKey {
        &self.current
    }

    /// The key of that id, if known.
    pub fn key(&self, id: &str) -> Option<&EncryptionKey> {
        self.all.get(id)
    }
}

/// Configuration of a [`TieredCache`](crate::TieredCache).
///
/// Start from [`CacheConfig::default`] (L1 only, no Redis) or
/// [`CacheConfig::from_env`], then adjust fields or use the `with_` setters.
/// `Debug` masks the Redis password and never shows encryption keys.
#[derive(Clone)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Redis URL (`redis://`, or `rediss://` for TLS); `None` runs the cache
    /// on L1 only.
    pub redis_url: Option<String>,
    /// PEM file of the certificate authority a `rediss://` server's
    /// certificate is checked against (`REDIS_TLS_CA_FILE`); `None` uses the
    /// system's trust store.
    pub redis_tls_ca: Option<std::path::PathBuf>,
    /// Namespace of every Redis key and of the invalidation channel.
    pub key_prefix: String,
    /// TTL used by callers that have no better one (`REDIS_TTL_DEFAULT`).
    pub default_ttl: Duration,
    /// Whether the in-process L1 is used.
    pub l1_enabled: bool,
    /// Maximum number of entries in L1.
    pub l1_max_size: usize,
    /// Upper bound of an entry's life in L1 (the entry's own TTL may be shorter).
    pub l1_ttl: Duration,
    /// Number of L1 shards (a power of two); more shards, less lock contention.
    pub l1_shards: usize,
    /// Payloads longer than this (bytes) are lz4-compressed before Redis.
    pub compress_threshold: usize,
    /// Encryption of everything written to Redis; `None` writes plaintext.
    pub encryption: Option<Keyring>,
    /// Time allowed for one Redis command before it counts as a failure.
    pub redis_timeout: Duration,
    /// Time allowed to establish a Redis connection.
    pub connect_timeout: Duration,
    /// Pause between reconnection attempts (connection and subscription).
    pub reconnect_interval: Duration,
    /// Consecutive Redis failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker skips Redis before one probe call.
    pub breaker_cooldown: Duration,
    /// How often Redis used memory (INFO memory) is refreshed for stats.
    pub stats_refresh: Duration,
    /// How often the invalidation subscription is PINGed, so a silently dead
    /// connection (no FIN) is noticed and L1 cleared.
    pub subscription_ping: Duration,
    /// Whether scheduled cache warming runs.
    pub warming_enabled: bool,
    /// Delay before the first scheduled warming.
    pub warming_delay: Duration,
    /// Interval between scheduled warmings.
    pub warming_interval: Duration,
    /// Keys per warming batch.
    pub warming_batch_size: usize,
    /// Concurrent loads within a warming batch.
    pub warming_concurrency: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_tls_ca: None,
            key_prefix: "vitals".into(),
            default_ttl: Duration::from_secs(300),
            l1_enabled: true,
            l1_max_size: 1000,
            l1_ttl: Duration::from_secs(60),
            l1_shards: 16,
            compress_threshold: 1024,
            encryption: None,
            redis_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            reconnect_interval: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            stats_refresh: Duration::from_secs(10),
            subscription_ping: Duration::from_secs(10),
            warming_enabled: true,
            warming_delay: Duration::from_secs(5),
            warming_interval: Duration::from_secs(3600),
            warming_batch_size: 50,
            warming_concurrency: 8,
        }
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("redis_url", &self.redis_url.as_deref().map(mask_url))
            .field("key_prefix", &self.key_prefix)
            .field("default_ttl", &self.default_ttl)
            .field("l1_enabled", &self.l1_enabled)
            .field("l1_max_size", &self.l1_max_size)
            .field("l1_ttl", &self.l1_ttl)
            .field("l1_shards", &self.l1_shards)
            .field("compress_threshold", &self.compress_threshold)
            .field(
                "encryption_key_id",
                &self
                    .encryption
                    .as_ref()
                    .map(|k| k.current().id().to_owned()),
            )
            .field("redis_timeout", &self.redis_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("warming_enabled", &self.warming_enabled)
            .finish_non_exhaustive()
    }
}

/// Replaces the password of a URL with `***` so it can be logged.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let masked = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None => "***".to_owned(),
            };
            format!("{}{}{}", &url[..scheme_end + 3], masked, &rest[at..])
        }
        None => url.to_owned(),
    }
}

impl CacheConfig {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (a variable name to its value),
    /// so tests need not touch the process environment.
    ///
    /// Variables: `REDIS_URL`, or `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`,
    /// `REDIS_PASSWORD`; `REDIS_TTL_DEFAULT` (s), `CACHE_ENABLE_L1`,
    /// `CACHE_L1_MAX_SIZE`, `CACHE_L1_TTL` (s), `CACHE_L1_SHARDS`,
    /// `CACHE_COMPRESS_THRESHOLD` (bytes), `CACHE_ENCRYPTION_KEY` (base64 of 32
    /// bytes), `CACHE_ENCRYPTION_KEY_ID`, `CACHE_ENCRYPTION_OLD_KEYS`
    /// (`id:base64,...`), `CACHE_KEY_PREFIX`, `CACHE_REDIS_TIMEOUT_MS`,
    /// `CACHE_REDIS_CONNECT_TIMEOUT_MS`, `CACHE_RECONNECT_INTERVAL_MS`,
    /// `CACHE_BREAKER_THRESHOLD`, `CACHE_BREAKER_COOLDOWN_MS`,
    /// `CACHE_SUBSCRIPTION_PING_MS`, `CACHE_STATS_REFRESH_MS`,
    /// `CACHE_WARMING_ENABLED`, `CACHE_WARMING_DELAY` (s),
    /// `CACHE_WARMING_INTERVAL` (s), `CACHE_WARMING_BATCH_SIZE`,
    /// `CACHE_WARMING_CONCURRENCY`. Unset or empty variables keep their default.
    ///
    /// # Errors
    /// [`ConfigError`] listing every variable with a bad value; secrets are
    /// masked in it.
    pub fn from_env_with<F>(lookup: F) -> Result<Self, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut r = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let mut c = CacheConfig {
            redis_url: r.redis_url(),
            ..CacheConfig::default()
        };
        if let Some(p) = r.string("CACHE_KEY_PREFIX") {
            if p.is_empty() || p.len() > 64 || p.chars().any(|ch| ch.is_whitespace()) {
                r.problem("CACHE_KEY_PREFIX", &p, "1 to 64 characters without spaces");
            } else {
                c.key_prefix = p;
            }
        }
        if let Some(path) = r.string("REDIS_TLS_CA_FILE") {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => c.redis_tls_ca = Some(path.into()),
                _ => r.problem("REDIS_TLS_CA_FILE", &path, "a readable PEM file"),
            }
        }
        r.secs("REDIS_TTL_DEFAULT", &mut c.default_ttl, 1);
        r.boolean("CACHE_ENABLE_L1", &mut c.l1_enabled);
        r.number("CACHE_L1_MAX_SIZE", &mut c.l1_max_size, 1);
        r.secs("CACHE_L1_TTL", &mut c.l1_ttl, 1);
        r.number("CACHE_L1_SHARDS", &mut c.l1_shards, 1);
        if !c.l1_shards.is_power_of_two() || c.l1_shards > 1024 {
            r.problem(
                "CACHE_L1_SHARDS",
                &c.l1_shards.to_string(),
                "a power of two up to 1024",
            );
        }
        r.number("CACHE_COMPRESS_THRESHOLD", &mut c.compress_threshold, 0);
        c.encryption = r.keyring();
        r.millis("CACHE_REDIS_TIMEOUT_MS", &mut c.redis_timeout);
        r.millis("CACHE_REDIS_CONNECT_TIMEOUT_MS", &mut c.connect_timeout);
        r.millis("CACHE_RECONNECT_INTERVAL_MS", &mut c.reconnect_interval);
        let mut threshold = c.breaker_threshold as usize;
        r.number("CACHE_BREAKER_THRESHOLD", &mut threshold, 1);
        c.breaker_threshold = u32::try_from(threshold).unwrap_or(u32::MAX);
        r.millis("CACHE_BREAKER_COOLDOWN_MS", &mut c.breaker_cooldown);
        r.millis("CACHE_SUBSCRIPTION_PING_MS", &mut c.subscription_ping);
        r.millis("CACHE_STATS_REFRESH_MS", &mut c.stats_refresh);
        r.boolean("CACHE_WARMING_ENABLED", &mut c.warming_enabled);
        r.secs("CACHE_WARMING_DELAY", &mut c.warming_delay, 0);
        r.secs("CACHE_WARMING_INTERVAL", &mut c.warming_interval, 1);
        r.number("CACHE_WARMING_BATCH_SIZE", &mut c.warming_batch_size, 1);
        r.number("CACHE_WARMING_CONCURRENCY", &mut c.warming_concurrency, 1);

        if r.problems.is_empty() {
            Ok(c)
        } else {
            Err(ConfigError::new(r.problems))
        }
    }

    /// Sets the Redis URL (`None`: L1 only).
    #[must_use]
    pub fn with_redis_url(mut self, url: Option<impl Into<String>>) -> Self {
        self.redis_url = url.map(Into::into);
        self
    }

    /// Checks a `rediss://` server's certificate against this PEM file (a
    /// private CA) instead of the system's trust store.
    #[must_use]
    pub fn with_tls_ca(mut self, pem_file: Option<impl Into<std::path::PathBuf>>) -> Self {
        self.redis_tls_ca = pem_file.map(Into::into);
        self
    }

    /// Sets the namespace of Redis keys and of the invalidation channel.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the encryption keyring (`None`: plaintext in Redis).
    #[must_use]
    pub fn with_encryption(mut self, keyring: Option<Keyring>) -> Self {
        self.encryption = keyring;
        self
    }

    /// Sets the Redis command timeout, the connect timeout and the pause
    /// between reconnection attempts.
    #[must_use]
    pub fn with_redis_timeouts(
        mut self,
        command: Duration,
        connect: Duration,
        reconnect_interval: Duration,
    ) -> Self {
        self.redis_timeout = command;
        self.connect_timeout = connect;
        self.reconnect_interval = reconnect_interval;
        self
    }

    /// Sets the circuit breaker: failures that open it, and its cool-down.
    #[must_use]
    pub fn with_breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = threshold;
        self.breaker_cooldown = cooldown;
        self
    }

    /// Sets L1: enabled, maximum entries and maximum entry life.
    #[must_use]
    pub fn with_l1(mut self, enabled: bool, max_size: usize, ttl: Duration) -> Self {
        self.l1_enabled = enabled;
        self.l1_max_size = max_size;
        self.l1_ttl = ttl;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |variable: &str, value: String, expected: &str| {
            problems.push(ConfigProblem {
                variable: variable.into(),
                value,
                expected: expected.into(),
            })
        };
        if self.key_prefix.is_empty() || self.key_prefix.chars().any(char::is_whitespace) {
            bad(
                "key_prefix",
                self.key_prefix.clone(),
                "a non-empty prefix without spaces",
            );
        }
        if self.l1_max_size == 0 {
            bad("l1_max_size", "0".into(), "at least 1");
        }
        if !self.l1_shards.is_power_of_two() || self.l1_shards > 1024 {
            bad(
                "l1_shards",
                self.l1_shards.to_string(),
                "a power of two up to 1024",
            );
        }
        if self.breaker_threshold == 0 {
            bad("breaker_threshold", "0".into(), "at least 1");
        }
        if self.redis_timeout.is_zero() {
            bad("redis_timeout", "0".into(), "more than 0");
        }
        if self.warming_batch_size == 0 || self.warming_concurrency == 0 {
            bad(
                "warming_batch_size/warming_concurrency",
                format!("{}/{}", self.warming_batch_size, self.warming_concurrency),
                "at least 1 each",
            );
        }
        if let Some(url) = &self.redis_url {
            if let Err(e) = redis::Client::open(url.as_str()) {
                bad("redis_url", mask_url(url), &format!("a redis URL ({e})"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::new(problems))
        }
    }
}

struct Reader<'a, F> {
    lookup: &'a F,
    problems: Vec<ConfigProblem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn problem(&mut self, name: &str, value: &str, expected: &str) {
        self.problems.push(ConfigProblem {
            variable: name.into(),
            value: value.into(),
            expected: expected.into(),
        });
    }

    fn number(&mut self, name: &str, out: &mut usize, min: usize) {
        if let Some(v) = self.string(name) {
            match v.parse::<usize>() {
                Ok(n) if n >= min => *out = n,
                _ => self.problem(name, &v, &format!("an integer >= {min}")),
            }
        }
    }

    fn secs(&mut self, name: &str, out: &mut Duration, min: u64) {
        if let Some(v) = self.string(name) {
            match v.parse::<u64>() {
                Ok(n) if n >= min => *out = Duration::from_secs(n),
                _ => self.problem(name, &v, &format!("a whole number of seconds >= {min}")),
            }
        }
    }

    fn millis(&mut self, name: &str, out: &mut Duration) {
        if let Some(v) = self.string(name) {
            match v.parse::<u64>() {
                Ok(n) if n >= 1 => *out = Duration::from_millis(n),
                _ => self.problem(name, &v, "a whole number of milliseconds >= 1"),
            }
        }
    }

    fn boolean(&mut self, name: &str, out: &mut bool) {
        if let Some(v) = self.string(name) {
            match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => *out = true,
                "false" | "0" | "no" | "off" => *out = false,
                _ => self.problem(name, &v, "true or false"),
            }
        }
    }

    fn redis_url(&mut self) -> Option<String> {
        if let Some(url) = self.string("REDIS_URL") {
            if let Err(e) = redis::Client::open(url.as_str()) {
                let masked = mask_url(&url);
                self.problem("REDIS_URL", &masked, &format!("a redis:// URL ({e})"));
                return None;
            }
            return Some(url);
        }
        let host = self.string("REDIS_HOST");
        let port = self.string("REDIS_PORT");
        let db = self.string("REDIS_DB");
        let password = self.string("REDIS_PASSWORD");
        if host.is_none() && port.is_none() && db.is_none() && password.is_none() {
            return None;
        }
        let host = host.unwrap_or_else(|| "127.0.0.1".into());
        if host.contains(['/', '@', ' ']) {
            self.problem("REDIS_HOST", &host, "a host name or IP address");
        }
        let mut port_n: u16 = 6379;
        if let Some(p) = port {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => port_n = n,
                _ => self.problem("REDIS_PORT", &p, "a port number 1-65535"),
            }
        }
        let mut db_n: u32 = 0;
        if let Some(d) = db {
            match d.parse::<u32>() {
                Ok(n) => db_n = n,
                _ => self.problem("REDIS_DB", &d, "a database number >= 0"),
            }
        }
        let auth = match password {
            Some(pw) => {
                let mut enc = String::new();
                for b in pw.bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                        enc.push(char::from(b));
                    } else {
                        enc.push_str(&format!("%{b:02X}"));
                    }
                }
                format!(":{enc}@")
            }
            None => String::new(),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        Some(format!("redis://{auth}{host}:{port_n}/{db_n}"))
    }

    fn key(&mut self, var: &str, b64: &str) -> Option<[u8; 32]> {
        match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
                Ok(k) => Some(k),
                Err(_) => {
                    self.problem(
                        var,
                        "<redacted>",
                        &format!("base64 of exactly 32 bytes (got {} bytes)", bytes.len()),
                    );
                    None
                }
            },
            Err(_) => {
                self.problem(var, "<redacted>", "base64 of exactly 32 bytes");
                None
            }
        }
    }

    fn keyring(&mut self) -> Option<Keyring> {
        let key = self.string("CACHE_ENCRYPTION_KEY");
        let id = self
            .string("CACHE_ENCRYPTION_KEY_ID")
            .unwrap_or_else(|| "k1".into());
        let old = self.string("CACHE_ENCRYPTION_OLD_KEYS");
        let id_ok = valid_key_id(&id);
        if !id_ok {
            self.problem("CACHE_ENCRYPTION_KEY_ID", &id, KEY_ID_EXPECTED);
        }
        let mut olds = Vec::new();
        if let Some(old) = old {
            for (i, item) in old.split(',').map(str::trim).enumerate() {
                if item.is_empty() {
                    continue;
                }
                let Some((oid, b64)) = item.split_once(':') else {
                    self.problem(
                        "CACHE_ENCRYPTION_OLD_KEYS",
                        &format!("<item {} redacted>", i + 1),
                        "comma-separated id:base64 pairs",
                    );
                    continue;
                };
                if !valid_key_id(oid) {
                    self.problem(
                        "CACHE_ENCRYPTION_OLD_KEYS",
                        oid,
                        "key ids of [A-Za-z0-9._-]",
                    );
                    continue;
                }
                if let Some(k) = self.key("CACHE_ENCRYPTION_OLD_KEYS", b64) {
                    olds.push(EncryptionKey {
                        id: oid.to_owned(),
                        key: k,
                    });
                }
            }
        }
        let key = key?;
        let k = self.key("CACHE_ENCRYPTION_KEY", &key)?;
        if !id_ok {
            return None;
        }
        Some(Keyring::new(EncryptionKey { id, key: k }, olds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

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
    }

    #[test]
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
        let vars: Vec<&str> = err.problems().iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            vars,
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
    fn mask_url_hides_password_only() {
        assert_eq!(
            mask_url("redis://user:secret@h:1/0"),
            "redis://user:***@h:1/0"
        );
        assert_eq!(mask_url("redis://h:1/0"), "redis://h:1/0");
    }
}
