//! Field selectors (upstream `k8s.io/apimachinery/pkg/fields`) and the field
//! sets the apiserver lets clients select on.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::SelectorError;

/// Field name → value (upstream `fields.Set`); a missing field reads as "".
pub type FieldSet = BTreeMap<String, String>;

/// `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

impl FieldTerm {
    fn matches(&self, fields: &FieldSet) -> bool {
        let actual = fields.get(&self.field).map_or("", String::as_str);
        (actual == self.value) != self.negated
    }
}

/// ANDed field terms; no terms selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Upstream `OneTermEqualSelector`.
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one_term(field.into(), value.into(), false)
    }

    /// Upstream `OneTermNotEqualSelector`.
    pub fn one_term_not_equal(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one_term(field.into(), value.into(), true)
    }

    fn one_term(field: String, value: String, negated: bool) -> Self {
        FieldSelector {
            terms: vec![FieldTerm {
                field,
                value,
                negated,
            }],
        }
    }

    /// Upstream `AndSelectors`.
    pub fn and(selectors: impl IntoIterator<Item = FieldSelector>) -> Self {
        FieldSelector {
            terms: selectors.into_iter().flat_map(|s| s.terms).collect(),
        }
    }

    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, fields: &FieldSet) -> bool {
        self.terms.iter().all(|t| t.matches(fields))
    }

    /// Upstream `RequiresExactMatch`: the value an `=` term demands.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

/// Splits on commas not escaped by a backslash (the backslash stays).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first `!=`, `==` or `=` splits field from value (fields can't escape).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    (0..term.len())
        .filter(|i| term.is_char_boundary(*i))
        .find_map(|i| {
            ["!=", "==", "="]
                .into_iter()
                .find(|op| term[i..].starts_with(op))
                .map(|op| (&term[..i], op, &term[i + op.len()..]))
        })
}

/// Upstream `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes
/// and `,` / `=` must be escaped.
pub fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(SelectorError::InvalidFieldSelector(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::InvalidFieldSelector(format!(
                    "invalid field selector: unescaped character in value: {c}"
                )));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::InvalidFieldSelector(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// Upstream `fields.EscapeValue`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    /// Upstream `fields.ParseSelector`: terms sorted as strings.
    fn from_str(selector: &str) -> Result<Self, Self::Err> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, op, raw_value) = split_term(part).ok_or_else(|| {
                SelectorError::InvalidFieldSelector(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                ))
            })?;
            terms.push(FieldTerm {
                field: field.to_string(),
                value: unescape_value(raw_value)?,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{}{}", t.field, op, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Upstream `generic.ObjectMetaFieldsSet`: `metadata.name`, plus
/// `metadata.namespace` for namespaced resources.
pub fn object_meta_fields(meta: &ObjectMeta, namespaced: bool) -> FieldSet {
    let mut set = FieldSet::new();
    add_object_meta_fields(&mut set, meta, namespaced);
    set
}

fn add_object_meta_fields(set: &mut FieldSet, meta: &ObjectMeta, namespaced: bool) {
    set.insert(
        "metadata.name".to_string(),
        meta.name.clone().unwrap_or_default(),
    );
    if namespaced {
        set.insert(
            "metadata.namespace".to_string(),
            meta.namespace.clone().unwrap_or_default(),
        );
    }
}

/// The fields the apiserver lets clients select Pods on (upstream
/// `pod.ToSelectableFields`).
pub fn pod_fields(pod: &Pod) -> FieldSet {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let spec_str = |get: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<&String>| {
        spec.and_then(get).cloned().unwrap_or_default()
    };
    let status_str = |get: fn(&k8s_openapi::api::core::v1::PodStatus) -> Option<&String>| {
        status.and_then(get).cloned().unwrap_or_default()
    };
    let mut set = FieldSet::new();
    set.insert("spec.nodeName".into(), spec_str(|s| s.node_name.as_ref()));
    set.insert(
        "spec.restartPolicy".into(),
        spec_str(|s| s.restart_policy.as_ref()),
    );
    set.insert(
        "spec.schedulerName".into(),
        spec_str(|s| s.scheduler_name.as_ref()),
    );
    set.insert(
        "spec.serviceAccountName".into(),
        spec_str(|s| s.service_account_name.as_ref()),
    );
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    set.insert("spec.hostNetwork".into(), host_network.to_string());
    set.insert("status.phase".into(), status_str(|s| s.phase.as_ref()));
    // Upstream exposes only the first of status.podIPs.
    let pod_ip = status
        .and_then(|s| s.pod_ips.as_ref())
        .and_then(|ips| ips.first())
        .map(|ip| ip.ip.clone())
        .unwrap_or_default();
    set.insert("status.podIP".into(), pod_ip);
    set.insert(
        "status.nominatedNodeName".into(),
        status_str(|s| s.nominated_node_name.as_ref()),
    );
    add_object_meta_fields(&mut set, &pod.metadata, true);
    set
}
