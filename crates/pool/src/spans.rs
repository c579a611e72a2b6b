//! The `tracing` span of every statement run through the handle, named and attributed after
//! OpenTelemetry's database semantic conventions, so that `tracing-opentelemetry` (or any
//! subscriber) shows it without configuration.
//!
//! The span is opened where the statement runs, so it is a child of the caller's span. It is
//! not entered: `tracing-opentelemetry` (0.34) fixes a span's name when it is first entered,
//! and the name (`SELECT vaccinations`) is known only once the observer has sanitised the
//! text, at the statement's end; the span starts when the statement starts and ends when it
//! is reported. The pool knows the engine, the database and the
//! server, the rows and the error; it never sees a sanitised text, so the statement's
//! `db.query.text`, `db.operation.name`, `db.collection.name` and the span's name
//! (`otel.name`, `SELECT vaccinations`) are left empty for the [`QueryObserver`] to record
//! (the facade's records the query logger's sanitised text). Without an observer that records
//! them, the span is named after the engine (`postgresql`), as the conventions say when
//! nothing else is known.
//!
//! With no subscriber listening, the span is `Span::none()`: opening it is one check of the
//! callsite's cached interest, and recording into it does nothing.
//!
//! [`QueryObserver`]: crate::QueryObserver

use std::borrow::Cow;
use std::sync::OnceLock;

#[cfg(feature = "postgres")]
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Database};
use tracing::field::{Empty, Field, Value};
use tracing::{Metadata, Span};

/// The target of the statement spans, for a subscriber's filter
/// (`RUST_LOG=vitals_pool::statement=off` turns them off).
pub const STATEMENT_SPAN_TARGET: &str = "vitals_pool::statement";

/// What a statement's span says of where it ran, read once from the pool's connect options.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// `postgresql` or `sqlite` (OpenTelemetry's `db.system.name` values).
    system: &'static str,
    /// The database (PostgreSQL) or the file (SQLite).
    namespace: Option<String>,
    address: Option<String>,
    port: Option<u16>,
}

impl Peer {
    pub(crate) fn of<DB: Database>(pool: &sqlx::Pool<DB>) -> Self {
        let system = match DB::NAME {
            "PostgreSQL" => "postgresql",
            "SQLite" => "sqlite",
            "MySQL" => "mysql",
            _ => "other_sql",
        };
        if system == "sqlite" {
            // Nothing remote to name, and sqlx's lossy URL of an SQLite pool panics for some
            // file names (`sqlite::memory:` gives an "invalid port").
            return Self {
                system,
                namespace: None,
                address: None,
                port: None,
            };
        }
        let options = pool.connect_options();
        #[cfg(feature = "postgres")]
        if let Some(pg) = (&*options as &dyn std::any::Any).downcast_ref::<PgConnectOptions>() {
            // Read through the getters: sqlx's lossy URL of PostgreSQL options is formatted
            // from the unescaped user name and host and `expect`s it to parse, so it panics
            // for an IPv6 host (`::1`) and misreads a user name with `/`, `?` or `#`.
            let address = match pg.get_socket() {
                Some(socket) => socket.to_string_lossy().into_owned(),
                None => pg.get_host().to_owned(),
            };
            return Self {
                system,
                namespace: pg.get_database().map(str::to_owned),
                address: Some(address).filter(|a| !a.is_empty()),
                port: Some(pg.get_port()),
            };
        }
        // The lossy URL carries the password too: only host, port and path are read from it.
        let url = options.to_url_lossy();
        let namespace = url
            .path()
            .trim_start_matches('/')
            .rsplit('/')
            .next()
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        Self {
            system,
            namespace,
            address: url.host_str().filter(|h| !h.is_empty()).map(str::to_owned),
            port: url.port(),
        }
    }

    /// `db.system.name`.
    pub(crate) fn system(&self) -> &'static str {
        self.system
    }

    /// A new span for one statement, a child of the current span.
    pub(crate) fn span(&self) -> Span {
        tracing::info_span!(
            target: STATEMENT_SPAN_TARGET,
            "db.statement",
            otel.name = self.system,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = self.system,
            db.namespace = self.namespace.as_deref(),
            server.address = self.address.as_deref(),
            server.port = self.port.map(i64::from),
            db.query.text = Empty,
            db.operation.name = Empty,
            db.collection.name = Empty,
            db.response.returned_rows = Empty,
            error.type = Empty,
        )
    }
}

