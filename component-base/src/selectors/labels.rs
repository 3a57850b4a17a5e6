//! Label selector model and matching (upstream `labels.Selector`,
//! `labels.Requirement`, `metav1.LabelSelectorAsSelector`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::SelectorError;
use super::validation::{label_value_errors, qualified_name_errors};

/// Upstream `selection.Operator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// Upstream's spelling (`selection.Operator` string values).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One `key op values` clause; build it with [`Requirement::new`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value:?}: {detail}")
}

impl Requirement {
    /// Validates like upstream `labels.NewRequirement`: the key is a
    /// qualified name, every value a label value, and the value count fits
    /// the operator (In/NotIn ≥ 1, equality exactly 1, Exists/DoesNotExist 0,
    /// Gt/Lt exactly one integer).
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        Self::new_at("", key.into(), operator, values)
    }

    /// `new` with error paths under `path` (upstream `field.WithPath`).
    pub(crate) fn new_at(
        path: &str,
        key: String,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let child = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(&key);
        if !key_errs.is_empty() {
            errs.push(invalid(&child("key"), &key, &key_errs.join("; ")));
        }
        let values_repr = format!("{values:?}");
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(invalid(
                &child("values"),
                &values_repr,
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(invalid(
                    &child("values"),
                    &values_repr,
                    "exact-match compatibility requires one single value",
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(invalid(
                &child("values"),
                &values_repr,
                "values set must be empty for exists and does not exist",
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid(
                        &child("values"),
                        &values_repr,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &child(&format!("values[{i}]")),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(invalid(
                    &child(&format!("values[{i}][{key}]")),
                    v,
                    &value_errs.join("; "),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(SelectorError::InvalidRequirement(aggregate(errs)));
        }
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values in the order given (parsed selectors sort and dedupe them).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Upstream `Requirement.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

/// Upstream `utilerrors.NewAggregate(...).Error()`.
pub(crate) fn aggregate(errs: Vec<String>) -> String {
    if errs.len() == 1 {
        return errs.into_iter().next().unwrap_or_default();
    }
    format!("[{}]", errs.join(", "))
}

impl fmt::Display for Requirement {
    /// Upstream `Requirement.String()`: values sorted, `in`/`notin` in parens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        f.write_str(&values.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Inner {
    Nothing,
    /// ANDed, sorted by key; empty means everything.
    Requirements(Vec<Requirement>),
}

/// A label selector (upstream `labels.Selector`).
///
/// Two special cases mirror upstream: [`Selector::everything`] (no
/// requirements; what an empty `metav1.LabelSelector` becomes) and
/// [`Selector::nothing`] (what a nil `metav1.LabelSelector` becomes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector(Inner);

impl Selector {
    pub fn everything() -> Self {
        Selector(Inner::Requirements(Vec::new()))
    }

    pub fn nothing() -> Self {
        Selector(Inner::Nothing)
    }

    /// Exact match on every pair of the set, unvalidated (upstream
    /// `SelectorFromSet`); an empty set selects everything.
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        Selector(Inner::Requirements(
            set.iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        ))
    }

    /// Like `from_set` but validates keys and values (upstream
    /// `ValidatedSelectorFromSet`).
    pub fn from_validated_set(set: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector(Inner::Requirements(requirements)))
    }

    /// Upstream `metav1.LabelSelectorAsSelector`: `None` selects nothing, a
    /// selector without matchLabels and matchExpressions selects everything.
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Self, SelectorError> {
        let Some(selector) = selector else {
            return Ok(Selector::nothing());
        };
        let match_labels = selector.match_labels.as_ref();
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        if match_labels.is_none_or(BTreeMap::is_empty) && expressions.is_empty() {
            return Ok(Selector::everything());
        }
        let mut requirements = Vec::new();
        for (k, v) in match_labels.into_iter().flatten() {
            requirements.push(Requirement::new(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
            )?);
        }
        for expr in expressions {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::InvalidOperator(other.to_string())),
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(expr.key.clone(), operator, values)?);
        }
        Ok(Selector::everything().add_requirements(requirements))
    }

    /// Adds requirements (ANDed), keeping them sorted by key.
    pub fn add_requirements(self, requirements: impl IntoIterator<Item = Requirement>) -> Self {
        match self.0 {
            Inner::Nothing => self,
            Inner::Requirements(mut existing) => {
                existing.extend(requirements);
                existing.sort_by(|a, b| a.key.cmp(&b.key));
                Selector(Inner::Requirements(existing))
            }
        }
    }

    pub(crate) fn from_sorted_requirements(requirements: Vec<Requirement>) -> Self {
        Selector::everything().add_requirements(requirements)
    }

    /// Upstream `Selector.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.0 {
            Inner::Nothing => false,
            Inner::Requirements(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }

    /// Matches an object's optional `metadata.labels` (absent = no labels).
    pub fn matches_labels(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
        self.matches(labels.unwrap_or(&NO_LABELS))
    }

    /// True when the selector does not restrict anything (upstream `Empty`;
    /// false for [`Selector::nothing`]).
    pub fn is_empty(&self) -> bool {
        matches!(&self.0, Inner::Requirements(reqs) if reqs.is_empty())
    }

    /// Upstream `labels.MatchesNothing`.
    pub fn matches_nothing(&self) -> bool {
        self.0 == Inner::Nothing
    }

    /// The ANDed requirements, or `None` for [`Selector::nothing`]
    /// (upstream `Requirements()` returning selectable=false).
    pub fn requirements(&self) -> Option<&[Requirement]> {
        match &self.0 {
            Inner::Nothing => None,
            Inner::Requirements(reqs) => Some(reqs),
        }
    }

    /// Upstream `RequiresExactMatch`: the single value the selector requires
    /// for `label`, if any.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let req = self.requirements()?.iter().find(|r| r.key == label)?;
        match (req.operator, req.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    /// Upstream `String()`: requirements sorted by key, comma-joined; both
    /// everything and nothing print as "".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inner::Requirements(reqs) = &self.0 else {
            return Ok(());
        };
        for (i, r) in reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    /// Upstream `labels.Parse`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        super::parser::parse(s)
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        Selector::from_label_selector(Some(selector))
    }
}
