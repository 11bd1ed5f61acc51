//! Just enough lexing for `cargo xtask tidy`: which bytes of a Rust file are code (not comments,
//! not the inside of string or char literals) and which code is compiled only for tests.
//!
//! The rules then search plain text, so a `crate::enforce` in a doc comment, a `Command::new` in
//! an error message or an import in `mod tests` cannot trip them. A full parser (syn) would be
//! exact, but tidy should run first in CI and finish in well under a second without building
//! anything heavy; a scanner that knows comments, literals and brace depth is enough for that.

use std::ops::Range;

/// A source file with comments and literal contents blanked out.
pub struct Scanned {
    /// The file with every comment and the inside of every string and char literal replaced by
    /// spaces (newlines kept), so byte offsets and line numbers are the original's.
    pub code: String,
    /// Byte ranges of items gated by `#[cfg(test)]`, from the attribute to the item's end.
    pub test_spans: Vec<Range<usize>>,
    /// `#![cfg(test)]` at the top: the whole file is test code.
    pub all_test: bool,
    /// Submodules declared `#[cfg(test)] mod name;`: their files are test code.
    pub test_mods: Vec<String>,
    line_starts: Vec<usize>,
}

impl Scanned {
    pub fn new(src: &str) -> Scanned {
        let code = mask(src.as_bytes());
        // Masking swaps whole bytes (multi-byte characters included) for ASCII spaces only, so
        // the result is still UTF-8; the fallback only guards against a bug here.
        let code = String::from_utf8(code).unwrap_or_else(|e| {
            String::from_utf8_lossy(e.as_bytes())
                .into_owned()
                .replace(char::REPLACEMENT_CHARACTER, " ")
        });
        let line_starts = std::iter::once(0)
            .chain(code.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut scanned = Scanned {
            code,
            test_spans: Vec::new(),
            all_test: false,
            test_mods: Vec::new(),
            line_starts,
        };
        scanned.find_test_items();
        scanned
    }

    /// The 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// Whether the byte at `offset` is compiled only for tests.
    pub fn is_test(&self, offset: usize) -> bool {
        self.all_test || self.test_spans.iter().any(|s| s.contains(&offset))
    }

    /// Lines outside `#[cfg(test)]` items: what a reader of the product code has to get through.
    /// Blank and comment lines count too; they are part of the file a reader opens.
    pub fn code_lines(&self) -> usize {
        if self.all_test {
            return 0;
        }
        let bytes = self.code.as_bytes();
        // A trailing newline ends the last line rather than starting an empty one.
        let lines = self.line_starts.len() - usize::from(bytes.last() == Some(&b'\n'));
        (0..lines)
            .filter(|&l| {
                let start = self.line_starts[l];
                let end = self.line_starts.get(l + 1).map_or(bytes.len(), |&e| e - 1);
                let anchor = (start..end)
                    .find(|&i| !bytes[i].is_ascii_whitespace())
                    .unwrap_or(start);
                !self.is_test(anchor)
            })
            .count()
    }

    fn find_test_items(&mut self) {
        let bytes = self.code.as_bytes();
        let mut i = 0;
        while let Some(hash) = self.code[i..].find('#').map(|p| p + i) {
            i = hash + 1;
            let mut j = skip_ws(bytes, hash + 1);
            let inner = bytes.get(j) == Some(&b'!');
            if inner {
                j = skip_ws(bytes, j + 1);
            }
            if bytes.get(j) != Some(&b'[') {
                continue;
            }
            let Some(close) = matching(bytes, j) else {
                continue;
            };
            if !is_test_cfg(&self.code[j + 1..close]) {
                continue;
            }
            if inner {
                // Only an inner attribute before any item gates the whole file.
                let before = self.code[..hash].trim_end();
                if before.is_empty() || before.ends_with(']') {
                    self.all_test = true;
                }
                continue;
            }
            let start = skip_attrs(bytes, close + 1);
            let end = item_end(bytes, start);
            if let Some(name) = mod_decl(&self.code[start..end]) {
                self.test_mods.push(name.to_string());
            }
            self.test_spans.push(hash..end);
        }
    }
}

/// `cfg(test)` or `cfg(all(.., test, ..))`: code that exists only in test builds. `any(test, ..)`
/// and `not(test)` are also compiled outside tests, so they stay product code.
fn is_test_cfg(attr: &str) -> bool {
    let attr: String = attr.chars().filter(|c| !c.is_whitespace()).collect();
    if attr == "cfg(test)" {
        return true;
    }
    let Some(args) = attr
        .strip_prefix("cfg(all(")
        .and_then(|a| a.strip_suffix("))"))
    else {
        return false;
    };
    let mut depth = 0;
    let mut arg_start = 0;
    for (k, c) in args.char_indices().chain([(args.len(), ',')]) {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                if &args[arg_start..k] == "test" {
                    return true;
                }
                arg_start = k + 1;
            }
            _ => {}
        }
    }
    false
}

/// Words that start an item whose body is a brace block or ends in `;`: commas at depth 0
/// (generics, where clauses) do not end it, as they end a field, variant or match arm.
const ITEM_WORDS: &[&str] = &[
    "mod",
    "fn",
    "impl",
    "struct",
    "enum",
    "union",
    "use",
    "const",
    "static",
    "type",
    "trait",
    "macro_rules",
    "pub",
    "unsafe",
    "async",
    "extern",
];

