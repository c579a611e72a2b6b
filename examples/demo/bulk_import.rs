//! Row 2: imports, one row at a time against the importer.

use super::*;

/// One record of the import input: a vaccination or an allergy.
#[derive(Clone)]
pub(crate) enum ImportRecord {
    Vaccination {
        student_id: Uuid,
        vaccine_name: String,
        dose_number: i32,
        administered_on: NaiveDate,
    },
    Allergy {
        student_id: Uuid,
        allergen: String,
        severity: &'static str,
    },
}

/// `n` records: 70 % vaccinations and 30 % allergies of the school's students, with one in a
/// hundred naming an unknown student and one in a hundred repeating the record before it.
pub(crate) fn import_records(school: &School, n: usize, set: &str) -> Vec<ImportRecord> {
    let students = &school.students;
    let base = NaiveDate::from_ymd_opt(2025, 1, 6).unwrap_or_default();
    let mut out: Vec<ImportRecord> = Vec::with_capacity(n);
    for k in 0..n {
        if k % 100 == 77 {
            if let Some(prev) = out.last().cloned() {
                out.push(prev);
                continue;
            }
        }
        let student_id = if k % 100 == 42 {
            Uuid::new_v4()
        } else {
            students[k % students.len()].id
        };
        let round = k / students.len();
        out.push(if k % 10 < 7 {
            ImportRecord::Vaccination {
                student_id,
                vaccine_name: format!("Demo {set}"),
                dose_number: (round % 20 + 1) as i32,
                administered_on: base + chrono::Days::new((round / 20) as u64),
            }
        } else {
            ImportRecord::Allergy {
                student_id,
                allergen: format!("demo allergen {set} {k}"),
                severity: health::records::SEVERITIES[k % 4],
            }
        });
    }
    out
}