/// Records what the pool knows at a statement's end: the rows, and on failure `error.type`
/// (the SQLSTATE of a database error, else the error's class) with the span's error status.
pub fn finish_statement_span(span: &Span, rows: u64, error: Option<&sqlx::Error>) {
    if span.is_disabled() {
        return;
    }
    span.record("db.response.returned_rows", returned_rows(rows));
    if let Some(e) = error {
        span.record("error.type", &*error_type(e));
        span.record("otel.status_code", "ERROR");
    }
}

/// `db.response.returned_rows` as recorded: an i64, since tracing-opentelemetry exports a u64
/// as a string.
fn returned_rows(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// What a [`QueryObserver`] that sanitises statements knows of one at its end, for
/// [`end_statement_span`].
///
/// [`QueryObserver`]: crate::QueryObserver
#[derive(Debug, Clone, Copy)]
pub struct StatementDescription<'a> {
    /// The sanitised text (`db.query.text`): it is exported as it is, so it must never be the
    /// raw statement.
    pub text: &'a str,
    /// `db.operation.name` (`SELECT`).
    pub operation: &'a str,
    /// `db.collection.name`, when the statement names a table.
    pub collection: Option<&'a str>,
}

/// Records a statement's end on its span in one call to the subscriber: what
/// [`finish_statement_span`] records (the rows; on failure `error.type` and the error status)
/// and the observer's description (`db.query.text`, `db.operation.name`,
/// `db.collection.name`, and the span's name `otel.name`: `SELECT vaccinations`, or the
/// operation alone). One `record_all` rather than a `record` per field: under
/// `tracing-opentelemetry` each record looks the span up and locks its data.
///
/// For an observer whose [`records_span_end`](crate::QueryObserver::records_span_end) is
/// `true` (the handle then records nothing at the end), and for code that reports a statement
/// it ran outside the handle, instead of [`finish_statement_span`]. `span` is a statement span
/// of the handle's ([`MonitoredPool::statement_span`], or the one a
/// [`Statement`](crate::Statement) carries); on another span, nothing is recorded.
///
/// [`QueryObserver`]: crate::QueryObserver
/// [`MonitoredPool::statement_span`]: crate::MonitoredPool::statement_span
pub fn end_statement_span(
    span: &Span,
    description: &StatementDescription<'_>,
    rows: u64,
    error: Option<&sqlx::Error>,
) {
    if span.is_disabled() {
        return; // no subscriber listens
    }
    let Some(meta) = span.metadata() else {
        return;
    };
    let fields = EndFields::of(meta);
    let Some([f_text, f_operation, f_collection, f_name, f_rows, f_error, f_status]) = fields.get()
    else {
        return;
    };
    let StatementDescription {
        text,
        operation,
        collection,
    } = *description;
    let name = match collection {
        Some(c) => Cow::Owned(format!("{operation} {c}")),
        None => Cow::Borrowed(operation),
    };
    let name: &str = &name;
    let rows = returned_rows(rows);
    let error_type = error.map(error_type);
    let error_type = error_type.as_deref();
    let values: [(&Field, Option<&dyn Value>); 7] = [
        (f_text, Some(&text)),
        (f_operation, Some(&operation)),
        (f_collection, collection.as_ref().map(|c| c as &dyn Value)),
        (f_name, Some(&name)),
        (f_rows, Some(&rows)),
        (f_error, error_type.as_ref().map(|e| e as &dyn Value)),
        (f_status, error.map(|_| &"ERROR" as &dyn Value)),
    ];
    span.record_all(&meta.fields().value_set(&values));
}

/// The fields [`end_statement_span`] records, looked up by name once for the statement span's
/// callsite (a lookup compares the names of all its fields) and again only for a span of
/// another callsite.
#[derive(Clone)]
struct EndFields([Option<Field>; 7]);

const END_FIELDS: [&str; 7] = [
    "db.query.text",
    "db.operation.name",
    "db.collection.name",
    "otel.name",
    "db.response.returned_rows",
    "error.type",
    "otel.status_code",
];

impl EndFields {
    fn lookup(meta: &'static Metadata<'static>) -> Self {
        Self(END_FIELDS.map(|name| meta.fields().field(name)))
    }

