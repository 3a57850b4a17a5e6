//! The scheduling framework: extension points, statuses, per-cycle state and node aggregates.

pub mod affinity_term;
pub mod cycle_state;
pub mod diagnosis;
pub mod events;
pub mod interface;
pub mod node_info;
pub mod parallelize;
pub mod registry;
pub mod resource;
pub mod runtime;
pub mod status;

pub use cycle_state::CycleState;
pub use diagnosis::{Diagnosis, FitError};
pub use events::{ClusterEvent, ClusterEventWithHint, EventObject, EventResource, QueueingHint};
pub use interface::*;
pub use node_info::{NodeInfo, PodInfo};
pub use registry::{Handle, PluginFactory, Registry};
pub use resource::Resource;
pub use runtime::Framework;
pub use status::{Code, Status};
