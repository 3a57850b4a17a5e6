//! Helpers shared by the integration tests (`mod support;`). Each test binary
//! uses only some of them, hence the dead-code allowance.
#![allow(dead_code)]

pub mod apiserver;
pub mod fake_leases;

// One copy (and so one lookup cache) per test binary: the apiserver helper
// owns it, since other crates include that file alone. Not every test
// binary uses it.
#[allow(unused_imports)]
pub use apiserver::prereq;
