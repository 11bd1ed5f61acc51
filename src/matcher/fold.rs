//! The matcher as the judge of fail2ban filter files compiled into it
//! (see [`crate::filter::fail2ban::Fail2banFilter::fold`]).

use super::Matcher;
use crate::filter::fail2ban::{FoldedHit, FoldedJudge};

/// fail2ban filter files compiled into a matcher of their own (see
/// [`crate::filter::fail2ban::FoldedJudge`]): the text is a line without
/// its date, and a jail is a folded filter's number.
impl FoldedJudge for Matcher {
    fn judge(&self, text: &str, hit: &mut dyn FnMut(usize, FoldedHit<'_>)) {
        self.first_hits(text, true, |p, h, user| {
            // fail2ban: a line an ignoreregex matches is no failure.
            if self.ignored_by(p.slot, text).next().is_some() {
                return;
            }
            let Some(host) = text.get(h.host.range()) else {
                return;
            };
            let found = FoldedHit {
                regex: p.index,
                host,
                addr: h.addr,
                user,
                unsure: h.unsure,
            };
            hit(self.jails[p.slot].0, found);
        });
    }
}
