//! Library half of `kube-scheduler-rs`: everything but argument parsing lives here so it can be tested.
