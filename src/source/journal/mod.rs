//! The systemd journal as a log source, read through libsystemd's
//! sd-journal (loaded when a journal is first opened, [`sd`]): no
//! `journalctl` child, no parsing of journal files by hand.
//!
//! Each entry is handed on as the line a syslog daemon would have written
//! (`Mmm dd HH:MM:SS HOST IDENT[PID]: MESSAGE`), so the same filters read
//! files and the journal, with the entry's own `__REALTIME_TIMESTAMP` as its
//! time. The read position (the journal's cursor) goes to the sink with
//! each batch ([`Sink::read_to`]), which stores it together with the
//! failures counted up to it; it is loaded from a [`CursorStore`] at start,
//! so a restart, even after a crash, resumes at the entry after the last one
//! counted: none lost, none counted twice. With no saved cursor, reading
//! starts `skip_older` ago: older entries are outside every findtime.
//!
//! The [`sd::Journal`] handle is not `Send`: a reader is opened, used
//! and dropped on one thread.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use self::sd::Journal;
use super::file::Stopper;
use super::{Line, Origin, Sink};
use crate::message::{ReadAt, ReadMark};

mod sd;
mod selection;
pub use selection::{JournalConfig, JournalMatch};

/// sd-journal asks to be looked at again when its timeout passes even with
/// no inotify event (files on unreliable file systems); this caps a sleep.
const RECHECK: Duration = Duration::from_secs(1);
/// Most entries between two cursor marks in a long catch-up; the sink may
/// ask for one sooner ([`Sink::full`]).
const MARK_EVERY: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {where_}: {what}: {source}")]
    Journal {
        where_: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("journal cursor: {0}")]
    Cursor(Box<dyn std::error::Error + Send + Sync>),
    #[error("journal: {0}")]
    Io(#[from] io::Error),
}

/// Where the read position kept between runs is loaded from: the state
/// store ([`crate::state::Store`], its `cursors` table), or anything else
/// in tests. It is saved by whoever the sink hands it to.
pub trait CursorStore: Send {
    fn load(&self, key: &str) -> Result<Option<String>, JournalError>;
}

/// The key a journal's cursor is saved under.
pub fn cursor_key(config: &JournalConfig) -> String {
    match &config.dir {
        None => "journal-system".into(),
        Some(d) => format!("journal-dir{}", d.display()),
    }
}

/// What a reader hands on for each entry.
pub struct JournalEntry {
    /// The syslog-style line.
    pub line: String,
    /// `__REALTIME_TIMESTAMP`.
    pub time: SystemTime,
    /// Values of the fields the matches name, in the order of `fields`.
    values: Vec<Option<String>>,
    fields: Vec<String>,
}

impl JournalEntry {
    pub fn field(&self, name: &str) -> Option<&str> {
        let i = self.fields.iter().position(|f| f == name)?;
        self.values.get(i)?.as_deref()
    }

    /// journalctl's rule: terms on the same field are alternatives, terms on
    /// different fields must all hold.
    pub fn matches(&self, m: &JournalMatch) -> bool {
        let mut i = 0;
        while i < m.terms.len() {
            let field = &m.terms[i].0;
            let mut any = false;
            while i < m.terms.len() && &m.terms[i].0 == field {
                any |= self.field(field) == Some(m.terms[i].1.as_str());
                i += 1;
            }
            if !any {
                return false;
            }
        }
        true
    }
}

pub struct JournalReader {
    journal: Journal,
    where_: String,
    /// Fields read from each entry besides those of the line.
    fields: Vec<String>,
    key: std::sync::Arc<str>,
    /// The last entry handed on.
    cursor: Option<String>,
    local_host: String,
}

impl JournalReader {
    /// Opens the journal, applies `matches` and positions after the saved
    /// cursor, or at `now - skip_older` when there is none.
    pub fn open(
        config: &JournalConfig,
        matches: &[JournalMatch],
        store: Box<dyn CursorStore>,
        skip_older: Duration,
    ) -> Result<Self, JournalError> {
        let where_ = config
            .dir
            .as_deref()
            .map_or_else(|| "system".to_string(), |d| d.display().to_string());
        let jerr = |what| {
            let where_ = where_.clone();
            move |source| JournalError::Journal {
                where_,
                what,
                source,
            }
        };
        let seek_err = jerr("cannot seek by time");
        let journal = match &config.dir {
            None => Journal::open(sd::SYSTEM),
            Some(dir) => open_dir(dir),
        }
        .map_err(jerr("cannot open"))?;
        let key = cursor_key(config);
        let cursor = store.load(&key)?;
        let mut reader = JournalReader {
            journal,
            where_,
            fields: Vec::new(),
            key: key.into(),
            cursor,
            local_host: crate::source::syslog::local_hostname(),
        };
        reader.set_matches(matches)?;
        if reader.cursor.is_none() {
            let since = SystemTime::now()
                .checked_sub(skip_older)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let usec = since
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_micros() as u64;
            reader.journal.seek_realtime_usec(usec).map_err(seek_err)?;
            info!(journal = %reader.where_, "no saved cursor: reading entries from {}s ago", skip_older.as_secs());
        }
        Ok(reader)
    }

