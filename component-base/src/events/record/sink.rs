//! Writing one core/v1 event the way client-go `tools/record`'s
//! `recordEvent` does: a repeat is a strategic-merge patch of the existing
//! event, and a create when that event is gone (404) or for a new one.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::Value;
use tracing::{debug, error};

/// `metav1.NamespaceTerminatingCause`.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

pub(super) enum Outcome {
    /// Written; the server's copy.
    Recorded(Box<Event>),
    /// Written or pointless to retry (rejected or malformed); logged.
    GiveUp,
    /// The apiserver could not be reached; try again after a pause.
    Retry,
}

pub(super) async fn record_event(
    client: &kube::Client,
    event: &Event,
    patch: Option<&Value>,
) -> Outcome {
    let name = event.metadata.name.clone().unwrap_or_default();
    let Some(ns) = event
        .metadata
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
    else {
        error!(event = name, "can't create an event with empty namespace");
        return Outcome::GiveUp;
    };
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let update_existing = event.count.is_some_and(|c| c > 1);
    if let (true, Some(patch)) = (update_existing, patch) {
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(written) => return Outcome::Recorded(Box::new(written)),
            // The event was deleted (or expired): create it again.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return classify(e, &name),
        }
    }
    let mut fresh = event.clone();
    fresh.metadata.resource_version = None;
    match api.create(&PostParams::default(), &fresh).await {
        Ok(written) => Outcome::Recorded(Box::new(written)),
        Err(e) => classify(e, &name),
    }
}

/// client-go: a status from the server means the event itself is at fault
/// (never retried); a request that cannot be built is never retried either;
/// anything else (transport) is retried.
fn classify(err: kube::Error, name: &str) -> Outcome {
    match err {
        kube::Error::Api(status) => {
            let terminating = status.details.as_ref().is_some_and(|d| {
                d.causes
                    .iter()
                    .any(|c| c.reason == NAMESPACE_TERMINATING_CAUSE)
            });
            if status.is_already_exists() || terminating {
                debug!(
                    event = name,
                    "Server rejected event (will not retry!): {status}"
                );
            } else {
                error!(
                    event = name,
                    "Server rejected event (will not retry!): {status}"
                );
            }
            Outcome::GiveUp
        }
        e @ (kube::Error::BuildRequest(_)
        | kube::Error::SerdeError(_)
        | kube::Error::HttpError(_)) => {
            error!(
                event = name,
                "Unable to construct event (will not retry!): {e}"
            );
            Outcome::GiveUp
        }
        e => {
            error!(
                event = name,
                "Unable to write event (may retry after sleeping): {e}"
            );
            Outcome::Retry
        }
    }
}
