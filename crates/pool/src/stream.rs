//! The streams the handle's executors return: [`Item`], what a driver's `fetch_many` yields,
//! and [`produced`], a stream fed by a task-like future through a bounded channel, for a
//! statement whose rows come from a connection the stream itself must own (one acquired for
//! it, or one in a transaction of its own).

use std::future::Future;

use futures::channel::mpsc::{self, Sender};
use futures::future::FutureExt;
use futures::stream::{BoxStream, StreamExt};
use sqlx::{Database, Either};

/// What a driver's `fetch_many` yields.
pub(crate) type Item<DB> =
    Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, sqlx::Error>;

/// Items the producer may send ahead of the caller.
const BUFFER: usize = 8;

/// The items `produce` sends, through a channel of 8. The producer is polled with the
/// stream (no task is spawned): it runs as the caller reads, and is dropped when the caller
/// drops the stream, its next send then failing, so it should stop when a send fails.
pub(crate) fn produced<'e, T, F, Fut>(produce: F) -> BoxStream<'e, T>
where
    T: Send + 'e,
    F: FnOnce(Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'e,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    let producer = produce(tx).into_stream().filter_map(|()| async { None });
    Box::pin(futures::stream::select(producer, rx))
}
