//! The write half of a Job sync against fake writers (upstream
//! `job_controller_test.go` with `FakePodControl`).
