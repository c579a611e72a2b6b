//! PostgreSQL sink: every call is one statement over typed arrays (`UNNEST`), whatever the
//! number of rows.

use std::sync::Arc;

use chrono::NaiveDate;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row as _};
use uuid::Uuid;

use super::conn::{transaction_on_conn, Conn, ConnectionSource, StatementObserver};
use super::{Lookup, Sink};
use crate::spec::{Kind, RecordSpec, Value};

/// Writes to PostgreSQL.
///
/// Lookups are `SELECT ord FROM UNNEST($1::t1[], …) WITH ORDINALITY u CROSS JOIN LATERAL
/// (SELECT 1 FROM t WHERE t.k = u.k … LIMIT 1)` (an index probe per key);
/// inserts are `INSERT … SELECT … FROM UNNEST(…) ON CONFLICT DO NOTHING [RETURNING key]`: one
/// statement per call and no temporary table, so an import of 100 rows of one type is
/// `BEGIN`, one foreign-key query, one existing-key query, one insert and `COMMIT`.
///
/// Holds a [`ConnectionSource`] (a pool by default, cheap to clone) and at most one open
/// transaction, on a connection held from `BEGIN` to its end; not shared between imports. It
/// [forks](Sink::fork): with [`ImportOptions::workers`](crate::ImportOptions::workers) above 1,
/// chunks are written on up to that many connections of the source at once. A
/// [`StatementObserver`] set with [`observed_by`](Self::observed_by) sees every statement, the
/// forks' included.
#[derive(Debug)]
pub struct PgSink<S: ConnectionSource<Postgres> = PgPool> {
    conn: Conn<Postgres, S>,
}

impl PgSink {
    /// A sink writing through `pool`.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self::on(pool)
    }
}

impl<S: ConnectionSource<Postgres>> PgSink<S> {
    /// A sink writing on connections acquired from `source`.
    #[must_use]
    pub fn on(source: S) -> Self {
        Self {
            conn: Conn::new(source),
        }
    }

    /// Reports every statement this sink and its forks send to `observer`, one call per
    /// statement.
    #[must_use]
    pub fn observed_by(mut self, observer: Arc<dyn StatementObserver>) -> Self {
        self.conn.set_observer(observer);
        self
    }
}

/// A column of values bound as one typed array.
enum PgArray<'a> {
    Text(Vec<Option<&'a str>>),
    Int(Vec<Option<i64>>),
    Date(Vec<Option<NaiveDate>>),
    Uuid(Vec<Option<Uuid>>),
}

impl<'a> PgArray<'a> {
    fn collect(kind: &Kind, values: impl Iterator<Item = &'a Value>) -> Self {
        // The values of the `$variant` kind as `$some`, any other (a null) as `None`.
        macro_rules! column {
            ($variant:ident($v:ident) => $some:expr) => {
                PgArray::$variant(
                    values
                        .map(|v| match v {
                            Value::$variant($v) => Some($some),
                            _ => None,
                        })
                        .collect(),
                )
            };
        }
        match kind {
            Kind::Text { .. } | Kind::Enum(_) => column!(Text(s) => s.as_str()),
            Kind::Int { .. } => column!(Int(n) => *n),
            Kind::Date => column!(Date(d) => *d),
            Kind::Uuid => column!(Uuid(u) => *u),
        }
    }

    fn bind(self, q: Query<'a, Postgres, PgArguments>) -> Query<'a, Postgres, PgArguments> {
        match self {
            PgArray::Text(v) => q.bind(v),
            PgArray::Int(v) => q.bind(v),
            PgArray::Date(v) => q.bind(v),
            PgArray::Uuid(v) => q.bind(v),
        }
    }
}

fn decode(row: &PgRow, i: usize, kind: &Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Text { .. } | Kind::Enum(_) => Value::Text(row.try_get::<String, _>(i)?),
        Kind::Int { .. } => Value::Int(row.try_get::<i64, _>(i)?),
        Kind::Date => Value::Date(row.try_get::<NaiveDate, _>(i)?),
        Kind::Uuid => Value::Uuid(row.try_get::<Uuid, _>(i)?),
    })
}

/// The expression that turns a returned key column into the kind's canonical type.
fn returned(column: &str, kind: &Kind) -> String {
    match kind {
        Kind::Text { .. } | Kind::Enum(_) => format!("{column}::text"),
        Kind::Int { .. } => format!("{column}::int8"),
        Kind::Date => format!("{column}::date"),
        Kind::Uuid => format!("{column}::uuid"),
    }
}

