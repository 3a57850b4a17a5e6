//! `/containerLogs/{namespace}/{pod}/{container}`.

pub mod cri_log;
pub mod options;
pub mod reader;
pub mod status;

pub use options::{LogOptions, QueryError, parse_log_options};
