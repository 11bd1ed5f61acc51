//! Python `re` syntax rewritten for Rust's `regex` crate where the two
//! differ, so a fail2ban regex means the same thing here as there. Where
//! Python needs a backtracking engine (look-around, back-references,
//! atomic groups, possessive quantifiers, conditionals) the result is
//! flagged so the caller compiles that one regex with `fancy-regex`.

/// A translated pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub pattern: String,
    /// Needs a backtracking engine.
    pub backtrack: bool,
}

/// Python's `\s` for `str` patterns also matches the ASCII separators
/// 0x1C..0x1F; Rust's Unicode `\s` does not.
const PY_SPACE: &str = r"\s\x1C-\x1F";

pub fn translate(src: &str) -> Result<Translated, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 16);
    let mut backtrack = false;
    let mut i = 0;
    // After a quantifier: a following `+` makes it possessive.
    let mut after_quantifier = false;
    // Capture groups so far by name, for `(?(name)...)` conditionals.
    let mut captures: Vec<Option<String>> = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        let was_quantifier = std::mem::take(&mut after_quantifier);
        match c {
            '\\' => {
                let (text, used, bt) = escape(&chars, i, false)?;
                out.push_str(&text);
                backtrack |= bt;
                i += used;
            }
            '[' => {
                let used = class(&chars, i, &mut out)?;
                i += used;
            }
            '(' => {
                let used = group(&chars, i, &mut out, &mut backtrack, &mut captures)?;
                i += used;
            }
            '*' | '+' | '?' => {
                if was_quantifier && c == '+' {
                    backtrack = true;
                    out.push('+');
                    i += 1;
                    continue;
                }
                if was_quantifier && c == '?' {
                    out.push('?');
                    i += 1;
                    continue;
                }
                out.push(c);
                after_quantifier = true;
                i += 1;
            }
            '{' => match repetition(&chars, i) {
                Some((text, used)) => {
                    out.push_str(&text);
                    after_quantifier = true;
                    i += used;
                }
                None => {
                    out.push_str(r"\{");
                    i += 1;
                }
            },
            '}' => {
                out.push_str(r"\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(Translated {
        pattern: out,
        backtrack,
    })
}

/// `{m}`, `{m,}`, `{m,n}`, `{,n}`; anything else is a literal brace in
/// Python.
fn repetition(chars: &[char], start: usize) -> Option<(String, usize)> {
    let close = chars[start..].iter().position(|&c| c == '}')? + start;
    let body: String = chars[start + 1..close].iter().collect();
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body.as_str(), None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none_or(str::is_empty)) {
        return None;
    }
    let lo = if lo.is_empty() { "0" } else { lo };
    let text = match hi {
        None => format!("{{{lo}}}"),
        Some(hi) => format!("{{{lo},{hi}}}"),
    };
    Some((text, close - start + 1))
}

/// One backslash escape; returns the Rust text, chars used, and whether
/// it needs backtracking.
fn escape(chars: &[char], i: usize, in_class: bool) -> Result<(String, usize, bool), String> {
    let Some(&c) = chars.get(i + 1) else {
        return Err("pattern ends with a backslash".into());
    };
    let hex = |n: usize| -> Result<String, String> {
        let digits: String = chars.iter().skip(i + 2).take(n).collect();
        if digits.len() == n && digits.chars().all(|d| d.is_ascii_hexdigit()) {
            Ok(digits)
        } else {
            Err(format!("incomplete escape \\{c}{digits}"))
        }
    };
    Ok(match c {
        'd' | 'D' | 'w' | 'W' => (format!("\\{c}"), 2, false),
        's' if in_class => (PY_SPACE.to_string(), 2, false),
        's' => (format!("[{PY_SPACE}]"), 2, false),
        'S' if in_class => (r"\S".to_string(), 2, false),
        'S' => (format!("[^{PY_SPACE}]"), 2, false),
        'b' if in_class => (r"\x08".to_string(), 2, false),
        'b' | 'B' | 'A' => (format!("\\{c}"), 2, false),
        'Z' => (r"\z".to_string(), 2, false),
        'n' | 't' | 'r' | 'f' | 'v' | 'a' => (format!("\\{c}"), 2, false),
        'x' => (format!("\\x{{{}}}", hex(2)?), 4, false),
        'u' => (format!("\\x{{{}}}", hex(4)?), 6, false),
        'U' => (format!("\\x{{{}}}", hex(8)?), 10, false),
        '0' => {
            let digits: String = chars
                .iter()
                .skip(i + 2)
                .take(2)
                .take_while(|d| ('0'..='7').contains(*d))
                .collect();
            let value = u32::from_str_radix(&format!("0{digits}"), 8).unwrap_or(0);
            (format!("\\x{{{value:x}}}"), 2 + digits.len(), false)
        }
        '1'..='9' if !in_class => {
            let digits: String = chars
                .iter()
                .skip(i + 1)
                .take(2)
                .take_while(|d| d.is_ascii_digit())
                .collect();
            (format!("\\{digits}"), 1 + digits.len(), true)
        }
        c if c.is_ascii_alphanumeric() => return Err(format!("bad escape \\{c}")),
        c => (literal(c, in_class), 2, false),
    })
}

