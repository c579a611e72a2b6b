//! The invalidation message instances publish on the cache's channel, as JSON.

use serde::{Deserialize, Serialize};

/// An invalidation broadcast on the channel: keys to drop from every L1, an
/// optional tag whose local entries to drop too, or a full clear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Message {
    /// Origin instance; an instance ignores its own messages.
    pub(crate) o: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) k: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) t: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) clear: bool,
    /// A key whose load lock was released with no value written (`load_lock.rs`): its
    /// waiters ask again. Nothing to drop; instances that predate it ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) u: Option<String>,
    /// With `u`: the load that held the lock failed, so its waiters may serve their stale
    /// value (fail-safe) at once as its caller does (`load_lock.rs`). Instances that predate
    /// it ignore it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) f: bool,
}

impl Message {
    /// The JSON of an invalidation of `keys` (and `tag`) sent by `origin`.
    pub(crate) fn encode(origin: &str, keys: Vec<String>, tag: Option<String>) -> String {
        let m = Self {
            o: origin.to_owned(),
            k: keys,
            t: tag,
            clear: false,
            u: None,
            f: false,
        };
        // Serialising a struct of strings can't fail.
        serde_json::to_string(&m).unwrap_or_default()
    }

    /// The JSON of the release notice of `key`'s load lock, sent by `origin`; `failed`: its
    /// load failed.
    pub(crate) fn released(origin: &str, key: &str, failed: bool) -> String {
        let m = Self {
            o: origin.to_owned(),
            k: Vec::new(),
            t: None,
            clear: false,
            u: Some(key.to_owned()),
            f: failed,
        };
        serde_json::to_string(&m).unwrap_or_default()
    }
}
