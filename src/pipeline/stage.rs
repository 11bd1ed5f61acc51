//! A reader's line stage: the [`Sink`] every source pushes into. It picks
//! the routes a line belongs to, runs their filters ([`super::scan`]) and
//! batches what matched into [`Failure`]s for the tracker.

use std::cell::Cell;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tracing::info;

use super::aliases;
use super::routes::{Route, Routes, SharedRoutes};
use super::scan::ReaderFilters;
use crate::message::{Failure, FailureBatch, JailId, ReadMark, SharedLine};
use crate::metrics::SourceCounters;
use crate::source::journal::JournalMatch;
use crate::source::{Line, LineGate, Sink};

/// Most failures a reader holds before handing them to the tracker. A
/// source that marks how far it read is told when the batch is full
/// ([`Sink::full`]) and marks then (the journal), or is bounded by its reads
/// (a file's 128 KiB, or a few of them in a row in a backlog): its batch
/// leaves with a mark, never without one.
pub const FLUSH_AT: usize = 1024;

/// Most bytes of lines a reader holds before handing them over: a flood of
/// long lines flushes sooner, so a batch's buffer stays small.
const FLUSH_TEXT_AT: usize = 256 << 10;

/// Most reads in a row a backlog's batch is held for (see [`Sink::read_on`]).
const HOLD_READS: u32 = 8;

/// One reader's stage, with its own per-route state, rebuilt when a reload
/// swaps the source's routes.
pub(super) struct LineStage {
    routes: SharedRoutes,
    current: Arc<Routes>,
    filters: Vec<ReaderFilters>,
    batch: Batch,
    counts: LineCounts,
    clock: Clock,
    /// The source marks how far it read after each read
    /// ([`Sink::read_to`]): the batch waits for the mark, so no failure
    /// reaches the tracker ahead of the position that includes it.
    marking: bool,
    /// Reads in a row whose mark was held back (see [`Sink::read_on`]).
    held: u32,
    /// A glob's file: it, and the jails that read it through another
    /// logpath, whose failures this stage does not count again.
    alias: Option<(PathBuf, Vec<JailId>)>,
    /// The search a file source may pass lines over with, for the current
    /// routes; None when some line without a literal could hit.
    gate: Option<Arc<dyn LineGate>>,
}

impl LineStage {
    pub(super) fn new(routes: SharedRoutes, tx: mpsc::Sender<FailureBatch>) -> Self {
        let current = routes.load_full();
        let filters = filters_for(&current);
        LineStage {
            routes,
            gate: literal_gate(&current),
            current,
            filters,
            batch: Batch::new(tx),
            counts: LineCounts::default(),
            clock: Clock::default(),
            marking: false,
            held: 0,
            alias: None,
        }
    }

    /// The routes this stage reads by, swapped on reload.
    pub(super) fn shared_routes(&self) -> SharedRoutes {
        Arc::clone(&self.routes)
    }

    /// For a source that marks how far it read (see [`Sink::read_to`]).
    pub(super) fn marking(mut self, marking: bool) -> Self {
        self.marking = marking;
        self
    }

    /// Counts its lines under `source` in the metrics, when they are on.
    pub(super) fn counting(mut self, source: &str) -> Self {
        self.counts.metrics = SourceCounters::new(source);
        self
    }

    /// Another stage for the same routes and tracker (a glob's new file),
    /// counted under the same source.
    pub(super) fn sibling(&self) -> Self {
        let mut stage = LineStage::new(Arc::clone(&self.routes), self.batch.tx.clone());
        stage.counts.metrics = self.counts.metrics.clone();
        stage.marking = self.marking;
        stage
    }

    /// [`LineStage::sibling`] for a glob's file at `file`: the jails
    /// that already read that file through another logpath do not count
    /// its lines again.
    pub(super) fn sibling_for(&self, file: &Path) -> Self {
        let mut stage = self.sibling();
        stage.alias = Some((file.to_path_buf(), Vec::new()));
        stage.find_aliases();
        stage
    }

