//! Python `re` syntax translated for Rust's engines. Any pattern is
//! translated or refused without a panic; and any text, escaped as
//! Python's `re.escape` does, must translate to a pattern that matches
//! exactly that text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nftjail::filter::fail2ban::pyregex::translate;

/// A whole-text match of `pattern` on `text`, on whichever engine the
/// translation asks for.
fn matches_whole(pattern: &str, backtrack: bool, text: &str) -> bool {
    let whole = format!(r"\A(?:{pattern})\z");
    if backtrack {
        let re = fancy_regex::Regex::new(&whole).expect("escaped text compiles");
        re.is_match(text)
            .expect("no backtracking limit on a literal")
    } else {
        let re = regex::Regex::new(&whole).expect("escaped text compiles");
        re.is_match(text)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = translate(text);
    // re.escape: every ASCII character but letters, digits and `_` gets a
    // backslash; in Python a backslash before such a character is that
    // character.
    let mut escaped = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    let t = translate(&escaped).unwrap_or_else(|e| panic!("{escaped:?} refused: {e}"));
    assert!(
        matches_whole(&t.pattern, t.backtrack, text),
        "{escaped:?} became {:?}, which does not match {text:?}",
        t.pattern
    );
});
