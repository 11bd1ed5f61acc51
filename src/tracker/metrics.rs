//! The tracker's side of the metrics, reported once per batch of
//! failures: what it counted since, per jail, and how many addresses it
//! tracks.

use super::Tracker;

impl Tracker {
    /// Reports the failures counted since the last call and the number of
    /// tracked addresses. The tracker's own totals are the source, so
    /// counting a failure costs nothing more.
    pub fn publish(&mut self) {
        if crate::metrics::get().is_none() {
            return;
        }
        self.published.resize(self.counts.len(), 0);
        for (id, (counts, published)) in self.counts.iter().zip(&mut self.published).enumerate() {
            let new = counts.total.saturating_sub(*published);
            *published = counts.total;
            if let (true, Some(Some(jail))) = (new > 0, self.jails.get(id)) {
                crate::metrics::failures(&jail.name, new);
            }
        }
        crate::metrics::tracked(self.tracked());
    }
}
