//! The few sd-journal calls the journal source makes, from libsystemd
//! loaded with `dlopen` the first time a journal is opened.
//!
//! Linked at build time, libsystemd and its own libraries (libgcrypt,
//! liblzma, libzstd, liblz4, libcap) would be mapped into every daemon and
//! every command-line call, and their relocated pages kept resident, though
//! most configs read files only. Loaded on demand, they cost only where a
//! jail reads the journal. The library is never unloaded: a reload may open
//! the journal again.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The library's soname: the ABI sd-journal has kept since it began.
const SONAME: &CStr = c"libsystemd.so.0";

/// `SD_JOURNAL_SYSTEM`: the system's journal files and those of its services.
pub const SYSTEM: c_int = 1 << 2;

/// sd-journal's opaque handle.
#[repr(C)]
struct SdJournal {
    _opaque: [u8; 0],
}

type J = *mut SdJournal;

/// The functions, as sd-journal.h declares them: the `Api` table and
/// `resolve`, which looks each one up in the loaded library.
macro_rules! api {
    ($($field:ident = $name:literal: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        struct Api {
            $($field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        fn resolve(lib: *mut c_void, what: &str) -> Result<Api, String> {
            Ok(Api {
                $($field: {
                    // SAFETY: `lib` is a live handle (never closed) and the
                    // name is NUL-terminated.
                    let p = unsafe { libc::dlsym(lib, concat!($name, "\0").as_ptr().cast()) };
                    if p.is_null() {
                        return Err(format!("{what} has no {}: {}", $name, dl_error()));
                    }
                    // SAFETY: the symbol is sd-journal's function of that
                    // name, whose C signature this is (sd-journal.h).
                    unsafe {
                        std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(p)
                    }
                },)*
            })
        }
    };
}

api! {
    open = "sd_journal_open": fn(*mut J, c_int) -> c_int;
    open_directory = "sd_journal_open_directory": fn(*mut J, *const c_char, c_int) -> c_int;
    close = "sd_journal_close": fn(J);
    next = "sd_journal_next": fn(J) -> c_int;
    previous = "sd_journal_previous": fn(J) -> c_int;
    seek_realtime_usec = "sd_journal_seek_realtime_usec": fn(J, u64) -> c_int;
    seek_cursor = "sd_journal_seek_cursor": fn(J, *const c_char) -> c_int;
    test_cursor = "sd_journal_test_cursor": fn(J, *const c_char) -> c_int;
    get_cursor = "sd_journal_get_cursor": fn(J, *mut *mut c_char) -> c_int;
    get_realtime_usec = "sd_journal_get_realtime_usec": fn(J, *mut u64) -> c_int;
    get_data = "sd_journal_get_data": fn(J, *const c_char, *mut *const c_void, *mut usize) -> c_int;
    add_match = "sd_journal_add_match": fn(J, *const c_void, usize) -> c_int;
    add_disjunction = "sd_journal_add_disjunction": fn(J) -> c_int;
    flush_matches = "sd_journal_flush_matches": fn(J);
    get_fd = "sd_journal_get_fd": fn(J) -> c_int;
    process = "sd_journal_process": fn(J) -> c_int;
}

/// The library, loaded once; the error says why it could not be.
fn api() -> io::Result<&'static Api> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.clone()))
}

/// The last `dlopen`/`dlsym` error, as text.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string that stays
    // valid until the next dl call on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return "unknown error".into();
    }
    // SAFETY: non-NULL, NUL-terminated (above).
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}

