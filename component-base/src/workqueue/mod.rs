//! A typed, rate-limited work queue with the semantics of client-go's
//! `k8s.io/client-go/util/workqueue`:
//!
//! - an item is queued at most once (dedup through the "dirty" set);
//! - an item handed to a worker by [`RateLimitingQueue::get`] is not handed to
//!   another worker until [`RateLimitingQueue::done`]; adding it meanwhile marks
//!   it dirty and it is re-queued by `done`;
//! - [`RateLimitingQueue::add_after`] delays an add (the earliest pending delay
//!   wins), [`RateLimitingQueue::add_rate_limited`] delays it by the rate
//!   limiter's backoff, [`RateLimitingQueue::forget`] resets that backoff;
//! - after [`RateLimitingQueue::shut_down`] adds are ignored and `get` returns
//!   what is still queued, then `None`.

mod metrics;
mod queue;
mod rate_limiter;

pub use queue::RateLimitingQueue;
pub use rate_limiter::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimiter,
    default_controller_rate_limiter,
};
