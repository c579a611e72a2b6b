//! SQLite sink: multi-row statements with bound values, split only where SQLite's limit on
//! bound parameters forces it.

use std::sync::Arc;

use chrono::NaiveDate;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Row as _, Sqlite};
use uuid::Uuid;

use super::conn::{transaction_on_conn, Conn, ConnectionSource, StatementObserver};
use super::{Lookup, Sink};
use crate::spec::{Kind, RecordSpec, Value};

/// SQLite's default maximum number of bound parameters per statement (since 3.32).
const MAX_PARAMS: usize = 32_766;

/// Writes to SQLite.
///
/// Lookups are `WITH u(ord, k0, …) AS (VALUES (?, ?, …), …) SELECT ord FROM u WHERE EXISTS
/// (…)`; inserts are multi-row `INSERT … VALUES … ON CONFLICT DO NOTHING RETURNING key`.
/// UUIDs are bound as 16-byte blobs (sqlx's encoding) unless [`SqliteSink::uuid_as_text`].
///
/// Holds a [`ConnectionSource`] (a pool by default, cheap to clone) and at most one open
/// transaction, on a connection held from `BEGIN` to its end; not shared between imports. A
/// [`StatementObserver`] set with [`observed_by`](Self::observed_by) sees every statement.
#[derive(Debug)]
pub struct SqliteSink<S: ConnectionSource<Sqlite> = SqlitePool> {
    conn: Conn<Sqlite, S>,
    uuid_as_text: bool,
}

impl SqliteSink {
    /// A sink writing through `pool`.
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        Self::on(pool)
    }
}

impl<S: ConnectionSource<Sqlite>> SqliteSink<S> {
    /// A sink writing on connections acquired from `source`.
    #[must_use]
    pub fn on(source: S) -> Self {
        Self {
            conn: Conn::new(source),
            uuid_as_text: false,
        }
    }

    /// Reports every statement this sink sends to `observer`, one call per statement.
    #[must_use]
    pub fn observed_by(mut self, observer: Arc<dyn StatementObserver>) -> Self {
        self.conn.set_observer(observer);
        self
    }

    /// Stores UUIDs as hyphenated text instead of blobs (match the schema's convention).
    #[must_use]
    pub fn uuid_as_text(mut self, yes: bool) -> Self {
        self.uuid_as_text = yes;
        self
    }

    fn bind<'q>(
        &self,
        q: Query<'q, Sqlite, SqliteArguments<'q>>,
        v: &'q Value,
    ) -> Query<'q, Sqlite, SqliteArguments<'q>> {
        match v {
            Value::Null => q.bind(None::<String>),
            Value::Text(s) => q.bind(s.as_str()),
            Value::Int(n) => q.bind(*n),
            Value::Date(d) => q.bind(*d),
            Value::Uuid(u) if self.uuid_as_text => q.bind(u.hyphenated().to_string()),
            Value::Uuid(u) => q.bind(*u),
        }
    }
}

fn decode(row: &SqliteRow, i: usize, kind: &Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Text { .. } | Kind::Enum(_) => Value::Text(row.try_get::<String, _>(i)?),
        Kind::Int { .. } => Value::Int(row.try_get::<i64, _>(i)?),
        Kind::Date => Value::Date(row.try_get::<NaiveDate, _>(i)?),
        Kind::Uuid => match row.try_get::<Uuid, _>(i) {
            Ok(u) => Value::Uuid(u),
            Err(_) => {
                let s = row.try_get::<String, _>(i)?;
                Value::Uuid(Uuid::parse_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))?)
            }
        },
    })
}

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3 + 2);
    s.push('(');
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s.push(')');
    s
}

impl<S: ConnectionSource<Sqlite>> Sink for SqliteSink<S> {
    transaction_on_conn!();

    async fn find(&mut self, lookup: &Lookup<'_>) -> Result<Vec<usize>, sqlx::Error> {
        let parts = lookup.parts.len();
        let per_batch = (MAX_PARAMS / (parts + 1)).max(1);
        let names: Vec<String> = (0..parts).map(|i| format!("k{i}")).collect();
        let mut conditions: Vec<String> = lookup
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{} = u.k{i}", p.sql("t")))
            .collect();
        if let Some(filter) = lookup.filter {
            conditions.push(format!("({filter})"));
        }
        let row = placeholders(parts + 1);
        let mut found = Vec::new();
        for (batch, keys) in lookup.keys.chunks(per_batch).enumerate() {
            let values = vec![row.as_str(); keys.len()].join(", ");
            let sql = format!(
                "WITH u(ord, {}) AS (VALUES {values}) SELECT u.ord FROM u \
                 WHERE EXISTS (SELECT 1 FROM {} t WHERE {})",
                names.join(", "),
                lookup.table,
                conditions.join(" AND ")
            );
            let mut q = sqlx::query(&sql);
            for (i, key) in keys.iter().enumerate() {
                q = q.bind((batch * per_batch + i) as i64);
                for v in key {
                    q = self.bind(q, v);
                }
            }
            for r in self.conn.fetch(q).await? {
                let ord = r.try_get::<i64, _>(0)?;
                found.push(usize::try_from(ord).unwrap_or(usize::MAX));
            }
        }
        Ok(found)
    }

    async fn insert(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        let columns = spec.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
        let key_kinds: Vec<&Kind> = spec
            .key()
            .iter()
            .filter_map(|k| spec.column_index(k.column()).map(|i| columns[i].kind()))
            .collect();
        let returning: Vec<&str> = spec.key().iter().map(|k| k.column()).collect();
        let per_batch = (MAX_PARAMS / columns.len()).max(1);
        let row = placeholders(columns.len());
        let mut inserted = Vec::new();
        for batch in rows.chunks(per_batch) {
            let values = vec![row.as_str(); batch.len()].join(", ");
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {values} ON CONFLICT {} DO NOTHING RETURNING {}",
                spec.table(),
                names.join(", "),
                spec.conflict().unwrap_or(""),
                returning.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for r in batch {
                for v in r.iter() {
                    q = self.bind(q, v);
                }
            }
            for r in self.conn.fetch(q).await? {
                inserted.push(
                    key_kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| decode(&r, i, kind))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
        }
        Ok(inserted)
    }

    fn statements(&self) -> u64 {
        self.conn.statements()
    }
}
