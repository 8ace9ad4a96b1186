//! Large freed blocks kept for the next request of the same size, never above the peak.
//!
//! Why: a Gatys step frees and asks again for the same large blocks each step (every layer's
//! activation and its gradient). Freed to the system, each comes back as a fresh mapping that
//! the kernel must zero page by page before the program writes it: `clear_page_erms` was 10%
//! of the samples of `stylize bench --size 1024`. Keeping every freed block (glibc's
//! `keep_freed_blocks`, or its tunables) saves that, 7-10% of a step, but raised the peak by 19%
//! at 512² and 36% at 1024², over issue 11's targets (`benches/README.md`, "Freed blocks reused
//! under the peak").
//!
//! So a freed block is kept only while the large blocks the program holds plus those kept
//! stay within the most it has held at once (its high-water mark): kept memory is memory the
//! process already had resident at its peak, so the peak cannot rise. A request that no kept
//! block fits exactly first gives back the oldest kept blocks until the new one fits under the
//! mark. Freeing a block never breaks the rule (the block moves from held to kept), and taking
//! a kept one never does (back from kept to held); only fresh blocks can, and they evict first.
//!
//! [`Blocks`] is the bookkeeping alone, addresses as numbers, so that tests can drive it without
//! memory; `HugePages` holds one behind a lock and does the allocating.

/// Blocks kept at once, at most (a 512² Gatys step frees about 100 blocks of 1 MiB and more;
/// scanning them all on a large block's request costs a microsecond).
const SLOTS: usize = 1024;

/// A block freed by the program and kept for reuse. `addr` 0 marks an empty slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub addr: usize,
    pub size: usize,
    pub align: usize,
    /// When it was kept, to give back the oldest first.
    kept_at: u64,
}

/// The large blocks the program holds, those kept for it, and the most it has held at once.
/// Invariant: `held + kept <= high_water`.
pub struct Blocks {
    held: usize,
    kept: usize,
    high_water: usize,
    clock: u64,
    slots: [Block; SLOTS],
    /// Requests served by a kept block, fresh blocks, and kept blocks given back.
    pub counts: Counts,
}

/// How often each way out was taken, for the memory census's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub reused: u64,
    pub fresh: u64,
    pub fresh_bytes: u64,
    pub given_back: u64,
    pub not_kept: u64,
}

impl Blocks {
    pub const fn new() -> Self {
        Blocks {
            held: 0,
            kept: 0,
            high_water: 0,
            clock: 0,
            slots: [Block { addr: 0, size: 0, align: 0, kept_at: 0 }; SLOTS],
            counts: Counts { reused: 0, fresh: 0, fresh_bytes: 0, given_back: 0, not_kept: 0 },
        }
    }

    /// A kept block of exactly `size` bytes and `align`, now held by the program; `None` if
    /// there is none (then [`Blocks::make_room`] and [`Blocks::fresh`]).
    pub fn take(&mut self, size: usize, align: usize) -> Option<usize> {
        let slot = self.slots.iter_mut().find(|b| b.addr != 0 && b.size == size && b.align == align)?;
        let addr = std::mem::replace(&mut slot.addr, 0);
        self.kept -= size;
        self.held += size;
        self.counts.reused += 1;
        Some(addr)
    }

    /// Hands `give_back` the oldest kept blocks, no longer kept, until a fresh block of `size`
    /// bytes would not take the program's large blocks above their high-water mark; the caller
    /// returns each to the system, then allocates.
    pub fn make_room(&mut self, size: usize, mut give_back: impl FnMut(Block)) {
        let mark = self.high_water.max(self.held + size);
        while self.held + size + self.kept > mark {
            let Some(oldest) = self.slots.iter_mut().filter(|b| b.addr != 0).min_by_key(|b| b.kept_at) else {
                return;
            };
            let block = *oldest;
            oldest.addr = 0;
            self.kept -= block.size;
            self.counts.given_back += 1;
            give_back(block);
        }
    }

    /// Counts a freshly allocated block of `size` bytes as held.
    pub fn fresh(&mut self, size: usize) {
        self.held += size;
        self.high_water = self.high_water.max(self.held);
        self.counts.fresh += 1;
        self.counts.fresh_bytes += size as u64;
    }

    /// The program has freed the block of `size` bytes at `addr`: true if it is kept (the
    /// caller must not free it), false if the caller gives it back (every slot is taken).
    /// A block allocated before reuse was switched on was never counted as held; it is kept
    /// all the same, and the mark may then be passed by at most such blocks' bytes.
    pub fn free(&mut self, addr: usize, size: usize, align: usize) -> bool {
        self.held = self.held.saturating_sub(size);
        let Some(slot) = self.slots.iter_mut().find(|b| b.addr == 0) else {
            self.counts.not_kept += 1;
            return false;
        };
        self.clock += 1;
        *slot = Block { addr, size, align, kept_at: self.clock };
        self.kept += size;
        true
    }

