//! One nf_tables transaction being built: the messages, and for each a label
//! saying what it does, so a refusal names the message the kernel rejected
//! ("delete 203.0.113.7 from sshd-v4") instead of a bare errno.
//!
//! Messages are numbered by their index here; the socket shifts them into
//! its own sequence and wraps them in batch begin / end when sending. That
//! lets rustables' finalized bytes and our element messages share one
//! atomic transaction.

use super::wire::{spans, Writer, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END};

#[derive(Default)]
pub struct Transaction {
    w: Writer,
    labels: Vec<String>,
}

impl Transaction {
    pub fn new() -> Self {
        Transaction::default()
    }

    /// Messages written by `build` all get `label`. Returns their indexes.
    pub fn push(
        &mut self,
        label: impl Into<String>,
        build: impl FnOnce(&mut Writer),
    ) -> std::ops::Range<usize> {
        let first = self.labels.len();
        build(&mut self.w);
        let label = label.into();
        self.labels.resize(self.w.seq as usize, label);
        first..self.labels.len()
    }

    /// Appends the messages of a finalized rustables batch, without its own
    /// batch begin / end.
    pub fn splice(&mut self, finalized: &[u8], label: impl Into<String>) {
        let label = label.into();
        for span in spans(finalized) {
            let msg = &finalized[span];
            let ty = u16::from_ne_bytes([msg[4], msg[5]]);
            if ty == NFNL_MSG_BATCH_BEGIN || ty == NFNL_MSG_BATCH_END {
                continue;
            }
            let start = self.w.buf.len();
            self.w.buf.extend_from_slice(msg);
            self.w.buf[start + 8..start + 12].copy_from_slice(&self.w.seq.to_ne_bytes());
            // The length in the header stays; the padding is ours to add.
            self.w.buf.resize(start + super::wire::align4(msg.len()), 0);
            self.w.seq += 1;
            self.labels.push(label.clone());
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The messages, numbered 0.. in their sequence fields.
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    /// What message `index` does.
    pub fn label(&self, index: usize) -> &str {
        self.labels.get(index).map_or("an unknown message", |s| s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::messages;
    use super::*;

    #[test]
    fn labels_follow_messages_and_spliced_batches_lose_their_markers() {
        let mut tx = Transaction::new();
        let r = tx.push("two sets", |w| {
            for _ in 0..2 {
                w.begin_nft(9, 0);
                w.end();
            }
        });
        assert_eq!(r, 0..2);
        let mut foreign = Writer::with_seq(100);
        foreign.batch_begin();
        foreign.begin_nft(6, 0);
        foreign.attr_str(1, "x"); // 6 bytes: the message needs padding
        foreign.end();
        foreign.batch_end();
        tx.splice(&foreign.buf, "a rule");
        assert_eq!(tx.len(), 3);
        assert_eq!(tx.label(1), "two sets");
        assert_eq!(tx.label(2), "a rule");
        assert_eq!(tx.label(9), "an unknown message");
        let seqs: Vec<u32> = messages(tx.bytes()).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(tx.bytes().len() % 4, 0);
    }
}
