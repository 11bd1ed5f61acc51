//! The longest literal every match of a regex must contain, found from the
//! pattern text: a `memmem` search for it rejects almost every log line before
//! any regex runs.
//!
//! Deliberately simple and conservative: only text at nesting depth 0 counts,
//! a quantifier takes back the character it applies to, and a top-level `|`
//! means no literal is required. When in doubt the answer is "none", which
//! costs speed, never a missed match.

use memchr::memmem;

/// Text a line must contain: for each factor, one of its strings (see
/// [`required_factors`]). Empty admits every line.
#[derive(Debug)]
pub struct Factors {
    strings: Vec<Vec<String>>,
    finders: Vec<Vec<memmem::Finder<'static>>>,
}

impl Factors {
    pub fn new(mut factors: Vec<Vec<String>>) -> Factors {
        // The longest first: the rarest as a rule, and the quickest to
        // look for, so most lines are turned away by the first search.
        factors
            .sort_by_key(|any| std::cmp::Reverse(any.iter().map(String::len).min().unwrap_or(0)));
        let finders = factors
            .iter()
            .map(|any| {
                any.iter()
                    .map(|s| memmem::Finder::new(s.as_bytes()).into_owned())
                    .collect()
            })
            .collect();
        Factors {
            strings: factors,
            finders,
        }
    }

    pub fn admits(&self, hay: &[u8]) -> bool {
        self.finders
            .iter()
            .all(|any| any.iter().any(|f| f.find(hay).is_some()))
    }

    /// The factors, each as the strings one of which is required.
    #[cfg(test)]
    pub fn strings(&self) -> &[Vec<String>] {
        &self.strings
    }

    /// The factor that turns away the most lines (its shortest string the
    /// longest): a line without one of these strings is not admitted.
    /// None when every line is.
    pub fn key(&self) -> Option<&[String]> {
        self.strings
            .iter()
            .max_by_key(|any| any.iter().map(String::len).min().unwrap_or(0))
            .map(Vec::as_slice)
    }
}

/// The longest required literal of `pattern`, if at least 4 bytes long.
pub fn required_literal(pattern: &str) -> Option<String> {
    let mut best: Option<String> = None;
    for lit in required_literals(pattern) {
        if best.as_ref().is_none_or(|b| lit.len() > b.len()) {
            best = Some(lit);
        }
    }
    best
}

/// Every required literal of `pattern` at least 4 bytes long, in pattern
/// order: a line without any one of them cannot match. The longest is the
/// best single gate; the others turn away lines that have it but lack a
/// rarer one (postfix's `]: disconnect from ` lines without ` auth=0/`).
pub fn required_literals(pattern: &str) -> Vec<String> {
    if folds_case_or_spaces(pattern) {
        return Vec::new();
    }
    let mut best: Vec<String> = Vec::new();
    let mut run = String::new();
    let mut depth = 0usize;
    let mut chars = pattern.chars().peekable();
    let end_run = |run: &mut String, best: &mut Vec<String>| {
        // Short literals filter too little to be worth a search.
        if run.len() >= 4 {
            best.push(run.clone());
        }
        run.clear();
    };
    while let Some(c) = chars.next() {
        if depth > 0 {
            match c {
                '\\' => {
                    chars.next();
                }
                '(' => depth += 1,
                ')' => depth -= 1,
                '[' => skip_class(&mut chars),
                _ => {}
            }
            continue;
        }
        match c {
            '|' => return Vec::new(),
            '(' => {
                depth += 1;
                end_run(&mut run, &mut best);
            }
            '[' => {
                skip_class(&mut chars);
                end_run(&mut run, &mut best);
            }
            '?' | '*' | '{' => {
                // The previous character was optional or repeated: drop it.
                run.pop();
                end_run(&mut run, &mut best);
                if c == '{' {
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                    }
                }
                // A lazy or possessive marker after a quantifier.
                if chars.peek() == Some(&'?') {
                    chars.next();
                }
            }
            '+' => end_run(&mut run, &mut best),
            '.' | '^' | '$' => end_run(&mut run, &mut best),
            '\\' => match chars.next() {
                // `\<` and `\>` are word-boundary assertions, not text.
                Some(e) if e.is_ascii_punctuation() && e != '<' && e != '>' => run.push(e),
                _ => end_run(&mut run, &mut best),
            },
            _ => run.push(c),
        }
    }
    end_run(&mut run, &mut best);
    // A quantifier right after the run's last character was handled above.
    best
}

