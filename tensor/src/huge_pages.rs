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
//! The blocks themselves come from the system allocator. On other systems, or where
//! transparent huge pages are disabled, the advice does nothing.
//!
//! [`map_large_blocks_alone`] and [`keep_freed_blocks`] are the other half of how large blocks
//! come and go, two choices of what a freed block becomes:
//! - a program whose peak decides the largest picture a machine can paint (`stylize run`) maps
//!   each large block on its own, so that glibc's heap leaves no holes resident: this allocator
//!   serves them from mappings of its own and keeps freed ones for the next requests, of any
//!   size, only while that cannot raise the peak ([`reuse`]);
//! - a program that repeats the same sizes under a bound of its own (`apply`'s tiles,
//!   `train`'s crops) lets glibc's heap keep everything, with no cap.
//!
//! A binary opts in with
//! `#[global_allocator] static ALLOCATOR: tensor::HugePages = tensor::HugePages;`.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

pub mod reuse;

/// The system allocator, advising huge pages for blocks of at least [`MIN_BYTES`], and keeping
/// freed large blocks for reuse once [`map_large_blocks_alone`] asks it to.
pub struct HugePages;

/// Smallest block advised: two huge pages, so that at least one aligned 2 MiB page lies
/// inside it.
pub const MIN_BYTES: usize = 2 * HUGE_PAGE;

/// Bytes of an x86-64 transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

/// The page size the allocator's own blocks are split at (x86-64's and most of arm64's; where
/// the system's is larger, [`map_large_blocks_alone`] leaves reuse off).
const PAGE: usize = 4096;

// SAFETY: a block is either `System`'s, allocated and freed with the layout the caller gives,
// or the allocator's own: a page range of an anonymous mapping of this process
// ([`own`]), at least the size asked and page-aligned, listed in `reuse::Blocks` while the
// program holds it and while it is kept. A pointer freed is the allocator's own only if it is
// listed as held (so a `System` block is never unmapped); a kept range is handed out once
// (taking it ends its listing) and unmapped only when it is no longer listed. Page ranges
// listed are disjoint: splitting hands out a block's front and keeps its tail, and growing
// moves a block whole (`mremap`). `advise` only changes how the kernel backs whole huge pages
// inside a block just handed out, never its contents or ownership.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { allocate(layout, false) };
        census::allocated(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { allocate(layout, true) };
        census::allocated(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        census::freed(ptr, layout.size());
        if layout.size() >= reused_from() {
            match blocks().free(ptr as usize) {
                Some(reuse::Freed::Kept) => return,
                Some(reuse::Freed::GiveBack(block)) => return own::unmap(block),
                None => {}
            }
        }
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let own = layout.size() >= reused_from() && blocks().held_size(ptr as usize).is_some();
        if own || new_size >= reused_from() {
            // Through this allocator's own blocks: a new one, the contents copied, the old freed.
            // SAFETY: the caller upholds `realloc`'s contract: `new_size` is non-zero and, rounded
            // up to `layout.align()`, does not overflow; `ptr` holds `layout.size()` bytes.
            unsafe {
                let new = Layout::from_size_align_unchecked(new_size, layout.align());
                let p = self.alloc(new);
                if !p.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                return p;
            }
        }
        // SAFETY: as `dealloc`; the caller upholds `realloc`'s contract on `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            advise(p, new_size);
            census::freed(ptr, layout.size());
            census::allocated(p, new_size);
        }
        p
    }
}

/// Smallest block served from the allocator's own mappings and kept for reuse, once
/// [`map_large_blocks_alone`] has set it; none until then.
static REUSED_FROM: AtomicUsize = AtomicUsize::new(usize::MAX);

fn reused_from() -> usize {
    REUSED_FROM.load(Ordering::Relaxed)
}

/// The large blocks held and kept ([`reuse`]), shared by every thread.
static BLOCKS: Mutex<reuse::Blocks> = Mutex::new(reuse::Blocks::new());

/// [`BLOCKS`], locked. A `Mutex` on Linux is a futex: taking it allocates nothing, so the
/// allocator may use it; a panic cannot leave the bookkeeping half-done, so a poisoned lock is
/// taken as is.
fn blocks() -> MutexGuard<'static, reuse::Blocks> {
    BLOCKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A block for `layout`. Large ones, once reuse is on, are the allocator's own
