//! Where the Redis tier keeps an entry, its tags and their generations: one namespace on a
//! single node, hash-tagged buckets on a cluster so that every script touches one slot.
//!
//! On a cluster an entry lives in one of [`BUCKETS`] buckets, each a Redis hash tag
//! (`{b17}`), so its value, its generation and its share of each of its tags' sets and
//! generations are in one slot: a write is one script on one slot, a read one round trip.
//! The bucket is chosen from the key alone (a read knows nothing else): the key's `{…}` part
//! when it has one, else its id: the last `:`-separated segment holding a digit (else its
//! last segment). A group's tag (`group:student:4f1c`) is placed by the same rule, so a
//! group whose keys carry the group's id (`health:allergies:4f1c`, `student:4f1c:allergies`)
//! is one bucket: its invalidation is one slot. A data
//! type's tag (`vaccinations`) has a set in every bucket; its invalidation visits them all,
//! grouped per master (`cluster_ops.rs`).

/// Buckets of a cluster layout. Fixed: every instance sharing a prefix must place a key in
/// the same bucket, so changing it is a new layout (a new `CACHE_KEY_PREFIX`). 256 spreads
/// evenly over tens of masters while a data type's invalidation stays a few hundred
/// commands.
pub(crate) const BUCKETS: u16 = 256;

/// The prefix of a group's tag ([`TieredCache::group_tag`](crate::TieredCache::group_tag)):
/// such a tag is kept in its own bucket only, other tags in every bucket.
pub(crate) const GROUP_TAG_PREFIX: &str = crate::TieredCache::GROUP_TAG_PREFIX;

/// How keys are named in Redis.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// One node: `{prefix}:v:{key}`, `{prefix}:t:{tag}`, `{prefix}:g:{key}`,
    /// `{prefix}:gt:{tag}` (unchanged from before clusters).
    Single { prefix: String },
    /// A cluster: the same names with the bucket's hash tag after the prefix,
    /// `{prefix}:{b17}:v:{key}`.
    Cluster { prefix: String },
}

/// The part of `name` its bucket is chosen by: the first non-empty `{…}`, else the last
/// `:`-separated segment holding an ASCII digit (an id), else the last non-empty segment,
/// else all of it.
fn bucket_source(name: &str) -> &str {
    if let Some(open) = name.find('{') {
        let rest = &name[open + 1..];
        if let Some(len) = rest.find('}') {
            if len > 0 {
                return &rest[..len];
            }
        }
    }
    name.rsplit(':')
        .find(|seg| seg.bytes().any(|b| b.is_ascii_digit()))
        .or_else(|| name.rsplit(':').find(|seg| !seg.is_empty()))
        .unwrap_or(name)
}

/// The bucket of a key or of a group's tag: FNV-1a of [`bucket_source`], modulo
/// [`BUCKETS`]. Stable across instances and versions (it is part of the layout).
pub(crate) fn bucket_of(name: &str) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bucket_source(name).as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(BUCKETS)) as u16
}

/// The hash tag of a bucket, as it appears in keys.
fn hash_tag(bucket: u16) -> String {
    format!("{{b{bucket}}}")
}

/// The cluster slot of a bucket.
pub(crate) fn bucket_slot(bucket: u16) -> u16 {
    key_slot(&format!("b{bucket}"))
}

