//! `${NAME}` variables in suites.

use std::collections::BTreeMap;

/// Replaces `${NAME}` for every NAME in `vars`; other `${...}` (shell variables) stay as written.
pub fn substitute_known(s: &str, vars: &BTreeMap<String, String>) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if vars.contains_key(&after[..j]) => {
                out.push_str(&vars[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What stands between each `${` and the next `}` in `s`, in order: the names a text refers to
/// (and whatever else is written that way, like bash's `${X:-default}`).
pub fn placeholders(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        loop {
            let i = rest.find("${")?;
            let after = &rest[i + 2..];
            rest = after;
            if let Some(j) = after.find('}') {
                return Some(&after[..j]);
            }
        }
    })
}

/// Applies `substitute_known` to every string in a JSON value (keys included).
pub fn substitute_value(v: &mut serde_json::Value, vars: &BTreeMap<String, String>) {
    use serde_json::Value;
    match v {
        Value::String(s) => *s = substitute_known(s, vars),
        Value::Array(a) => a.iter_mut().for_each(|x| substitute_value(x, vars)),
        Value::Object(m) => {
            let old = std::mem::take(m);
            for (k, mut x) in old {
                substitute_value(&mut x, vars);
                m.insert(substitute_known(&k, vars), x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_only_known_names() {
        let vars = BTreeMap::from([("K8S".to_string(), "1.33".to_string()), ("X".to_string(), "x".to_string())]);
        assert_eq!(
            substitute_known("v${K8S}-${X}${X} ${HOME} $${ ${", &vars),
            "v1.33-xx ${HOME} $${ ${"
        );
    }

    #[test]
    fn placeholders_are_what_stands_between_dollar_brace_and_brace() {
        let got: Vec<&str> = placeholders("v${K8S}-${X}${X} ${HOME:-h} $${ ${").collect();
        assert_eq!(got, ["K8S", "X", "X", "HOME:-h"]);
        assert_eq!(placeholders("no ${ closing").count(), 0);
    }
}
