//! A counting global allocator that enforces an allocation budget while a parser runs.
//!
//! libFuzzer's own `-malloc_limit_mb` needs a sanitizer's allocator hooks, which a stable
//! toolchain does not give us; this does the same job in plain Rust. A target arms the budget
//! around the parser call only ([`Budget::run`]), so the target's own checks (oracles,
//! round trips) allocate freely. While armed, every allocation is checked against
//!
//! * `single`: the largest one allocation (or reallocation) may be, and
//! * `live`: the most the parser may hold at once (bytes allocated minus bytes freed since the
//!   budget was armed),
//!
//! each a linear function of the input's length `n` (`per_byte * n + plus`). Over either, the
//! process prints what and aborts, which libFuzzer records as a crash and saves the input.
//!
//! The fuzzer runs one input at a time on one thread, so the counters are plain globals.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// `per_byte * n + plus` bytes, for an input of `n` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub per_byte: usize,
    pub plus: usize,
}

impl Linear {
    pub const fn at(self, n: usize) -> usize {
        self.per_byte.saturating_mul(n).saturating_add(self.plus)
    }
}

/// A target's allocation budget.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The largest one allocation may be.
    pub single: Linear,
    /// The most that may be allocated and not yet freed at any moment.
    pub live: Linear,
}

impl Budget {
    /// No allocation at all (parsers that borrow from their input).
    pub const NONE: Budget = Budget {
        single: Linear {
            per_byte: 0,
            plus: 0,
        },
        live: Linear {
            per_byte: 0,
            plus: 0,
        },
    };

    /// `single` ≤ `single_per_byte·n + single_plus`, `live` ≤ `live_per_byte·n + live_plus`.
    pub const fn new(
        single_per_byte: usize,
        single_plus: usize,
        live_per_byte: usize,
        live_plus: usize,
    ) -> Budget {
        Budget {
            single: Linear {
                per_byte: single_per_byte,
                plus: single_plus,
            },
            live: Linear {
                per_byte: live_per_byte,
                plus: live_plus,
            },
        }
    }

    /// Runs `parse` (fed `n` bytes) with this budget armed; aborts the process if it allocates
    /// over the budget. Not reentrant: one armed call at a time.
    pub fn run<R>(self, n: usize, parse: impl FnOnce() -> R) -> R {
        SINGLE_LIMIT.store(self.single.at(n), Relaxed);
        LIVE_LIMIT.store(self.live.at(n), Relaxed);
        INPUT_LEN.store(n, Relaxed);
        LIVE.store(0, Relaxed);
        PEAK.store(0, Relaxed);
        LARGEST.store(0, Relaxed);
        ARMED.store(true, Relaxed);
        let result = parse();
        ARMED.store(false, Relaxed);
        note_peak(n);
        result
    }
}

/// Stops checking (a panic is being reported; see [`crate::init`]).
pub fn disarm() {
    ARMED.store(false, Relaxed);
}

/// The most the last armed call held at once, and its largest single allocation.
pub fn last_peak() -> (usize, usize) {
    (
        usize::try_from(PEAK.load(Relaxed)).unwrap_or(0),
        LARGEST.load(Relaxed),
    )
}

static ARMED: AtomicBool = AtomicBool::new(false);
static SINGLE_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static LIVE_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Signed: memory allocated before arming may be freed while armed.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// `KVPLUG_FUZZ_PEAKS=1` prints every new record of bytes held per input byte, to size a
/// budget from what the parser really does.
static REPORT_PEAKS: AtomicBool = AtomicBool::new(false);
static RECORD_PER_BYTE: AtomicUsize = AtomicUsize::new(0);
static RECORD_LARGEST: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn init_peak_report() {
    REPORT_PEAKS.store(std::env::var_os("KVPLUG_FUZZ_PEAKS").is_some(), Relaxed);
}

fn note_peak(n: usize) {
    if !REPORT_PEAKS.load(Relaxed) {
        return;
    }
    let (peak, largest) = last_peak();
    let per_byte = peak / (n + 1);
    if per_byte > RECORD_PER_BYTE.load(Relaxed) || largest > RECORD_LARGEST.load(Relaxed) {
        RECORD_PER_BYTE.fetch_max(per_byte, Relaxed);
        RECORD_LARGEST.fetch_max(largest, Relaxed);
        eprintln!(
            "==kvplug-fuzz== peak {peak} B live ({per_byte} B per input byte), largest \
             allocation {largest} B, input {n} B"
        );
    }
}

#[cold]
fn over_budget(what: &str, bytes: usize, limit: usize) -> ! {
    ARMED.store(false, Relaxed);
    // Unbuffered stderr and integer formatting: nothing here allocates.
    let _ = writeln!(
        std::io::stderr(),
        "==kvplug-fuzz== allocation over budget: {what} would be {bytes} bytes, the budget is \
         {limit} for an input of {} bytes",
        INPUT_LEN.load(Relaxed)
    );
    std::process::abort()
}

fn on_alloc(size: usize) {
    if !ARMED.load(Relaxed) {
        return;
    }
    let single = SINGLE_LIMIT.load(Relaxed);
    if size > single {
        over_budget("one allocation", size, single);
    }
    LARGEST.fetch_max(size, Relaxed);
    let live = LIVE.fetch_add(size as isize, Relaxed) + size as isize;
    let limit = LIVE_LIMIT.load(Relaxed);
    if live > 0 && live as usize > limit {
        over_budget("the bytes held at once", live as usize, limit);
    }
    PEAK.fetch_max(live, Relaxed);
}

fn on_free(size: usize) {
    if ARMED.load(Relaxed) {
        LIVE.fetch_sub(size as isize, Relaxed);
    }
}

/// The system allocator, counted.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

// SAFETY: every method forwards to `System` with the same arguments; the counting around it
// only reads and writes atomics (and may abort the process).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new block allocated, then the old one freed: a copying reallocation
        // does hold both for a moment.
        on_alloc(new_size);
        on_free(layout.size());
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