/// A literal character, escaped if Rust's syntax would read it otherwise
/// (Rust's `\<`/`\>` are word boundaries; Python's are plain `<`/`>`).
fn literal(c: char, in_class: bool) -> String {
    let meta = if in_class {
        matches!(c, '\\' | '[' | ']' | '^' | '-' | '&' | '~')
    } else {
        matches!(
            c,
            '\\' | '.'
                | '+'
                | '*'
                | '?'
                | '('
                | ')'
                | '|'
                | '['
                | ']'
                | '{'
                | '}'
                | '^'
                | '$'
                | '#'
                | '&'
                | '-'
                | '~'
        )
    };
    if meta {
        format!("\\{c}")
    } else if c.is_whitespace() {
        // Safe under a user's `(?x)` too.
        format!("\\x{{{:x}}}", c as u32)
    } else {
        c.to_string()
    }
}

/// A `[...]` class; Python reads `[` inside a class, and `&&`, `--`, `~~`,
/// as literals, Rust as nesting and set operations.
fn class(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    // Whether the previous item was a single character a range can start at.
    let mut prev_single = false;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated character class".into());
        };
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1 - start);
        }
        first = false;
        if c == '-' && prev_single && chars.get(i + 1).is_some_and(|&n| n != ']') {
            out.push('-');
            prev_single = false;
            i += 1;
            let (text, used) = class_item(chars, i)?;
            out.push_str(&text);
            i += used;
            continue;
        }
        let (text, used) = class_item(chars, i)?;
        prev_single = !(c == '\\' && chars.get(i + 1).is_some_and(|n| "dDwWsS".contains(*n)));
        out.push_str(&text);
        i += used;
    }
}

fn class_item(chars: &[char], i: usize) -> Result<(String, usize), String> {
    match chars.get(i) {
        Some('\\') => {
            let (text, used, _) = escape(chars, i, true)?;
            Ok((text, used))
        }
        Some(&c) => Ok((literal(c, true), 1)),
        None => Err("unterminated character class".into()),
    }
}