    /// Which jails read this stage's file elsewhere, by the current routes.
    fn find_aliases(&mut self) {
        let Some((file, skip)) = &mut self.alias else {
            return;
        };
        let found = aliases::read_elsewhere(&self.current.claims, file);
        *skip = found.iter().map(|(id, _)| *id).collect();
        if !found.is_empty() {
            let names: Vec<&str> = found.iter().map(|(_, n)| &**n).collect();
            info!(
                file = %file.display(),
                jails = %names.join(", "),
                "already read by these jails through another of their logpaths: not counted twice"
            );
        }
    }

    /// Hands the batch on, and what was counted with it.
    fn flush(&mut self, read_to: Option<ReadMark>) {
        self.held = 0;
        self.batch.flush(read_to);
        self.counts.report();
        self.clock.forget();
    }

    /// Picks up new routes after a reload; true when they changed.
    fn refresh(&mut self) -> bool {
        // A lock-free load: a reload swaps routes between two lines, never
        // in the middle of one.
        let now = self.routes.load();
        if Arc::ptr_eq(&now, &self.current) {
            return false;
        }
        self.current = arc_swap::Guard::into_inner(now);
        self.filters = filters_for(&self.current);
        self.gate = literal_gate(&self.current);
        self.find_aliases();
        true
    }

    /// The journal matches of the current routes.
    pub(super) fn journal_matches(&self) -> Vec<JournalMatch> {
        self.current.journal_matches()
    }

    /// The journal matches, when a reload changed the routes.
    pub(super) fn journal_reselect(&mut self) -> Option<Vec<JournalMatch>> {
        self.refresh().then(|| self.journal_matches())
    }
}

impl Sink for LineStage {
    fn line(&mut self, line: &Line<'_>) -> bool {
        // Routes are looked at again on the first line of a read (the
        // last batch left) and every `Clock::LINES` lines: a reload takes
        // effect between two lines, and a flood does not pay for the look
        // on every one.
        if self.clock.line() {
            self.refresh();
        }
        let mut routed = false;
        let batch = &mut self.batch;
        // The line is copied once, for its first hit, whatever the route.
        let mut span = None;
        let mut newest = None;
        let clock = &self.clock;
        let skip = self.alias.as_ref().map_or(&[][..], |(_, s)| s.as_slice());
        for ((route, filters), reader) in self.current.routes.iter().zip(&mut self.filters) {
            if !route.takes(&line.origin) {
                continue;
            }
            routed = true;
            reader.scan(
                filters,
                line.text,
                line.time,
                &mut || clock.now().1,
                |jail, addr, time, account| {
                    if skip.contains(&jail) {
                        return;
                    }
                    newest = newest.max(Some(time));
                    batch.push(
                        Failure {
                            jail,
                            addr,
                            time,
                            line: None,
                            read: Some(clock.now().0),
                            account,
                        },
                        line.text,
                        &mut span,
                    );
                },
            );
        }
        self.counts.line(span.is_some(), newest);
        if !self.marking && self.batch.is_full() {
            self.flush(None);
        }
        routed
    }

    fn caught_up(&mut self) {
        self.flush(None);
    }

    fn read_to(&mut self, mark: ReadMark) {
        self.flush(Some(mark));
    }

    fn read_on(&mut self, mark: ReadMark) {
        // Each hand-off wakes the tracker: a backlog read in small pieces
        // would cost one wake-up per read. The next mark covers these
        // lines too; the wait it adds to their bans is a few reads' work.
        self.held += 1;
        if self.held >= HOLD_READS || self.batch.is_full() {
            self.flush(Some(mark));
        } else {
            // As after any read: a line's time is never older than one
            // read's work.
            self.clock.forget();
        }
    }

    fn full(&self) -> bool {
        self.batch.is_full()
    }

    fn gate(&mut self) -> Option<Arc<dyn LineGate>> {
        // A reload takes effect from the next read on.
        self.refresh();
        self.gate.clone()
    }

