//! `huge_pages::map_large_blocks_alone`, a process-wide setting, in a test binary of its own so
//! that no other test allocates meanwhile: once set, glibc maps a block above the threshold on
//! its own even after a larger one was freed (alone, it would then serve it from its heap), and
//! `HugePages` keeps a freed one for the next request of its size, giving kept blocks back
//! before a fresh one would take the program's large blocks above their high-water mark.

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
    let threshold = 8 << 20;
    assert!(map_large_blocks_alone(threshold));
    let large = Layout::from_size_align(24 << 20, 64).unwrap();
    let medium = Layout::from_size_align(threshold + 4096, 64).unwrap();
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

        // HugePages keeps a freed block and hands it out again for its layout.
        let p = HugePages.alloc(large);
        assert!(!p.is_null());
        p.write_bytes(7, large.size());
        HugePages.dealloc(p, large);
        assert_eq!(mapped_blocks(), before + 1, "kept, not unmapped");
        let p2 = HugePages.alloc_zeroed(large);
        assert_eq!(p2, p, "the kept block serves the next request of its size");
        assert!(std::slice::from_raw_parts(p2, large.size()).iter().all(|&b| b == 0), "zeroed when asked");
        // Two blocks held: 24 MiB + 8 MiB is the high-water mark from here on.
        let q = HugePages.alloc(medium);
        assert_eq!(mapped_blocks(), before + 2);
        HugePages.dealloc(p2, large);
        HugePages.dealloc(q, medium);
        assert_eq!(mapped_blocks(), before + 2, "both kept: 32 MiB, at the mark");
        // A 16 MiB block fits no kept one; fresh, it would take held and kept to 48 MiB, so the
        // oldest kept block (the 24 MiB one) goes back first, and then the 8 MiB one still fits.
        let other = Layout::from_size_align(16 << 20, 64).unwrap();
        let r = HugePages.alloc(other);
        assert!(!r.is_null());
        assert_eq!(mapped_blocks(), before + 2, "one given back, one mapped");
        let q2 = HugePages.alloc(medium);
        assert_eq!(q2, q, "the younger kept block stayed");
        HugePages.dealloc(r, other);
        HugePages.dealloc(q2, medium);
    }
}