/// Strings of which every match of `pattern` contains at least one, per
/// factor: all factors must be met. Unlike [`required_literals`] this sees
/// through alternations (`\((?:tried to use ...|proxy dest auth failed)\)`
/// requires one of its branches' texts), from the parsed pattern rather than
/// its text. Factors whose shortest string is under 4 bytes, or with more
/// than 16 strings, are dropped: they would filter too little. None when the
/// pattern does not parse (the regex crate will say why).
pub fn required_factors(pattern: &str) -> Vec<Vec<String>> {
    let Ok(hir) = regex_syntax::Parser::new().parse(pattern) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for factor in must(&hir) {
        let strings: Vec<String> = factor
            .into_iter()
            .filter_map(|b| String::from_utf8(b).ok())
            .collect();
        if keep_factor(&strings) && !out.contains(&strings) {
            out.push(strings);
        }
    }
    out
}

/// Whether a factor filters enough to be worth searching for: its
/// shortest string 4 bytes or more, 16 strings at most.
pub fn keep_factor(strings: &[String]) -> bool {
    let shortest = strings.iter().map(String::len).min().unwrap_or(0);
    shortest >= 4 && strings.len() <= MAX_STRINGS
}

/// A factor: byte strings, one of which every match contains.
type Factor = Vec<Vec<u8>>;

