//! Test fixtures shared by every crate's tests and by the e2e crate. Taken
//! only as a dev-dependency (the e2e crate is itself test code): the HTTPS
//! probe here accepts any server certificate, so it must never be linked
//! into a production binary.

pub mod apiserver;
pub mod containerd;
pub mod fake_leases;
pub mod prereq;
pub mod serving;
pub mod wait;
