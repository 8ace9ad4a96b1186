//! Large freed blocks kept for the next requests, never above the peak.
//!
//! Why: a Gatys step frees and asks again for large blocks each step (every layer's activation
//! and its gradient). Freed to the system, each comes back as a fresh mapping that the kernel
//! must zero page by page before the program writes it: `clear_page_erms` was 10% of the
//! samples of `stylize bench --size 1024`. Keeping every freed block (glibc's
//! `keep_freed_blocks`, or its tunables) saves that, 7-10% of a step, but raised the peak by 19%
//! at 512² and 36% at 1024², over issue 11's targets (`benches/README.md`, "Freed blocks reused
//! under the peak").
//!
//! So a freed block is kept only while the large blocks the program holds plus those kept
//! stay within the most it has held at once (its high-water mark): kept memory is memory the
//! process already had resident at its peak, so the peak cannot rise. The blocks are the
//! allocator's own page-aligned mappings, so any page range of one is a block too, and a kept
//! block serves requests of any size:
//! - one of exactly the size asked, if there is one;
//! - else the smallest larger one, split: its front is handed out, its tail stays kept;
//! - else the largest one, grown to the size asked (`mremap` keeps its pages and adds fresh ones
//!   behind them), after giving back the oldest kept blocks until the grown block fits under
//!   the mark; with nothing kept, a fresh block, the same way.
//!
//! Freeing a block never breaks the rule (the block moves from held to kept), nor does
//! splitting (from kept to held, the tail staying kept); only the fresh pages of a grown or new
//! block can, and they evict first. Exact sizes alone left more than half of a step's bytes
//! fresh: a step holds about 95% of its peak most of the time, and few freed blocks have the
//! size asked next (replayed allocation trace of a 512² step: 2,665 MiB fresh of 4,648; with
//! splitting and growing, 883).
//!
//! [`Blocks`] is the bookkeeping alone, addresses as numbers, so that tests can drive it without
//! memory; `HugePages` holds one behind a lock and does the mapping.

/// Blocks kept at once, and blocks held by the program, at most (a 512² Gatys step frees
/// about 100 blocks of 1 MiB and more; scanning them all on a large block's request costs a
/// microsecond).
const SLOTS: usize = 1024;

/// A block of the allocator's: `size` bytes at `addr`, both multiples of the page size.
/// `addr` 0 marks an empty slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub addr: usize,
    pub size: usize,
    /// When it was kept, to give back the oldest first.
    kept_at: u64,
}

const EMPTY: Block = Block { addr: 0, size: 0, kept_at: 0 };

/// The large blocks the program holds, those kept for it, and the most it has held at once.
/// Invariant: `held + kept <= high_water`.
pub struct Blocks {
    held: usize,
    kept: usize,
    high_water: usize,
    clock: u64,
    /// The kept blocks.
    slots: [Block; SLOTS],
    /// The blocks the program holds, so that a freed pointer is known as the allocator's own.
    holding: [Block; SLOTS],
    /// How requests were served, for the memory census's report.
    pub counts: Counts,
}

/// How often each way was taken, for the memory census's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests served by a kept block of their size,
    pub reused: u64,
    /// by the front of a larger one,
    pub split: u64,
    /// by the largest kept block grown,
    pub grown: u64,
    /// and by a fresh mapping; and the fresh bytes of the last two.
    pub fresh: u64,
    pub fresh_bytes: u64,
    /// Kept blocks given back to the system.
    pub given_back: u64,
}

impl Blocks {
    pub const fn new() -> Self {
        Blocks {
            held: 0,
            kept: 0,
            high_water: 0,
            clock: 0,
            slots: [EMPTY; SLOTS],
            holding: [EMPTY; SLOTS],
            counts: Counts { reused: 0, split: 0, grown: 0, fresh: 0, fresh_bytes: 0, given_back: 0 },
        }
    }

    /// Whether a block can be handed out: false when the program holds [`SLOTS`] already (the
    /// caller then takes one from the system, which this does not track).
    pub fn can_hold(&self) -> bool {
        self.holding.iter().any(|b| b.addr == 0)
    }

    /// A kept block of exactly `size` bytes, or the front of the smallest larger one (its
    /// tail stays kept, in the slot the block had), now held by the program;
    /// `None` if every kept block is smaller (then [`Blocks::largest`] and [`Blocks::fresh`]).
    /// `size` is a multiple of the page size. Call only when [`Blocks::can_hold`].
    pub fn take(&mut self, size: usize) -> Option<usize> {
        // The smallest kept block at least `size` bytes: one of exactly `size` if there is one.
        let i = (0..SLOTS)
            .filter(|&i| self.slots[i].addr != 0 && self.slots[i].size >= size)
            .min_by_key(|&i| self.slots[i].size)?;
        let block = std::mem::replace(&mut self.slots[i], EMPTY);
        self.kept -= block.size;
        if block.size > size {
            let tail = Block { addr: block.addr + size, size: block.size - size, kept_at: block.kept_at };
            self.slots[i] = tail;
            self.kept += tail.size;
            self.counts.split += 1;
        } else {
            self.counts.reused += 1;
        }
        self.hold(block.addr, size);
        Some(block.addr)
    }

