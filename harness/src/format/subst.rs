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
}
