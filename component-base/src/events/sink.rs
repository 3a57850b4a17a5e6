//! Writing one event to the apiserver the way client-go's `recordEvent`
//! does: a new event is created; a series is a strategic-merge patch of its
//! `series` field, falling back to a create if the event is gone.

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tracing::{debug, error};

pub(super) enum Outcome {
    /// Written; the server's copy.
    Recorded(Box<Event>),
    /// Pointless to retry (rejected or malformed); already logged.
    GiveUp,
    /// The apiserver could not be reached (or a create raced); try later.
    Retry,
}

pub(super) async fn record_event(client: &kube::Client, event: &Event) -> Outcome {
    let Some(ns) = event
        .metadata
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
    else {
        error!(event = ?event.metadata.name, "can't create an event with empty namespace");
        return Outcome::GiveUp;
    };
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let name = event.metadata.name.clone().unwrap_or_default();
    let is_series = event.series.is_some();
    if let Some(series) = &event.series {
        let patch = serde_json::json!({ "series": series });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(ev) => return Outcome::Recorded(Box::new(ev)),
            // The event may have been deleted (or expired): create it anew.
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return classify(e, is_series, &name),
        }
    }
    let mut fresh = event.clone();
    fresh.metadata.resource_version = None;
    match api.create(&PostParams::default(), &fresh).await {
        Ok(ev) => Outcome::Recorded(Box::new(ev)),
        Err(e) => classify(e, is_series, &name),
    }
}

fn classify(err: kube::Error, is_series: bool, name: &str) -> Outcome {
    match err {
        kube::Error::Api(status) => {
            if status.is_already_exists() {
                // A series create racing the first create of the same event:
                // the patch will find it next time.
                if is_series {
                    return Outcome::Retry;
                }
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
