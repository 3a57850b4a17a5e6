//! Polling with a deadline: the shape every "wait until the cluster shows X"
//! step of a test takes.

use std::{future::Future, time::Duration};

use crate::E2eError;

/// How often [`wait_until`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Calls `check` every [`POLL_INTERVAL`] until it yields `Some(value)`,
/// returns an error, or `timeout` passes. Errors from `check` end the wait at
/// once: a check that can fail transiently should map such failures to
/// `Ok(None)` itself.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, E2eError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E2eError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() + POLL_INTERVAL > deadline {
            return Err(E2eError::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_check_succeeds() {
        let calls = AtomicU32::new(0);
        let got = wait_until("third call", Duration::from_secs(10), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Ok((n == 3).then_some(n))
        })
        .await;
        assert_eq!(got.ok(), Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_what_it_waited_for() {
        let got: Result<(), _> =
            wait_until("never", Duration::from_secs(2), || async { Ok(None) }).await;
        match got {
            Err(E2eError::Timeout { what, after }) => {
                assert_eq!(what, "never");
                assert_eq!(after, Duration::from_secs(2));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_error_ends_the_wait_immediately() {
        let calls = AtomicU32::new(0);
        let got: Result<(), _> = wait_until("failing", Duration::from_secs(10), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E2eError::Check("boom".into()))
        })
        .await;
        assert!(matches!(got, Err(E2eError::Check(m)) if m == "boom"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