fn load() -> Result<Api, String> {
    let what = SONAME.to_string_lossy();
    // SAFETY: a library name; RTLD_NOW resolves every symbol here, so a
    // missing one is an error now rather than a crash later.
    let lib = unsafe { libc::dlopen(SONAME.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(format!(
            "cannot load {what} (the journal is read through it): {}",
            dl_error()
        ));
    }
    resolve(lib, &what)
}

/// sd-journal's convention: a negative errno on failure.
fn check(rc: c_int) -> io::Result<c_int> {
    if rc < 0 {
        Err(io::Error::from_raw_os_error(-rc))
    } else {
        Ok(rc)
    }
}

fn c_string(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the text"))
}

/// An open journal. Not `Send` (the raw handle): sd-journal objects belong
/// to the thread that opened them.
pub struct Journal {
    j: NonNull<SdJournal>,
    api: &'static Api,
}

impl Journal {
    /// `sd_journal_open` with `flags`.
    pub fn open(flags: c_int) -> io::Result<Journal> {
        let api = api()?;
        let mut j = std::ptr::null_mut();
        // SAFETY: `j` is a valid out-pointer.
        check(unsafe { (api.open)(&mut j, flags) })?;
        Self::wrap(j, api)
    }

    /// `sd_journal_open_directory`: the journal files in `dir`.
    pub fn open_directory(dir: &str) -> io::Result<Journal> {
        let api = api()?;
        let path = c_string(dir)?;
        let mut j = std::ptr::null_mut();
        // SAFETY: a valid out-pointer and a NUL-terminated path.
        check(unsafe { (api.open_directory)(&mut j, path.as_ptr(), 0) })?;
        Self::wrap(j, api)
    }

    fn wrap(j: J, api: &'static Api) -> io::Result<Journal> {
        let j = NonNull::new(j).ok_or_else(|| io::Error::other("sd-journal gave no handle"))?;
        Ok(Journal { j, api })
    }

    fn raw(&self) -> J {
        self.j.as_ptr()
    }

    /// Moves to the next entry: false at the end.
    pub fn next(&mut self) -> io::Result<bool> {
        // SAFETY: a live handle (here and in every method below).
        check(unsafe { (self.api.next)(self.raw()) }).map(|n| n > 0)
    }

    /// Moves to the previous entry: false at the start.
    pub fn previous(&mut self) -> io::Result<bool> {
        // SAFETY: a live handle.
        check(unsafe { (self.api.previous)(self.raw()) }).map(|n| n > 0)
    }

    pub fn seek_realtime_usec(&mut self, usec: u64) -> io::Result<()> {
        // SAFETY: a live handle.
        check(unsafe { (self.api.seek_realtime_usec)(self.raw(), usec) }).map(drop)
    }

    pub fn seek_cursor(&mut self, cursor: &str) -> io::Result<()> {
        let c = c_string(cursor)?;
        // SAFETY: a live handle and a NUL-terminated cursor.
        check(unsafe { (self.api.seek_cursor)(self.raw(), c.as_ptr()) }).map(drop)
    }

    /// Whether the current entry is the one `cursor` names.
    pub fn test_cursor(&self, cursor: &str) -> io::Result<bool> {
        let c = c_string(cursor)?;
        // SAFETY: a live handle and a NUL-terminated cursor.
        check(unsafe { (self.api.test_cursor)(self.raw(), c.as_ptr()) }).map(|n| n > 0)
    }

    /// The current entry's cursor.
    pub fn cursor(&self) -> io::Result<String> {
        let mut p: *mut c_char = std::ptr::null_mut();
        // SAFETY: a live handle and a valid out-pointer.
        check(unsafe { (self.api.get_cursor)(self.raw(), &mut p) })?;
        if p.is_null() {
            return Err(io::Error::other("sd-journal gave no cursor"));
        }
        // SAFETY: a NUL-terminated string malloc'ed for the caller, copied
        // and then freed with the C allocator that made it.
        let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        // SAFETY: (above) ours to free, freed once.
        unsafe { libc::free(p.cast()) };
        Ok(text)
    }

    /// The current entry's `__REALTIME_TIMESTAMP`.
    pub fn timestamp(&self) -> io::Result<SystemTime> {
        let mut usec = 0u64;
        // SAFETY: a live handle and a valid out-pointer.
        check(unsafe { (self.api.get_realtime_usec)(self.raw(), &mut usec) })?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_micros(usec))
    }

    /// The value of the current entry's `field`; None when it has none.
    pub fn get_data(&mut self, field: &str) -> io::Result<Option<Vec<u8>>> {
        let name = c_string(field)?;
        let mut data: *const c_void = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: a live handle, a NUL-terminated field name, valid out-pointers.
        let rc = unsafe { (self.api.get_data)(self.raw(), name.as_ptr(), &mut data, &mut len) };
        if rc == -libc::ENOENT {
            return Ok(None);
        }
        check(rc)?;
        if data.is_null() {
            return Ok(None);
        }
        // SAFETY: sd-journal points at `len` bytes ("FIELD=value") valid
        // until the journal moves; they are copied before returning.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        Ok(bytes
            .iter()
            .position(|&b| b == b'=')
            .map(|eq| bytes[eq + 1..].to_vec()))
    }

    /// Adds `key=value` to the current group of matches (AND within it).
    pub fn match_add(&mut self, key: &str, value: &[u8]) -> io::Result<()> {
        let mut term = Vec::with_capacity(key.len() + 1 + value.len());
        term.extend_from_slice(key.as_bytes());
        term.push(b'=');
        term.extend_from_slice(value);
        // SAFETY: a live handle and `term.len()` readable bytes (sd-journal
        // copies them).
        check(unsafe { (self.api.add_match)(self.raw(), term.as_ptr().cast(), term.len()) })
            .map(drop)
    }

    /// Starts a new group of matches, an alternative to the ones before (OR).
    pub fn match_or(&mut self) -> io::Result<()> {
        // SAFETY: a live handle.
        check(unsafe { (self.api.add_disjunction)(self.raw()) }).map(drop)
    }

    pub fn match_flush(&mut self) {
        // SAFETY: a live handle.
        unsafe { (self.api.flush_matches)(self.raw()) }
    }

    /// The fd to poll for changes; setting it up is this call's side effect.
    pub fn fd(&mut self) -> io::Result<c_int> {
        // SAFETY: a live handle.
        check(unsafe { (self.api.get_fd)(self.raw()) })
    }

    /// Takes in the changes the fd announced.
    pub fn process(&mut self) -> io::Result<()> {
        // SAFETY: a live handle.
        check(unsafe { (self.api.process)(self.raw()) }).map(drop)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // SAFETY: a live handle, closed once.
        unsafe { (self.api.close)(self.raw()) }
    }
}
