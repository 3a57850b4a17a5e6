//! The kubelet's only door to the container runtime (CRI v1 over a unix socket).

/// Generated CRI v1 messages, client and server stubs.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

mod client;
mod error;
mod exec;
/// The CRI container log file format, read by `/containerLogs` and for termination messages.
pub mod log_format;

pub use client::{
    DEFAULT_RUNTIME_REQUEST_TIMEOUT, ImageService, MAX_MESSAGE_SIZE, RuntimeService, connect,
};
pub use error::CriError;