/// `(` and its Python extensions.
fn group(
    chars: &[char],
    start: usize,
    out: &mut String,
    backtrack: &mut bool,
    captures: &mut Vec<Option<String>>,
) -> Result<usize, String> {
    let rest: String = chars[start..chars.len().min(start + 4)].iter().collect();
    if !rest.starts_with("(?") {
        captures.push(None);
        out.push('(');
        return Ok(1);
    }
    let tail: String = chars[start..].iter().collect();
    if tail.starts_with("(?:") {
        out.push_str("(?:");
        return Ok(3);
    }
    let named = tail.strip_prefix("(?P<").or_else(|| {
        tail.strip_prefix("(?<")
            .filter(|r| !r.starts_with(['=', '!']))
    });
    if let Some(after) = named {
        let end = after.find('>').ok_or("unterminated group name")?;
        captures.push(Some(after[..end].to_string()));
        out.push_str(&format!("(?P<{}>", &after[..end]));
        return Ok(tail.len() - after.len() + end + 1);
    }
    // fancy-regex takes only group numbers in conditionals.
    if let Some(after) = tail.strip_prefix("(?(") {
        let end = after.find(')').ok_or("unterminated conditional")?;
        let cond = &after[..end];
        let number = if cond.chars().all(|c| c.is_ascii_digit()) {
            cond.to_string()
        } else {
            let index = captures
                .iter()
                .position(|n| n.as_deref() == Some(cond))
                .ok_or_else(|| format!("conditional on unknown group {cond}"))?;
            (index + 1).to_string()
        };
        out.push_str(&format!("(?({number})"));
        *backtrack = true;
        return Ok(3 + cond.chars().count() + 1);
    }
    if let Some(after) = tail.strip_prefix("(?P=") {
        let end = after.find(')').ok_or("unterminated (?P=name)")?;
        out.push_str(&format!("\\k<{}>", &after[..end]));
        *backtrack = true;
        return Ok(4 + after[..end].chars().count() + 1);
    }
    if let Some(after) = tail.strip_prefix("(?#") {
        let end = after.find(')').ok_or("unterminated comment")?;
        return Ok(3 + after[..end].chars().count() + 1);
    }
    for prefix in ["(?<=", "(?<!", "(?=", "(?!", "(?>"] {
        if tail.starts_with(prefix) {
            out.push_str(prefix);
            *backtrack = true;
            return Ok(prefix.len());
        }
    }
    // Inline flags: `(?imsx)` or `(?i-s:...)`.
    let mut i = start + 2;
    let mut flags = String::new();
    while let Some(&c) = chars.get(i) {
        match c {
            'i' | 'm' | 's' | 'x' | '-' => flags.push(c),
            // Unicode is Python's default for str patterns, as it is ours.
            'u' => {}
            'a' | 'L' => return Err(format!("unsupported flag (?{c})")),
            ')' | ':' => break,
            _ => return Err(format!("unknown extension (?{c}")),
        }
        i += 1;
    }
    match chars.get(i) {
        Some(')') if flags.is_empty() || flags == "-" => Ok(i + 1 - start),
        Some(')') => {
            out.push_str(&format!("(?{flags})"));
            Ok(i + 1 - start)
        }
        Some(':') if flags.is_empty() || flags == "-" => {
            out.push_str("(?:");
            Ok(i + 1 - start)
        }
        Some(':') => {
            out.push_str(&format!("(?{flags}:"));
            Ok(i + 1 - start)
        }
        _ => Err("unterminated group flags".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        translate(s).unwrap().pattern
    }

    #[test]
    fn python_literals_that_rust_reads_otherwise() {
        assert_eq!(t(r"\<a\>"), "<a>");
        assert_eq!(t(r"a{"), r"a\{");
        assert_eq!(t(r"x{,3}"), "x{0,3}");
        assert_eq!(t(r"[^[]"), r"[^\[]");
        assert_eq!(t(r"[a&&b]"), r"[a\&\&b]");
        assert_eq!(t(r"[]a]"), r"[\]a]");
        assert_eq!(t(r"[\w.-]"), r"[\w.\-]");
        assert_eq!(t(r"\Z"), r"\z");
    }

    #[test]
    fn ranges_survive() {
        let re = regex::Regex::new(&t(r"^[a-f0-9-]+$")).unwrap();
        assert!(re.is_match("ab-09"));
        assert!(!re.is_match("g"));
    }

    #[test]
    fn python_space_includes_ascii_separators() {
        let re = regex::Regex::new(&t(r"^a\sb$")).unwrap();
        assert!(re.is_match("a\x1fb"));
    }

    #[test]
    fn backtracking_constructs_are_flagged() {
        assert!(translate(r"(?<=a)b").unwrap().backtrack);
        assert!(translate(r"(?P<x>a)(?P=x)").unwrap().backtrack);
        assert!(translate(r"a++").unwrap().backtrack);
        assert!(!translate(r"a+?(?P<x>b)").unwrap().backtrack);
    }

    #[test]
    fn named_conditional_becomes_numbered() {
        let p = translate(r"^(x)?(?P<a>y)?(?(a)b|c)$").unwrap();
        assert!(p.pattern.contains("(?(2)b|c)"), "{}", p.pattern);
        let re = fancy_regex::Regex::new(&p.pattern).unwrap();
        assert!(re.is_match("yb").unwrap());
        assert!(re.is_match("c").unwrap());
        assert!(!re.is_match("yc").unwrap());
    }

    #[test]
    fn flags_and_errors() {
        assert_eq!(t("(?i)a"), "(?i)a");
        assert_eq!(t("(?:(?i)a)"), "(?:(?i)a)");
        assert!(translate(r"\q").is_err());
        assert!(translate("[abc").is_err());
    }
}