    fn counts_passed(&self) -> bool {
        // Lines read are a metric only; the clock is let go after every
        // read whether or not the lines passed over are counted.
        self.counts.metrics.is_some()
    }

    fn passed(&mut self, lines: u64) {
        // As if each line had come and hit nothing: counted as read, and
        // the clock's reading serves no more lines than it would have.
        self.counts.read += lines;
        self.clock.lines = self
            .clock
            .lines
            .saturating_add(u32::try_from(lines).unwrap_or(u32::MAX));
    }
}

/// The literals of every jail of a file's routes, as one search: a line
/// that holds none of them can hit no jail there (each route is checked
/// to read every line alike and to be gated by literals), so the file
/// source passes it over without splitting it out.
struct LiteralGate(Arc<Routes>);

/// The gate a file read for `routes` may pass lines over with (see
/// [`LiteralGate`]), if any.
pub(super) fn literal_gate(routes: &Arc<Routes>) -> Option<Arc<dyn LineGate>> {
    let gated = !routes.routes.is_empty()
        && routes
            .routes
            .iter()
            .all(|(route, filters)| matches!(route, Route::All) && filters.gated_by_literals());
    gated.then(|| Arc::new(LiteralGate(Arc::clone(routes))) as Arc<dyn LineGate>)
}

impl LineGate for LiteralGate {
    fn find(&self, text: &[u8], from: usize) -> Option<usize> {
        // The first stop of any route's search.
        self.0
            .routes
            .iter()
            .filter_map(|(_, filters)| filters.find_literal(text, from))
            .min()
    }
}

/// The clock as a reader reads it: once for the lines of one read (or
/// one batch), not once per line, since a flood's lines are read
/// microseconds apart and the clock costs as much as reading a date.
/// Forgotten whenever the batch leaves (the source read to its end, or
/// after each read of a file) and every [`Clock::LINES`] lines, so a
/// line's time is never later than "now" by more than one read's work.
#[derive(Default)]
struct Clock {
    /// In a cell: both the date reader and the batch ask for it per hit.
    at: Cell<Option<(Instant, SystemTime)>>,
    /// Lines since `at` was read.
    lines: u32,
}

impl Clock {
    /// Most lines one reading of the clock serves.
    const LINES: u32 = 256;

    /// Now, as read for the current lines.
    fn now(&self) -> (Instant, SystemTime) {
        match self.at.get() {
            Some(at) => at,
            None => {
                let at = (Instant::now(), SystemTime::now());
                self.at.set(Some(at));
                at
            }
        }
    }

    /// A new line: an old reading is let go. True on the first line
    /// after the clock was let go.
    fn line(&mut self) -> bool {
        if self.lines >= Self::LINES {
            self.forget();
        }
        self.lines += 1;
        self.lines == 1
    }

    fn forget(&mut self) {
        self.at.set(None);
        self.lines = 0;
    }
}

/// A reader's line counts since it last reported: plain integers on the
/// reader's thread, added to the metrics when its batch leaves, so a line
/// costs no atomic operation.
#[derive(Default)]
struct LineCounts {
    read: u64,
    matched: u64,
    /// The time of the newest failure since the last report.
    newest: Option<SystemTime>,
    /// None: metrics are off.
    metrics: Option<SourceCounters>,
}

impl LineCounts {
    fn line(&mut self, matched: bool, newest: Option<SystemTime>) {
        self.read += 1;
        if matched {
            self.matched += 1;
            self.newest = self.newest.max(newest);
        }
    }

    fn report(&mut self) {
        if let Some(m) = &self.metrics {
            m.add(self.read, self.matched, self.newest);
        }
        self.read = 0;
        self.matched = 0;
        self.newest = None;
    }
}

fn filters_for(routes: &Routes) -> Vec<ReaderFilters> {
    routes
        .routes
        .iter()
        .map(|(_, filters)| ReaderFilters::new(filters))
        .collect()
}

