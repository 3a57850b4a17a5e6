//! Library half of `kube-proxy-rs`: everything but argument parsing lives here so it can be tested.