/// What every match of `hir` must contain, as factors.
fn must(hir: &regex_syntax::hir::Hir) -> Vec<Factor> {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Literal(lit) => vec![vec![lit.0.to_vec()]],
        HirKind::Capture(c) => must(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => must(&r.sub),
        HirKind::Concat(subs) => {
            // Runs of parts that each match one of a few strings
            // (`[iI](?:llegal|nvalid) user ` is one of four texts): the
            // whole run is one factor, which says more than its parts.
            let mut out = Vec::new();
            let mut run: Factor = Vec::new();
            for sub in subs {
                match strings_of(sub) {
                    Some(set) => {
                        let joined = cross(&run, &set);
                        if joined.len() <= MAX_STRINGS {
                            run = joined;
                        } else {
                            out.push(std::mem::replace(&mut run, set));
                        }
                    }
                    None => {
                        if !run.is_empty() {
                            out.push(std::mem::take(&mut run));
                        }
                        out.extend(must(sub));
                    }
                }
            }
            if !run.is_empty() {
                out.push(run);
            }
            out
        }
        HirKind::Alternation(branches) => {
            // One string from each branch's best factor: whichever branch
            // matched, one of them is in the line.
            let mut union: Factor = Vec::new();
            for branch in branches {
                let Some(best) = must(branch)
                    .into_iter()
                    .max_by_key(|f| f.iter().map(Vec::len).min().unwrap_or(0))
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

/// More strings than this in a factor filter too little.
const MAX_STRINGS: usize = 16;

/// Every string `a` then `b` can make (`a` empty: `b`).
fn cross(a: &[Vec<u8>], b: &[Vec<u8>]) -> Factor {
    if a.is_empty() {
        return b.to_vec();
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = x.clone();
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    out
}

/// The few strings `hir` matches, when it matches nothing else: a
/// literal, a class of a few characters, an alternation or sequence of
/// such.
fn strings_of(hir: &regex_syntax::hir::Hir) -> Option<Factor> {
    use regex_syntax::hir::{Class, HirKind};
    let set = match hir.kind() {
        HirKind::Literal(lit) => vec![lit.0.to_vec()],
        HirKind::Capture(c) => strings_of(&c.sub)?,
        HirKind::Class(Class::Unicode(c)) => {
            let mut chars = Vec::new();
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    if chars.len() >= 4 {
                        return None;
                    }
                    chars.push(ch.to_string().into_bytes());
                }
            }
            chars
        }
        HirKind::Alternation(branches) => {
            let mut union = Vec::new();
            for b in branches {
                union.extend(strings_of(b)?);
            }
            union
        }
        HirKind::Concat(subs) => {
            let mut run: Factor = Vec::new();
            for sub in subs {
                run = cross(&run, &strings_of(sub)?);
                if run.len() > MAX_STRINGS {
                    return None;
                }
            }
            run
        }
        _ => return None,
    };
    (!set.is_empty() && set.len() <= MAX_STRINGS).then_some(set)
}

/// Skips a character class whose `[` was just read, nested classes
/// (`[[:alpha:]]`, `[a-z&&[^x]]`) included.
fn skip_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    let mut depth = 1usize;
    let mut at_start = true;
    while depth > 0 {
        // A `]` right after `[` or `[^` is a literal member.
        if at_start {
            if chars.peek() == Some(&'^') {
                chars.next();
            }
            if chars.peek() == Some(&']') {
                chars.next();
            }
            at_start = false;
        }
        match chars.next() {
            Some('\\') => {
                chars.next();
            }
            Some('[') => {
                depth += 1;
                at_start = true;
            }
            Some(']') => depth -= 1,
            Some(_) => {}
            None => return,
        }
    }
}

/// Whether flags that change how text matches (`i`, `x`) are set for the
/// top level of `pattern`: by `(?i)` outside every group (it holds to the
/// pattern's end). Set inside a group, `((?i)LOGIN|PLAIN)` or `(?i:...)`,
/// they hold only to that group's end, and a group's text never counts.
fn folds_case_or_spaces(pattern: &str) -> bool {
    let mut depth = 0usize;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' => skip_class(&mut chars),
            '(' => {
                if depth == 0 {
                    let ahead: String = chars.clone().take(16).collect();
                    if let Some(rest) = ahead.strip_prefix('?') {
                        let flags: String = rest
                            .chars()
                            .take_while(|c| "imsUxRu-".contains(*c))
                            .collect();
                        let sets = rest[flags.len()..].starts_with(')');
                        if sets && (flags.contains('i') || flags.contains('x')) {
                            return true;
                        }
                    }
                }
                depth += 1;
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::required_literal as lit;

    /// Case folding set inside a group holds only there: the text outside
    /// still counts. Set at the top level, it holds to the end: nothing
    /// counts.
    #[test]
    fn case_folding_counts_only_where_it_holds() {
        assert_eq!(
            lit(r"^x\]: SASL ((?i)LOGIN|PLAIN) authentication failed: ").as_deref(),
            Some(" authentication failed: ")
        );
        assert_eq!(lit(r"(?i:abc)defghij").as_deref(), Some("defghij"));
        assert_eq!(lit(r"[(?i)]abcdefg").as_deref(), Some("abcdefg"));
        assert_eq!(lit(r"(?i)abcdefg"), None);
        assert_eq!(lit(r"abcdefg (?i)hijklmnop"), None);
        assert_eq!(lit(r"abcdefg (?x)hijklmnop"), None);
    }

    #[test]
    fn finds_the_longest_top_level_literal() {
        assert_eq!(
            lit(r"^\S+ sshd\[\d+\]: Failed password for (?:invalid user )?.*? from x").as_deref(),
            Some("]: Failed password for ")
        );
        assert_eq!(
            lit(r"warning: [\w.-]+\[x\]: SASL (?:A|B) authentication failed: ").as_deref(),
            Some(" authentication failed: ")
        );
        assert_eq!(lit(r"abcdefx?").as_deref(), Some("abcdef"));
        assert_eq!(lit(r"abcdef{2}").as_deref(), Some("abcde"));
        assert_eq!(lit(r"a[b|c]defgh").as_deref(), Some("defgh"));
    }

    #[test]
    fn nested_classes_flags_and_assertions() {
        assert_eq!(lit(r"[[:alpha:]]+ failed x").as_deref(), Some(" failed x"));
        assert_eq!(lit(r"[a-z&&[^x]]failed").as_deref(), Some("failed"));
        assert_eq!(lit(r"[]x]failed").as_deref(), Some("failed"));
        assert_eq!(lit(r"\<failed\>").as_deref(), Some("failed"));
        assert_eq!(lit(r"(?i)failed password"), None);
        assert_eq!(lit(r"(?x) failed password"), None);
        assert_eq!(lit(r"a(?i:b)cdefgh(?-i)").as_deref(), None);
        assert_eq!(
            lit(r"(?s)failed password").as_deref(),
            Some("failed password")
        );
        assert_eq!(lit(r"(?P<u>\w+) failed").as_deref(), Some(" failed"));
    }

    #[test]
    fn no_literal_when_none_is_required() {
        assert_eq!(lit(r"abcdef|ghijkl"), None);
        assert_eq!(lit(r"(?:abcdef)?x"), None);
        assert_eq!(lit(r"ab.cd"), None);
    }

    #[test]
    fn factors_see_through_alternations() {
        use super::required_factors as factors;
        let dovecot = r"^x-login: [A-Z][^<]*? \((?:tried to use (?:disabled|disallowed) plaintext auth|proxy dest auth failed)\): (?:.*, )?rip=(?P<host>[0-9.]+)(?:,.*)?$";
        let found = factors(dovecot);
        assert!(found.contains(&vec!["x-login: ".to_string()]), "{found:?}");
        // The alternation with the text around it: one string per way through.
        let alt = found.iter().find(|f| f.len() == 3).unwrap();
        assert!(
            alt.contains(&" (proxy dest auth failed): ".to_string()),
            "{found:?}"
        );
        // Case folding leaves classes of a few letters: runs of them are
        // text in each case (any case is admitted).
        let folded = super::Factors::new(factors(r"(?i)failed password"));
        assert!(folded.key().is_some());
        assert!(folded.admits(b"x FaILed PASSword y"));
        assert!(!folded.admits(b"x failed passwd y"));
        // An optional part or a branch without text requires nothing;
        // short text is dropped.
        assert!(factors(r"x(?:abcdef)?y").is_empty());
        assert!(factors(r"(?:abcdef|[0-9]+)").is_empty());
        assert!(factors(r"(?:abcdef|ab)").is_empty());
        assert_eq!(factors(r"(?:abcdef)+"), vec![vec!["abcdef".to_string()]]);
        // Every match meets every factor.
        let cases = [
            (
                dovecot,
                "x-login: Disconnected (proxy dest auth failed): user=<a>, rip=1.2.3.4, lip=5",
            ),
            (
                dovecot,
                "x-login: Aborted login (tried to use disallowed plaintext auth): rip=1.2.3.4",
            ),
            (
                r"^(?:<SYSLOG>)?(?:foo|bar baz) (?P<n>qux[0-9]+|quux) end$",
                "bar baz quux end",
            ),
            (
                r"(?:Connection lost to authentication server|Invalid authentication mechanism)(?:,|$)",
                "x: Invalid authentication mechanism",
            ),
        ];
        for (pattern, line) in cases {
            let pattern = pattern.replace("<SYSLOG>", "s");
            assert!(
                regex::Regex::new(&pattern).unwrap().is_match(line),
                "{pattern}"
            );
            for f in factors(&pattern) {
                assert!(
                    f.iter().any(|s| line.contains(s.as_str())),
                    "{f:?} not in {line:?}"
                );
            }
        }
    }

    #[test]
    fn every_match_contains_the_literal() {
        let pats = [
            r"^x \S+ sshd\[\d+\]: Invalid user .*? from \d+ port \d+$",
            r"Failed (?:password|none) for \w+",
        ];
        let lines = [
            "x h sshd[1]: Invalid user bob from 1 port 2",
            "Failed none for root",
        ];
        for (p, l) in pats.iter().zip(lines) {
            assert!(regex::Regex::new(p).unwrap().is_match(l));
            if let Some(lit) = lit(p) {
                assert!(l.contains(&lit), "{lit:?} not in {l:?}");
            }
            for lit in super::required_literals(p) {
                assert!(l.contains(&lit), "{lit:?} not in {l:?}");
            }
        }
    }

    #[test]
    fn every_required_literal_is_listed_in_order() {
        let p = r"^\S+ disconnect from \S+ auth=0/(?P<n>\d+) x?y end";
        assert_eq!(
            super::required_literals(p),
            [" disconnect from ", " auth=0/", "y end"]
        );
        assert_eq!(lit(p), Some(" disconnect from ".into()));
        assert!(super::required_literals("a long one|another long one").is_empty());
        assert!(super::required_literals("(?i)case folded text").is_empty());
    }
}
