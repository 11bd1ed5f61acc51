//! Which of the control socket's connections a newcomer may push out.
//!
//! A peer that has not finished sending a request is only waiting. When every
//! slot is taken, or the process is out of descriptors, the peer that has
//! waited longest is dropped, so a new request (`status`, `ban`) is served at
//! once rather than queued behind peers that say nothing. A peer whose request
//! is being executed is never pushed out: dropping it half-way through a
//! reload or a ban would leave the work undone or unanswered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

#[derive(Default)]
struct Table {
    /// Connections numbered in accept order, so the smallest is the oldest.
    next: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// The shared table of the server's connections.
#[derive(Clone, Default)]
pub(super) struct Peers(Arc<Mutex<Table>>);

/// One connection's entry; leaving the table on drop.
pub(super) struct Peer {
    peers: Peers,
    id: u64,
}

impl Peers {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it: each
        // operation is a single map insert or remove.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A newly accepted connection, younger than every one before it.
    pub(super) fn join(&self) -> Peer {
        let mut table = self.table();
        let id = table.next;
        table.next += 1;
        Peer {
            peers: self.clone(),
            id,
        }
    }

    /// Tells the longest-waiting peer to go; false when none is waiting.
    pub(super) fn push_out_oldest(&self) -> bool {
        let Some((_, tell)) = self.table().waiting.pop_first() else {
            return false;
        };
        // A peer that already stopped listening is leaving anyway (it read a
        // request and will find itself gone, or it is closing).
        let _ = tell.send(());
        true
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.table().waiting.len()
    }
}

impl Peer {
    /// Marks the peer as waiting for its next request; the receiver fires
    /// when a newcomer pushes it out.
    pub(super) fn waiting(&self) -> oneshot::Receiver<()> {
        let (tell, told) = oneshot::channel();
        self.peers.table().waiting.insert(self.id, tell);
        told
    }

    /// Marks the peer as busy with a request it sent; false when it was
    /// pushed out meanwhile (it must then close without executing it).
    pub(super) fn busy(&self) -> bool {
        self.peers.table().waiting.remove(&self.id).is_some()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.peers.table().waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_peer_goes_first_and_busy_ones_stay() {
        let peers = Peers::default();
        let (old, busy, young) = (peers.join(), peers.join(), peers.join());
        let mut young_told = young.waiting();
        let mut busy_told = busy.waiting();
        assert!(busy.busy());
        let mut old_told = old.waiting();
        assert_eq!(peers.waiting(), 2);

        assert!(peers.push_out_oldest());
        assert!(
            old_told.try_recv().is_ok(),
            "the oldest waiting peer is told"
        );
        assert!(!old.busy(), "a pushed-out peer finds itself gone");
        assert!(young_told.try_recv().is_err(), "a younger one stays");
        assert!(busy_told.try_recv().is_err(), "a busy one stays");

        assert!(peers.push_out_oldest());
        assert!(young_told.try_recv().is_ok());
        assert!(!peers.push_out_oldest(), "only the busy one is left");
    }

    #[test]
    fn a_closed_peer_leaves_the_table() {
        let peers = Peers::default();
        let peer = peers.join();
        let _told = peer.waiting();
        drop(peer);
        assert_eq!(peers.waiting(), 0);
        assert!(!peers.push_out_oldest());
    }
}
