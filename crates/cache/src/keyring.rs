//! The encryption keys of what goes to Redis: the current key and the old ones that still
//! decrypt, each named by an id written in every payload's header so that keys can rotate.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use vitals_env::{ConfigError, Problem};

/// An AES-256 key and its id; the id is written in the header of every
/// encrypted payload so that keys can rotate.
#[derive(Clone)]
pub struct EncryptionKey {
    pub(crate) id: String,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // read by the codec (feature `redis`)
    pub(crate) key: [u8; 32],
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
            return Err(ConfigError::one(Problem::new(
                "cache",
                "CACHE_ENCRYPTION_KEY_ID",
                Some(id),
                KEY_ID_EXPECTED,
            )));
        }
        Ok(Self { id, key })
    }

    /// The key id written in payload headers.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's bytes (read by the codec).
    #[cfg(any(feature = "redis", test))]
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
pub(crate) const KEY_ID_EXPECTED: &str = "1 to 255 characters of [A-Za-z0-9._-]";

pub(crate) fn valid_key_id(id: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_id_is_refused_and_debug_hides_the_key() {
        let err = EncryptionKey::new("no spaces", [1; 32]).unwrap_err();
        assert_eq!(err.problems()[0].variable, "CACHE_ENCRYPTION_KEY_ID");
        assert_eq!(err.problems()[0].component, "cache");
        let k = EncryptionKey::new("k-1", [1; 32]).unwrap();
        assert!(!format!("{k:?}").contains("[1, 1"));
        let ring = Keyring::new(k, [EncryptionKey::new("k-0", [2; 32]).unwrap()]);
        assert_eq!(ring.current().id(), "k-1");
        assert_eq!(ring.key("k-0").unwrap().bytes(), &[2; 32]);
        assert!(ring.key("k-9").is_none());
    }
}
