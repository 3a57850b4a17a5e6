//! The write side of the controllers behind narrow traits (upstream
//! `controller.PodControlInterface`/`RealPodControl`/`FakePodControl`), so
//! expectations, conflicts and name collisions are unit-tested without an
//! apiserver.

mod object;
mod pod;

#[cfg(test)]
pub mod fake;

pub use object::{KubeObjectControl, ObjectControl};
pub use pod::{KubePodControl, PodControl};
