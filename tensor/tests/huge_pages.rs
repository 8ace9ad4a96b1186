//! `huge_pages::map_large_blocks_alone`, a process-wide setting, in a test binary of its own so
//! that no other test allocates meanwhile: once set, a block above the threshold is mapped on
//! its own even after a larger one was freed (glibc alone would then serve it from its heap),
//! and goes back to the system when freed.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use tensor::huge_pages::{map_large_blocks_alone, HugePages};

/// Blocks glibc holds mapped on their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn mapped_blocks() -> i64 {
    // SAFETY: mallinfo2 only reads glibc's counters.
    unsafe { libc::mallinfo2() }.hblks as i64
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn blocks_above_the_threshold_are_mapped_alone_after_a_larger_one_is_freed() {
    let threshold = 8 << 20;
    assert!(map_large_blocks_alone(threshold));
    let large = Layout::from_size_align(24 << 20, 64).unwrap();
    let medium = Layout::from_size_align(threshold + 4096, 64).unwrap();
    // SAFETY: non-zero layouts; each block is freed with the layout it was allocated with.
    unsafe {
        // By glibc's own rule, freeing this raises its threshold to 24 MiB (it follows freed
        // blocks up to 32 MiB).
        let p = HugePages.alloc(large);
        assert!(!p.is_null());
        HugePages.dealloc(p, large);
        let before = mapped_blocks();
        let q = HugePages.alloc(medium);
        assert!(!q.is_null());
        assert_eq!(mapped_blocks(), before + 1, "a block of {} bytes is mapped on its own", medium.size());
        HugePages.dealloc(q, medium);
        assert_eq!(mapped_blocks(), before, "and unmapped when freed");
    }
}
