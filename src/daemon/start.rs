//! Start-up: the backend and the kernel's ruleset first, then what the last
//! run left (bans, offences, positions, counts), then the stages from the
//! end of the pipeline backwards, so nothing a stage sends has nowhere to
//! go. "ready" is said (and READY=1 sent to systemd) only once every source
//! is open.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::info;

use super::{control::Handle, DaemonError, JailSlots, RunOptions};
use super::{BAN_QUEUE, FAILURE_QUEUE};
use crate::bantime::Offences;
use crate::cluster::Farm;
use crate::config::{BackendKind, Config};
use crate::control::server::{self as control_server, Access};
use crate::enforce::enforcer::{Enforcer, EnforcerMsg, Publish};
use crate::enforce::log::LogBackend;
use crate::enforce::nft::NftBackend;
use crate::enforce::ufw::{UfwBackend, UfwPaths};
use crate::enforce::{self, restore, Backend};
use crate::message::FailureBatch;
use crate::metrics::Exporter;
use crate::pipeline::{self, Sources};
use crate::rules::JailRules;
use crate::source::file::Position;
use crate::source::journal::{CursorStore, JournalError};
use crate::state::writer::{self as state_writer, StateMsg, StateTx};
use crate::state::Store;
use crate::tracker::task::{self as tracker_task, TrackerCtl};
use crate::tracker::Tracker;

/// Everything [`super::serve`] and [`super::stop::stop`] need of the
/// running stages.
pub(super) struct Running {
    pub(super) handle: Arc<Handle>,
    pub(super) stdin_done: Arc<Notify>,
    pub(super) server: JoinHandle<()>,
    pub(super) stop_server: watch::Sender<bool>,
    pub(super) tracker: JoinHandle<Tracker>,
    pub(super) enforcer: std::thread::JoinHandle<()>,
    pub(super) enforcer_tx: mpsc::Sender<EnforcerMsg>,
    /// The state writer (None: a dry run keeps no state).
    pub(super) state: Option<(StateTx, std::thread::JoinHandle<()>)>,
    /// STATUS= and the watchdog (None: not under systemd).
    pub(super) service: Option<JoinHandle<()>>,
}

/// What the last run left in the state store, besides the bans (which
/// [`restore::at_start`] puts back in the kernel).
struct LastRun {
    offences: Offences,
    positions: Vec<(String, Position)>,
    failures: Vec<(String, std::net::IpAddr, SystemTime)>,
    /// The bans the jails' blocklists put in the kernel.
    blocklisted: Vec<(String, ipnet::IpNet)>,
}

