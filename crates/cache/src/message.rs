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
}

impl Message {
    /// The JSON of an invalidation of `keys` (and `tag`) sent by `origin`.
    pub(crate) fn encode(origin: &str, keys: Vec<String>, tag: Option<String>) -> String {
        let m = Self {
            o: origin.to_owned(),
            k: keys,
            t: tag,
            clear: false,
        };
        // Serialising a struct of strings can't fail.
        serde_json::to_string(&m).unwrap_or_default()
    }
}
