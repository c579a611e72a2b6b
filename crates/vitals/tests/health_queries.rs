//! The health reads (summary, dashboard) on real PostgreSQL and on SQLite return what was
//! loaded, and the parallel and sequential forms agree.
//!
//! Run with `cargo test -p vitals --test health_queries`.

mod common;

use chrono::Utc;
use sqlx::PgPool;
use vitals::health::{self, SchoolGenerator};

macro_rules! health_reads {
    ($pool:expr, $engine:ident) => {{
        paste_engine!($pool, $engine)
    }};
}

macro_rules! paste_engine {
    ($pool:expr, postgres) => {
        check!(
            $pool,
            health::load_school_postgres,
            health::health_summary_postgres,
            health::recent_activities_postgres,
            health::recent_activities_sequential_postgres,
            health::chart_data_postgres,
            health::activity_counts_postgres
        )
    };
    ($pool:expr, sqlite) => {
        check!(
            $pool,
            health::load_school_sqlite,
            health::health_summary_sqlite,
            health::recent_activities_sqlite,
            health::recent_activities_sequential_sqlite,
            health::chart_data_sqlite,
            health::activity_counts_sqlite
        )
    };
}

/// How many of `records` belong to `student` (`owner` is a record's student).
fn records_of<T>(records: &[T], owner: impl Fn(&T) -> uuid::Uuid, student: uuid::Uuid) -> usize {
    records.iter().filter(|r| owner(r) == student).count()
}

macro_rules! check {
    ($pool:expr, $load:path, $summary:path, $recent:path, $recent_seq:path, $chart:path, $counts:path) => {{
        let pool = $pool;
        // `#[sqlx::test]` migrated into `public`, where the pool's search_path finds it.
        let t = &health::Tables::unqualified();
        let now = Utc::now();
        let school = SchoolGenerator::new(200).seed(11).reference(now).generate();
        $load(&pool, t, &school).await.unwrap();

        // The summary of a student with an allergy holds exactly their active records.
        let allergic = school.allergies[0].student_id;
        let summary = $summary(&pool, t, allergic)
            .await
            .unwrap()
            .expect("student exists");
        assert_eq!(summary.student.id, allergic);
        let expected_allergies = records_of(&school.allergies, |a| a.student_id, allergic);
        assert_eq!(summary.allergies.len(), expected_allergies);
        let expected_vaccinations = records_of(&school.vaccinations, |v| v.student_id, allergic);
        assert_eq!(summary.vaccinations.len(), expected_vaccinations);
        assert!(summary.recent_medications.len() <= 10);
        assert!(
            $summary(&pool, t, uuid::Uuid::new_v4())
                .await
                .unwrap()
                .is_none(),
            "no such student"
        );

        let parallel = $recent(&pool, t, now, 20).await.unwrap();
        let sequential = $recent_seq(&pool, t, now, 20).await.unwrap();
        assert_eq!(parallel, sequential);
        assert_eq!(
            parallel.medications.len(),
            school.medication_logs.len().min(20)
        );
        let newest = school
            .medication_logs
            .iter()
            .map(|m| m.administered_at)
            .max()
            .unwrap();
        assert_eq!(parallel.medications[0].administered_at, newest);
        assert!(parallel
            .upcoming_appointments
            .iter()
            .all(|a| a.scheduled_at > now));

        let chart = $chart(&pool, t, now, false).await.unwrap();
        assert_eq!(chart, $chart(&pool, t, now, true).await.unwrap());
        let vaccinations: i64 = chart.vaccinations_by_vaccine.iter().map(|c| c.count).sum();
        assert_eq!(vaccinations as usize, school.vaccinations.len());
        let allergies: i64 = chart.allergies_by_severity.iter().map(|c| c.count).sum();
        assert_eq!(allergies as usize, school.allergies.len());

        let counts = $counts(&pool, t, now, false).await.unwrap();
        assert_eq!(counts, $counts(&pool, t, now, true).await.unwrap());
        let day_ago = now - chrono::Duration::hours(24);
        let expected_today = school
            .medication_logs
            .iter()
            .filter(|m| m.administered_at > day_ago)
            .count();
        assert_eq!(counts.medications_today as usize, expected_today);
    }};
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn postgres_health_reads_return_what_was_loaded(pool: PgPool) {
    health_reads!(pool, postgres);
}

#[tokio::test]
async fn sqlite_health_reads_return_what_was_loaded() {
    let pool = common::sqlite_memory().await;
    health_reads!(pool, sqlite);
}
