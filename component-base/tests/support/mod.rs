//! Helpers shared by the integration tests (`mod support;`). Each test binary
//! uses only some of them, hence the dead-code allowance.
#![allow(dead_code)]

pub mod apiserver;
pub mod fake_leases;
