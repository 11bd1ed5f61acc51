//! A file's reading and the judging of its lines on two threads: the
//! reading thread reads, searches each read for the lines worth judging
//! (the gate) and splits them out; the judging thread runs the filters and
//! hands failures to the tracker. A backlog (a restart, a rotation, a
//! burst) is then worked through by two cores at once, each step in order.
//!
//! The [`Relay`] is the [`Sink`] the file source pushes into: it copies
//! what it is told into a [`Chunk`], in order, and the judging thread tells
//! a [`LineStage`] the same, so the stage sees what it would have seen on
//! the reading thread: the same lines, the same counts, the same marks
//! after the same lines. Failures still never reach the tracker before
//! the mark that covers them.

use std::mem;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::error;

use super::routes::{Routes, SharedRoutes};
use super::stage::{literal_gate, LineStage};
use crate::message::ReadMark;
use crate::source::{liveness, Line, LineGate, Sink};

/// Chunks on their way to the judging thread at most: the reading thread
/// waits when the judging one is this far behind, so what is held between
/// them stays small.
const QUEUED: usize = 4;

/// Bytes of lines a chunk gathers over the reads of a backlog before it
/// leaves: each hand-off may wake the judging thread, which a backlog read
/// in small pieces would otherwise pay for at every read. The end of a
/// burst ([`Sink::read_to`], [`Sink::caught_up`]) sends what is held at once.
const SEND_AT: usize = 64 << 10;

/// Lines a chunk gathers before it leaves, whatever their length.
const SEND_LINES: usize = 1024;

/// What one thread tells the other, in order: lines, and what came
/// between them. Lines are only their ends (a flood is nearly all lines:
/// each costs a number, not a step); the rest is a step placed by how
/// many lines came before it.
#[derive(Default)]
struct Chunk {
    /// The lines, end to end.
    text: String,
    /// Where each line ends in `text`.
    ends: Vec<usize>,
    /// Each with the number of lines before it.
    steps: Vec<(usize, Step)>,
}

enum Step {
    Passed(u64),
    ReadOn(ReadMark),
    ReadTo(ReadMark),
    CaughtUp,
}

impl Chunk {
    fn is_empty(&self) -> bool {
        self.ends.is_empty() && self.steps.is_empty()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.steps.clear();
    }
}

/// The reading thread's sink: see the module's documentation.
pub(super) struct Relay {
    tx: SyncSender<Chunk>,
    /// Chunks the judging thread is done with, to fill again.
    spent: Receiver<Chunk>,
    chunk: Chunk,
    routes: SharedRoutes,
    current: Arc<Routes>,
    gate: Option<Arc<dyn LineGate>>,
    counts_passed: bool,
    /// The judging thread is gone (it panicked): said once.
    lost: bool,
}

/// Starts the judging thread for `stage`, named `name`; returns the sink
/// the file source pushes into and the thread, which ends once the sink is
/// dropped and everything sent was judged.
pub(super) fn relay(
    name: String,
    stage: LineStage,
) -> Result<(Relay, JoinHandle<()>), std::io::Error> {
    let (tx, rx) = sync_channel::<Chunk>(QUEUED);
    let (back, spent) = sync_channel::<Chunk>(QUEUED + 1);
    let routes = stage.shared_routes();
    let current = routes.load_full();
    let relay = Relay {
        tx,
        spent,
        chunk: Chunk::default(),
        gate: literal_gate(&current),
        current,
        routes,
        counts_passed: stage.counts_passed(),
        lost: false,
    };
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || judge(&rx, &back, stage))?;
    Ok((relay, thread))
}

/// The judging thread: each chunk's lines and steps told to `stage` in order.
/// It marks when it waits and when it works, as a reading thread does
/// (see [`liveness`]): a judging thread wedged on a line is seen by the
/// service watchdog even while its file is quiet.
fn judge(rx: &Receiver<Chunk>, back: &SyncSender<Chunk>, mut stage: LineStage) {
    loop {
        liveness::waiting();
        let Ok(mut chunk) = rx.recv() else {
            return;
        };
        liveness::woke();
        let mut line = 0;
        let mut start = 0;
        let mut lines_to = |stage: &mut LineStage, to: usize| {
            for &end in chunk.ends.get(line..to).unwrap_or_default() {
                if let Some(text) = chunk.text.get(start..end) {
                    stage.line(&Line::plain(text));
                }
                start = end;
            }
            line = line.max(to);
        };
        for (before, step) in chunk.steps.drain(..) {
            lines_to(&mut stage, before);
            match step {
                Step::Passed(n) => stage.passed(n),
                Step::ReadOn(mark) => stage.read_on(mark),
                Step::ReadTo(mark) => stage.read_to(mark),
                Step::CaughtUp => stage.caught_up(),
            }
        }
        lines_to(&mut stage, chunk.ends.len());
        chunk.clear();
        // Filled again by the reader, unless it grew past the usual (a
        // flood of long lines): what a quiet daemon holds stays small. The
        // reader may also have enough spare chunks: then it is dropped.
        if chunk.text.capacity() <= 2 * SEND_AT {
            let _ = back.try_send(chunk);
        }
    }
}

impl Relay {
    fn send(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let fresh = self.spent.try_recv().unwrap_or_default();
        let chunk = mem::replace(&mut self.chunk, fresh);
        if self.tx.send(chunk).is_err() && !self.lost {
            self.lost = true;
            error!("the thread judging this file's lines is gone: its lines are not judged");
        }
    }

    fn step(&mut self, step: Step) {
        self.chunk.steps.push((self.chunk.ends.len(), step));
    }
}

impl Sink for Relay {
    fn line(&mut self, line: &Line<'_>) -> bool {
        // A file's line: its text is all there is to it (no time of its
        // own, nothing to route by but the text).
        self.chunk.text.push_str(line.text);
        self.chunk.ends.push(self.chunk.text.len());
        true
    }

    fn caught_up(&mut self) {
        self.step(Step::CaughtUp);
        self.send();
    }

    fn read_to(&mut self, mark: ReadMark) {
        self.step(Step::ReadTo(mark));
        self.send();
    }

    fn read_on(&mut self, mark: ReadMark) {
        self.step(Step::ReadOn(mark));
        if self.chunk.text.len() >= SEND_AT || self.chunk.ends.len() >= SEND_LINES {
            self.send();
        }
    }

    fn gate(&mut self) -> Option<Arc<dyn LineGate>> {
        // As the stage would: the routes as they are at this read.
        let now = self.routes.load();
        if !Arc::ptr_eq(&now, &self.current) {
            self.current = arc_swap::Guard::into_inner(now);
            self.gate = literal_gate(&self.current);
        }
        self.gate.clone()
    }

    fn passed(&mut self, lines: u64) {
        self.step(Step::Passed(lines));
    }

    fn counts_passed(&self) -> bool {
        self.counts_passed
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // What was read and not yet sent is judged too.
        self.send();
    }
}