    /// The fields of `meta`'s callsite: the remembered ones when it is the statement span's.
    fn of(meta: &'static Metadata<'static>) -> Cow<'static, Self> {
        static STATEMENT: OnceLock<EndFields> = OnceLock::new();
        let remembered = STATEMENT.get_or_init(|| Self::lookup(meta));
        let same = remembered.0[0]
            .as_ref()
            .is_some_and(|f| f.callsite() == meta.callsite());
        if same {
            Cow::Borrowed(remembered)
        } else {
            Cow::Owned(Self::lookup(meta))
        }
    }

    /// All of them, or `None` when the span lacks one.
    fn get(&self) -> Option<[&Field; 7]> {
        let [a, b, c, d, e, f, g] = &self.0;
        Some([
            a.as_ref()?,
            b.as_ref()?,
            c.as_ref()?,
            d.as_ref()?,
            e.as_ref()?,
            f.as_ref()?,
            g.as_ref()?,
        ])
    }
}

/// OpenTelemetry's `error.type` of a failed statement: the SQLSTATE of a database error (it
/// carries no data), else a low-cardinality class of the error (never its message).
pub fn error_type(e: &sqlx::Error) -> Cow<'static, str> {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => Cow::Owned(code.into_owned()),
            None => Cow::Borrowed("database"),
        },
        sqlx::Error::Io(_) => Cow::Borrowed("io"),
        sqlx::Error::Tls(_) => Cow::Borrowed("tls"),
        sqlx::Error::Protocol(_) => Cow::Borrowed("protocol"),
        sqlx::Error::PoolTimedOut => Cow::Borrowed("pool_timed_out"),
        sqlx::Error::PoolClosed => Cow::Borrowed("pool_closed"),
        sqlx::Error::RowNotFound => Cow::Borrowed("row_not_found"),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => Cow::Borrowed("decode"),
        sqlx::Error::Encode(_) => Cow::Borrowed("encode"),
        _ => Cow::Borrowed("_OTHER"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer of a pool on `options` (lazy: nothing is connected).
    fn peer_of<DB: Database>(options: <DB::Connection as sqlx::Connection>::Options) -> Peer {
        Peer::of(&sqlx::pool::PoolOptions::<DB>::new().connect_lazy_with(options))
    }

    /// sqlx's lossy URL of `sqlite::memory:` panics ("invalid port"): the peer never asks.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn an_in_memory_sqlite_pool_has_a_peer() {
        let peer = peer_of::<sqlx::Sqlite>("sqlite::memory:".parse().unwrap());
        assert_eq!(peer.system(), "sqlite");
        assert!(peer.address.is_none() && peer.port.is_none());
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_postgres_peer_names_the_database_and_server_never_the_password() {
        let url = "postgres://app:s3cret@db.internal:6543/school";
        let peer = peer_of::<sqlx::Postgres>(url.parse().unwrap());
        assert_eq!(peer.system(), "postgresql");
        assert_eq!(peer.namespace.as_deref(), Some("school"));
        assert_eq!(peer.address.as_deref(), Some("db.internal"));
        assert_eq!(peer.port, Some(6543));
        assert!(!format!("{peer:?}").contains("s3cret"));
    }

    /// sqlx's lossy URL of PostgreSQL options panics for an IPv6 host ("generated
    /// un-parseable URL") and reads `app/ro`'s `app` as the host: the peer reads the getters.
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_postgres_peer_of_an_ipv6_host_or_a_user_with_a_slash_is_read_right() {
        for (host, user) in [("::1", "app"), ("db.internal", "app/ro?#x")] {
            let options = PgConnectOptions::new()
                .host(host)
                .port(6543)
                .username(user)
                .password("s3cret")
                .database("school");
            let peer = peer_of::<sqlx::Postgres>(options);
            assert_eq!(peer.namespace.as_deref(), Some("school"));
            assert_eq!(peer.address.as_deref(), Some(host));
            assert_eq!(peer.port, Some(6543));
            assert!(!format!("{peer:?}").contains("s3cret"));
        }
    }

    #[test]
    fn error_type_is_a_class_never_a_message() {
        assert_eq!(error_type(&sqlx::Error::PoolTimedOut), "pool_timed_out");
        let io = sqlx::Error::Io(std::io::Error::other("secret 123-45-6789"));
        assert_eq!(error_type(&io), "io");
        assert_eq!(
            error_type(&sqlx::Error::Protocol("x 4111".into())),
            "protocol"
        );
    }
}
