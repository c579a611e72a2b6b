//! [`ReplicaError`]: what makes the replicas unusable at start, each naming the replica.

/// What can make the replicas unusable at start; each names the replica (URL masked).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// A replica URL could not be parsed.
    #[error("DATABASE_REPLICA_URLS: invalid replica url {url}: {source}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// What sqlx said.
        #[source]
        source: sqlx::Error,
    },
    /// The server at a replica URL is not in recovery: a primary, which would serve reads of
    /// other data (or the primary itself).
    #[error("DATABASE_REPLICA_URLS: {url} is not a replica: it is not in recovery (a primary)")]
    NotAReplica {
        /// The URL, password masked.
        url: String,
    },
    /// The server at a replica URL is a standby of another cluster.
    #[error(
        "DATABASE_REPLICA_URLS: {url} is a replica of another cluster (system identifier \
         {replica_system_id}, the primary's is {primary_system_id})"
    )]
    OtherCluster {
        /// The URL, password masked.
        url: String,
        /// The replica's `pg_control_system()` identifier.
        replica_system_id: String,
        /// The primary's.
        primary_system_id: String,
    },
    /// The primary could not tell its identity.
    #[error("cannot read the primary's identity: {reason}")]
    Primary {
        /// Why (an error kind, never a message).
        reason: String,
    },
    /// `DATABASE_URL` is itself in recovery: writes would fail.
    #[error("DATABASE_URL is a standby (in recovery), not the primary")]
    PrimaryInRecovery,
}
