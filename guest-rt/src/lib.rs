//! What a `no_std` component on wasm32-wasip2 (the adapters, the config components) must
//! supply itself: an allocator, a panic handler,
//! the canonical-ABI `cabi_realloc` (wit-bindgen relies on wasi-libc's) and `memcmp`.
//!
//! We deliberately do not link wasi-libc: its `libc.a` carries a component-type section
//! that re-versions every `wasi:io` import to the libc's WASI release (0.2.6 with Rust 1.95),
//! while our components target `wasi:http@0.2.0` and its `wasi:io@0.2.0` so that every 0.2
//! host can satisfy it. `memcmp` is the only libc symbol left once bulk-memory (on by
//! default for this target) lowers `memcpy`/`memset` to instructions.

#![no_std]
// Host builds (clippy, unit tests of dependents) get std's runtime instead.
#![cfg(all(target_arch = "wasm32", not(test)))]
#![expect(
    unsafe_code,
    reason = "the canonical ABI's allocation entry point is unsafe"
)]

extern crate alloc;

use alloc::alloc::{Layout, alloc, realloc};

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Reached only through a bug (the crate denies panicking constructs); trapping is the only
/// thing left to do, and `panic = "abort"` keeps unwinding code out of the artifact.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// Allocates for the host when it passes lists and strings in; backed by the Rust allocator
/// so that what the host allocates, Rust code can free.
#[unsafe(export_name = "cabi_realloc")]
unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the canonical ABI passes a power-of-two `align` and, for a reallocation, the
    // pointer and size of a block this function returned before.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(
                old,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        core::arch::wasm32::unreachable()
    }
    ptr
}

/// Byte-wise comparison for `core`'s slice and string equality.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(left: *const u8, right: *const u8, len: usize) -> i32 {
    for offset in 0..len {
        // SAFETY: callers (core's comparisons) pass two readable ranges of `len` bytes.
        let (a, b) = unsafe { (*left.add(offset), *right.add(offset)) };
        if a != b {
            return i32::from(a) - i32::from(b);
        }
    }
    0
}
