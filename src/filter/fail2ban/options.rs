//! From merged files to the filter's final option values: the filter
//! options of a spec (`postfix[mode=auth]`) override `[Init]`, and `<name>`
//! tags are substituted recursively from those and from `[Definition]`,
//! as fail2ban's filter reader does before it hands regexes to the server.

use std::collections::HashMap;

use super::config::{ConfigSet, Options};
use super::error::Fail2banError;

/// The keys a filter reader takes from `[Definition]`.
pub const FILTER_KEYS: [&str; 7] = [
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// fail2ban gives up after replacing one tag this many times in one value.
const MAX_TAG_REPLACE_COUNT: usize = 25;

/// Splits `name[k=v, k2="v, 2"]` into the name and its options.
pub fn parse_spec(spec: &str) -> Result<(String, Options), Fail2banError> {
    let bad = |message: &str| Fail2banError::Spec {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let spec_t = spec.trim();
    let Some(open) = spec_t.find('[') else {
        return Ok((spec_t.to_string(), Vec::new()));
    };
    let name = spec_t[..open].trim().to_string();
    let mut rest = spec_t[open + 1..]
        .strip_suffix(']')
        .ok_or_else(|| bad("missing closing ']'"))?;
    let mut options = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        // `][` separates option groups.
        if let Some(r) = rest.strip_prefix("][") {
            rest = r;
            continue;
        }
        let eq = rest.find('=').ok_or_else(|| bad("expected key=value"))?;
        let key = rest[..eq].trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad("bad option name"));
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let body = &rest[1..];
            let end = body.find(q).ok_or_else(|| bad("unterminated quote"))?;
            value = body[..end].to_string();
            rest = &body[end + 1..];
        } else {
            let end = rest.find([',', ']']).unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        options.push((key.to_string(), value));
    }
    Ok((name, options))
}

/// The filter's options after `[Init]`, spec options and tag substitution.
pub fn combined(
    config: &ConfigSet,
    spec_options: &Options,
    filter: &str,
) -> Result<HashMap<String, String>, Fail2banError> {
    let vars: Options = spec_options
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    let mut opts: HashMap<String, String> = HashMap::new();
    for key in FILTER_KEYS {
        if spec_options.iter().any(|(k, _)| k == key) {
            continue;
        }
        if let Some(v) = config.get("Definition", key, &vars)? {
            opts.insert(key.to_string(), v);
        }
    }
    let mut init: Vec<(String, String)> = spec_options.clone();
    if config.has_section("Init") {
        for key in config.own_options("Init") {
            let Some(v) = config.get("Init", &key, &Vec::new())? else {
                continue;
            };
            if !key.starts_with("known/") {
                init.push((format!("known/{key}"), v.clone()));
            }
            if !init.iter().any(|(k, _)| *k == key) {
                init.push((key, v));
            }
        }
    }
    for (k, v) in init {
        opts.insert(k, v);
    }
    let ignore: Vec<String> = opts
        .keys()
        .filter_map(|k| k.split_once('?').map(|(b, _)| b.to_string()))
        .collect();
    substitute(opts, &ignore, filter, |tag| {
        config.get_ex("Definition", tag, &vars).ok().flatten()
    })
}

/// `<tag>` names as fail2ban recognises them: no spaces, no angle brackets.
fn next_tag(value: &str, from: usize) -> Option<(usize, usize)> {
    let mut start = from;
    while let Some(open) = value.get(start..)?.find('<') {
        let open = start + open;
        let body = &value[open + 1..];
        let len = body.find([' ', '<', '>']).unwrap_or(body.len());
        if len > 0 && body[len..].starts_with('>') {
            return Some((open, open + len + 2));
        }
        start = open + 1;
    }
    None
}

/// Replaces `<tag>` with the value of option `tag` (or of `[Definition]`
/// key `tag` via `fallback`) until nothing more resolves; unknown tags
/// such as `<HOST>` are left for the regex stage.
pub fn substitute(
    mut tags: HashMap<String, String>,
    ignore: &[String],
    filter: &str,
    fallback: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>, Fail2banError> {
    let mut keys: Vec<String> = tags.keys().cloned().collect();
    keys.sort();
    let mut counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let mut fallback_cache: HashMap<String, Option<String>> = HashMap::new();
    loop {
        let mut repeat = false;
        for key in &keys {
            if ignore.contains(key) {
                continue;
            }
            let Some(original) = tags.get(key).cloned() else {
                continue;
            };
            let mut value = original.clone();
            let rplc = counts.entry(key.clone()).or_default();
            let mut from = 0;
            while let Some((s, e)) = next_tag(&value, from) {
                let name = value[s + 1..e - 1].to_string();
                if ignore.contains(&name) {
                    from = e;
                    continue;
                }
                if name == *key || rplc.get(&name).copied().unwrap_or(1) > MAX_TAG_REPLACE_COUNT {
                    return Err(Fail2banError::TagCycle {
                        filter: filter.to_string(),
                        key: key.clone(),
                        tag: name,
                    });
                }
                let repl = match tags.get(&name) {
                    Some(v) => Some(v.clone()),
                    None => fallback_cache
                        .entry(name.clone())
                        .or_insert_with(|| fallback(&name))
                        .clone(),
                };
                let Some(repl) = repl else {
                    from = e;
                    continue;
                };
                value = value.replace(&format!("<{name}>"), &repl);
                *rplc.entry(name).or_insert(0) += 1;
                from = s;
            }
            if value != original {
                if next_tag(&value, 0).is_some() {
                    repeat = true;
                }
                tags.insert(key.clone(), value);
            }
        }
        if !repeat {
            break;
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_with_quoted_and_plain_options() {
        let (name, opts) = parse_spec(r#"postfix[mode=auth, x="a, b"]"#).unwrap();
        assert_eq!(name, "postfix");
        assert_eq!(
            opts,
            vec![
                ("mode".to_string(), "auth".to_string()),
                ("x".to_string(), "a, b".to_string())
            ]
        );
        assert_eq!(parse_spec("sshd").unwrap().1, vec![]);
        assert!(parse_spec("sshd[mode=x").is_err());
    }

    #[test]
    fn tags_resolve_recursively_and_leave_unknown() {
        let mut t = HashMap::new();
        t.insert("failregex".to_string(), "<a> <HOST>".to_string());
        t.insert("a".to_string(), "<b>!".to_string());
        let out = substitute(t, &[], "f", |n| (n == "b").then(|| "B".to_string())).unwrap();
        assert_eq!(out["failregex"], "B! <HOST>");
    }

    #[test]
    fn self_reference_is_a_cycle_error() {
        let mut t = HashMap::new();
        t.insert("a".to_string(), "x<a>".to_string());
        let e = substitute(t, &[], "f", |_| None).unwrap_err();
        assert!(e.to_string().contains("<a>"), "{e}");
    }
}
