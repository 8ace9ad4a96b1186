//! `huge_pages::map_large_blocks_alone`, a process-wide setting, in a test binary of its own so
//! that no other test allocates meanwhile: once set, glibc maps a block above the threshold on
//! its own even after a larger one was freed (alone, it would then serve it from its heap), and
//! `HugePages` serves such blocks from mappings of its own, keeping freed ones for the next
//! requests: a block of their size, the front of a smaller one, or grown into a larger one.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use tensor::huge_pages::{map_large_blocks_alone, HugePages};

/// Blocks glibc holds mapped on their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn mapped_blocks() -> i64 {
    // SAFETY: mallinfo2 only reads glibc's counters.
    unsafe { libc::mallinfo2() }.hblks as i64
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn blocks_above_the_threshold_are_mapped_alone_and_reused_under_the_peak() {
    const MIB: usize = 1 << 20;
    let threshold = 8 * MIB;
    assert!(map_large_blocks_alone(threshold));
    let large = Layout::from_size_align(24 * MIB, 64).unwrap();
    let medium = Layout::from_size_align(2 * threshold + 4096, 64).unwrap();
    // SAFETY: non-zero layouts; each block is freed with the layout it was allocated with, and
    // read or written only within it.
    unsafe {
        // glibc's own part, straight from `System`. Freeing this would raise glibc's threshold
        // to 24 MiB by its own rule (it follows freed blocks up to 32 MiB).
        let p = System.alloc(large);
        assert!(!p.is_null());
        System.dealloc(p, large);
        let before = mapped_blocks();
        let q = System.alloc(medium);
        assert!(!q.is_null());
        assert_eq!(mapped_blocks(), before + 1, "a block of {} bytes is mapped on its own", medium.size());
        System.dealloc(q, medium);
        assert_eq!(mapped_blocks(), before, "and unmapped when freed");

        // A large block aligned past a page is `System`'s, and goes back to it when freed.
        let aligned = Layout::from_size_align(16 * MIB, 1 << 16).unwrap();
        let a = HugePages.alloc(aligned);
        assert_eq!(mapped_blocks(), before + 1, "from glibc");
        HugePages.dealloc(a, aligned);
        assert_eq!(mapped_blocks(), before, "back to glibc");

        // HugePages keeps a freed block and hands it out again for its size.
        let p = HugePages.alloc(large);
        assert!(!p.is_null());
        assert_eq!(mapped_blocks(), before, "its own mapping, not glibc's");
        p.write_bytes(7, large.size());
        HugePages.dealloc(p, large);
        let p2 = HugePages.alloc_zeroed(large);
        assert_eq!(p2, p, "the kept block serves the next request of its size");
        assert!(std::slice::from_raw_parts(p2, large.size()).iter().all(|&b| b == 0), "zeroed when asked");
        let q = HugePages.alloc(medium);
        q.write_bytes(9, medium.size());
        HugePages.dealloc(q, medium);
        // A smaller request: the front of the smallest larger kept block, and then its tail.
        let small = Layout::from_size_align(threshold, 64).unwrap();
        let s = HugePages.alloc_zeroed(small);
        assert_eq!(s, q, "the front of the 16 MiB block, not of the held 24 MiB one");
        assert!(std::slice::from_raw_parts(s, small.size()).iter().all(|&b| b == 0), "zeroed when asked");
        let t = HugePages.alloc(small);
        assert_eq!(t, q.add(small.size()), "the tail");
        assert_eq!(*t, 9, "its pages as they were (not asked zeroed)");
        // A larger request than any kept block: the largest one (24 MiB) grown by fresh pages.
        // The pages it had keep their contents (not asked zeroed); the new ones are zero.
        p2.write_bytes(5, large.size());
        HugePages.dealloc(p2, large);
        let larger = Layout::from_size_align(30 * MIB, 64).unwrap();
        let g = HugePages.alloc(larger);
        assert!(!g.is_null());
        let grown = std::slice::from_raw_parts(g, larger.size());
        assert!(grown[..large.size()].iter().all(|&b| b == 5), "the kept block's pages, moved");
        assert!(grown[large.size()..].iter().all(|&b| b == 0), "fresh pages behind them");
        HugePages.dealloc(g, larger);
        // Asked zeroed, all of it is.
        let largest = Layout::from_size_align(36 * MIB, 64).unwrap();
        let z = HugePages.alloc_zeroed(largest);
        assert!(std::slice::from_raw_parts(z, largest.size()).iter().all(|&b| b == 0), "zeroed when asked");
        HugePages.dealloc(z, largest);
        HugePages.dealloc(s, small);
        HugePages.dealloc(t, small);
    }
}