/// Redis Cluster's slot of a hash tag's content: CRC16-XMODEM modulo 16384.
fn key_slot(text: &str) -> u16 {
    let mut crc: u16 = 0;
    for b in text.as_bytes() {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Whether `tag` is a group's tag, kept in its own bucket only.
pub(crate) fn is_group_tag(tag: &str) -> bool {
    tag.starts_with(GROUP_TAG_PREFIX)
}

impl Layout {
    /// The layout for `prefix`, on a cluster or a single node.
    pub(crate) fn new(prefix: &str, cluster: bool) -> Self {
        let prefix = prefix.to_owned();
        if cluster {
            Self::Cluster { prefix }
        } else {
            Self::Single { prefix }
        }
    }

    /// Whether keys are hash-tagged into buckets.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    fn name(&self, bucket: u16, kind: &str, id: &str) -> String {
        match self {
            Self::Single { prefix } => format!("{prefix}:{kind}:{id}"),
            Self::Cluster { prefix } => format!("{prefix}:{}:{kind}:{id}", hash_tag(bucket)),
        }
    }

    /// The bucket `key`'s entry lives in (0 on a single node).
    pub(crate) fn bucket(&self, key: &str) -> u16 {
        if self.is_cluster() {
            bucket_of(key)
        } else {
            0
        }
    }

    /// The Redis key of `key`'s value.
    pub(crate) fn data_key(&self, key: &str) -> String {
        self.name(self.bucket(key), "v", key)
    }

    /// The prefix of data keys in `bucket` (a tag set's members are cache keys).
    pub(crate) fn data_prefix(&self, bucket: u16) -> String {
        self.name(bucket, "v", "")
    }

    /// The generation of `key`.
    pub(crate) fn gen_key(&self, key: &str) -> String {
        self.name(self.bucket(key), "g", key)
    }

    /// The lock a load of `key` holds across instances (`load_lock.rs`), in `key`'s bucket:
    /// one slot with its value, for the lock script.
    pub(crate) fn lock_key(&self, key: &str) -> String {
        self.name(self.bucket(key), "l", key)
    }

    /// `tag`'s set of keys in `bucket`.
    pub(crate) fn tag_key(&self, bucket: u16, tag: &str) -> String {
        self.name(bucket, "t", tag)
    }

    /// `tag`'s generation in `bucket`.
    pub(crate) fn tag_gen_key(&self, bucket: u16, tag: &str) -> String {
        self.name(bucket, "gt", tag)
    }

    /// The generation keys of `key` and of `tags` (in `key`'s bucket), in that order.
    pub(crate) fn gen_keys(&self, key: &str, tags: &[&str]) -> Vec<String> {
        let bucket = self.bucket(key);
        std::iter::once(self.gen_key(key))
            .chain(tags.iter().map(|t| self.tag_gen_key(bucket, t)))
            .collect()
    }

    /// The buckets holding `tag`'s entries: its own for a group's tag on a cluster, every
    /// bucket for another tag, the one namespace on a single node.
    pub(crate) fn tag_buckets(&self, tag: &str) -> Vec<u16> {
        match self {
            Self::Single { .. } => vec![0],
            Self::Cluster { .. } if is_group_tag(tag) => vec![bucket_of(tag)],
            Self::Cluster { .. } => (0..BUCKETS).collect(),
        }
    }

    /// The group tags among `tags` that `key`'s bucket does not hold: a write with one of
    /// them cannot be indexed in one slot (see the module's rule).
    pub(crate) fn misplaced_groups<'t>(&self, key: &str, tags: &[&'t str]) -> Vec<&'t str> {
        if !self.is_cluster() {
            return Vec::new();
        }
        let bucket = bucket_of(key);
        tags.iter()
            .copied()
            .filter(|t| is_group_tag(t) && bucket_of(t) != bucket)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_key_and_its_students_group_share_a_bucket() {
        let id = "0b7e5a52-1c1f-4a8e-9d43-3f0c7f1d2e9a";
        let group = format!("group:student:{id}");
        for kind in ["allergies", "vaccinations", "summary"] {
            assert_eq!(bucket_of(&format!("health:{kind}:{id}")), bucket_of(&group));
            assert_eq!(
                bucket_of(&format!("student:{id}:{kind}")),
                bucket_of(&group)
            );
        }
        assert_eq!(bucket_of("student:4f1c:allergies"), bucket_of("group:4f1c"));
        let l = Layout::new("p", true);
        assert!(l
            .misplaced_groups(&format!("health:x:{id}"), &["x", &group])
            .is_empty());
        assert_eq!(
            l.misplaced_groups("health:x:0ther", &["x", &group]),
            [group.as_str()]
        );
    }

    #[test]
    fn braces_choose_the_bucket_and_keys_of_a_bucket_share_its_hash_tag() {
        assert_eq!(bucket_source("a:{s1}:b"), "s1");
        assert_eq!(bucket_source("a:{}:b"), "b");
        assert_eq!(bucket_source("plain"), "plain");
        assert_eq!(bucket_source("ends:"), "ends");
        assert_eq!(bucket_source("r:2024:x"), "2024");
        assert_eq!(bucket_source(":"), ":");
        let l = Layout::new("vitals", true);
        let b = l.bucket("health:a:42");
        let tag = format!("{{b{b}}}");
        for k in [
            l.data_key("health:a:42"),
            l.gen_key("health:a:42"),
            l.lock_key("health:a:42"),
            l.tag_key(b, "allergies"),
            l.tag_gen_key(b, "allergies"),
        ] {
            assert!(k.starts_with(&format!("vitals:{tag}:")), "{k}");
        }
        assert_eq!(l.tag_buckets("allergies").len(), usize::from(BUCKETS));
        assert_eq!(l.tag_buckets("group:student:42"), [bucket_of("x:42:y")]);
    }

    #[test]
    fn the_single_node_layout_is_unchanged() {
        let l = Layout::new("vitals", false);
        assert_eq!(l.data_key("k:1"), "vitals:v:k:1");
        assert_eq!(l.gen_keys("k:1", &["t"]), ["vitals:g:k:1", "vitals:gt:t"]);
        assert_eq!(l.tag_key(0, "t"), "vitals:t:t");
        assert_eq!(l.data_prefix(0), "vitals:v:");
    }

    #[test]
    fn slots_are_redis_key_slots() {
        // The values of CLUSTER KEYSLOT foo / bar in Redis's documentation.
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("bar"), 5061);
        assert_eq!(bucket_slot(7), key_slot("b7"));
    }
}
