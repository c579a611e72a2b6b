//! Single flight: concurrent misses of one key wait for one load.
//!
//! The first miss of a key leads (it gets a [`FlightGuard`] and runs the loader); every
//! miss of that key while the flight is up follows (it waits for the leader's outcome).
//! A follower of a flight that failed, or whose leader was dropped unfinished, tries
//! again, and may lead the next flight itself.

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

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, watch::Receiver<Flight>>>,
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
    /// Leads the flight of `key` when none is up, else follows it.
    pub(crate) fn join<'a>(&'a self, key: &'a str) -> Role<'a> {
        let mut map = crate::poison::lock(&self.map);
        match map.get(key) {
            Some(rx) => Role::Follow(Follower(rx.clone())),
            None => {
                let (tx, rx) = watch::channel(Flight::Pending);
                map.insert(key.to_owned(), rx.clone());
                Role::Lead(FlightGuard {
                    flights: self,
                    key,
                    tx,
                    rx,
                })
            }
        }
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
        self.tx.send_replace(Flight::Done(value));
    }

    /// Tells the followers the load failed.
    pub(crate) fn failed(self) {
        self.tx.send_replace(Flight::Failed);
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = crate::poison::lock(&self.flights.map);
        if map
            .get(self.key)
            .is_some_and(|rx| rx.same_channel(&self.rx))
        {
            map.remove(self.key);
        }
        // Dropping `tx` wakes followers of an unfinished flight: they retry.
    }
}