pub(super) async fn start(mut config: Config, opts: RunOptions) -> Result<Running, DaemonError> {
    // The daemon never runs another program; should anything make it exec
    // one, that program gains no privilege (setuid bits, file capabilities).
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| DaemonError::NoNewPrivs(std::io::Error::from(e)))?;
    fixed_heap_thresholds();
    place_state_dir(&mut config, &opts);
    // First, so that what start-up restores is counted too.
    let metrics = Exporter::bind(config.metrics.map(|m| m.listen)).await?;
    let rules = config.jail_rules();
    // The store first: the kernel must keep the sets of jails the config
    // dropped while their bans run, and only the store knows their rules.
    let mut store = open_store(&config, opts.dry_run)?;
    let gone = match &mut store {
        Some(s) => or_degrade(s, &config, |s| {
            restore::gone_at_start(s, &rules).map_err(state_first)
        })?,
        None => Vec::new(),
    };
    let kernel: Vec<JailRules> = rules.iter().chain(&gone).cloned().collect();
    let mut backend = open_backend(&config, opts.dry_run, &kernel)?;
    let (state, last) = restore_last_run(&mut *backend, store, &config, &kernel)?;
    // A dry run must not tell the farm of bans it only logged.
    let farm = Farm::prepare(&config).filter(|_| !opts.dry_run);
    let state_tx = state.as_ref().map(|(tx, _)| tx.clone());
    if let Some(tx) = &state_tx {
        tx.send(StateMsg::Jails(kernel));
    }
    let access = Access {
        group: config.socket_group.as_ref().map(|(_, gid)| *gid),
    };
    let listener = control_server::bind(&config.socket, access)?;

    // Readers send their failures in batches (see pipeline::FLUSH_AT).
    let (fail_tx, fail_rx) = mpsc::channel::<FailureBatch>(FAILURE_QUEUE / pipeline::FLUSH_AT);
    let (enforcer_tx, enforcer_rx) = mpsc::channel::<EnforcerMsg>(BAN_QUEUE);
    let (tracker_tx, tracker_rx) = mpsc::channel::<TrackerCtl>(256);

    let publish = farm.as_ref().map(Farm::publisher);
    let enforcer = spawn_enforcer(
        backend,
        (&rules, gone),
        state_tx.clone(),
        last.blocklisted,
        publish,
        &enforcer_tx,
        enforcer_rx,
    )?;
    if let Some(tee) = farm.as_ref().and_then(Farm::tee) {
        let _ = tracker_tx.try_send(TrackerCtl::Tee(tee));
    }
    // Queued before anything else can ask for a ban.
    let _ = enforcer_tx.try_send(EnforcerMsg::Never(config.never.clone()));
    super::blocklist::load(&config, &enforcer_tx).await;
    let mut slots = JailSlots::default();
    let (ids, jails) = slots.assign(&config);
    let mut counting = Tracker::with_slots(jails, config.max_tracked).with_offences(last.offences);
    let carried = carry_over(&mut counting, last.failures, &enforcer_tx).await;
    // Counts and read positions are stored together by the tracker.
    let persist = state_tx.clone().map(|tx| tracker_task::Persist {
        save: Box::new({
            let tx = tx.clone();
            move |cp| tx.send(StateMsg::Checkpoint(cp))
        }),
        applied: EnforcerMsg::Ping,
        admit: Box::new({
            let tx = tx.clone();
            move |n| tx.admit_failures(n)
        }),
        failures: Box::new(move |f, n| tx.admitted_failures(f, n)),
    });
    let tracker = tracker_task::run(counting, fail_rx, tracker_rx, enforcer_tx.clone(), persist);
    let tracker = tokio::spawn(tracker);
    let mut sources = Sources::new(
        fail_tx,
        opts.stdin_jail,
        last.positions,
        cursor_stores(&config),
    );
    let stdin_done = sources.stdin_done();
    let prepared = sources.prepare(&config, &ids)?;
    sources.commit(prepared)?;
    info!(
        carried,
        jails = config.jails.len(),
        files = sources.len(),
        config = %config.origin.display(),
        socket = %config.socket.display(),
        "ready: {}",
        config.jail_names().join(", ")
    );
    super::service::ready();
    super::give_back_freed_heap();

    let socket = config.socket.clone();
    let handle = Arc::new(Handle {
        config: RwLock::new(Arc::new(config)),
        config_path: opts.config_path,
        state_dir: opts.state_dir,
        slots: Mutex::new(slots),
        sources: tokio::sync::Mutex::new(sources),
        tracker: tracker_tx,
        enforcer: enforcer_tx.clone(),
        status_changed: Notify::new(),
    });
    if let Some(farm) = farm {
        let h = Arc::clone(&handle);
        let state_dir = h.config().state_dir.clone();
        farm.start(Arc::new(move || h.config()), enforcer_tx.clone(), state_dir);
    }
    let service = super::service::spawn(Arc::clone(&handle));
    #[cfg(debug_assertions)]
    super::service::stall_on_sigusr2(enforcer_tx.clone());
    let (stop_server, stop_rx) = watch::channel(false);
    let server = control_server::serve(listener, socket, access, Arc::clone(&handle), stop_rx);
    let server = tokio::spawn(server);
    if let Some(m) = metrics {
        tokio::spawn(m.serve(enforce::metrics::active_bans(&enforcer_tx)));
    }
    Ok(Running {
        handle,
        stdin_done,
        server,
        stop_server,
        tracker,
        enforcer,
        enforcer_tx,
        state,
        service,
    })
}

/// glibc raises its thresholds for handing freed memory back as large
/// buffers are freed (a flood's batches and checkpoints), up to keeping
/// tens of MiB per thread's arena resident after the flood is over. Fixed
/// at glibc's own defaults, large buffers are mapped apart and unmapped
/// when freed, and a heap's free top is given back.
fn fixed_heap_thresholds() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets glibc's allocation parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}

/// The enforcer on its own thread: the only owner of the backend. `jails`:
/// the configured jails' rules, and those of the jails the config dropped
/// whose bans are kept.
fn spawn_enforcer(
    backend: Box<dyn Backend>,
    (rules, gone): (&[JailRules], Vec<JailRules>),
    state: Option<StateTx>,
    blocklisted: Vec<(String, ipnet::IpNet)>,
    publish: Option<Box<dyn Publish>>,
    tx: &mpsc::Sender<EnforcerMsg>,
    rx: mpsc::Receiver<EnforcerMsg>,
) -> Result<std::thread::JoinHandle<()>, DaemonError> {
    let mut enforcer = Enforcer::new(backend, rules, state).with_blocklisted(blocklisted);
    enforcer.keep_gone(gone);
    if let Some(p) = publish {
        enforcer.publish_to(p);
    }
    enforcer.watch_for_tampering(tx.clone());
    std::thread::Builder::new()
        .name("enforcer".into())
        .spawn(move || enforcer.run(rx))
        .map_err(DaemonError::Thread)
}

