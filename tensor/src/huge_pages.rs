//! A global allocator that asks Linux to back large blocks with 2 MiB transparent huge pages.
//!
//! Why: every large tensor (conv1_1's output is 64 MiB at 512²) is a fresh `mmap` from glibc,
//! unmapped again when freed, and the kernel faults it in one 4 KiB page at a time:
//! `stylize bench --size 512 --iters 3` took 927,000 page faults and 2 s of system time. With
//! `madvise(MADV_HUGEPAGE)` on each block of at least [`MIN_BYTES`] the kernel fills it 2 MiB
//! at a time: 92,000 faults, the 512² Gatys step 10-16% faster and `apply` 19-33%, at the same
//! peak memory (`benches/README.md`, "Huge pages"). glibc does the same for its own
//! mmapped blocks when run with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`; this allocator makes
//! it the default for every user.
//!
//! The blocks themselves still come from the system allocator, so freed memory goes back to
//! the system as before (an allocator that kept it would save the faults too, but measured
//! 23-77% more peak memory). On other systems, or where transparent huge pages are disabled,
//! it is the system allocator and nothing more.
//!
//! [`map_large_blocks_alone`] is the other half of how large blocks come and go: a program that
//! would rather give freed memory back than reuse it (`stylize run`, whose peak decides the
//! largest picture a machine can paint) fixes glibc's mmap threshold with it;
//! [`keep_freed_blocks`] is the opposite choice, for programs that repeat the same sizes.
//!
//! A binary opts in with
//! `#[global_allocator] static ALLOCATOR: tensor::HugePages = tensor::HugePages;`.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, advising huge pages for blocks of at least [`MIN_BYTES`].
pub struct HugePages;

/// Smallest block advised: two huge pages, so that at least one aligned 2 MiB page lies
/// inside it.
pub const MIN_BYTES: usize = 2 * HUGE_PAGE;

/// Bytes of an x86-64 transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

// SAFETY: every method forwards to `System` with the same arguments and returns its result;
// `advise` only changes how the kernel backs pages of the block just returned (never its
// contents or ownership), and only whole huge pages lying inside that block.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (the caller upholds `GlobalAlloc::alloc`'s contract).
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        census::allocated(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`. glibc's calloc does not touch a freshly mapped block (the kernel
        // zeroes it), so the advice comes before the first fault.
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        census::allocated(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        census::freed(ptr, layout.size());
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`; the caller upholds `realloc`'s contract on `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        if !p.is_null() {
            census::freed(ptr, layout.size());
            census::allocated(p, new_size);
        }
        p
    }
}

/// A count of the blocks alive, to find where a run's memory peaks and what is alive there
/// (`STYLIZE_MEMORY_CENSUS=1 stylize ...` prints [`census::report`] at exit). Off unless
/// [`census::start`] is called; then every allocation also takes a lock, so it is for
/// diagnosis, not for timing. It is how `benches/README.md` ("The 1024² peak, met") found
/// relu1_1's Gram gradient beside relu1_1 at the peak, and glibc's slack above it.
pub mod census {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Blocks at least this large are listed one by one.
    pub const LISTED_BYTES: usize = 1 << 20;
    /// Listed blocks alive at once, at most (more are counted in the total but not listed).
    const SLOTS: usize = 1024;

    static ON: AtomicBool = AtomicBool::new(false);

    struct Census {
        live: usize,
        peak: usize,
        /// `(address, bytes)` of the listed blocks alive now and at the peak; address 0 is free.
        now: [(usize, usize); SLOTS],
        at_peak: [(usize, usize); SLOTS],
    }

    // A `Mutex` on Linux is a futex: taking it allocates nothing, so the allocator may use it.
    static CENSUS: Mutex<Census> =
        Mutex::new(Census { live: 0, peak: 0, now: [(0, 0); SLOTS], at_peak: [(0, 0); SLOTS] });

    /// Starts counting (blocks allocated before are not counted, nor their frees).
    pub fn start() {
        ON.store(true, Ordering::Relaxed);
    }