/// `INSERT INTO t (cols) SELECT … FROM UNNEST($1::t1[], …) ON CONFLICT … DO NOTHING`, with
/// `RETURNING returning` when given.
fn insert_sql(spec: &RecordSpec, returning: Option<&str>) -> String {
    let columns = spec.columns();
    let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, c.kind().pg_base()))
        .collect();
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let selected: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.pg_cast() {
            Some(cast) => format!("u.c{i}::{cast}"),
            None => format!("u.c{i}"),
        })
        .collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM UNNEST({}) AS u({}) ON CONFLICT {} DO NOTHING",
        spec.table(),
        names.join(", "),
        selected.join(", "),
        arrays.join(", "),
        aliases.join(", "),
        spec.conflict().unwrap_or(""),
    );
    if let Some(r) = returning {
        sql.push_str(" RETURNING ");
        sql.push_str(r);
    }
    sql
}

/// `sql` with one typed array per column of `spec` bound.
fn bind_columns<'a>(
    sql: &'a str,
    spec: &RecordSpec,
    rows: &[&'a [Value]],
) -> Query<'a, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for (i, c) in spec.columns().iter().enumerate() {
        q = PgArray::collect(c.kind(), rows.iter().map(|r| &r[i])).bind(q);
    }
    q
}

impl<S: ConnectionSource<Postgres>> Sink for PgSink<S> {
    transaction_on_conn!();

    async fn find(&mut self, lookup: &Lookup<'_>) -> Result<Vec<usize>, sqlx::Error> {
        if lookup.keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut arrays = Vec::new();
        let mut names = Vec::new();
        let mut conditions = Vec::new();
        for (i, part) in lookup.parts.iter().enumerate() {
            arrays.push(format!("${}::{}[]", i + 1, part.kind.pg_base()));
            names.push(format!("k{i}"));
            let bound = match part.pg_cast {
                Some(cast) => format!("u.k{i}::{cast}"),
                None => format!("u.k{i}"),
            };
            conditions.push(format!("{} = {bound}", part.sql("t")));
        }
        if let Some(filter) = lookup.filter {
            conditions.push(format!("({filter})"));
        }
        // LATERAL … LIMIT 1 rather than EXISTS: PostgreSQL turns EXISTS into a hash semi-join
        // that scans the whole table for every chunk; this probes the unique index per key,
        // so a lookup costs the same on a table of a thousand rows or of millions.
        let sql = format!(
            "SELECT u.ord FROM UNNEST({}) WITH ORDINALITY AS u({}, ord) \
             CROSS JOIN LATERAL (SELECT 1 FROM {} t WHERE {} LIMIT 1) AS hit",
            arrays.join(", "),
            names.join(", "),
            lookup.table,
            conditions.join(" AND ")
        );
        let mut q = sqlx::query(&sql);
        for (i, part) in lookup.parts.iter().enumerate() {
            q = PgArray::collect(&part.kind, lookup.keys.iter().map(|k| &k[i])).bind(q);
        }
        let rows = self.conn.fetch(q).await?;
        rows.iter()
            .map(|r| {
                r.try_get::<i64, _>(0)
                    .map(|ord| usize::try_from(ord - 1).unwrap_or(usize::MAX))
            })
            .collect()
    }

    async fn insert(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key_kinds: Vec<&Kind> = spec
            .key()
            .iter()
            .filter_map(|k| {
                spec.column_index(k.column())
                    .map(|i| spec.columns()[i].kind())
            })
            .collect();
        let returning: Vec<String> = spec
            .key()
            .iter()
            .zip(&key_kinds)
            .map(|(k, kind)| returned(k.column(), kind))
            .collect();
        let sql = insert_sql(spec, Some(&returning.join(", ")));
        let returned_rows = self.conn.fetch(bind_columns(&sql, spec, rows)).await?;
        returned_rows
            .iter()
            .map(|r| {
                key_kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| decode(r, i, kind))
                    .collect()
            })
            .collect()
    }

    async fn insert_count(
        &mut self,
        spec: &RecordSpec,
        rows: &[&[Value]],
    ) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        let sql = insert_sql(spec, None);
        let done = self.conn.execute(bind_columns(&sql, spec, rows)).await?;
        Ok(done.rows_affected())
    }

    fn statements(&self) -> u64 {
        self.conn.statements()
    }

    fn fork(&self) -> Option<Self> {
        Some(Self {
            conn: self.conn.fork(),
        })
    }
}