    /// The program has given up a held block of `size` bytes without it being kept (a
    /// `realloc` moved or resized it).
    pub fn released(&mut self, size: usize) {
        self.held = self.held.saturating_sub(size);
    }

    /// Bytes of large blocks held by the program, kept for it, and the most held at once.
    pub fn bytes(&self) -> (usize, usize, usize) {
        (self.held, self.kept, self.high_water)
    }
}

impl Default for Blocks {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// Allocates `size` as `HugePages` does, with addresses from a counter; returns the address
    /// and the blocks given back to make room.
    fn alloc(b: &mut Blocks, next: &mut usize, size: usize) -> (usize, Vec<Block>) {
        if let Some(addr) = b.take(size, 64) {
            return (addr, vec![]);
        }
        let mut evicted = vec![];
        b.make_room(size, |e| evicted.push(e));
        b.fresh(size);
        *next += 1;
        (*next, evicted)
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_layout_only() {
        let (mut b, mut next) = (Blocks::new(), 0);
        let (a, _) = alloc(&mut b, &mut next, 64 * MIB);
        assert!(b.free(a, 64 * MIB, 64));
        assert_eq!(b.bytes(), (0, 64 * MIB, 64 * MIB));
        assert_eq!(b.take(64 * MIB, 32), None, "another alignment");
        assert_eq!(b.take(32 * MIB, 64), None, "another size");
        assert_eq!(b.take(64 * MIB, 64), Some(a));
        assert_eq!(b.bytes(), (64 * MIB, 0, 64 * MIB));
    }

    #[test]
    fn a_fresh_block_gives_back_the_oldest_kept_ones_to_stay_under_the_mark() {
        let (mut b, mut next) = (Blocks::new(), 0);
        let blocks: Vec<usize> = (0..3).map(|_| alloc(&mut b, &mut next, 16 * MIB).0).collect();
        for &a in &blocks {
            assert!(b.free(a, 16 * MIB, 64));
        }
        // 48 MiB kept under a 48 MiB mark: a 20 MiB block needs two of them back, oldest first.
        let (_, evicted) = alloc(&mut b, &mut next, 20 * MIB);
        assert_eq!(evicted.iter().map(|e| e.addr).collect::<Vec<_>>(), blocks[..2]);
        assert_eq!(b.bytes(), (20 * MIB, 16 * MIB, 48 * MIB));
        // Above the mark: nothing may stay kept, and the mark rises.
        let (_, evicted) = alloc(&mut b, &mut next, 40 * MIB);
        assert_eq!(evicted.iter().map(|e| e.addr).collect::<Vec<_>>(), [blocks[2]]);
        assert_eq!(b.bytes(), (60 * MIB, 0, 60 * MIB));
    }

    #[test]
    fn with_every_slot_taken_a_freed_block_goes_back() {
        let (mut b, mut next) = (Blocks::new(), 0);
        let blocks: Vec<usize> = (0..=SLOTS).map(|_| alloc(&mut b, &mut next, MIB).0).collect();
        for &a in &blocks[..SLOTS] {
            assert!(b.free(a, MIB, 64));
        }
        assert!(!b.free(blocks[SLOTS], MIB, 64));
        assert_eq!(b.bytes(), (0, SLOTS * MIB, (SLOTS + 1) * MIB));
    }

    proptest::proptest! {
        /// Any sequence of requests and frees: the mark is exactly the most the program held at
        /// once (what it would be without reuse), held and kept stay under it, and a kept block
        /// comes back only for its own size, never while the program holds it.
        #[test]
        fn reuse_never_raises_the_peak(ops in proptest::collection::vec((0u8..3, 0usize..6), 1..200)) {
            let sizes = [8 * MIB, 9 * MIB, 16 * MIB, 64 * MIB, 64 * MIB + 4096, 256 * MIB];
            let (mut b, mut next) = (Blocks::new(), 0);
            let mut held: Vec<(usize, usize)> = vec![];
            let mut kept: std::collections::HashMap<usize, usize> = Default::default();
            let (mut live, mut peak) = (0, 0);
            for (op, i) in ops {
                if op < 2 || held.is_empty() {
                    let size = sizes[i];
                    let (addr, evicted) = alloc(&mut b, &mut next, size);
                    for e in evicted {
                        proptest::prop_assert_eq!(kept.remove(&e.addr), Some(e.size));
                    }
                    if let Some(s) = kept.remove(&addr) {
                        proptest::prop_assert_eq!(s, size);
                    }
                    proptest::prop_assert!(held.iter().all(|h| h.0 != addr));
                    held.push((addr, size));
                    live += size;
                } else {
                    let (addr, size) = held.swap_remove(i % held.len());
                    if b.free(addr, size, 64) {
                        kept.insert(addr, size);
                    }
                    live -= size;
                }
                peak = peak.max(live);
                let (h, k, mark) = b.bytes();
                proptest::prop_assert_eq!((h, k, mark), (live, kept.values().sum::<usize>(), peak));
                proptest::prop_assert!(h + k <= mark);
            }
        }
    }
}
