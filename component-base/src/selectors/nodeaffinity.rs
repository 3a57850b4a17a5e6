//! Node selector matching as upstream
//! `k8s.io/component-helpers/scheduling/corev1/nodeaffinity` does it, used by
//! the scheduler's NodeAffinity plugin and the DaemonSet controller.
//!
//! Terms are ORed, requirements inside a term ANDed; a term with neither
//! matchExpressions nor matchFields matches nothing; matchFields only sees
//! `metadata.name` (and is ignored for a node without a name).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector as V1NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PreferredSchedulingTerm,
};

use super::labels::aggregate;
use super::{FieldSelector, FieldSet, Operator, Requirement, Selector, SelectorError};

const VALID_SELECTOR_OPERATORS: &str = r#""In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt""#;
const VALID_FIELD_SELECTOR_OPERATORS: &str = r#""In", "NotIn""#;

fn not_supported(path: &str, value: &str, valid: &str) -> String {
    format!("{path}: Unsupported value: {value:?}: supported values: {valid}")
}

/// Upstream `nodeSelectorRequirementsAsSelector` (matchExpressions → label
/// selector); an empty list selects nothing.
pub fn node_selector_requirements_as_selector(
    requirements: &[NodeSelectorRequirement],
    path: &str,
) -> Result<Selector, Vec<String>> {
    if requirements.is_empty() {
        return Ok(Selector::nothing());
    }
    let mut errs = Vec::new();
    let mut parsed = Vec::new();
    for (i, expr) in requirements.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let op = match expr.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::GreaterThan,
            "Lt" => Operator::LessThan,
            other => {
                errs.push(not_supported(
                    &format!("{p}.operator"),
                    other,
                    VALID_SELECTOR_OPERATORS,
                ));
                continue;
            }
        };
        let values = expr.values.clone().unwrap_or_default();
        match Requirement::new_at(&p, expr.key.clone(), op, values) {
            Ok(r) => parsed.push(r),
            Err(e) => errs.push(e.to_string()),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Selector::everything().add_requirements(parsed))
}

/// Upstream `nodeSelectorRequirementsAsFieldSelector` (matchFields): only
/// In/NotIn with exactly one value.
pub fn node_selector_requirements_as_field_selector(
    requirements: &[NodeSelectorRequirement],
    path: &str,
) -> Result<FieldSelector, Vec<String>> {
    let mut errs = Vec::new();
    let mut selectors = Vec::new();
    for (i, expr) in requirements.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let values = expr.values.as_deref().unwrap_or_default();
        let negated = match expr.operator.as_str() {
            "In" => false,
            "NotIn" => true,
            other => {
                errs.push(not_supported(
                    &format!("{p}.operator"),
                    other,
                    VALID_FIELD_SELECTOR_OPERATORS,
                ));
                continue;
            }
        };
        match values {
            [value] if negated => {
                selectors.push(FieldSelector::one_term_not_equal(&expr.key, value))
            }
            [value] => selectors.push(FieldSelector::one_term_equal(&expr.key, value)),
            _ => errs.push(format!(
                "{p}.values: Invalid value: {values:?}: must have one element"
            )),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(FieldSelector::and(selectors))
}

fn is_empty_term(term: &NodeSelectorTerm) -> bool {
    term.match_expressions.as_ref().is_none_or(Vec::is_empty)
        && term.match_fields.as_ref().is_none_or(Vec::is_empty)
}

/// One parsed term; parse errors are kept so they surface at match time.
#[derive(Clone, Debug)]
struct ParsedTerm {
    match_labels: Option<Selector>,
    match_fields: Option<FieldSelector>,
    parse_errors: Vec<String>,
}

impl ParsedTerm {
    fn new(term: &NodeSelectorTerm, path: &str) -> Self {
        let mut parsed = ParsedTerm {
            match_labels: None,
            match_fields: None,
            parse_errors: Vec::new(),
        };
        let expressions = term.match_expressions.as_deref().unwrap_or_default();
        if !expressions.is_empty() {
            match node_selector_requirements_as_selector(
                expressions,
                &format!("{path}.matchExpressions"),
            ) {
                Ok(s) => parsed.match_labels = Some(s),
                Err(errs) => parsed.parse_errors.extend(errs),
            }
        }
        let fields = term.match_fields.as_deref().unwrap_or_default();
        if !fields.is_empty() {
            match node_selector_requirements_as_field_selector(
                fields,
                &format!("{path}.matchFields"),
            ) {
                Ok(s) => parsed.match_fields = Some(s),
                Err(errs) => parsed.parse_errors.extend(errs),
            }
        }
        parsed
    }

    fn matches(
        &self,
        labels: &BTreeMap<String, String>,
        fields: &FieldSet,
    ) -> Result<bool, &[String]> {
        if !self.parse_errors.is_empty() {
            return Err(&self.parse_errors);
        }
        if let Some(selector) = &self.match_labels
            && !selector.matches(labels)
        {
            return Ok(false);
        }
        if let Some(selector) = &self.match_fields
            && !fields.is_empty()
            && !selector.matches(fields)
        {
            return Ok(false);
        }
        Ok(true)
    }
}

fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// Upstream `extractNodeFields`: only a non-empty `metadata.name`.
fn node_fields(node: &Node) -> FieldSet {
    let mut fields = FieldSet::new();
    if let Some(name) = node.metadata.name.as_ref().filter(|n| !n.is_empty()) {
        fields.insert("metadata.name".to_string(), name.clone());
    }
    fields
}

fn parse_terms(selector: &V1NodeSelector) -> Vec<ParsedTerm> {
    selector
        .node_selector_terms
        .iter()
        .enumerate()
        .filter(|(_, term)| !is_empty_term(term))
        .map(|(i, term)| ParsedTerm::new(term, &format!("nodeSelectorTerms[{i}]")))
        .collect()
}

/// A node selector whose invalid terms only fail when reached while
/// matching (upstream `LazyErrorNodeSelector`, what the scheduler uses for
/// required node affinity).
#[derive(Clone, Debug)]
pub struct LazyErrorNodeSelector {
    terms: Vec<ParsedTerm>,
}

impl LazyErrorNodeSelector {
    pub fn new(selector: &V1NodeSelector) -> Self {
        LazyErrorNodeSelector {
            terms: parse_terms(selector),
        }
    }

    /// True if any term matches; errors of invalid terms are returned only
    /// when no term matched.
    pub fn matches(&self, node: &Node) -> Result<bool, SelectorError> {
        let (labels, fields) = (node_labels(node), node_fields(node));
        let mut errs = Vec::new();
        for term in &self.terms {
            match term.matches(labels, &fields) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(term_errs) => errs.extend_from_slice(term_errs),
            }
        }
        if errs.is_empty() {
            Ok(false)
        } else {
            Err(SelectorError::InvalidRequirement(aggregate(errs)))
        }
    }
}

