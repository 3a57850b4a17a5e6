//! Helpers for end-to-end tests against a running cluster.
