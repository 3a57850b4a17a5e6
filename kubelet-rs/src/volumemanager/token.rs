//! Service-account token cache and refresh (upstream `pkg/kubelet/token/token_manager.go`).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::TokenRequest;
use rand::Rng;

use super::source::{ObjectSource, SourceError};

/// Tokens are refreshed after this long whatever their TTL (upstream `maxTTL`).
const MAX_TTL_SECONDS: i64 = 24 * 60 * 60;
/// Upstream `maxJitter`, spreading refreshes.
const MAX_JITTER_SECONDS: i64 = 10;

/// Whether a token issued for `expiration_seconds` and expiring at `expiration` should be
/// replaced at `now`: past 80% of its TTL or 24h after issue, minus `jitter_seconds`.
pub fn requires_refresh(
    now: jiff::Timestamp,
    expiration: jiff::Timestamp,
    expiration_seconds: i64,
    jitter_seconds: i64,
) -> bool {
    let secs = |s: i64| jiff::SignedDuration::from_secs(s);
    let issued = expiration - secs(expiration_seconds);
    if now > issued + secs(MAX_TTL_SECONDS - jitter_seconds) {
        return true;
    }
    now > expiration - secs(expiration_seconds * 20 / 100 + jitter_seconds)
}

/// Caches TokenRequest responses per (namespace, service account, audiences, TTL, pod).
#[derive(Default)]
pub struct TokenManager {
    cache: Mutex<HashMap<String, TokenRequest>>,
}

fn cache_key(namespace: &str, service_account: &str, request: &TokenRequest) -> String {
    let spec = request.spec.clone().unwrap_or_default();
    let pod_uid = spec
        .bound_object_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    format!(
        "{namespace}/{service_account}/{}/{}/{pod_uid}",
        spec.audiences.unwrap_or_default().join(","),
        spec.expiration_seconds.unwrap_or(0)
    )
}

fn needs_new(cached: &TokenRequest, now: jiff::Timestamp) -> bool {
    let Some(status) = &cached.status else {
        return true;
    };
    let Some(expiration) = status.expiration_timestamp.as_ref() else {
        return true;
    };
    let Some(ttl) = cached.spec.as_ref().and_then(|s| s.expiration_seconds) else {
        return false;
    };
    let jitter = rand::rng().random_range(0..MAX_JITTER_SECONDS);
    requires_refresh(now, expiration.0, ttl, jitter)
}

impl TokenManager {
    /// A valid token for `request`, from cache or freshly requested. If a refresh fails the
    /// cached token is used while it has not expired yet, like upstream.
    pub async fn get_token(
        &self,
        source: &dyn ObjectSource,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, SourceError> {
        let key = cache_key(namespace, service_account, request);
        let now = jiff::Timestamp::now();
        let cached = self.lock().get(&key).cloned();
        if let Some(cached) = &cached
            && !needs_new(cached, now)
        {
            return Ok(cached.clone());
        }
        match source
            .request_token(namespace, service_account, request)
            .await
        {
            Ok(fresh) => {
                self.lock().insert(key, fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached.filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.expiration_timestamp.as_ref())
                    .is_some_and(|t| t.0 > now)
            }) {
                Some(still_valid) => {
                    tracing::warn!(namespace, service_account, error = %e, "token refresh failed, using cached token");
                    Ok(still_valid)
                }
                None => Err(e),
            },
        }
    }

    /// Drops the tokens bound to a pod (upstream `DeleteServiceAccountToken`).
    pub fn forget_pod(&self, pod_uid: &str) {
        let suffix = format!("/{pod_uid}");
        self.lock().retain(|k, _| !k.ends_with(&suffix));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenRequest>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_at_80_percent_or_24h() {
        let exp: jiff::Timestamp = "2026-01-01T10:00:00Z".parse().unwrap_or_default();
        let at = |secs_before_exp: i64| exp - jiff::SignedDuration::from_secs(secs_before_exp);
        // 1h token: refresh in the last 12 minutes (20%).
        let cases = [
            (at(3600), 3600, false),
            (at(721), 3600, false),
            (at(719), 3600, true),
            (at(0), 3600, true),
            // 48h token: 24h after issue comes before the 80% mark.
            (at(48 * 3600 - 24 * 3600 + 1), 48 * 3600, false),
            (at(48 * 3600 - 24 * 3600 - 1), 48 * 3600, true),
        ];
        for (now, ttl, want) in cases {
            assert_eq!(requires_refresh(now, exp, ttl, 0), want, "{now} ttl {ttl}");
        }
    }
}
