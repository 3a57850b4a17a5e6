//! In-tree plugins, one module each, named as upstream's `framework/plugins/<name>` folders;
//! `registry` lists them. Plugins depend on `framework`, never the other way round.
//!
//! Adding a plugin (e.g. upstream `podtopologyspread`): copy the closest module (`nodeports.rs`
//! for a filter, `imagelocality.rs` for a score, `noderesources/` for several files sharing
//! helpers) to `plugins/<upstreamfolder>.rs`; implement `framework::Plugin` plus one trait per
//! extension point; put its failure reasons in `pub const`s and its `events_to_register` /
//! `queueing_hint` beside its filter; add the `mod` line here and one `r.register(..)` line in
//! `registry::in_tree` (removing the name from `NOT_YET_IMPLEMENTED`, whose `unimplemented`
//! stand-in rejects the pods that need it meanwhile). Listers come from `Handle::informer`,
//! which the scheduler waits on before scheduling. A plugin whose PreFilter state spans nodes
//! (`podtopologyspread`, `interpodaffinity`) must apply `helper::node_delta` in Filter, since
//! preemption and nominated pods filter modified NodeInfo copies.

pub mod defaultbinder;
pub mod defaultpreemption;
pub mod helper;
pub mod imagelocality;
pub mod interpodaffinity;
pub mod names;
pub mod nodeaffinity;
pub mod nodename;
pub mod nodeports;
pub mod noderesources;
pub mod nodeunschedulable;
pub mod podtopologyspread;
pub mod queuesort;
pub mod registry;
pub mod schedulinggates;
pub mod tainttoleration;
pub mod unimplemented;
