//! `huge_pages::census`, process-wide, in a test binary of its own: the peak of live bytes and
//! the large blocks alive at that moment, not at the end.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use tensor::huge_pages::{census, HugePages};

#[test]
fn the_census_lists_the_large_blocks_alive_at_the_peak() {
    let mib = 1 << 20;
    census::start();
    let layout = |bytes: usize| Layout::from_size_align(bytes, 64).unwrap();
    // SAFETY: non-zero layouts; each block is freed with the layout it was allocated with.
    unsafe {
        // 3 + 5 MiB alive, then 3 freed and 1 allocated, grown to 2: the peak (8 MiB and
        // change) was the first two, whatever is alive at the end.
        let a = HugePages.alloc(layout(3 * mib));
        let b = HugePages.alloc(layout(5 * mib));
        HugePages.dealloc(a, layout(3 * mib));
        let c = HugePages.alloc(layout(mib));
        let d = HugePages.realloc(c, layout(mib), 2 * mib);
        let (peak, listed) = census::peak();
        assert!((8 * mib..9 * mib).contains(&peak), "peak {peak}");
        assert_eq!(listed, vec![(5 * mib, 1), (3 * mib, 1)]);
        HugePages.dealloc(b, layout(5 * mib));
        HugePages.dealloc(d, layout(2 * mib));
    }
    assert!(census::report().contains("1 x 5.00 MiB, 1 x 3.00 MiB"), "{}", census::report());
}