/// Failures the last run still counted count on; a ban they make due now
/// (maxretry was lowered meanwhile) goes to the enforcer at once.
async fn carry_over(
    tracker: &mut Tracker,
    failures: Vec<(String, std::net::IpAddr, SystemTime)>,
    enforcer: &mpsc::Sender<EnforcerMsg>,
) -> usize {
    let (carried, due) = tracker.carry_over(failures, SystemTime::now());
    if !due.is_empty() {
        let _ = enforcer.send(EnforcerMsg::Bans(due)).await;
    }
    carried
}

/// `--state-dir` stands over the config; a dry run keeps whatever it reads
/// (a journal cursor) in a throwaway directory, so it never moves the real
/// daemon's position.
fn place_state_dir(config: &mut Config, opts: &RunOptions) {
    if let Some(dir) = &opts.state_dir {
        config.state_dir = dir.clone();
    } else if opts.dry_run {
        config.state_dir =
            std::env::temp_dir().join(format!("nftjail-dry-run-{}", std::process::id()));
    }
}

/// The backend chosen once, at start (nothing else knows which one runs),
/// with the kernel made to hold `jails`.
fn open_backend(
    config: &Config,
    dry_run: bool,
    jails: &[JailRules],
) -> Result<Box<dyn Backend>, DaemonError> {
    let mut backend: Box<dyn Backend> = match (dry_run, config.backend) {
        (true, _) | (false, BackendKind::Log) => Box::new(LogBackend::default()),
        (false, BackendKind::Nft) => Box::new(NftBackend::open(&config.table)?),
        (false, BackendKind::Ufw) => {
            Box::new(UfwBackend::open(UfwPaths::default(), config.ufw_position)?)
        }
        // Its probe reconciled already: a second reconcile would read every
        // set back again, the longest part of a start over many bans.
        (false, BackendKind::Auto) => return Ok(auto_backend(config, jails)?),
    };
    backend.reconcile(jails)?;
    Ok(backend)
}

/// `backend = "auto"`: nft when the kernel's nf_tables takes our table,
/// else ufw when it is installed and enabled, else an error with both
/// reasons. Either is returned reconciled with `jails`.
fn auto_backend(
    config: &Config,
    jails: &[JailRules],
) -> Result<Box<dyn Backend>, enforce::EnforceError> {
    let nft = nftables_works(config, jails);
    let nft_err = match nft {
        Ok(b) => return Ok(b),
        Err(e) => e.to_string(),
    };
    match UfwBackend::open(UfwPaths::default(), config.ufw_position) {
        Ok(mut b) => {
            info!("nf_tables cannot be used ({nft_err}): bans go to ufw");
            b.reconcile(jails)?;
            Ok(Box::new(b))
        }
        Err(e) => Err(enforce::EnforceError::NoBackend {
            nft: nft_err,
            ufw: e.to_string(),
        }),
    }
}

/// The nft backend with our table built for `jails`, if the kernel takes it.
fn nftables_works(
    config: &Config,
    jails: &[JailRules],
) -> Result<Box<dyn Backend>, enforce::EnforceError> {
    // Test hook, in debug builds only: a kernel without nf_tables, for the
    // tests of the choice `auto` makes.
    #[cfg(debug_assertions)]
    if std::env::var_os("NFTJAIL_TEST_NO_NFTABLES").is_some() {
        return Err(enforce::EnforceError::Netlink(
            "nf_tables disabled by NFTJAIL_TEST_NO_NFTABLES".into(),
        ));
    }
    let mut b = NftBackend::open(&config.table)?;
    b.reconcile(jails)?;
    Ok(Box::new(b))
}

type StateWriter = (StateTx, std::thread::JoinHandle<()>);

/// The state store (None: a dry run keeps no state; it must not restore
/// into, or record over, what the real daemon stored). One that cannot be
/// opened is stood in for by one in memory (see [`degrade`]).
fn open_store(config: &Config, dry_run: bool) -> Result<Option<Store>, DaemonError> {
    if dry_run {
        return Ok(None);
    }
    match Store::open(&config.state_dir) {
        Ok(s) => Ok(Some(s)),
        Err(e) => degrade(config, &e).map(Some),
    }
}

