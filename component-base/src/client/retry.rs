//! client-go's retry rule for API responses (`rest.Request.checkWait` with
//! `maxRetries = 10`): a response is retried only when the server asks for
//! it — status 429 or 5xx *with* a `Retry-After: <seconds>` header — after
//! waiting those seconds. Everything else goes back to the caller at once.
//!
//! kube-client's built-in policy instead retries every 429/503/504 with
//! exponential backoff up to 15 times (minutes in total): a PodDisruptionBudget
//! refusing an eviction (429 without `Retry-After`) would then stall the
//! caller for minutes instead of returning the refusal, as client-go does.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use tower::retry::Policy;

/// client-go's `DefaultMaxRetries`... for `Retry-After` responses (`maxRetries`).
pub const MAX_RETRIES: u32 = 10;

/// The wait a response asks for, when client-go would retry it.
pub fn retry_after(status: StatusCode, retry_after_header: Option<&str>) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    let seconds: u64 = retry_after_header?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// A tower retry policy with client-go's rule; one instance per request.
#[derive(Clone, Debug)]
pub struct RetryAfterPolicy {
    remaining: u32,
}

impl Default for RetryAfterPolicy {
    fn default() -> Self {
        Self {
            remaining: MAX_RETRIES,
        }
    }
}

impl<Res, E> Policy<Request<Body>, Response<Res>, E> for RetryAfterPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<Body>,
        result: &mut Result<Response<Res>, E>,
    ) -> Option<Self::Future> {
        let response = result.as_ref().ok()?;
        if self.remaining == 0 {
            return None;
        }
        let header = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let wait = retry_after(response.status(), header)?;
        self.remaining -= 1;
        tracing::debug!(status = %response.status(), ?wait, "retrying as the server asked (Retry-After)");
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Streaming bodies cannot be replayed; those requests are not retried.
        let body = req.body().try_clone()?;
        let mut clone = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_requested_waits_are_retried() {
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        // A PDB refusing an eviction: 429 without Retry-After -> no retry.
        assert_eq!(retry_after(s(429), None), None);
        assert_eq!(retry_after(s(429), Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(s(503), Some("1")), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(s(500), Some("0")), Some(Duration::ZERO));
        assert_eq!(retry_after(s(409), Some("1")), None);
        assert_eq!(retry_after(s(200), Some("1")), None);
        // An HTTP-date is not what the apiserver sends; client-go ignores it.
        assert_eq!(
            retry_after(s(429), Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }

    #[tokio::test]
    async fn gives_up_after_ten_retries() {
        let mut policy = RetryAfterPolicy::default();
        let mut req = Request::new(Body::empty());
        let mut retries = 0;
        loop {
            let mut result: Result<Response<()>, ()> = Ok(Response::builder()
                .status(429)
                .header("Retry-After", "0")
                .body(())
                .unwrap());
            if policy.retry(&mut req, &mut result).is_none() {
                break;
            }
            retries += 1;
        }
        assert_eq!(retries, MAX_RETRIES);
    }
}
