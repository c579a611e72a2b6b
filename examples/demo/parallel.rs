//! Rows 4 and 5: the dashboard and recent activities, sequential reads against parallel ones.

use super::*;

pub(crate) const RECENT_LIMIT: i64 = 20;

/// Times `seq` and `par` alternately (so both see the same machine load), `samples` each,
/// after one warm-up of each.
pub(crate) async fn alternate<S, SF, P, PF>(
    samples: usize,
    mut seq: S,
    mut par: P,
) -> Result<(Percentiles, Percentiles), BoxError>
where
    S: FnMut() -> SF,
    SF: Future<Output = Result<(), BoxError>>,
    P: FnMut() -> PF,
    PF: Future<Output = Result<(), BoxError>>,
{
    seq().await?;
    par().await?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..samples.max(1) {
        let t = Instant::now();
        seq().await?;
        a.push(ms(t.elapsed()));
        let t = Instant::now();
        par().await?;
        b.push(ms(t.elapsed()));
    }
    Ok((percentiles(&mut a), percentiles(&mut b)))
}

pub(crate) async fn measure_dashboard(m: &Measure<'_>) -> Result<Comparison, BoxError> {
    let d = m.vitals.dashboard();
    let (sequential, parallel) = alternate(
        m.args.dashboard_samples,
        || async {
            d.chart_data(true).await?;
            d.activity_counts(true).await?;
            d.recent_activities_sequential(RECENT_LIMIT).await?;
            Ok(())
        },
        || async {
            tokio::try_join!(
                d.chart_data(false),
                d.activity_counts(false),
                d.recent_activities(RECENT_LIMIT)
            )?;
            Ok(())
        },
    )
    .await?;
    Ok(Comparison {
        what: "chart data (4 aggregates), counts (3) and recent activities (3)".into(),
        statements: 10,
        speedup: sequential.p50_ms / parallel.p50_ms.max(1e-6),
        sequential,
        parallel,
    })
}

pub(crate) async fn measure_recent(m: &Measure<'_>) -> Result<Comparison, BoxError> {
    let d = m.vitals.dashboard();
    let (sequential, parallel) = alternate(
        m.args.dashboard_samples * 2,
        || async {
            d.recent_activities_sequential(RECENT_LIMIT).await?;
            Ok(())
        },
        || async {
            d.recent_activities(RECENT_LIMIT).await?;
            Ok(())
        },
    )
    .await?;
    Ok(Comparison {
        what: format!(
            "latest {RECENT_LIMIT} medication doses, incidents and upcoming appointments"
        ),
        statements: 3,
        speedup: sequential.p50_ms / parallel.p50_ms.max(1e-6),
        sequential,
        parallel,
    })
}
