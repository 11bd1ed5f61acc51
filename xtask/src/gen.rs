//! A deterministic mail-server log: Postfix, Dovecot and sshd traffic with a
//! chosen share of SASL failures from a chosen number of attackers. Same
//! arguments, same bytes, so every tool in a benchmark reads the same input.

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};

pub struct Spec {
    pub lines: usize,
    /// Share of lines that are SASL failures (0.05 = 5%).
    pub attack: f64,
    pub attackers: u32,
    /// Share of attackers with an IPv6 address.
    pub v6: f64,
    pub seed: u64,
    /// Syslog day of the lines ("Nov 25") and the second of that day of the
    /// first line: the daemon counts a line at its own time, so benchmarks
    /// write logs that end about now (see [`ending_now`]).
    pub day: String,
    pub first_second: u32,
}

/// Lines written at 2,000 per second.
const LINES_PER_SECOND: usize = 2000;

/// (day, first second) for `lines` lines that end now in local time, so no
/// line is older than a benchmark's findtime. Same arguments within a second,
/// same bytes.
pub fn ending_now(lines: usize) -> (String, u32) {
    let now = jiff::ZonedDateTime::now();
    let second = now.hour() as u32 * 3600 + now.minute() as u32 * 60 + now.second() as u32;
    let span = (lines / LINES_PER_SECOND) as u32;
    (
        now.strftime("%b %e").to_string(),
        second.saturating_sub(span),
    )
}

/// xorshift64*: tiny, fast, deterministic; statistical quality is irrelevant here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Attacker number `i` → its address (TEST-NET-3 / 2001:db8::/32 based, but
/// spread over many /24s so the set is realistic).
pub fn attacker(i: u32, v6: bool) -> String {
    if v6 {
        format!("2001:db8:{:x}::{:x}", i >> 16, i & 0xffff)
    } else {
        format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
    }
}

const USERS: &[&str] = &["alice", "bob", "carol", "dave", "info", "sales", "admin"];

pub fn generate(spec: &Spec) -> String {
    let mut rng = Rng(spec.seed | 1);
    let mut out = String::with_capacity(spec.lines * 130);
    let mut next_attacker = 0u32;
    for n in 0..spec.lines {
        let secs = (spec.first_second as usize + n / LINES_PER_SECOND).min(86_399);
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let ts = format!("{} {h:02}:{m:02}:{s:02} mx1", spec.day);
        let pid = 1000 + rng.below(30000);
        let client = format!("192.168.{}.{}", rng.below(256), rng.below(254) + 1);
        if rng.chance(spec.attack) {
            // Each attacker in turn, so every one of them reaches maxretry.
            let i = next_attacker % spec.attackers.max(1);
            next_attacker += 1;
            let v6 = (i as f64) < spec.v6 * spec.attackers as f64;
            let mech = ["LOGIN", "PLAIN", "CRAM-MD5"][rng.below(3) as usize];
            let svc = ["submission/smtpd", "smtpd", "smtps/smtpd"][rng.below(3) as usize];
            let _ = writeln!(
                out,
                "{ts} postfix/{svc}[{pid}]: warning: unknown[{}]: SASL {mech} authentication failed: authentication failure",
                attacker(i, v6)
            );
            continue;
        }
        let user = USERS[rng.below(USERS.len() as u64) as usize];
        let qid = format!("{:010X}", rng.next() & 0xff_ffff_ffff);
        let _ = match rng.below(8) {
            0 => writeln!(out, "{ts} postfix/submission/smtpd[{pid}]: connect from mail.example.net[{client}]"),
            1 => writeln!(out, "{ts} postfix/submission/smtpd[{pid}]: disconnect from mail.example.net[{client}] ehlo=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6"),
            2 => writeln!(out, "{ts} postfix/qmgr[{pid}]: {qid}: from=<{user}@example.org>, size={}, nrcpt=1 (queue active)", rng.below(90000) + 500),
            3 => writeln!(out, "{ts} postfix/smtp[{pid}]: {qid}: to=<{user}@example.com>, relay=mx.example.com[198.51.100.25]:25, delay=0.{}, delays=0.1/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)", rng.below(99)),
            4 => writeln!(out, "{ts} dovecot: imap-login: Login: user=<{user}@example.org>, method=PLAIN, rip={client}, lip=192.0.2.10, mpid={pid}, TLS, session=<abc{pid}>"),
            5 => writeln!(out, "{ts} postfix/submission/smtpd[{pid}]: {qid}: client=mail.example.net[{client}], sasl_method=PLAIN, sasl_username={user}@example.org"),
            6 => writeln!(out, "{ts} sshd[{pid}]: Accepted publickey for {user} from {client} port {} ssh2: ED25519 SHA256:Zm9vYmFy", rng.below(60000) + 1024),
            _ => writeln!(out, "{ts} postfix/cleanup[{pid}]: {qid}: message-id=<{qid}@example.org>"),
        };
    }
    out
}

/// `cargo xtask gen`: the generator on its own, for trying a filter or a
/// daemon on the benchmarks' input (or a variation of it) by hand.
pub fn cli(args: &[&str]) -> Result<()> {
    let mut lines = 100_000usize;
    let mut attack = 0.05f64;
    let mut attackers = 5_000u32;
    let mut v6 = 0.2f64;
    let mut seed = 42u64;
    let mut out: Option<&str> = None;
    let mut it = args.iter();
    while let Some(&flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag} {value}: not a valid value");
        match flag {
            "--lines" => lines = value.parse().with_context(bad)?,
            "--attack" => attack = value.parse().with_context(bad)?,
            "--attackers" => attackers = value.parse().with_context(bad)?,
            "--v6" => v6 = value.parse().with_context(bad)?,
            "--seed" => seed = value.parse().with_context(bad)?,
            "-o" | "--out" => out = Some(value),
            _ => bail!(
                "unknown option {flag}; options: --lines N, --attack SHARE, --attackers N, --v6 SHARE, --seed N, -o FILE"
            ),
        }
    }
    if !(0.0..=1.0).contains(&attack) || !(0.0..=1.0).contains(&v6) {
        bail!("--attack and --v6 are shares between 0 and 1");
    }
    let (day, first_second) = ending_now(lines);
    let text = generate(&Spec {
        lines,
        attack,
        attackers,
        v6,
        seed,
        day,
        first_second,
    });
    match out {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {path}"))?,
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> Spec {
        Spec {
            lines: 20_000,
            attack: 0.1,
            attackers: 50,
            v6: 0.2,
            seed,
            day: "Nov 25".into(),
            first_second: 3600,
        }
    }

    #[test]
    fn same_arguments_same_bytes_and_the_shares_asked_for() {
        let text = generate(&spec(7));
        assert_eq!(text, generate(&spec(7)));
        assert_ne!(text, generate(&spec(8)));
        assert_eq!(text.lines().count(), 20_000);
        let attacks: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("SASL") && l.contains("authentication failed"))
            .collect();
        // 10% ± a little (each line is a coin toss).
        assert!((1_800..2_200).contains(&attacks.len()), "{}", attacks.len());
        let distinct: std::collections::BTreeSet<&str> = attacks
            .iter()
            .filter_map(|l| l.split("unknown[").nth(1)?.split(']').next())
            .collect();
        assert_eq!(distinct.len(), 50);
        // Attackers 0..10 of 50 (20%) are IPv6.
        assert_eq!(distinct.iter().filter(|a| a.contains(':')).count(), 10);
        assert!(text.starts_with("Nov 25 01:00:00 mx1 "));
    }
}
