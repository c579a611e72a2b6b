//! Read replicas on real engines: a primary and a streaming standby started by the test.

#[path = "common/pg_standby.rs"]
mod pg_standby;

use pg_standby::{PgPrimary, PgStandby};

#[test]
fn harness_starts_a_streaming_standby() {
    let primary = PgPrimary::start().unwrap();
    let mut standby = PgStandby::of(&primary).unwrap();
    assert_eq!(
        standby.server.psql("SELECT pg_is_in_recovery()").unwrap(),
        "t"
    );
    assert_eq!(
        standby.server.system_identifier().unwrap(),
        primary.server.system_identifier().unwrap()
    );
    standby
        .set_apply_delay(std::time::Duration::from_millis(200))
        .unwrap();
    standby.stop();
    standby.start().unwrap();
}
