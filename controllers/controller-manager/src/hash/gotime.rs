//! How Go holds a decoded `metav1.Time`: `time.Unix(s, ns).Local()`, i.e.
//! `time.Time{wall, ext, loc}` with `loc` pointing at the process's Local
//! zone. spew prints that zone's internals, so the hash of a template whose
//! metadata carries a timestamp depends on the stock controller-manager's
//! environment. This reproduces the one kubeadm runs it in (a distroless
//! image: no TZ, no /etc/localtime), where Go's Local falls back to a
//! Location named "UTC" with no zone data. Templates almost never carry a
//! timestamp (`creationTimestamp: null` is the zero Time, which has no zone
//! and is exact everywhere).

use serde_json::{Value, json};

use super::HashError;

/// Seconds from Go's internal epoch (year 1) to the Unix epoch.
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

pub(crate) fn go_time(rfc3339: &str) -> Result<Value, HashError> {
    let ts: jiff::Timestamp = rfc3339
        .parse()
        .map_err(|_| HashError::Time(rfc3339.to_string()))?;
    tracing::debug!(
        time = rfc3339,
        "hashing a template that carries a timestamp: assuming the stock controller-manager's Local zone is Go's UTC fallback"
    );
    Ok(json!({
        "wall": ts.subsec_nanosecond(),
        "ext": ts.as_second() + UNIX_TO_INTERNAL,
        "loc": {
            "name": "UTC",
            "zone": null,
            "tx": null,
            "extend": "",
            "cacheStart": 0,
            "cacheEnd": 0,
            "cacheZone": null,
        },
    }))
}
