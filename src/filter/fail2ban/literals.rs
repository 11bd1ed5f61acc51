//! What every match of a pattern on the backtracking engine must contain,
//! read from `fancy-regex`'s own parse of it: the same factors as
//! [`required_factors`] gives for the linear engine's patterns. A
//! look-around, back-reference or conditional requires nothing here (the
//! rest of the pattern still does), so the answer stays a necessary
//! condition, never a missed match.

use fancy_regex::{AstNode, Expr};

use crate::filter::literal::{keep_factor, required_factors};

/// The factors of `pattern` (fancy-regex syntax); none when it does not
/// parse or reads text in a way literals do not follow (`(?x)`).
pub(super) fn backtrack_factors(pattern: &str) -> Vec<Vec<String>> {
    if pattern.contains("(?x") {
        return Vec::new();
    }
    let Ok(tree) = Expr::parse_tree(pattern) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for f in must(&tree.expr) {
        if keep_factor(&f) && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

fn literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal { val, casei: false } => Some(val),
        _ => None,
    }
}

fn must(e: &Expr) -> Vec<Vec<String>> {
    match e {
        Expr::Literal { val, casei: false } => vec![vec![val.clone()]],
        Expr::Group(c) => must(c),
        Expr::AtomicGroup(c) => must(c),
        Expr::AstNode(AstNode::AstGroup { inner, .. }, _) => must(inner),
        Expr::Repeat { child, lo, .. } if *lo >= 1 => must(child),
        Expr::Delegate {
            inner,
            casei: false,
        } => required_factors(inner),
        Expr::Concat(subs) => {
            let mut out = Vec::new();
            let mut run = String::new();
            for sub in subs {
                match literal(sub) {
                    Some(text) => run.push_str(text),
                    None => {
                        if !run.is_empty() {
                            out.push(vec![std::mem::take(&mut run)]);
                        }
                        out.extend(must(sub));
                    }
                }
            }
            if !run.is_empty() {
                out.push(vec![run]);
            }
            out
        }
        Expr::Alt(branches) => {
            // One string from each branch's best factor.
            let mut union = Vec::new();
            for b in branches {
                let Some(best) = must(b)
                    .into_iter()
                    .max_by_key(|f| f.iter().map(String::len).min().unwrap_or(0))
                else {
                    return Vec::new();
                };
                union.extend(best);
            }
            vec![union]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_arounds_and_back_references_require_nothing_the_rest_does() {
        let f =
            backtrack_factors(r"(?<=user )(?P<user>\w+) from (?!10\.)(?P<ip>\S+) port \d+ ssh2$");
        // Not "10.", which a match must lack.
        assert_eq!(
            f,
            [
                vec![" from ".to_string()],
                vec![" port ".to_string()],
                vec![" ssh2".to_string()]
            ]
        );
        let f = backtrack_factors(r"^(?P<a>\w+) said (?:hello|howdy) to (?P=a)(?>ABCD|EFGH)+");
        assert_eq!(
            f,
            [
                vec![" said ".to_string()],
                vec!["hello".to_string(), "howdy".to_string()],
                vec![" to ".to_string()],
                vec!["ABCD".to_string(), "EFGH".to_string()]
            ]
        );
        assert!(backtrack_factors(r"(?i)(?<=x)failed for").is_empty());
    }
}