    /// The largest kept block, no longer kept, for the caller to grow into a block of its
    /// request's size; `None` if none is kept. Then [`Blocks::make_room`] and [`Blocks::fresh`].
    pub fn largest(&mut self) -> Option<Block> {
        let largest = self.slots.iter_mut().filter(|b| b.addr != 0).max_by_key(|b| b.size)?;
        let block = std::mem::replace(largest, EMPTY);
        self.kept -= block.size;
        Some(block)
    }

    /// Hands `give_back` the oldest kept blocks, no longer kept, until a block of `size` bytes
    /// held beside the rest would not take the program's large blocks above their high-water
    /// mark; the caller returns each to the system, then maps.
    pub fn make_room(&mut self, size: usize, mut give_back: impl FnMut(Block)) {
        let mark = self.high_water.max(self.held + size);
        while self.held + size + self.kept > mark {
            let Some(oldest) = self.slots.iter_mut().filter(|b| b.addr != 0).min_by_key(|b| b.kept_at) else {
                return;
            };
            let block = std::mem::replace(oldest, EMPTY);
            self.kept -= block.size;
            self.counts.given_back += 1;
            give_back(block);
        }
    }

    /// Counts the block of `size` bytes at `addr` as held: fresh, or grown from a kept block of
    /// `grown_from` bytes (taken by [`Blocks::largest`]).
    pub fn fresh(&mut self, addr: usize, size: usize, grown_from: Option<usize>) {
        self.hold(addr, size);
        self.high_water = self.high_water.max(self.held);
        match grown_from {
            Some(_) => self.counts.grown += 1,
            None => self.counts.fresh += 1,
        }
        self.counts.fresh_bytes += size.saturating_sub(grown_from.unwrap_or(0)) as u64;
    }

    fn hold(&mut self, addr: usize, size: usize) {
        let slot = self.holding.iter_mut().find(|b| b.addr == 0).expect("a free slot (Blocks::can_hold)");
        *slot = Block { addr, size, kept_at: 0 };
        self.held += size;
    }

    /// The program has freed the block at `addr`: `None` if it is not one of these (the
    /// caller frees it to the system), else whether it is kept, or handed back (every slot
    /// taken: the caller returns it to the system).
    pub fn free(&mut self, addr: usize) -> Option<Freed> {
        let slot = self.holding.iter_mut().find(|b| b.addr == addr && addr != 0)?;
        let block = std::mem::replace(slot, EMPTY);
        self.held -= block.size;
        let Some(slot) = self.slots.iter_mut().find(|b| b.addr == 0) else {
            self.counts.given_back += 1;
            return Some(Freed::GiveBack(block));
        };
        self.clock += 1;
        *slot = Block { kept_at: self.clock, ..block };
        self.kept += block.size;
        Some(Freed::Kept)
    }

    /// The size of the held block at `addr`, if it is one of these.
    pub fn held_size(&self, addr: usize) -> Option<usize> {
        self.holding.iter().find(|b| b.addr == addr && addr != 0).map(|b| b.size)
    }

    /// Bytes of large blocks held by the program, kept for it, and the most held at once.
    pub fn bytes(&self) -> (usize, usize, usize) {
        (self.held, self.kept, self.high_water)
    }
}

