//! Helpers shared by several plugins (upstream `framework/plugins/helper`).

pub mod node_delta;
pub mod normalize_score;
pub mod taint;

pub use normalize_score::default_normalize_score;
