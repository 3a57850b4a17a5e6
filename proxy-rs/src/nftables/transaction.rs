//! A single `nft -f` transaction on table `<family> kube-proxy`, built as a
//! text script (what knftables generates upstream): `nft` applies the whole
//! file atomically or not at all.

use std::fmt::Write as _;

use super::names::TABLE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    family: &'static str,
    ops: Vec<String>,
}

/// One element of a set (`value == None`) or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub container: String,
    pub key: String,
    pub value: Option<String>,
    pub comment: Option<String>,
}

fn quote(comment: &str) -> String {
    // nft has no escape for `"`; none of our comments contain one, but user
    // data (service names) must never break the script.
    format!("\"{}\"", comment.replace('"', "'"))
}

impl Transaction {
    pub fn new(family: &'static str) -> Self {
        Self {
            family,
            ops: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[String] {
        &self.ops
    }

    fn push(&mut self, verb: &str, object: &str, rest: &str) {
        self.ops
            .push(format!("{verb} {object} {} {TABLE}{rest}", self.family));
    }

    pub fn add_table(&mut self, comment: &str) {
        let rest = format!(" {{ comment {} ; }}", quote(comment));
        self.push("add", "table", &rest);
    }

    pub fn delete_table(&mut self) {
        self.push("delete", "table", "");
    }

    pub fn add_chain(&mut self, name: &str) {
        self.push("add", "chain", &format!(" {name}"));
    }

    pub fn add_chain_with_comment(&mut self, name: &str, comment: &str) {
        self.push(
            "add",
            "chain",
            &format!(" {name} {{ comment {} ; }}", quote(comment)),
        );
    }

    pub fn add_base_chain(&mut self, name: &str, kind: &str, hook: &str, priority: &str) {
        self.push(
            "add",
            "chain",
            &format!(" {name} {{ type {kind} hook {hook} priority {priority} ; }}"),
        );
    }

    pub fn flush_chain(&mut self, name: &str) {
        self.push("flush", "chain", &format!(" {name}"));
    }

    pub fn delete_chain(&mut self, name: &str) {
        self.push("delete", "chain", &format!(" {name}"));
    }

    pub fn add_rule(&mut self, chain: &str, rule: &str) {
        self.push("add", "rule", &format!(" {chain} {rule}"));
    }

    pub fn add_rule_with_comment(&mut self, chain: &str, rule: &str, comment: &str) {
        self.push(
            "add",
            "rule",
            &format!(" {chain} {rule} comment {}", quote(comment)),
        );
    }

    /// `add set` / `add map`; `spec` holds `type ...` plus flags/timeout.
    pub fn add_container(&mut self, object: &str, name: &str, spec: &str, comment: Option<&str>) {
        let mut body = format!(" {name} {{ {spec} ;");
        if let Some(c) = comment {
            let _ = write!(body, " comment {} ;", quote(c));
        }
        body.push_str(" }");
        self.push("add", object, &body);
    }

    pub fn flush_container(&mut self, object: &str, name: &str) {
        self.push("flush", object, &format!(" {name}"));
    }

    pub fn delete_container(&mut self, object: &str, name: &str) {
        self.push("delete", object, &format!(" {name}"));
    }

    pub fn add_element(&mut self, e: &Element) {
        let mut body = format!(" {} {{ {}", e.container, e.key);
        if let Some(c) = &e.comment {
            let _ = write!(body, " comment {}", quote(c));
        }
        if let Some(v) = &e.value {
            let _ = write!(body, " : {v}");
        }
        body.push_str(" }");
        self.push("add", "element", &body);
    }

    pub fn delete_element(&mut self, container: &str, key: &str) {
        self.push("delete", "element", &format!(" {container} {{ {key} }}"));
    }

    /// The script `nft -f -` reads.
    pub fn to_script(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(op);
            out.push('\n');
        }
        out
    }
}
