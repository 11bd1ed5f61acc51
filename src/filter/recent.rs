//! How often the lines that reach a regex have matched it lately. The
//! built-in matcher and the fail2ban engine both choose by it between the
//! capturing backtracker alone (cheaper on a line that matches) and the
//! lazy DFA first (which rules out a line that does not sooner).

/// Recent lines that reached a regex, and how many of them matched;
/// halved now and then so the choice follows the traffic.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recent {
    tried: u32,
    matched: u32,
}

impl Recent {
    /// Counts one more line about to be tried, and says whether about half
    /// or more of the recent ones matched: then the backtracker alone is
    /// the cheaper way.
    pub fn try_line(&mut self) -> bool {
        if self.tried >= 1024 {
            self.tried /= 2;
            self.matched /= 2;
        }
        self.tried += 1;
        self.matched * 2 >= self.tried - 1
    }

    /// What the line counted by [`Recent::try_line`] came to.
    pub fn record(&mut self, matched: bool) {
        self.matched += u32::from(matched);
    }

    /// Three in four recent lines matched: a flood.
    pub fn flooding(&self) -> bool {
        self.matched * 4 >= self.tried * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_traffic() {
        let mut r = Recent::default();
        assert!(r.try_line(), "a first line goes the backtracker's way");
        r.record(false);
        for _ in 0..10 {
            r.try_line();
            r.record(false);
        }
        assert!(!r.try_line() && !r.flooding());
        r.record(false);
        for _ in 0..3000 {
            r.try_line();
            r.record(true);
        }
        assert!(r.try_line() && r.flooding());
    }
}
