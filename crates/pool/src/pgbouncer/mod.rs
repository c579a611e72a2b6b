//! Running through PgBouncer (`DB_PGBOUNCER`): which pooling mode the server side uses, and
//! what that changes in how connections are opened and statements run.
//!
//! PgBouncer refuses startup parameters it does not know (`options`, which carries
//! `statement_timeout` and `idle_in_transaction_session_timeout` on a direct connection, and
//! `extra_float_digits`, which sqlx sends), so in either PgBouncer mode neither is sent. In
//! **session** mode a client keeps its server connection, so the timeouts are set once per
//! connection (`SET` after connect) and sqlx's statement cache stays on. In **transaction**
//! mode a server connection is the client's only for one transaction:
//!
//! - the timeouts are `SET LOCAL` in the `BEGIN` of every transaction the handle begins
//!   (one round trip: `BEGIN; SET LOCAL …; SET LOCAL …` as one simple query);
//! - every statement the handle runs on the unnamed statement (sqlx's `persistent(false)`),
//!   and sqlx's statement cache is off: a named statement prepared in one transaction stays on
//!   that server connection, where another client's `sqlx_s_1` then collides with it (42P05);
//! - a statement outside a transaction is wrapped in one (`BEGIN; SET LOCAL …`, the
//!   statement, `COMMIT`): sqlx parses and binds in two exchanges, each ending in `Sync`, and
//!   between them PgBouncer may give the server connection to another client, whose own
//!   unnamed statement the bind would then run (a wrong answer, not an error);
//! - nothing sends `DISCARD`.
//!
//! `mode.rs` holds the setting (plain data, so the configuration names it without this file),
//! `wrap.rs` runs the statements, `detect.rs` checks at start that the server side shares
//! its connections the way the setting says.

#[cfg(feature = "postgres")]
mod detect;
pub(crate) mod mode;
pub(crate) mod wrap;

use std::borrow::Cow;
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::PgConnectOptions;
use vitals_env::Env;

#[cfg(feature = "postgres")]
pub use detect::{detect_pooling, PoolingCheck};

use crate::builder::PoolConfigBuilder;
use crate::config::PoolConfig;
use crate::pgbouncer::mode::{PgBouncerMode, MODES};
use crate::pgbouncer::wrap::TransactionPooling;

/// Reads `DB_PGBOUNCER` into `builder` (a bad value is a problem of `env`, the default stays).
pub(crate) fn read_env(env: &mut Env<'_>, builder: PoolConfigBuilder) -> PoolConfigBuilder {
    match env.choice(
        "DB_PGBOUNCER",
        &MODES,
        "\"off\", \"session\" or \"transaction\"",
    ) {
        Some(mode) => builder.pgbouncer(mode),
        None => builder,
    }
}

impl PoolConfigBuilder {
    /// `DB_PGBOUNCER`: what sits between the pool and PostgreSQL (default
    /// [`PgBouncerMode::Off`]).
    pub fn pgbouncer(mut self, mode: PgBouncerMode) -> Self {
        self.pgbouncer = Some(mode);
        self
    }
}

impl PoolConfig {
    /// What sits between the pool and PostgreSQL (`DB_PGBOUNCER`).
    #[must_use]
    pub fn pgbouncer(&self) -> PgBouncerMode {
        self.pgbouncer
    }

    /// The connect options of this configuration's mode: on a direct connection the timeouts
    /// as startup options; through PgBouncer no startup option and no `extra_float_digits`
    /// (PgBouncer refuses both), and in transaction mode no statement cache.
    #[cfg(feature = "postgres")]
    pub(crate) fn pg_connect_options(&self, options: PgConnectOptions) -> PgConnectOptions {
        match self.pgbouncer {
            PgBouncerMode::Off => options.options([
                ("statement_timeout", millis(self.statement_timeout)),
                (
                    "idle_in_transaction_session_timeout",
                    millis(self.idle_in_transaction_timeout),
                ),
            ]),
            PgBouncerMode::Session => options.extra_float_digits(None),
            PgBouncerMode::Transaction => {
                options.extra_float_digits(None).statement_cache_capacity(0)
            }
        }
    }

    /// `SET statement_timeout = …; SET idle_in_transaction_session_timeout = …` (`LOCAL` for
    /// a transaction's start), the timeouts of this configuration as one simple query.
    pub(crate) fn timeouts_sql(&self, local: bool) -> String {
        let scope = if local { "SET LOCAL" } else { "SET" };
        format!(
            "{scope} statement_timeout = {}; {scope} idle_in_transaction_session_timeout = {}",
            millis(self.statement_timeout),
            millis(self.idle_in_transaction_timeout)
        )
    }

    /// The transaction pooling the handle runs statements under, in transaction mode on
    /// PostgreSQL (`DB` is the handle's database: SQLite never is).
    pub(crate) fn transaction_pooling<DB: sqlx::Database>(&self) -> Option<TransactionPooling> {
        (self.pgbouncer == PgBouncerMode::Transaction && DB::NAME == "PostgreSQL").then(|| {
            TransactionPooling::new(Cow::Owned(format!("BEGIN; {}", self.timeouts_sql(true))))
        })
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitals_env::pairs as env;

    #[test]
    fn db_pgbouncer_reads_its_three_values_and_names_a_bad_one() {
        assert_eq!(
            PoolConfig::from_env_with(env(&[])).unwrap().pgbouncer(),
            PgBouncerMode::Off
        );
        for (value, mode) in MODES {
            let cfg = PoolConfig::from_env_with(env(&[("DB_PGBOUNCER", value)])).unwrap();
            assert_eq!(cfg.pgbouncer(), mode);
            assert_eq!(mode.as_str(), value);
        }
        let err = PoolConfig::from_env_with(env(&[("DB_PGBOUNCER", "statement")])).unwrap_err();
        let problem = err.problem("DB_PGBOUNCER").expect("DB_PGBOUNCER named");
        assert!(
            err.to_string()
                .contains("\"off\", \"session\" or \"transaction\""),
            "{problem:?}"
        );
    }

    #[test]
    fn transaction_mode_begins_with_the_timeouts_set_local() {
        let cfg = PoolConfig::builder()
            .pgbouncer(PgBouncerMode::Transaction)
            .statement_timeout(Duration::from_millis(1500))
            .idle_in_transaction_timeout(Duration::from_millis(0))
            .build()
            .unwrap();
        let pooling = cfg.transaction_pooling::<sqlx::Postgres>().unwrap();
        assert_eq!(
            pooling.begin_statement(),
            "BEGIN; SET LOCAL statement_timeout = 1500; \
             SET LOCAL idle_in_transaction_session_timeout = 0"
        );
        assert!(cfg.transaction_pooling::<sqlx::Sqlite>().is_none());
        let direct = PoolConfig::default();
        assert!(direct.transaction_pooling::<sqlx::Postgres>().is_none());
    }
}
