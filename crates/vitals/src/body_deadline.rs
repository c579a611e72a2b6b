//! A request body that must arrive in full before a deadline: what keeps a client that stalls
//! (a body sent a byte a minute, or never ended) from holding one of the import route's
//! [`MAX_CONCURRENT_UPLOADS`](crate::health::api::MAX_CONCURRENT_UPLOADS) places.
//!
//! The deadline is for the whole body, not between its frames, so a trickle cannot reset it.
//! When it passes, the body ends with [`BodyTooSlow`], which the extractors answer 408
//! (`body: not received in time`); nothing of the body is read after it.

use std::time::Duration;

use axum::body::Body;
use futures::StreamExt as _;

/// The body did not arrive in full before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyTooSlow(pub(crate) Duration);

/// `body`, failing with [`BodyTooSlow`] if it has not ended `within` from now.
pub(crate) fn with_deadline(body: Body, within: Duration) -> Body {
    let deadline = Box::pin(tokio::time::sleep(within));
    let frames = body.into_data_stream();
    let timed = futures::stream::unfold(Some((frames, deadline)), move |state| async move {
        let (mut frames, mut deadline) = state?;
        tokio::select! {
            frame = frames.next() => frame.map(|f| (f, Some((frames, deadline)))),
            () = &mut deadline => Some((Err(axum::Error::new(BodyTooSlow(within))), None)),
        }
    });
    Body::from_stream(timed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_ends_with_body_too_slow() {
        let stalled = futures::stream::iter([Ok::<_, std::io::Error>("student_id\n")])
            .chain(futures::stream::pending());
        let body = with_deadline(Body::from_stream(stalled), Duration::from_secs(30));
        let err = body.collect().await.unwrap_err();
        // axum wraps a stream's error once more.
        let chain = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source());
        assert!(
            chain
                .take(4)
                .any(|e| e.downcast_ref::<BodyTooSlow>().is_some()),
            "{err:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_is_whole() {
        let parts = futures::stream::iter(["a,b\n", "1,2\n"].map(Ok::<_, std::io::Error>));
        let body = with_deadline(Body::from_stream(parts), Duration::from_secs(30));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"a,b\n1,2\n");
    }
}
