//! A global allocator that counts live heap bytes, around the allocator
//! chosen at build time (glibc's `malloc` through `std::alloc::System` by
//! default; mimalloc or jemalloc with the bench crate's features).
//!
//! Why unsafe code here: `GlobalAlloc` is an `unsafe trait`, so counting
//! what the process allocates can only be done with an `unsafe impl`. The
//! impl adds nothing unsafe of its own: every method forwards its
//! arguments unchanged to the inner allocator, under the very contract the
//! caller gave, and only adds or subtracts sizes in an atomic counter. It
//! lives in this bench binary only (never in a pola crate), because the
//! leak-or-fragmentation question it answers cannot be answered from RSS
//! alone.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!("choose one of the features mimalloc and jemalloc");

#[cfg(feature = "mimalloc")]
type Inner = mimalloc::MiMalloc;
#[cfg(feature = "mimalloc")]
const INNER: Inner = mimalloc::MiMalloc;
#[cfg(feature = "jemalloc")]
type Inner = tikv_jemallocator::Jemalloc;
#[cfg(feature = "jemalloc")]
const INNER: Inner = tikv_jemallocator::Jemalloc;
#[cfg(not(any(feature = "mimalloc", feature = "jemalloc")))]
type Inner = std::alloc::System;
#[cfg(not(any(feature = "mimalloc", feature = "jemalloc")))]
const INNER: Inner = std::alloc::System;

/// The name of the allocator counted.
#[allow(dead_code)] // the leak test shares this file and does not print it
pub const NAME: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "system (glibc malloc)"
};

/// Counts live bytes (as requested by callers) around [`INNER`].
pub struct Counting {
    inner: Inner,
    live: AtomicU64,
}

impl Counting {
    /// Live heap bytes now.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
}

/// The process's allocator.
#[global_allocator]
pub static ALLOCATOR: Counting = Counting {
    inner: INNER,
    live: AtomicU64::new(0),
};

// SAFETY: every method forwards to the inner allocator with the caller's
// own arguments (which the `GlobalAlloc` contract already constrains) and
// returns its result unchanged; the counter never affects allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            self.live.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            self.live.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from the caller, who got `ptr`
        // from this allocator (so from the inner one) with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        self.live.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` meets the caller's
        // contract for `realloc`.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.live.fetch_add(new_size as u64, Ordering::Relaxed);
            self.live.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }
}
