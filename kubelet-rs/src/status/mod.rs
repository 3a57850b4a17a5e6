//! Pod status: generation from runtime state (`generateAPIPodStatus`) and the status
//! manager, the only writer of pod status.

pub mod conditions;
pub mod deadline;
pub mod generate;
pub mod phase;
pub mod status_manager;