/// Failures of a burst, going to the tracker as one message: one wake-up
/// of its task per batch, not per line (the tracker is quicker than a
/// reader, so it would sleep between lines).
struct Batch {
    tx: mpsc::Sender<FailureBatch>,
    pending: Vec<Failure>,
    /// The last mark sent: a mark with no new failure goes on only when
    /// it moved.
    sent: Option<ReadMark>,
    /// The lines of `pending`, end to end: one buffer for the batch (see
    /// [`SharedLine`]), with `spans` saying which failure has which line.
    text: String,
    spans: Vec<(usize, Range<usize>)>,
}

impl Batch {
    fn new(tx: mpsc::Sender<FailureBatch>) -> Self {
        Batch {
            tx,
            pending: Vec::with_capacity(FLUSH_AT),
            sent: None,
            text: String::new(),
            spans: Vec::new(),
        }
    }

    /// Adds `failure`, found in `line`; `span` is where `line` already sits
    /// in the batch's text, if a hit before copied it.
    fn push(&mut self, failure: Failure, line: &str, span: &mut Option<Range<usize>>) {
        let text = &mut self.text;
        let span = span.get_or_insert_with(|| {
            let start = text.len();
            text.push_str(line);
            start..text.len()
        });
        self.spans.push((self.pending.len(), span.clone()));
        self.pending.push(failure);
    }

    fn is_full(&self) -> bool {
        self.pending.len() >= FLUSH_AT || self.text.len() >= FLUSH_TEXT_AT
    }

