//! `$(VAR)` expansion for command, args and env values, with upstream's exact rules
//! (`third_party/forked/golang/expansion`): `$$` escapes, unknown references stay verbatim.

use std::borrow::Cow;
use std::collections::BTreeMap;

const OPERATOR: u8 = b'$';
const OPENER: u8 = b'(';
const CLOSER: u8 = b')';

/// Looks names up in each context in turn; unknown names expand to `$(name)`.
pub fn mapping_for<'a>(
    contexts: &'a [&'a BTreeMap<String, String>],
) -> impl Fn(&str) -> String + 'a {
    move |name| {
        contexts
            .iter()
            .find_map(|ctx| ctx.get(name).cloned())
            .unwrap_or_else(|| format!("$({name})"))
    }
}

/// Expands every `$(name)` in `input` through `mapping`.
pub fn expand(input: &str, mapping: impl Fn(&str) -> String) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == OPERATOR && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let (read, is_var, advance) = try_read_variable_name(&input[cursor + 1..]);
            if is_var {
                out.push_str(&mapping(&read));
            } else {
                out.push_str(&read);
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// Returns (text, whether it is a variable name, bytes consumed after the operator).
fn try_read_variable_name(input: &str) -> (Cow<'_, str>, bool, usize) {
    let bytes = input.as_bytes();
    match bytes[0] {
        // `$$` is an escaped operator.
        OPERATOR => (Cow::Borrowed("$"), false, 1),
        OPENER => match bytes[1..].iter().position(|b| *b == CLOSER) {
            Some(pos) => (Cow::Borrowed(&input[1..pos + 1]), true, pos + 2),
            // Incomplete reference: emit "$(" and continue after the opener.
            None => (Cow::Borrowed("$("), false, 1),
        },
        _ => {
            // An operator that begins no expression: keep it and the next character.
            let ch = input.chars().next().unwrap_or_default();
            (Cow::Owned(format!("${ch}")), false, ch.len_utf8())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream `TestMapReference` / `TestExpand` table.
    #[test]
    fn expands_like_upstream() {
        let ctx: BTreeMap<String, String> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let contexts = [&ctx];
        let mapping = mapping_for(&contexts);
        let cases = [
            ("$(VAR_A)", "A"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-$(VAR_A)-$(VAR_A)", "A-A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("___$(VAR_B)___", "___B___"),
            ("___$(VAR_C)", "___C"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
            ("f00__(VAR_A)__", "f00__(VAR_A)__"),
            ("$?_boo_$!", "$?_boo_$!"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$VAR_A)", "$VAR_A)"),
            ("${VAR_A}", "${VAR_A}"),
            ("$(VAR_B)_______$(A", "B_______$(A"),
            ("$(VAR_C)_______$(", "C_______$("),
            ("$(VAR_A)foobar$", "Afoobar$"),
            ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
            ("$(foo$$var)", "$(foo$$var)"),
            ("$$(foo$$var)", "$(foo$var)"),
            ("$(VAR_A", "$(VAR_A"),
            ("", ""),
            ("\n", "\n"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &mapping), want, "input {input:?}");
        }
    }
}
