//! [`Vitals::import`] and [`Vitals::import_file`]: the importer of the school-health record
//! types, run on the facade's database.

use std::path::Path;

use vitals_import::{Format, ImportOptions, ImportReport, Importer, PgSink, Source, SqliteSink};

use crate::db::Db;
use crate::health;
use crate::{Error, Vitals};

impl Vitals {
    /// Imports a file of school-health records (`student`, `vaccination`, `allergy`,
    /// `chronic_condition`) with the configured options, or `options` when given.
    /// `record_type` is the type of every row when the file has no `type` field (CSV).
    ///
    /// Imports use the pool underneath the monitored handle: their statements (lookups and
    /// bulk inserts, a few per chunk) are not timed one by one; the report counts them. On
    /// PostgreSQL an import holds up to `VITALS_IMPORT_WORKERS` (default 2) of the pool's
    /// connections while it runs (see [`ImportOptions::workers`]).
    ///
    /// # Errors
    /// [`Error::Import`] when the file cannot be read at all or the database fails.
    pub async fn import_file(
        &self,
        path: impl AsRef<Path>,
        format: Option<Format>,
        record_type: Option<&str>,
        options: Option<ImportOptions>,
    ) -> Result<ImportReport, Error> {
        let mut source = Source::open(path.as_ref(), format)?;
        if let Some(t) = record_type {
            source = source.with_type(t);
        }
        self.import(source, options).await
    }

    /// Imports from any [`Source`] (a file, bytes of an upload).
    ///
    /// # Errors
    /// [`Error::Import`] when the source cannot be read at all or the database fails.
    pub async fn import(
        &self,
        source: Source,
        options: Option<ImportOptions>,
    ) -> Result<ImportReport, Error> {
        let custom;
        let importer = match options {
            Some(o) => {
                custom = Importer::new(health::records::registry(), o)?;
                &custom
            }
            None => self.importer(),
        };
        let report = match self.db() {
            Db::Postgres(p) => {
                importer
                    .run(source, &mut PgSink::new(p.inner().clone()))
                    .await?
            }
            Db::Sqlite(p) => {
                importer
                    .run(source, &mut SqliteSink::new(p.inner().clone()))
                    .await?
            }
        };
        Ok(report)
    }
}