/// The end (exclusive) of the item, statement, field or arm that starts at `start`.
fn item_end(bytes: &[u8], start: usize) -> usize {
    let word: String = bytes[start..]
        .iter()
        .take_while(|b| is_ident(**b))
        .map(|&b| char::from(b))
        .collect();
    let statement = word == "let";
    let item = ITEM_WORDS.contains(&word.as_str());
    let mut stack = Vec::new();
    for (j, &b) in bytes.iter().enumerate().skip(start) {
        match b {
            b'(' | b'[' | b'{' => stack.push(b),
            b')' | b']' | b'}' => {
                if stack.pop().is_none() {
                    // The enclosing block closed: the gated thing was its last part.
                    return j;
                }
                if b == b'}' && stack.is_empty() && !statement {
                    return j + 1;
                }
            }
            b';' if stack.is_empty() => return j + 1,
            b',' if stack.is_empty() && !item => return j + 1,
            _ => {}
        }
    }
    bytes.len()
}

/// `mod name;` (with any visibility): the name of a submodule kept in its own file.
fn mod_decl(item: &str) -> Option<&str> {
    let mut rest = item.trim();
    if let Some(r) = rest.strip_prefix("pub") {
        rest = r.trim_start();
        if rest.starts_with('(') {
            rest = &rest[rest.find(')')? + 1..];
        }
    }
    let rest = rest.trim_start().strip_prefix("mod")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let name = rest.trim_start().strip_suffix(';')?.trim_end();
    name.bytes().all(is_ident).then_some(name)
}

/// Skips whitespace and outer attributes to the first token of the item they belong to.
fn skip_attrs(bytes: &[u8], mut i: usize) -> usize {
    loop {
        i = skip_ws(bytes, i);
        if bytes.get(i) != Some(&b'#') {
            return i;
        }
        let j = skip_ws(bytes, i + 1);
        match (bytes.get(j), matching(bytes, j)) {
            (Some(b'['), Some(close)) => i = close + 1,
            _ => return i,
        }
    }
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The offset of the bracket closing the one at `open`, in masked code.
fn matching(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

pub fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Blanks comments and the contents of string, raw string and char literals (quotes kept).
fn mask(src: &[u8]) -> Vec<u8> {
    let mut out = src.to_vec();
    let mut blank = |r: Range<usize>| {
        for b in &mut out[r] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let n = src.len();
    let mut i = 0;
    while i < n {
        let next = src.get(i + 1).copied();
        match src[i] {
            b'/' if next == Some(b'/') => {
                let end = src[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(n, |p| i + p);
                blank(i..end);
                i = end;
            }
            b'/' if next == Some(b'*') => {
                let end = block_comment_end(src, i);
                blank(i..end);
                i = end;
            }
            b'"' => {
                let end = string_end(src, i + 1);
                blank(i + 1..end.saturating_sub(1).max(i + 1));
                i = end;
            }
            b'\'' => match char_end(src, i) {
                Some(end) => {
                    blank(i + 1..end - 1);
                    i = end;
                }
                None => i += 1,
            },
            b'r' | b'b' | b'c' if i == 0 || !is_ident(src[i - 1]) => match raw_string(src, i) {
                Some((content, end)) => {
                    blank(content);
                    i = end;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    out
}

/// Block comments nest in Rust.
fn block_comment_end(src: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut j = start;
    while j < src.len() {
        if src[j..].starts_with(b"/*") {
            depth += 1;
            j += 2;
        } else if src[j..].starts_with(b"*/") {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    src.len()
}

/// The offset after the closing quote of a string whose contents start at `from`.
fn string_end(src: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < src.len() {
        match src[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    src.len()
}

/// The offset after a char literal starting at `start`, or `None` for a lifetime or label.
fn char_end(src: &[u8], start: usize) -> Option<usize> {
    let first = *src.get(start + 1)?;
    if first == b'\\' {
        // '\n', '\'', '\x7f', '\u{1F600}': the closing quote follows within a few bytes.
        let from = start + 3;
        let close = src.get(from..)?.iter().take(10).position(|&b| b == b'\'')?;
        return Some(from + close + 1);
    }
    let len = match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    (src.get(start + 1 + len) == Some(&b'\'')).then_some(start + 2 + len)
}

/// `r"..."`, `r#"..."#`, `br"..."`, `cr"..."`: the contents' range and the end of the literal.
fn raw_string(src: &[u8], start: usize) -> Option<(Range<usize>, usize)> {
    let r = match src[start] {
        b'r' => start,
        _ if src.get(start + 1) == Some(&b'r') => start + 1,
        _ => return None,
    };
    let hashes = src[r + 1..].iter().take_while(|&&b| b == b'#').count();
    let open = r + 1 + hashes;
    if src.get(open) != Some(&b'"') {
        return None;
    }
    let mut closing = vec![b'"'];
    closing.extend(std::iter::repeat_n(b'#', hashes));
    let from = open + 1;
    let close = src[from..]
        .windows(closing.len())
        .position(|w| w == closing.as_slice())
        .map_or(src.len(), |p| from + p);
    Some((from..close, (close + closing.len()).min(src.len())))
}
