//! Unit tests of the CronJob decisions and sync.
