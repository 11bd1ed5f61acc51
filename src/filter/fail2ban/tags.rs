//! fail2ban's regex tags (`<HOST>`, `<ADDR>`, `<F-USER>...</F-USER>`, ...)
//! expanded to named groups, so the matcher can tell which text is the
//! address, the user or another failure field.

/// IPv4, optionally IPv4-mapped (`::ffff:1.2.3.4`) with the prefix left
/// out of the group.
const IP4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
/// IPv6 as fail2ban spots it: colon-separated hex groups; the last part is
/// a hex group or the second colon of a trailing `::`.
const IP6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
const DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const CIDR: &str = r"(?P<cidr>\d+)";

fn addr() -> String {
    format!(r"\[?(?:{IP4}|{IP6})\]?")
}

fn host(use_dns: bool) -> String {
    if use_dns {
        format!("(?:{}|{DNS})", addr())
    } else {
        addr()
    }
}

fn subnet() -> String {
    format!(r"\[?(?:{IP4}|{IP6})(?:/{CIDR})?\]?")
}

/// Short F- names fail2ban maps to its historic group names.
fn group_name(tag: &str) -> String {
    match tag.to_lowercase().as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        other => other.to_string(),
    }
}

fn fixed(tag: &str, use_dns: bool) -> Option<String> {
    Some(match tag {
        "HOST" => host(use_dns),
        "IP4" | "F-IP4/" => IP4.to_string(),
        "IP6" | "F-IP6/" => IP6.to_string(),
        "ADDR" | "F-ADDR/" => addr(),
        "CIDR" | "F-CIDR/" => CIDR.to_string(),
        "SUBNET" | "F-SUBNET/" => subnet(),
        "DNS" | "F-DNS/" => DNS.to_string(),
        "F-ID/" => r"(?P<fid>\S+)".to_string(),
        "F-PORT/" => r"(?P<fport>\w+)".to_string(),
        _ => return None,
    })
}

/// Expands every tag of the form `</?[\w-]+/?>` that fail2ban knows;
/// others stay as literal text. `<SKIPLINES>` becomes a lazy run of whole
/// lines (used with `maxlines`).
pub fn expand(regex: &str, use_dns: bool) -> String {
    let mut out = String::with_capacity(regex.len() * 2);
    let mut open: Vec<String> = Vec::new();
    let mut skiplines = 0;
    let mut rest = regex;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        let Some(tag_len) = tag_at(rest) else {
            out.push('<');
            rest = &rest[1..];
            continue;
        };
        let tag = &rest[..tag_len];
        let name = &tag[1..tag.len() - 1];
        rest = &rest[tag_len..];
        if let Some(text) = fixed(name, use_dns) {
            out.push_str(&text);
        } else if name == "SKIPLINES" {
            out.push_str(&format!(r"\n(?P<skiplines{skiplines}>(?:(?:.*\n)*?))"));
            skiplines += 1;
        } else if let Some(custom) = custom_name(name) {
            match custom {
                (true, n) if open.iter().any(|o| o == n) => out.push(')'),
                (true, _) => out.push_str(tag),
                (false, n) => {
                    open.push(n.to_string());
                    out.push_str(&format!("(?P<{}>", group_name(n)));
                }
            }
        } else {
            out.push_str(tag);
        }
    }
    out.push_str(rest);
    out
}

/// Length of a `</?[\w-]+/?>` tag at the start of `s`.
fn tag_at(s: &str) -> Option<usize> {
    let body = &s[1..];
    let (slash, body) = match body.strip_prefix('/') {
        Some(rest) => (1, rest),
        None => (0, body),
    };
    let word = body
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(body.len());
    if word == 0 {
        return None;
    }
    let after = &body[word..];
    let (close, after) = match after.strip_prefix('/') {
        Some(rest) => (1, rest),
        None => (0, after),
    };
    after.starts_with('>').then_some(slash + word + close + 2)
}

/// `F-NAME` or `/F-NAME` with an upper-case name: (closing?, NAME).
fn custom_name(name: &str) -> Option<(bool, &str)> {
    let (closing, n) = match name.strip_prefix('/') {
        Some(n) => (true, n),
        None => (false, name),
    };
    let n = n.strip_prefix("F-")?;
    (!n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-'))
    .then_some((closing, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_user_and_unknown_tags() {
        let r = expand("user <F-USER>x</F-USER> from <HOST> <foo> </F-BAR>", true);
        assert!(r.contains("(?P<user>x)"));
        assert!(r.contains("(?P<ip4>"));
        assert!(r.contains("(?P<dns>"));
        assert!(r.ends_with("<foo> </F-BAR>"));
    }

    #[test]
    fn id_maps_to_fid_and_host_without_dns() {
        let r = expand("<F-ID>a</F-ID> <HOST>", false);
        assert!(r.starts_with("(?P<fid>a)"));
        assert!(!r.contains("dns"));
    }

    #[test]
    fn ip6_forms_match() {
        let re = regex::Regex::new(&format!("^{}$", addr())).unwrap();
        for ok in [
            "::1",
            "2001:db8::1",
            "[2001:db8::]",
            "fe80::",
            "1.2.3.4",
            "::ffff:1.2.3.4",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        assert!(!re.is_match("host.example"));
    }
}
