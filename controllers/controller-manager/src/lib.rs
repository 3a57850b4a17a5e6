//! Library half of `kube-controller-manager-rs`: everything but argument parsing lives here so it can be tested.
