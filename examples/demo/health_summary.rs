//! Row 3: a student's health summary, uncached, from L1 and from L2 (Redis).

use super::*;

pub(crate) async fn uncached_summary(
    db: &Db,
    tables: &health::Tables,
    id: Uuid,
) -> Result<Option<HealthSummary>, sqlx::Error> {
    match db {
        Db::Postgres(p) => queries::postgres::health_summary(p, tables, id).await,
        Db::Sqlite(p) => queries::sqlite::health_summary(p, tables, id).await,
    }
}

pub(crate) async fn time_each<F, Fut, T, E>(
    ids: &[Uuid],
    passes: usize,
    mut f: F,
) -> Result<Vec<f64>, BoxError>
where
    F: FnMut(Uuid) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    let mut out = Vec::with_capacity(ids.len() * passes);
    for _ in 0..passes {
        for &id in ids {
            let t = Instant::now();
            f(id).await.map_err(Into::into)?;
            out.push(ms(t.elapsed()));
        }
    }
    Ok(out)
}

pub(crate) async fn measure_summary(m: &mut Measure<'_>) -> Result<SummarySection, BoxError> {
    let Measure {
        args, vitals, ids, ..
    } = *m;
    let n = args.summary_samples.min(ids.len()).max(1);
    // Spread the sample over the school.
    let step = (ids.len() / n).max(1);
    let sample: Vec<Uuid> = ids.iter().step_by(step).take(n).copied().collect();
    let db = vitals.db();
    let health = vitals.health_cache();

    let mut uncached =
        time_each(&sample, 1, |id| uncached_summary(db, vitals.tables(), id)).await?;
    let mut miss = time_each(&sample, 1, |id| health.student_health_summary(id)).await?;
    let mut l1 = time_each(&sample, 5, |id| health.student_health_summary(id)).await?;
    let (mut l2, l2_counted) = if vitals.cache_stats().redis_connected {
        vitals.cache().clear_l1();
        let before = vitals.cache_stats().l2_hits;
        let l2 = time_each(&sample, 1, |id| health.student_health_summary(id)).await?;
        let counted = vitals.cache_stats().l2_hits - before;
        if counted < sample.len() as u64 {
            m.notes.push(format!(
                "Health summary, L2: only {counted} of {} reads were L2 hits; the L2 figure \
                 mixes in other paths.",
                sample.len()
            ));
        }
        (Some(l2), Some(counted))
    } else {
        (None, None)
    };
    let uncached = percentiles(&mut uncached);
    let l1 = percentiles(&mut l1);
    let l2 = l2.as_mut().map(|v| percentiles(v));
    Ok(SummarySection {
        students: sample.len(),
        uncached,
        miss_and_fill: percentiles(&mut miss),
        l1_hit: l1,
        l1_speedup: uncached.p50_ms / l1.p50_ms.max(1e-6),
        l2_speedup: l2.map(|p| uncached.p50_ms / p.p50_ms.max(1e-6)),
        l2_hit: l2,
        l2_hits_counted: l2_counted,
    })
}
