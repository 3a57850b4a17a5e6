//! `/containerLogs/{namespace}/{pod}/{container}`.

pub use crate::cri::log_format as cri_log;
pub mod options;
pub mod reader;
pub mod status;

pub use options::{LogOptions, QueryError, parse_log_options};