    /// Hands the pending failures to the tracker, with how far the source
    /// read when it has said so.
    fn flush(&mut self, read_to: Option<ReadMark>) {
        if self.pending.is_empty() && (read_to.is_none() || read_to == self.sent) {
            return;
        }
        if read_to.is_some() {
            self.sent.clone_from(&read_to);
        }
        let buf: Arc<str> = Arc::from(self.text.as_str());
        for (i, range) in self.spans.drain(..) {
            if let Some(f) = self.pending.get_mut(i) {
                f.line = SharedLine::in_buffer(&buf, range);
            }
        }
        self.text.clear();
        if self.text.capacity() > FLUSH_TEXT_AT * 2 {
            self.text.shrink_to(FLUSH_TEXT_AT);
        }
        let failures = if self.pending.is_empty() {
            Vec::new()
        } else {
            std::mem::replace(&mut self.pending, Vec::with_capacity(FLUSH_AT))
        };
        // A closed channel means shutdown; bans already decided are in the
        // kernel.
        let _ = self.tx.blocking_send(FailureBatch { failures, read_to });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::message::{Position, ReadAt};
    use crate::source::file::LineSplitter;

    /// Two jails of our library on one file, as the daemon routes them.
    fn routes() -> SharedRoutes {
        routes_of(
            "[jail.sasl]\nfilter = \"postfix-sasl\"\nlogpath = \"/var/log/t.log\"\n\
             [jail.ssh]\nfilter = \"sshd\"\nlogpath = \"/var/log/t.log\"\n",
        )
    }

    /// The jails of `text` (each on `/var/log/t.log`), as the daemon routes them.
    fn routes_of(text: &str) -> SharedRoutes {
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<usize> = (0..cfg.jails.len()).collect();
        let (mut routes, _) = super::super::routes::plan(&cfg, &ids, None);
        let routes = routes
            .remove(&super::super::routes::SourceKey::File(
                "/var/log/t.log".into(),
            ))
            .unwrap_or_else(|| panic!("no route for the file"));
        Arc::new(arc_swap::ArcSwap::from_pointee(routes))
    }

    /// What the tracker would get from `text` read `size` bytes at a time,
    /// as a file's reads go (the gate asked before each read when `gated`):
    /// each failure's jail, address, line and account, and the lines counted.
    fn read(routes: &SharedRoutes, text: &[u8], size: usize, gated: bool) -> (Vec<String>, u64) {
        let (tx, mut rx) = mpsc::channel(1 << 16);
        let mut stage = LineStage::new(Arc::clone(routes), tx);
        assert!(stage.gate.is_some(), "every jail is gated by literals");
        let mut lines = LineSplitter::new(64 * 1024);
        let mut read = 0;
        for chunk in text.chunks(size) {
            let gate = if gated { stage.gate() } else { None };
            let pushed = match gate {
                Some(g) => lines.push_gated(chunk, &*g, true, &mut |l| {
                    stage.line(&Line::plain(l));
                }),
                None => lines.push(chunk, &mut |l| {
                    stage.line(&Line::plain(l));
                }),
            };
            if pushed.passed > 0 {
                stage.passed(pushed.passed);
            }
            // What the stage counted since its last batch, as the metrics get it.
            read += stage.counts.read;
            stage.caught_up();
        }
        drop(stage);
        let mut got = Vec::new();
        while let Ok(batch) = rx.try_recv() {
            for f in batch.failures {
                got.push(format!(
                    "{} {} {:?} {:?}",
                    f.jail,
                    f.addr,
                    f.line.as_deref(),
                    f.account
                ));
            }
        }
        (got, read)
    }

    /// A backlog's reads hold their batch for a few reads: one hand-off
    /// carries the failures of every read before it with the last mark,
    /// and the end of the burst (`read_to`) hands on what is held at once.
    #[test]
    fn a_backlog_hands_on_one_batch_for_several_reads_with_the_last_mark() {
        let (tx, mut rx) = mpsc::channel(1 << 10);
        let mut stage = LineStage::new(routes(), tx).marking(true);
        let mark = |offset| ReadMark {
            source: Arc::from("/var/log/t.log"),
            at: ReadAt::File(Position {
                offset,
                ..Position::default()
            }),
        };
        let line =
            "Mar  5 16:01:38 mx1 sshd[78]: Failed password for root from 192.0.2.9 port 22 ssh2";
        let mut batches = Vec::new();
        for read in 1..=(2 * HOLD_READS + 3) {
            stage.line(&Line::plain(line));
            stage.read_on(mark(u64::from(read)));
            while let Ok(b) = rx.try_recv() {
                batches.push((read, b));
            }
        }
        stage.read_to(mark(1000));
        while let Ok(b) = rx.try_recv() {
            batches.push((0, b));
        }
        let seen: Vec<(u32, usize, Option<u64>)> = batches
            .iter()
            .map(|(read, b)| {
                let at = b.read_to.as_ref().and_then(|m| match m.at {
                    ReadAt::File(p) => Some(p.offset),
                    ReadAt::Journal(_) => None,
                });
                (*read, b.failures.len(), at)
            })
            .collect();
        let hold = HOLD_READS as usize;
        let h = u64::from(HOLD_READS);
        assert_eq!(
            seen,
            vec![
                (HOLD_READS, hold, Some(h)),
                (2 * HOLD_READS, hold, Some(2 * h)),
                (0, 3, Some(1000)),
            ],
            "batches as (read sent after, failures, mark)"
        );
    }

    /// Through the relay, judged on a thread of its own, a stage hands the
    /// tracker the same batches as when the source tells it directly: the
    /// same failures, split alike, each batch with the same mark.
    #[test]
    fn the_relay_hands_on_what_the_stage_would() {
        let mark = |offset| ReadMark {
            source: Arc::from("/var/log/t.log"),
            at: ReadAt::File(Position {
                offset,
                ..Position::default()
            }),
        };
        let script = |sink: &mut dyn Sink| {
            let mut n = 0u32;
            for read in 1..=60u64 {
                for _ in 0..read % 7 {
                    n += 1;
                    let line = if n % 3 == 0 {
                        format!(
                            "Mar  5 16:01:38 mx1 sshd[78]: Failed password for root from 192.0.2.{} port 22 ssh2",
                            n % 250
                        )
                    } else {
                        format!(
                            "Mar  5 16:01:38 mx1 postfix/smtpd[1]: connect from a[192.0.2.{}]",
                            n % 250
                        )
                    };
                    sink.line(&Line::plain(&line));
                }
                sink.passed(read);
                if read % 20 == 0 {
                    sink.read_to(mark(read));
                } else {
                    sink.read_on(mark(read));
                }
            }
            sink.caught_up();
        };
        let batches = |mut rx: mpsc::Receiver<FailureBatch>| {
            let mut out = Vec::new();
            while let Ok(b) = rx.try_recv() {
                let failures: Vec<String> = b
                    .failures
                    .iter()
                    .map(|f| format!("{} {} {:?} {:?}", f.jail, f.addr, f.line.as_deref(), f.time))
                    .collect();
                out.push((failures, b.read_to));
            }
            out
        };
        let (tx, rx) = mpsc::channel(1 << 10);
        let mut stage = LineStage::new(routes(), tx).marking(true);
        script(&mut stage);
        drop(stage);
        let direct = batches(rx);

        let (tx, rx) = mpsc::channel(1 << 10);
        let stage = LineStage::new(routes(), tx).marking(true);
        let (mut relay, judge) = super::super::relay::relay("judge:test".into(), stage)
            .unwrap_or_else(|e| panic!("{e}"));
        script(&mut relay);
        drop(relay);
        judge
            .join()
            .unwrap_or_else(|_| panic!("the judging thread panicked"));
        let relayed = batches(rx);

        assert!(direct.len() > 3, "{direct:?}");
        assert!(direct.iter().map(|(f, _)| f.len()).sum::<usize>() > 50);
        assert!(
            direct.iter().all(|(_, m)| m.is_some()),
            "every batch has its mark"
        );
        assert_eq!(relayed, direct);
    }

    /// The gate changes nothing the tracker or the metrics see, whatever
    /// the size of the reads, from one byte up: the same failures with the
    /// same lines and accounts, and every line counted.
    #[test]
    fn the_gate_changes_no_failure_and_no_count_at_any_read_size() {
        let routes = routes();
        let whole = gated_reads_agree(&routes, 5);
        for size in 1..=GATE_TEXT.len() {
            assert_eq!(
                read(&routes, GATE_TEXT, size, false),
                whole,
                "plain, reads of {size}"
            );
        }
    }

    /// GATE_TEXT read whole and plain gives `failures` failures and counts
    /// its finished lines; gated reads of every size from one byte give
    /// the same. Returns the whole read's answer.
    fn gated_reads_agree(routes: &SharedRoutes, failures: usize) -> (Vec<String>, u64) {
        let whole = read(routes, GATE_TEXT, GATE_TEXT.len(), false);
        assert_eq!(whole.0.len(), failures, "{:?}", whole.0);
        assert_eq!(whole.1, 11, "the unfinished last line is not read yet");
        for size in 1..=GATE_TEXT.len() {
            assert_eq!(
                read(routes, GATE_TEXT, size, true),
                whole,
                "gated, reads of {size}"
            );
        }
        whole
    }

    /// fail2ban filter files of one line at a time are gated by their keys
    /// beside a filter of ours, and the gate changes nothing there either;
    /// one that keeps lines (`maxlines`) must see every line: no gate.
    #[test]
    fn fail2ban_filter_files_are_gated_by_their_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sasl = dir.path().join("sasl.conf");
        let ssh = dir.path().join("ssh.conf");
        let kept = dir.path().join("kept.conf");
        for (file, text) in [
            (
                &sasl,
                r"warning: [-._\w]+\[<HOST>\]: SASL \w+ authentication failed",
            ),
            (
                &ssh,
                r"sshd\[\d+\]: Failed password for (?:invalid user )?\S+ from <HOST> port",
            ),
            (&kept, r"Failed password for \S+ from <HOST>"),
        ] {
            let init = if file == &kept {
                "[Init]\nmaxlines = 2\n"
            } else {
                ""
            };
            std::fs::write(file, format!("{init}[Definition]\nfailregex = {text}\n"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let jail = |name: &str, filter: &str| {
            format!("[jail.{name}]\nfilter = \"{filter}\"\nlogpath = \"/var/log/t.log\"\n")
        };
        let routes = routes_of(&format!(
            "{}{}{}",
            jail("sasl", &format!("fail2ban:{}", sasl.display())),
            jail("ssh", &format!("fail2ban:{}", ssh.display())),
            jail("ours", "postfix-sasl"),
        ));
        gated_reads_agree(&routes, 8);
        let routes = routes_of(&format!(
            "{}{}",
            jail("sasl", &format!("fail2ban:{}", sasl.display())),
            jail("kept", &format!("fail2ban:{}", kept.display())),
        ));
        let (tx, _rx) = mpsc::channel(1);
        assert!(LineStage::new(routes, tx).gate.is_none());
    }

    /// A fail2ban filter file is loaded once for the route's keys and that
    /// instance goes to the first reader; a second reader loads its own
    /// (here it cannot: the file is gone by then).
    #[test]
    fn the_first_reader_takes_the_fail2ban_filters_loaded_for_the_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ssh = dir.path().join("ssh.conf");
        std::fs::write(
            &ssh,
            "[Definition]\nfailregex = sshd\\[\\d+\\]: Failed password for \\S+ from <HOST> port\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let routes = routes_of(&format!(
            "[jail.ssh]\nfilter = \"fail2ban:{}\"\nlogpath = \"/var/log/t.log\"\n",
            ssh.display()
        ));
        std::fs::remove_file(&ssh).unwrap_or_else(|e| panic!("{e}"));
        let current = routes.load_full();
        let filters = &current.routes[0].1;
        let line =
            "Mar  5 16:01:35 mx1 sshd[77]: Failed password for root from 192.0.2.7 port 2222 ssh2";
        let hits = |reader: &mut ReaderFilters| {
            let mut got = Vec::new();
            let now = SystemTime::now();
            reader.scan(filters, line, None, &mut || now, |_, addr, _, _| {
                got.push(addr.to_string());
            });
            got
        };
        assert_eq!(hits(&mut ReaderFilters::new(filters)), ["192.0.2.7"]);
        assert!(hits(&mut ReaderFilters::new(filters)).is_empty());
    }

    /// Lines for the jails above, the last one unfinished.
    const GATE_TEXT: &[u8] = "Mar  5 16:01:34 mx1 postfix/smtpd[1]: connect from a.example[192.0.2.1]\n\
            Mar  5 16:01:34 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.69]: SASL LOGIN authentication failed: authentication failure, sasl_username=bob\n\
            Mar  5 16:01:35 mx1 sshd[77]: Failed password for root from 192.0.2.7 port 2222 ssh2\n\
            \n\
            Mar  5 16:01:35 mx1 sshd[77]: Accepted publickey for alice from 192.0.2.8 port 2 ssh2\r\n\
            Mar  5 16:01:36 mx1 postfix/smtpd[2]: warning: mail.example.com[2001:db8::1]: SASL PLAIN authentication failed:\r\n\
            Mar  5 16:01:36 mx1 postfix/qmgr[3]: 4F2A: from=<a@example.org>, size=1, nrcpt=1 (queue active)\n\
            Mar  5 16:01:37 mx1 postfix/smtpd[\u{e9}]: bad \u{fffd} bytes\n\
            Mar  5 16:01:37 mx1 postfix/smtpd[4]: warning: unknown[192.0.2.70]: SASL LOGIN authentication failed: authentication failure\n\
            Mar  5 16:01:38 mx1 sshd[78]: Failed password for invalid user x from 2001:db8::7 port 22 ssh2\n\
            Mar  5 16:01:38 mx1 postfix/smtpd[5]: disconnect from a.example[192.0.2.1]\n\
            Mar  5 16:01:39 mx1 sshd[79]: Failed password for root from 192.0.2.9 port 2222 ssh2"
        .as_bytes();
}