/// ([`reuse`]): a kept block of their size or the front of a larger one (zeroed here if asked),
/// else the largest kept block grown to their size or a fresh mapping, advised huge pages,
/// after giving back the kept blocks that would take the large ones above their high-water
/// mark. Everything else comes from `System`, advised huge pages if large.
///
/// # Safety
/// `layout` has a non-zero size (`GlobalAlloc::alloc`'s contract).
unsafe fn allocate(layout: Layout, zeroed: bool) -> *mut u8 {
    let system = || {
        // SAFETY: forwarded as is (the caller upholds the contract). glibc's calloc does not
        // touch a freshly mapped block (the kernel zeroes it), so the advice comes before the
        // first fault.
        let p = unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        };
        advise(p, layout.size());
        p
    };
    if layout.size() < reused_from() || layout.align() > PAGE {
        return system();
    }
    let size = layout.size().next_multiple_of(PAGE);
    let mut blocks = blocks();
    if !blocks.can_hold() {
        drop(blocks);
        return system();
    }
    if let Some(addr) = blocks.take(size) {
        drop(blocks);
        let p = addr as *mut u8;
        if zeroed {
            // SAFETY: the block is at least `layout.size()` bytes, now held by the caller alone.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        return p;
    }
    let from = blocks.largest();
    blocks.make_room(size, own::unmap);
    // The largest kept block grown, unless the kernel refuses (then it goes back); else fresh.
    let grown = from.and_then(|b| match own::grow(b, size) {
        p if p.is_null() => {
            own::unmap(b);
            None
        }
        p => Some((p, b.size)),
    });
    let (p, grown_from) = match grown {
        Some((p, old)) => (p, Some(old)),
        None => (own::map(size), None),
    };
    if p.is_null() {
        return p;
    }
    advise(p, size);
    blocks.fresh(p as usize, size, grown_from);
    drop(blocks);
    if let (true, Some(old)) = (zeroed, grown_from) {
        // SAFETY: the block is `size` bytes, held by the caller alone; its first `old` are the
        // kept block's pages, the rest fresh (zero) ones.
        unsafe { p.write_bytes(0, old.min(layout.size())) };
    }
    p
}

/// The allocator's own blocks: anonymous mappings, and page ranges of them.
#[cfg(target_os = "linux")]
mod own {
    use super::reuse::Block;

    /// A fresh mapping of `size` bytes (zero pages), or null.
    pub fn map(size: usize) -> *mut u8 {
        // SAFETY: a new private anonymous mapping; it aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    /// `block`'s pages moved to a block of `size` bytes (more), the rest fresh zero pages; null
    /// if the kernel refuses (then `block` is as it was).
    pub fn grow(block: Block, size: usize) -> *mut u8 {
        // SAFETY: `block` is a page range of this allocator's mappings that nothing holds (taken
        // off the kept list); the kernel moves its pages, without copying, to a new range.
        let p = unsafe { libc::mremap(block.addr as *mut libc::c_void, block.size, size, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    /// Returns `block`'s pages to the system.
    pub fn unmap(block: Block) {
        // SAFETY: as `grow`; the pages are not used again.
        unsafe { libc::munmap(block.addr as *mut libc::c_void, block.size) };
    }
}

/// Elsewhere reuse stays off ([`map_large_blocks_alone`]), so none of these is called.
#[cfg(not(target_os = "linux"))]
mod own {
    use super::reuse::Block;
    pub fn map(_: usize) -> *mut u8 {
        std::ptr::null_mut()
    }
    pub fn grow(_: Block, _: usize) -> *mut u8 {
        std::ptr::null_mut()
    }
    pub fn unmap(_: Block) {}
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
        let (held, kept, mark) = super::blocks().bytes();
        let c = super::blocks().counts;
        format!(
            "live blocks peaked at {:.0} MiB; of 1 MiB and more then: {}\nlarge blocks: {:.0} MiB held, {:.0} kept, {:.0} at most; {} reused, {} split, {} grown, {} fresh ({:.0} MiB fresh pages), {} given back",
            mib(peak), list.join(", "), mib(held), mib(kept), mib(mark), c.reused, c.split, c.grown, c.fresh, mib(c.fresh_bytes as usize), c.given_back
        )
    }
}

/// Makes [`HugePages`] serve every block of at least `min_bytes` from mappings of its own, and
/// keep them when they are freed for the next requests, as long as that cannot raise the peak
/// ([`reuse`]); and glibc map such blocks on their own when it serves them
/// (`mallopt(M_MMAP_THRESHOLD)`: blocks aligned past a page, or past [`reuse`]'s slots); for the
/// rest of the process. Returns whether glibc took the threshold (always false on other
/// systems, where reuse stays off too, as it does with pages other than 4 KiB).
///
/// Why: glibc starts at 128 KiB but raises its threshold to the size of each mapped block
/// freed, up to 32 MiB. From then on the blocks below that (ReLU masks, the deeper layers'
/// activations and gradients) come from its heap, and the holes they leave stay resident. At
/// 1024² a Gatys step's peak RSS was 250 MiB above its peak of live blocks (1,339 against
/// 1,086 MiB, counted by [`census`]). Mapped alone, every block would be a fresh mapping the
/// kernel zeroes, where glibc would have reused one; kept under the peak, most are not
/// (`benches/README.md`, "Freed blocks reused under the peak").
pub fn map_large_blocks_alone(min_bytes: usize) -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: sysconf only reads a system constant.
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } == PAGE as libc::c_long {
        REUSED_FROM.store(min_bytes.max(1), Ordering::Relaxed);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Ok(bytes) = libc::c_int::try_from(min_bytes) else { return false };
        // SAFETY: `mallopt` only sets one of glibc's allocator parameters; it returns 0 and
        // changes nothing if the value is refused.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
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