/// A fully validated node selector (upstream `NodeSelector`).
#[derive(Clone, Debug)]
pub struct NodeSelector {
    lazy: LazyErrorNodeSelector,
}

impl NodeSelector {
    /// Fails if any non-empty term is invalid.
    pub fn new(selector: &V1NodeSelector) -> Result<Self, SelectorError> {
        let lazy = LazyErrorNodeSelector::new(selector);
        let errs: Vec<String> = lazy
            .terms
            .iter()
            .flat_map(|t| t.parse_errors.iter().cloned())
            .collect();
        if !errs.is_empty() {
            return Err(SelectorError::InvalidRequirement(aggregate(errs)));
        }
        Ok(NodeSelector { lazy })
    }

    pub fn matches(&self, node: &Node) -> bool {
        self.lazy.matches(node).unwrap_or(false)
    }
}

/// Upstream `corev1.MatchNodeSelectorTerms`.
pub fn match_node_selector_terms(
    node: &Node,
    selector: &V1NodeSelector,
) -> Result<bool, SelectorError> {
    LazyErrorNodeSelector::new(selector).matches(node)
}

/// Weighted preferred terms (upstream `PreferredSchedulingTerms`).
#[derive(Clone, Debug)]
pub struct PreferredSchedulingTerms {
    terms: Vec<(ParsedTerm, i32)>,
}

impl PreferredSchedulingTerms {
    /// Skips zero-weight and empty terms; fails on any invalid term.
    pub fn new(terms: &[PreferredSchedulingTerm]) -> Result<Self, SelectorError> {
        let mut parsed = Vec::new();
        let mut errs = Vec::new();
        for (i, term) in terms.iter().enumerate() {
            if term.weight == 0 || is_empty_term(&term.preference) {
                continue;
            }
            let p = ParsedTerm::new(&term.preference, &format!("[{i}].preference"));
            errs.extend(p.parse_errors.iter().cloned());
            parsed.push((p, term.weight));
        }
        if !errs.is_empty() {
            return Err(SelectorError::InvalidRequirement(aggregate(errs)));
        }
        Ok(PreferredSchedulingTerms { terms: parsed })
    }

    /// Sum of the weights of the matching terms.
    pub fn score(&self, node: &Node) -> i64 {
        let (labels, fields) = (node_labels(node), node_fields(node));
        self.terms
            .iter()
            .filter(|(term, _)| term.matches(labels, &fields) == Ok(true))
            .map(|(_, weight)| i64::from(*weight))
            .sum()
    }
}

/// A pod's hard node constraints: `spec.nodeSelector` AND required node
/// affinity (upstream `RequiredNodeAffinity`).
#[derive(Clone, Debug)]
pub struct RequiredNodeAffinity {
    label_selector: Option<Selector>,
    node_selector: Option<LazyErrorNodeSelector>,
}

impl RequiredNodeAffinity {
    /// Upstream `GetRequiredNodeAffinity`.
    pub fn from_pod(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let label_selector = spec
            .and_then(|s| s.node_selector.as_ref())
            .filter(|ns| !ns.is_empty())
            .map(Selector::from_set);
        let node_selector = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(LazyErrorNodeSelector::new);
        RequiredNodeAffinity {
            label_selector,
            node_selector,
        }
    }

    pub fn matches(&self, node: &Node) -> Result<bool, SelectorError> {
        if let Some(selector) = &self.label_selector
            && !selector.matches(node_labels(node))
        {
            return Ok(false);
        }
        match &self.node_selector {
            Some(ns) => ns.matches(node),
            None => Ok(true),
        }
    }
}
