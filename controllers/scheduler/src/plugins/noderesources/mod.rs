//! NodeResourcesFit and NodeResourcesBalancedAllocation with their shared resource scoring
//! (upstream `framework/plugins/noderesources`).

pub mod balanced_allocation;
pub mod fit;
pub mod resource_allocation;

pub use balanced_allocation::BalancedAllocation;
pub use fit::NodeResourcesFit;