    pub(super) fn allocated(p: *mut u8, bytes: usize) {
        if !ON.load(Ordering::Relaxed) || p.is_null() {
            return;
        }
        let mut c = CENSUS.lock().unwrap_or_else(|e| e.into_inner());
        c.live += bytes;
        if bytes >= LISTED_BYTES {
            if let Some(slot) = c.now.iter_mut().find(|s| s.0 == 0) {
                *slot = (p as usize, bytes);
            }
        }
        if c.live > c.peak {
            c.peak = c.live;
            c.at_peak = c.now;
        }
    }

    pub(super) fn freed(p: *mut u8, bytes: usize) {
        if !ON.load(Ordering::Relaxed) {
            return;
        }
        let mut c = CENSUS.lock().unwrap_or_else(|e| e.into_inner());
        if bytes >= LISTED_BYTES {
            match c.now.iter_mut().find(|s| s.0 == p as usize) {
                Some(slot) => *slot = (0, 0),
                None => return, // allocated before the count started
            }
        }
        c.live = c.live.saturating_sub(bytes);
    }

    /// The peak of live bytes, and the blocks of at least [`LISTED_BYTES`] alive then, as
    /// `(bytes, how many)` from the largest.
    pub fn peak() -> (usize, Vec<(usize, usize)>) {
        // Copied out before anything is allocated: allocating under the lock would deadlock.
        let (peak, at_peak) = {
            let c = CENSUS.lock().unwrap_or_else(|e| e.into_inner());
            (c.peak, c.at_peak)
        };
        let mut sizes: Vec<usize> = at_peak.iter().filter(|s| s.0 != 0).map(|s| s.1).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for s in sizes {
            match groups.last_mut() {
                Some((size, n)) if *size == s => *n += 1,
                _ => groups.push((s, 1)),
            }
        }
        (peak, groups)
    }

    /// [`peak`] as text: "live blocks peaked at 1086 MiB; of 1 MiB and more then: 1 x 256 MiB, ...".
    pub fn report() -> String {
        let (peak, groups) = peak();
        let mib = |b: usize| b as f64 / f64::from(1 << 20);
        let list: Vec<String> = groups.iter().map(|(s, n)| format!("{n} x {:.2} MiB", mib(*s))).collect();
        format!("live blocks peaked at {:.0} MiB; of 1 MiB and more then: {}", mib(peak), list.join(", "))
    }
}

/// Makes glibc map every block of at least `min_bytes` on its own and unmap it when freed
/// (`mallopt(M_MMAP_THRESHOLD)`), for the rest of the process. Returns whether glibc took it
/// (always false on other systems, where it does nothing).
///
/// Why: glibc starts at 128 KiB but raises its threshold to the size of each mapped block
/// freed, up to 32 MiB. From then on the blocks below that (ReLU masks, the deeper layers'
/// activations and gradients) come from its heap, and the holes they leave stay resident. At
/// 1024² a Gatys step's peak RSS was 250 MiB above its peak of live blocks (1,339 against
/// 1,086 MiB, counted by [`census`]). The price is a fresh, zeroed
/// mapping for each such block, where glibc would have reused one: measured in
/// `benches/README.md` ("The 1024² peak, met").
pub fn map_large_blocks_alone(min_bytes: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Ok(bytes) = libc::c_int::try_from(min_bytes) else { return false };
        // SAFETY: `mallopt` only sets one of glibc's allocator parameters; it returns 0 and
        // changes nothing if the value is refused.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = min_bytes;
        false
    }
}

/// Makes glibc keep every freed block for reuse, for the rest of the process: blocks up to
/// [`KEEP_UP_TO`] come from its heap rather than a mapping of their own (`M_MMAP_THRESHOLD`),
/// and the heap's free memory is never given back (`M_TRIM_THRESHOLD`). Returns whether glibc
/// took both (always false on other systems, where it does nothing).
///
/// Why: the opposite trade of [`map_large_blocks_alone`], for programs whose memory is bounded
/// by what they repeat rather than by the picture (`stylize apply`, one network over tiles of
/// at most 1024 px; `stylize train`, one crop size). Their blocks have the same sizes step
/// after step, so the heap serves each from one freed before, and the kernel no longer faults
/// in and zeroes fresh pages for every layer's output: `apply` at 512² took 82,000 page faults
/// and 0.8 s of system time in ten passes, and 11,000 and 0.1 s with this
/// (`benches/README.md`, "Freed blocks kept"). Timed on a quiet machine it is no faster: the
/// zeroing the kernel did for a fresh mapping, `calloc` now does itself (memset), so what it
/// buys is the lower system time and a peak that does not drift.
pub fn keep_freed_blocks() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = libc::c_int::try_from(KEEP_UP_TO).expect("fits a C int");
        // SAFETY: `mallopt` only sets one of glibc's allocator parameters; it returns 0 and
        // changes nothing if the value is refused.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The largest block [`keep_freed_blocks`] keeps: 1 GiB, above any one activation `apply` or