/// The store must never be a reason not to ban: the kernel holds the
/// running bans (reconcile adopts them), so run on with a store in memory,
/// holding what the file still yields, and say so loudly, now and
/// periodically.
fn degrade(config: &Config, e: &crate::state::StateError) -> Result<Store, DaemonError> {
    let path = config.state_dir.join(crate::state::DB_FILE);
    tracing::error!(
        path = %path.display(),
        "state persistence degraded: cannot use the state store ({e}); \
         banning from the kernel's record and what the file still yields, with a \
         store in memory: history, read positions and counts will not survive a restart"
    );
    Ok(Store::in_memory(&path, e.to_string())?)
}

/// `read` on the store; a state error there (a disk that refuses writes,
/// a page that cannot be read) puts a store in memory in its place, and
/// `read` runs again on that.
fn or_degrade<T>(
    store: &mut Store,
    config: &Config,
    mut read: impl FnMut(&mut Store) -> Result<T, DaemonError>,
) -> Result<T, DaemonError> {
    match read(store) {
        Err(DaemonError::State(e)) if store.degraded().is_none() => {
            *store = degrade(config, &e)?;
            read(store)
        }
        other => other,
    }
}

/// A state error inside an enforcement one comes out as a state error,
/// for [`or_degrade`].
fn state_first(e: crate::enforce::EnforceError) -> DaemonError {
    match e {
        crate::enforce::EnforceError::State(e) => DaemonError::State(e),
        other => DaemonError::Enforce(other),
    }
}

/// Puts the last run's bans back and reads what else it left, then hands
/// the store to its writer thread. `jails`: what the backend holds.
fn restore_last_run(
    backend: &mut dyn Backend,
    store: Option<Store>,
    config: &Config,
    jails: &[JailRules],
) -> Result<(Option<StateWriter>, LastRun), DaemonError> {
    let Some(mut store) = store else {
        let nothing = LastRun {
            offences: Offences::new(config.dbpurgeage),
            positions: Vec::new(),
            failures: Vec::new(),
            blocklisted: Vec::new(),
        };
        return Ok((None, nothing));
    };
    let (last, adopted) = or_degrade(&mut store, config, |s| {
        read_last_run(&mut *backend, s, config, jails)
    })?;
    let keep = crate::state::events::Keep::for_age(config.report_keep);
    let writer =
        state_writer::spawn(store, config.dbpurgeage, keep).map_err(DaemonError::Thread)?;
    // Ahead of any change the running daemon sends.
    if !adopted.is_empty() {
        writer.0.send(StateMsg::Adopted(adopted));
    }
    Ok((Some(writer), last))
}

/// Puts the stored bans back and adopts the kernel's, then reads what else
/// the last run left; returns that and the adopted bans the store is yet to
/// record. Any state error is the caller's to degrade on.
fn read_last_run(
    backend: &mut dyn Backend,
    store: &mut Store,
    config: &Config,
    jails: &[JailRules],
) -> Result<(LastRun, Vec<(crate::state::StoredBan, bool)>), DaemonError> {
    let restore::AtStart { bans, adopted } =
        restore::at_start(backend, store, config, jails).map_err(state_first)?;
    let last = LastRun {
        offences: restore::offences(store, config, &bans).map_err(state_first)?,
        positions: store.positions()?,
        failures: store.failures()?,
        blocklisted: bans
            .iter()
            .filter(|b| b.cause == crate::message::Cause::Blocklist)
            .map(|b| (b.jail.to_string(), b.net))
            .collect(),
    };
    Ok((last, adopted))
}

/// Each journal reader keeps its cursor through a handle of its own on the
/// state store; where that cannot be opened, in memory (the journal is read
/// all the same, only a restart does not resume at the cursor).
fn cursor_stores(config: &Config) -> pipeline::CursorStores {
    let dir = config.state_dir.clone();
    Arc::new(move || {
        let store = match Store::open(&dir) {
            Ok(s) => s,
            Err(e) => {
                let path = dir.join(crate::state::DB_FILE);
                tracing::error!(
                    path = %path.display(),
                    "state persistence degraded: journal cursor kept in memory ({e})"
                );
                Store::in_memory(&path, e.to_string())
                    .map_err(|e| JournalError::Cursor(Box::new(e)))?
            }
        };
        Ok(Box::new(store) as Box<dyn CursorStore>)
    })
}
