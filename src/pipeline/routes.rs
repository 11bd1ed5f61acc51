//! Which lines of which source go to which jails' filters. Each distinct
//! source is read once however many jails read it; a route is the part of
//! its lines a set of jails reads (every line of a file; one program's
//! messages on the syslog receiver; the entries a journal match selects).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::sources::is_glob;
use crate::config::{Config, SyslogConfig};
use crate::message::JailId;
use crate::source::journal::{JournalConfig, JournalMatch};
use crate::source::Origin;

use super::aliases::{self, Claims};
use super::scan::JailFilters;

/// One source, however many jails read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SourceKey {
    File(PathBuf),
    Glob(PathBuf),
    Stdin,
    Syslog(SyslogConfig),
    Journal(JournalConfig),
}

/// Which lines of a source a route reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Route {
    /// Every line (files, globs, stdin).
    All,
    /// Syslog messages of this program.
    Program(String),
    /// Journal entries this match selects.
    Journal(JournalMatch),
}

impl Route {
    /// Whether a line from `origin` is one this route reads.
    pub(super) fn takes(&self, origin: &Origin<'_>) -> bool {
        match (self, origin) {
            (Route::All, _) => true,
            (Route::Program(p), Origin::Program(q)) => p == q,
            (Route::Journal(m), Origin::Journal(entry)) => entry.matches(m),
            _ => false,
        }
    }
}

/// A source's routes, each with the filters of the jails that read it.
pub(super) struct Routes {
    pub(super) routes: Vec<(Route, JailFilters)>,
    /// A glob's: the logpaths each of its jails reads first, so a file
    /// they already read is not counted twice (see [`aliases`]).
    pub(super) claims: Claims,
}

impl Routes {
    /// The journal matches a journal reader must select.
    pub(super) fn journal_matches(&self) -> Vec<JournalMatch> {
        self.routes
            .iter()
            .filter_map(|(r, _)| match r {
                Route::Journal(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Every source the config's jails read, with its routes; `ids[i]` is the
/// stable id of `config.jails[i]`. Also the longest findtime of the jails
/// that read the journal (how far back a first read of it goes).
pub(super) fn plan(
    config: &Config,
    ids: &[JailId],
    stdin_jail: Option<&str>,
) -> (BTreeMap<SourceKey, Routes>, Duration) {
    let mut wanted: BTreeMap<SourceKey, BTreeMap<Route, Vec<usize>>> = BTreeMap::new();
    let mut journal_findtime = Duration::ZERO;
    for (i, jail) in config.jails.iter().enumerate() {
        let mut add = |key: SourceKey, route: Route| {
            let jails = wanted.entry(key).or_default().entry(route).or_default();
            if !jails.contains(&i) {
                jails.push(i);
            }
        };
        for path in &jail.logpaths {
            let key = if is_glob(path) {
                SourceKey::Glob(path.clone())
            } else {
                SourceKey::File(path.clone())
            };
            add(key, Route::All);
        }
        if stdin_jail == Some(&*jail.name) {
            add(SourceKey::Stdin, Route::All);
        }
        for program in &jail.syslog {
            add(
                SourceKey::Syslog(config.syslog.clone()),
                Route::Program(program.clone()),
            );
        }
        for m in &jail.journal {
            add(
                SourceKey::Journal(config.journal.clone()),
                Route::Journal(m.clone()),
            );
            journal_findtime = journal_findtime.max(jail.reach());
        }
    }
    if stdin_jail.is_some() && !wanted.contains_key(&SourceKey::Stdin) {
        // Read anyway, to its end, so the pipeline feeding it is not blocked.
        wanted.insert(SourceKey::Stdin, BTreeMap::new());
    }
    let routes = wanted
        .into_iter()
        .map(|(key, routes)| {
            let claims = match &key {
                SourceKey::Glob(glob) => routes
                    .values()
                    .flatten()
                    .map(|&i| {
                        let jail = &config.jails[i];
                        let first = aliases::before(&jail.logpaths, glob);
                        (ids[i], Arc::clone(&jail.name), first)
                    })
                    .filter(|(_, _, first)| !first.is_empty())
                    .collect(),
                _ => Claims::new(),
            };
            let routes = routes
                .into_iter()
                .map(|(route, jails)| {
                    let jails = jails
                        .iter()
                        .map(|&i| (ids[i], &config.jails[i]))
                        .collect::<Vec<_>>();
                    (route, JailFilters::new(&jails))
                })
                .collect();
            (key, Routes { routes, claims })
        })
        .collect();
    (routes, journal_findtime)
}

/// Shared between a source's readers and the reload that replaces them.
pub(super) type SharedRoutes = Arc<arc_swap::ArcSwap<Routes>>;
