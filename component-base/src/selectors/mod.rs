//! Label selectors, field selectors and node-selector matching as upstream
//! defines them:
//!
//! - [`Selector`] / [`Requirement`]: `k8s.io/apimachinery/pkg/labels`
//!   (string parser, matching, canonical string) and
//!   `metav1.LabelSelectorAsSelector`.
//! - [`FieldSelector`]: `k8s.io/apimachinery/pkg/fields`, plus the field sets
//!   the apiserver exposes for Pods and generic objects.
//! - `nodeaffinity`: `k8s.io/component-helpers/scheduling/corev1/nodeaffinity`.

mod fields;
mod labels;
pub mod nodeaffinity;
mod parser;
pub mod validation;

pub use fields::{FieldSelector, FieldSet, FieldTerm, object_meta_fields, pod_fields};

/// Field selector value escaping (upstream `fields.EscapeValue` / `UnescapeValue`).
pub mod fields_escape {
    pub use super::fields::{escape_value, unescape_value};
}
pub use labels::{Operator, Requirement, Selector};

/// Errors from building or parsing selectors; messages follow upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Malformed label selector string (upstream `labels.Parse`).
    #[error("{0}")]
    Parse(String),
    /// A requirement with an invalid key, values or operator
    /// (upstream `labels.NewRequirement`, aggregated field errors).
    #[error("{0}")]
    InvalidRequirement(String),
    /// `metav1.LabelSelector` with an unknown operator.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// Malformed field selector string (upstream `fields.ParseSelector`).
    #[error("{0}")]
    InvalidFieldSelector(String),
}