/// `train` makes (a 1024² tile's are at most 72 MB at width 32). On the main thread only:
/// glibc gives each other thread heaps of at most 64 MiB, and maps larger blocks on their own.
pub const KEEP_UP_TO: usize = 1 << 30;

/// Advises huge pages for the aligned 2 MiB pages inside `size` bytes at `p` (nothing for a
/// null pointer or a block smaller than [`MIN_BYTES`]). Advice is a hint: an error (huge
/// pages disabled, say) changes nothing, so it is ignored.
fn advise(p: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if let Some((start, len)) = huge_range(p as usize, size) {
        // SAFETY: [start, start + len) lies inside the block just allocated, which this
        // process owns; MADV_HUGEPAGE does not change its contents.
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, size);
}

/// The whole huge pages inside the block of `size` bytes at address `addr`, as `(start,
/// length)`; `None` if the block is null or smaller than [`MIN_BYTES`].
pub fn huge_range(addr: usize, size: usize) -> Option<(usize, usize)> {
    if addr == 0 || size < MIN_BYTES {
        return None;
    }
    let start = addr.next_multiple_of(HUGE_PAGE);
    let end = (addr + size) / HUGE_PAGE * HUGE_PAGE;
    (end > start).then(|| (start, end - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_range_is_the_aligned_pages_inside_the_block() {
        let mib = 1 << 20;
        assert_eq!(huge_range(0, 64 * mib), None, "null");
        assert_eq!(huge_range(4096, MIN_BYTES - 1), None, "too small");
        // Aligned: all of it.
        assert_eq!(huge_range(8 * mib, 8 * mib), Some((8 * mib, 8 * mib)));
        // Unaligned both ends: the pages strictly inside.
        assert_eq!(huge_range(8 * mib + 16, 6 * mib), Some((10 * mib, 4 * mib)));
        // Large enough but straddling: one page at most.
        assert_eq!(huge_range(2 * mib - 4096, MIN_BYTES), Some((2 * mib, 2 * mib)));
        for (addr, size) in [(12345 * 4096, 5 * mib + 7), (3 * mib + 1, 4 * mib), (1 << 40, MIN_BYTES)] {
            let (start, len) = huge_range(addr, size).expect("a whole page inside");
            assert!(start >= addr && start + len <= addr + size && start % HUGE_PAGE == 0 && len % HUGE_PAGE == 0);
        }
    }

    /// Blocks through the allocator behave as the system's: zeroed when asked, contents kept
    /// across a growing `realloc`, large and small.
    #[test]
    fn blocks_are_the_systems() {
        for floats in [10, MIN_BYTES / 4 + 3, 3 * MIN_BYTES] {
            let layout = Layout::array::<f32>(floats).unwrap();
            // SAFETY: a non-zero layout; every pointer is used within its size, then freed
            // with the layout it has.
            unsafe {
                let p = HugePages.alloc_zeroed(layout) as *mut f32;
                assert!(!p.is_null());
                let v = std::slice::from_raw_parts_mut(p, floats);
                assert!(v.iter().all(|&x| x == 0.0));
                v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
                let q = HugePages.realloc(p as *mut u8, layout, 8 * floats) as *mut f32;
                let w = std::slice::from_raw_parts(q, floats);
                assert!(w.iter().enumerate().all(|(i, &x)| x == i as f32));
                HugePages.dealloc(q as *mut u8, Layout::array::<f32>(2 * floats).unwrap());
            }
        }
    }
}
