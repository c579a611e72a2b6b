//! Single flight: concurrent misses of one key wait for one load.
//!
//! The first miss of a key leads (it gets a [`FlightGuard`] and runs the loader); every
//! miss of that key while the flight is up follows (it waits for the leader's outcome).
//! A follower of a flight that failed, or whose leader was dropped unfinished, tries
//! again, and may lead the next flight itself.
//!
//! An invalidation of the key, of one of the flight's tags, or of all of L1 detaches the
//! flight ([`Flights::detach`], [`Flights::detach_tagged`], [`Flights::detach_all`]): its
//! leader and followers go on (their reads began before the change), but a miss after the
//! change leads a flight of its own rather than wait for a value read before the change (a
//! nurse's reload after her write must not get the list she just changed). A finished
//! flight leaves the map before its outcome is sent, so a follower that tries again never
//! finds the flight it just followed.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::l1::Value;

/// The state of one flight, as its followers see it.
#[derive(Clone)]
enum Flight {
    Pending,
    Done(Value),
    Failed,
}

/// A flight in progress: how to follow it, and the tags its load is stored under.
struct Up {
    rx: watch::Receiver<Flight>,
    tags: Box<[Box<str>]>,
}

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Up>>,
}

/// What a miss does: lead the flight of its key, or follow the one in progress.
pub(crate) enum Role<'a> {
    Lead(FlightGuard<'a>),
    Follow(Follower),
}

/// A miss waiting for the flight of its key.
pub(crate) struct Follower(watch::Receiver<Flight>);

impl Follower {
    /// How the leader's flight ended: with a value, failed, or dropped unfinished (the
    /// leader's caller went away: nothing failed).
    pub(crate) async fn ended(mut self) -> Ended {
        let outcome = self
            .0
            .wait_for(|f| !matches!(f, Flight::Pending))
            .await
            .map(|f| f.clone());
        match outcome {
            Ok(Flight::Done(value)) => Ended::Done(value),
            Ok(_) => Ended::Failed,
            Err(_) => Ended::Abandoned,
        }
    }
}

/// How a flight ended, for a follower ([`Follower::ended`]).
pub(crate) enum Ended {
    /// The leader loaded a value.
    Done(Value),
    /// The leader's load failed.
    Failed,
    /// The leader was dropped before it finished.
    Abandoned,
}

impl Flights {
    /// Leads the flight of `key` (its load stored under `tags`) when none is up, else
    /// follows it.
    pub(crate) fn join<'a>(&'a self, key: &'a str, tags: &[&str]) -> Role<'a> {
        let mut map = crate::poison::lock(&self.map);
        match map.get(key) {
            Some(up) => Role::Follow(Follower(up.rx.clone())),
            None => {
                let (tx, rx) = watch::channel(Flight::Pending);
                let tags = tags.iter().map(|t| Box::from(*t)).collect();
                map.insert(
                    key.to_owned(),
                    Up {
                        rx: rx.clone(),
                        tags,
                    },
                );
                Role::Lead(FlightGuard {
                    flights: self,
                    key,
                    tx,
                    rx,
                })
            }
        }
    }

    /// Detaches the flight of `key` (its key was overwritten or deleted): the next miss of
    /// `key` leads a flight of its own.
    pub(crate) fn detach(&self, key: &str) {
        crate::poison::lock(&self.map).remove(key);
    }

    /// Detaches the flights stored under `tag` (a tag or group invalidation).
    pub(crate) fn detach_tagged(&self, tag: &str) {
        crate::poison::lock(&self.map).retain(|_, up| !up.tags.iter().any(|t| **t == *tag));
    }

    /// Detaches every flight (L1 cleared).
    pub(crate) fn detach_all(&self) {
        crate::poison::lock(&self.map).clear();
    }

    /// Flights up now (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        crate::poison::lock(&self.map).len()
    }
}

/// The leader's side of a flight; dropping it ends the flight (its followers retry
/// unless it finished).
pub(crate) struct FlightGuard<'a> {
    flights: &'a Flights,
    key: &'a str,
    tx: watch::Sender<Flight>,
    rx: watch::Receiver<Flight>,
}

impl FlightGuard<'_> {
    /// Hands the loaded value to the followers.
    pub(crate) fn done(self, value: Value) {
        self.end(Flight::Done(value));
    }

    /// Tells the followers the load failed.
    pub(crate) fn failed(self) {
        self.end(Flight::Failed);
    }

    /// Takes the flight out of the map, then sends its outcome: a follower that tries
    /// again (a "not found" it can't take, a value of another type, a failure with nothing
    /// stale to serve) joins a new flight, not this finished one.
    fn end(self, outcome: Flight) {
        self.leave();
        self.tx.send_replace(outcome);
    }

    /// Removes this flight from the map, if it is still there (not detached, not replaced).
    fn leave(&self) {
        let mut map = crate::poison::lock(&self.flights.map);
        if map
            .get(self.key)
            .is_some_and(|up| up.rx.same_channel(&self.rx))
        {
            map.remove(self.key);
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.leave();
        // Dropping `tx` wakes followers of an unfinished flight: they retry.
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn lead<'a>(flights: &'a Flights, key: &'a str, tags: &[&str]) -> FlightGuard<'a> {
        match flights.join(key, tags) {
            Role::Lead(guard) => guard,
            Role::Follow(_) => panic!("{key}: a flight was up"),
        }
    }

    #[test]
    fn a_miss_after_a_change_leads_a_flight_of_its_own() {
        let flights = Flights::default();
        let first = lead(&flights, "student:1:allergies", &["allergies", "group:1"]);
        assert!(matches!(
            flights.join("student:1:allergies", &[]),
            Role::Follow(_)
        ));
        // A delete of the key: the next miss leads; the first leader's end leaves it be.
        flights.detach("student:1:allergies");
        let second = lead(&flights, "student:1:allergies", &["allergies"]);
        first.done(Arc::new(1u8));
        assert!(matches!(
            flights.join("student:1:allergies", &[]),
            Role::Follow(_)
        ));
        drop(second);
        // A tag invalidation detaches the flights stored under the tag, and only those.
        let _a = lead(&flights, "student:2:allergies", &["allergies", "group:2"]);
        let _b = lead(&flights, "student:2:conditions", &["conditions", "group:2"]);
        let _c = lead(&flights, "student:3:conditions", &["conditions", "group:3"]);
        flights.detach_tagged("group:2");
        assert_eq!(flights.len(), 1);
        flights.detach_all();
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_finished_flight_is_gone_before_its_followers_wake() {
        let flights = Flights::default();
        let guard = lead(&flights, "k", &[]);
        let Role::Follow(follower) = flights.join("k", &[]) else {
            panic!("no flight to follow")
        };
        guard.failed();
        assert!(matches!(follower.ended().await, Ended::Failed));
        // Trying again, it leads: the failed flight is not found again.
        assert!(matches!(flights.join("k", &[]), Role::Lead(_)));
    }
}
