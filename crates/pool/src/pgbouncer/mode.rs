//! [`PgBouncerMode`]: what sits between the pool and PostgreSQL (`DB_PGBOUNCER`). Plain data
//! that depends on nothing, so the configuration, its builder and the PgBouncer rules can all
//! name it without naming each other.

use serde::Serialize;

/// What sits between the pool and PostgreSQL (`DB_PGBOUNCER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PgBouncerMode {
    /// A direct connection (or a proxy that passes startup parameters through): the timeouts
    /// travel in the startup packet, sqlx's statement cache is on.
    #[default]
    Off,
    /// PgBouncer with `pool_mode = session`: no startup options; the timeouts are `SET` once
    /// per connection; the statement cache stays on.
    Session,
    /// PgBouncer with `pool_mode = transaction`: no startup options, `SET LOCAL` timeouts in
    /// each transaction, unnamed statements only, single statements wrapped in a transaction.
    Transaction,
}

impl PgBouncerMode {
    /// `"off"`, `"session"` or `"transaction"`, as `DB_PGBOUNCER` spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Session => "session",
            Self::Transaction => "transaction",
        }
    }
}

/// `DB_PGBOUNCER`'s accepted values.
pub(crate) const MODES: [(&str, PgBouncerMode); 3] = [
    ("off", PgBouncerMode::Off),
    ("session", PgBouncerMode::Session),
    ("transaction", PgBouncerMode::Transaction),
];
