//! `huge_pages::keep_freed_blocks`, a process-wide setting, in a test binary of its own so that
//! no other test allocates meanwhile: once set, a block glibc would otherwise map on its own (it
//! starts by mapping anything above 128 KiB) comes from the heap, and stays there, free for the
//! next one, after it is freed. 24 MiB: the test runs on a thread of its own, whose glibc heap
//! holds at most 64 MiB.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use tensor::huge_pages::{keep_freed_blocks, HugePages};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_blocks_stay_for_reuse() {
    // SAFETY: mallinfo2 only reads glibc's counters.
    let info = || unsafe { libc::mallinfo2() };
    assert!(keep_freed_blocks());
    let large = Layout::from_size_align(24 << 20, 4).unwrap();
    // SAFETY: a non-zero layout; each block is freed with the layout it was allocated with.
    unsafe {
        let mapped = info().hblks;
        let p = HugePages.alloc(large);
        assert!(!p.is_null());
        assert_eq!(info().hblks, mapped, "a 24 MiB block comes from the heap, not a mapping of its own");
        HugePages.dealloc(p, large);
        assert!(info().fordblks >= large.size(), "and stays in the heap when freed: {:?}", info().fordblks);
        let heap = info().arena;
        let q = HugePages.alloc(large);
        assert!(!q.is_null());
        assert_eq!(info().arena, heap, "the next block of its size reuses it: the heap did not grow");
        HugePages.dealloc(q, large);
    }
}