/// What became of a freed block ([`Blocks::free`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freed {
    Kept,
    GiveBack(Block),
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

    /// Address space as `HugePages` uses it, for the bookkeeping alone: fresh and grown blocks
    /// get new addresses from a counter (far apart), as `mmap` and `mremap` would.
    struct Memory {
        b: Blocks,
        next: usize,
        given_back: Vec<Block>,
    }

    impl Memory {
        fn new() -> Self {
            Memory { b: Blocks::new(), next: 1 << 40, given_back: vec![] }
        }

        /// Allocates `size` as `HugePages::allocate` does.
        fn alloc(&mut self, size: usize) -> usize {
            if let Some(addr) = self.b.take(size) {
                return addr;
            }
            let from = self.b.largest();
            let given_back = &mut self.given_back;
            self.b.make_room(size, |e| given_back.push(e));
            self.next += 1 << 36;
            self.b.fresh(self.next, size, from.map(|f| f.size));
            self.next
        }

        fn free(&mut self, addr: usize) {
            match self.b.free(addr).expect("a held block") {
                Freed::Kept => {}
                Freed::GiveBack(block) => self.given_back.push(block),
            }
        }
    }

    #[test]
    fn a_freed_block_serves_its_size_first_then_larger_ones_split() {
        let mut m = Memory::new();
        let (a, b) = (m.alloc(64 * MIB), m.alloc(16 * MIB));
        m.free(a);
        m.free(b);
        assert_eq!(m.b.bytes(), (0, 80 * MIB, 80 * MIB));
        assert_eq!(m.alloc(64 * MIB), a, "its own size first, though a smaller one would split");
        // 8 MiB: the front of the smallest larger block (16 MiB); its tail stays kept.
        assert_eq!(m.alloc(8 * MIB), b);
        assert_eq!(m.alloc(8 * MIB), b + 8 * MIB, "the tail, exactly");
        assert_eq!(m.b.bytes(), (80 * MIB, 0, 80 * MIB));
        assert!(m.given_back.is_empty());
        assert_eq!((m.b.counts.reused, m.b.counts.split, m.b.counts.fresh), (2, 1, 2));
    }

    #[test]
    fn a_larger_request_grows_the_largest_kept_block_after_making_room() {
        let mut m = Memory::new();
        let blocks: Vec<usize> = [8, 16, 24].map(|s| m.alloc(s * MIB)).to_vec();
        for &a in &blocks {
            m.free(a);
        }
        // 48 MiB kept under a 48 MiB mark. 40 MiB grows the 24 MiB block by 16 MiB of fresh
        // pages, so 16 MiB must go back first, oldest first: the 8 MiB and then the 16 MiB one.
        let c = m.alloc(40 * MIB);
        assert_ne!(c, blocks[2], "moved, as mremap may");
        assert_eq!(m.given_back.iter().map(|e| e.addr).collect::<Vec<_>>(), blocks[..2]);
        assert_eq!(m.b.bytes(), (40 * MIB, 0, 48 * MIB));
        assert_eq!((m.b.counts.grown, m.b.counts.fresh_bytes), (1, (48 + 16) as u64 * MIB as u64));
        // Above the mark, with nothing kept: fresh, and the mark rises.
        m.alloc(16 * MIB);
        assert_eq!(m.b.bytes(), (56 * MIB, 0, 56 * MIB));
    }

    #[test]
    fn with_every_slot_taken_a_freed_block_goes_back_and_none_is_held_past_them() {
        let mut m = Memory::new();
        let blocks: Vec<usize> = (0..SLOTS).map(|_| m.alloc(2 * MIB)).collect();
        assert!(!m.b.can_hold(), "every holding slot taken");
        for &a in &blocks {
            m.free(a);
        }
        // The front of one kept block: its tail keeps the slot, so every kept slot is taken.
        let a = m.alloc(MIB);
        assert!(m.b.can_hold());
        assert_eq!(m.b.free(a), Some(Freed::GiveBack(Block { addr: a, size: MIB, kept_at: 0 })));
        assert_eq!(m.b.free(a), None, "freed already: not one of these");
        assert_eq!(m.b.bytes(), (0, (2 * SLOTS - 1) * MIB, 2 * SLOTS * MIB));
    }

    proptest::proptest! {
        /// Any sequence of requests and frees: the mark is exactly the most the program held at
        /// once (what it would be without reuse), held and kept stay under it, and the page
        /// ranges held and kept never overlap.
        #[test]
        fn reuse_never_raises_the_peak(ops in proptest::collection::vec((0u8..3, 0usize..6), 1..200)) {
            let sizes = [8 * MIB, 9 * MIB, 16 * MIB, 64 * MIB, 64 * MIB + 4096, 256 * MIB];
            let mut m = Memory::new();
            let mut held: Vec<(usize, usize)> = vec![];
            let (mut live, mut peak) = (0, 0);
            for (op, i) in ops {
                if op < 2 || held.is_empty() {
                    let size = sizes[i];
                    let addr = m.alloc(size);
                    held.push((addr, size));
                    live += size;
                } else {
                    let (addr, size) = held.swap_remove(i % held.len());
                    proptest::prop_assert_eq!(m.b.held_size(addr), Some(size));
                    m.free(addr);
                    live -= size;
                }
                peak = peak.max(live);
                let (h, k, mark) = m.b.bytes();
                let kept: Vec<(usize, usize)> = m.b.slots.iter().filter(|b| b.addr != 0).map(|b| (b.addr, b.size)).collect();
                proptest::prop_assert_eq!((h, k, mark), (live, kept.iter().map(|b| b.1).sum::<usize>(), peak));
                proptest::prop_assert!(h + k <= mark);
                let mut ranges: Vec<(usize, usize)> = held.iter().chain(&kept).copied().collect();
                ranges.sort_unstable();
                proptest::prop_assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "overlap: {:?}", ranges);
            }
        }
    }
}