    /// Replaces the matches (OR across entries, AND within one) and goes
    /// back to just after the last entry handed on.
    pub fn set_matches(&mut self, matches: &[JournalMatch]) -> Result<(), JournalError> {
        let jerr = |what| {
            let where_ = self.where_.clone();
            move |source| JournalError::Journal {
                where_,
                what,
                source,
            }
        };
        self.journal.match_flush();
        let mut fields: Vec<String> = Vec::new();
        for (i, m) in matches.iter().enumerate() {
            if i > 0 {
                self.journal.match_or().map_err(jerr("match_or"))?;
            }
            for (k, v) in &m.terms {
                self.journal
                    .match_add(k, v.as_bytes())
                    .map_err(jerr("match_add"))?;
                if !fields.contains(k) {
                    fields.push(k.clone());
                }
            }
        }
        self.fields = fields;
        if let Some(c) = self.cursor.clone() {
            self.journal
                .seek_cursor(&c)
                .map_err(jerr("cannot seek to the saved cursor"))?;
            // Positioned on the entry of the cursor if it still exists (it
            // was read already), else on the one after it (not read yet).
            if self.journal.next().map_err(jerr("next"))?
                && !self.journal.test_cursor(&c).unwrap_or(false)
            {
                self.journal.previous().map_err(jerr("previous"))?;
            }
        }
        Ok(())
    }

    /// Reads every entry available into `sink`, then waits for more, until
    /// `stop`. Before each read, `reselect` may give new matches (after a
    /// reload); None keeps the current ones.
    pub fn run<S: Sink + ?Sized>(
        &mut self,
        stop: &Stopper,
        sink: &mut S,
        mut reselect: impl FnMut(&mut S) -> Option<Vec<JournalMatch>>,
    ) -> Result<(), JournalError> {
        // The fd is set up by this call; it must come before the first wait.
        let fd = self.journal.fd().map_err(|source| JournalError::Journal {
            where_: self.where_.clone(),
            what: "sd_journal_get_fd",
            source,
        })?;
        loop {
            if let Some(m) = reselect(sink) {
                self.set_matches(&m)?;
            }
            self.drain(sink)?;
            let mut fds = [
                libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: stop.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            super::liveness::waiting();
            // SAFETY: `fds` is a valid array of two pollfds for the call's duration.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, RECHECK.as_millis() as i32) };
            super::liveness::woke();
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
            if fds[1].revents != 0 {
                self.drain(sink)?;
                return Ok(());
            }
            if let Err(e) = self.journal.process() {
                warn!(journal = %self.where_, "sd_journal_process: {e}");
            }
        }
    }

    fn drain<S: Sink + ?Sized>(&mut self, sink: &mut S) -> Result<(), JournalError> {
        let mut since_mark = 0;
        loop {
            match self.journal.next() {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    return Err(JournalError::Journal {
                        where_: self.where_.clone(),
                        what: "next",
                        source: e,
                    })
                }
            }
            if let Some(entry) = self.read_entry() {
                sink.line(&Line {
                    text: &entry.line,
                    time: Some(entry.time),
                    origin: Origin::Journal(&entry),
                });
            }
            match self.journal.cursor() {
                Ok(c) => self.cursor = Some(c),
                Err(e) => warn!(journal = %self.where_, "no cursor for an entry: {e}"),
            }
            since_mark += 1;
            if since_mark >= MARK_EVERY || sink.full() {
                self.mark(sink);
                since_mark = 0;
            }
        }
        self.mark(sink);
        Ok(())
    }

    /// Hands on what the sink holds, with the cursor it was read up to.
    fn mark<S: Sink + ?Sized>(&self, sink: &mut S) {
        match &self.cursor {
            Some(c) => sink.read_to(ReadMark {
                source: std::sync::Arc::clone(&self.key),
                at: ReadAt::Journal(c.clone()),
            }),
            None => sink.caught_up(),
        }
    }

    fn get(&mut self, field: &str) -> Option<String> {
        match self.journal.get_data(field) {
            Ok(Some(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
            _ => None,
        }
    }

    fn read_entry(&mut self) -> Option<JournalEntry> {
        let time = self.journal.timestamp().ok()?;
        let message = self.get("MESSAGE")?;
        let ident = self
            .get("SYSLOG_IDENTIFIER")
            .or_else(|| self.get("_COMM"))
            .unwrap_or_else(|| "unknown".into());
        let pid = self.get("SYSLOG_PID").or_else(|| self.get("_PID"));
        let host = self
            .get("_HOSTNAME")
            .unwrap_or_else(|| self.local_host.clone());
        let stamp = jiff::Timestamp::try_from(time)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%b %e %H:%M:%S")
            .to_string();
        // A multi-line message is one entry; filters see it as one line.
        let message = message.replace(['\n', '\r'], " ");
        let line = match pid {
            Some(pid) => format!("{stamp} {host} {ident}[{pid}]: {message}"),
            None => format!("{stamp} {host} {ident}: {message}"),
        };
        let fields = self.fields.clone();
        let values = fields.iter().map(|f| self.get(f)).collect();
        Some(JournalEntry {
            line,
            time,
            values,
            fields,
        })
    }
}

fn open_dir(dir: &Path) -> io::Result<Journal> {
    Journal::open_directory(dir.to_string_lossy().as_ref())
}

/// Opens and closes the journal once: a config naming a journal that cannot
/// be opened is refused before anything changes.
pub fn check_open(config: &JournalConfig) -> Result<(), JournalError> {
    let where_ = config
        .dir
        .as_deref()
        .map_or_else(|| "system".to_string(), |d| d.display().to_string());
    if let Some(dir) = &config.dir {
        if !dir.is_dir() {
            return Err(JournalError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", dir.display()),
            )));
        }
    }
    let opened = match &config.dir {
        None => Journal::open(sd::SYSTEM),
        Some(dir) => open_dir(dir),
    };
    opened.map(drop).map_err(|source| JournalError::Journal {
        where_,
        what: "cannot open",
        source,
    })
}