pub(crate) fn to_ndjson(records: &[ImportRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 160);
    for r in records {
        let v = match r {
            ImportRecord::Vaccination {
                student_id,
                vaccine_name,
                dose_number,
                administered_on,
            } => serde_json::json!({
                "type": health::records::VACCINATION,
                "student_id": student_id,
                "vaccine_name": vaccine_name,
                "dose_number": dose_number,
                "administered_on": administered_on.to_string(),
                "administered_by": "school nurse",
                "lot_number": "DEMO-1",
            }),
            ImportRecord::Allergy {
                student_id,
                allergen,
                severity,
            } => serde_json::json!({
                "type": health::records::ALLERGY,
                "student_id": student_id,
                "allergen": allergen,
                "severity": severity,
            }),
        };
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// What the report's "before" does per record, in autocommit: does the student exist, is the
/// record already there, then one INSERT.
pub(crate) async fn row_by_row(
    db: &Db,
    records: &[ImportRecord],
    budget: Duration,
) -> Result<ImportRun, BoxError> {
    let started = Instant::now();
    let (mut imported, mut duplicates, mut rejected, mut statements) = (0u64, 0u64, 0u64, 0u64);
    let mut done = 0;
    for r in records {
        if started.elapsed() > budget {
            break;
        }
        done += 1;
        let student_id = match r {
            ImportRecord::Vaccination { student_id, .. }
            | ImportRecord::Allergy { student_id, .. } => *student_id,
        };
        // Timed on the plain pool, as the importer is: the comparison is of the work, not of
        // the instrumentation.
        let outcome: Result<u8, sqlx::Error> = with_db!(db, |p| {
            let pool = p.inner();
            statements += 1;
            let exists = sqlx::query("SELECT 1 FROM students WHERE id = $1")
                .bind(student_id)
                .fetch_optional(pool)
                .await?
                .is_some();
            if !exists {
                Ok(0)
            } else {
                statements += 1;
                let dup = match r {
                    ImportRecord::Vaccination {
                        vaccine_name,
                        dose_number,
                        administered_on,
                        ..
                    } => sqlx::query(
                        "SELECT 1 FROM vaccinations WHERE student_id = $1 AND vaccine_name = $2 \
                         AND dose_number = $3 AND administered_on = $4",
                    )
                    .bind(student_id)
                    .bind(vaccine_name)
                    .bind(dose_number)
                    .bind(administered_on)
                    .fetch_optional(pool)
                    .await?
                    .is_some(),
                    ImportRecord::Allergy { allergen, .. } => sqlx::query(
                        "SELECT 1 FROM allergies WHERE student_id = $1 \
                         AND lower(trim(allergen)) = lower(trim($2)) AND active = $3",
                    )
                    .bind(student_id)
                    .bind(allergen)
                    .bind(true)
                    .fetch_optional(pool)
                    .await?
                    .is_some(),
                };
                if dup {
                    Ok(1)
                } else {
                    statements += 1;
                    match r {
                        ImportRecord::Vaccination {
                            vaccine_name,
                            dose_number,
                            administered_on,
                            ..
                        } => {
                            sqlx::query(
                                "INSERT INTO vaccinations (id, student_id, vaccine_name, dose_number, \
                                 administered_on, administered_by, lot_number) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(Uuid::new_v4())
                            .bind(student_id)
                            .bind(vaccine_name)
                            .bind(dose_number)
                            .bind(administered_on)
                            .bind("school nurse")
                            .bind("DEMO-1")
                            .execute(pool)
                            .await?;
                        }
                        ImportRecord::Allergy {
                            allergen, severity, ..
                        } => {
                            sqlx::query(
                                "INSERT INTO allergies (id, student_id, allergen, severity, active) \
                                 VALUES ($1, $2, $3, $4, $5)",
                            )
                            .bind(Uuid::new_v4())
                            .bind(student_id)
                            .bind(allergen)
                            .bind(*severity)
                            .bind(true)
                            .execute(pool)
                            .await?;
                        }
                    }
                    Ok(2)
                }
            }
        });
        match outcome? {
            0 => rejected += 1,
            1 => duplicates += 1,
            _ => imported += 1,
        }
    }
    let elapsed = ms(started.elapsed());
    let mut run = ImportRun {
        ms: elapsed,
        statements,
        imported,
        duplicates,
        rejected,
        extrapolated_from: None,
    };
    if done < records.len() && done > 0 {
        let scale = records.len() as f64 / done as f64;
        run.ms = elapsed * scale;
        run.statements = (statements as f64 * scale).round() as u64;
        run.extrapolated_from = Some(done);
    }
    Ok(run)
}

pub(crate) async fn measure_import(
    m: &mut Measure<'_>,
    n: usize,
    index: usize,
) -> Result<ImportRow, BoxError> {
    let Measure {
        args,
        vitals,
        school,
        ..
    } = *m;
    let before = import_records(school, n, &format!("row-{index}"));
    let row = row_by_row(vitals.db(), &before, args.row_by_row_budget).await?;
    if let Some(from) = row.extrapolated_from {
        m.notes.push(format!(
            "Import {n} records, one row at a time: stopped after {from} rows at the {:.0} s \
             budget; its time and statements are extrapolated linearly from those rows.",
            args.row_by_row_budget.as_secs_f64()
        ));
    }

    let after = to_ndjson(&import_records(school, n, &format!("bulk-{index}")));
    let started = Instant::now();
    let source = Source::from_reader(std::io::Cursor::new(after), Format::Ndjson)?;
    let report = vitals.import(source, None).await?.report;
    let wall = ms(started.elapsed());
    let importer = ImportRun {
        ms: wall,
        statements: report.queries,
        imported: report.imported,
        duplicates: report.duplicates,
        rejected: report.rejected,
        extrapolated_from: None,
    };
    Ok(ImportRow {
        records: n,
        speedup: row.ms / importer.ms.max(1e-3),
        row_by_row: row,
        importer,
    })
}
