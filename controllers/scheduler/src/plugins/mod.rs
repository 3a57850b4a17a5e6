//! In-tree plugins, one module each, named as upstream's `framework/plugins/<name>` folders;
//! `registry` lists them. Plugins depend on `framework`, never the other way round.

pub mod defaultbinder;
pub mod defaultpreemption;
pub mod helper;
pub mod imagelocality;
pub mod names;
pub mod nodeaffinity;
pub mod nodename;
pub mod nodeports;
pub mod noderesources;
pub mod nodeunschedulable;
pub mod queuesort;
pub mod registry;
pub mod schedulinggates;
pub mod tainttoleration;
