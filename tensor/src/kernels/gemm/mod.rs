//! Packed, cache-blocked, parallel single-precision GEMM: `C = A·B (+ bias) (+ C)`.
//!
//! The five loops of BLIS (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly
//! Instantiating BLAS Functionality", 2015), named as there:
//!
//! ```text
//! JC      (5th)     : C in NC-column blocks                -- the parallel tasks (rayon)
//!   PC    (4th)     : K in KC-deep blocks; pack the B block (kc x nc) once, except the
//!                     panels B lets the micro-kernel read in place (`PackB::rows_in_place`)
//!     IC  (3rd)     : M in MC-row blocks; find or pack the A block (mc x kc)
//!       JR (2nd)    : NR-column micro-panels of the B block
//!         IR (1st)  : MR-row micro-panels of the A block -> micro-kernel -> write-back
//! ```
//!
//! K is never split across tasks (BLIS leaves the 4th loop serial because every iteration
//! updates the same C), so each element of C is summed in the same order whatever the block
//! sizes or the thread count: results are bit-identical for any number of threads.

mod microkernel;
mod pack;
pub mod params;

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

pub use microkernel::microkernel;
use microkernel::{microkernel_rows, HALF};
pub use pack::{pack_a, MatRef, PackB, PackedA};
use params::{KC, MC, MR, NC, NR};

/// The A operand: packed once (constant weights) or packed per call from a strided view.
#[derive(Clone, Copy)]
pub enum AOperand<'a> {
    Packed(PackedA<&'a [f32]>),
    View(MatRef<'a>),
}

impl AOperand<'_> {
    fn rows(&self) -> usize {
        match self {
            AOperand::Packed(p) => p.rows(),
            AOperand::View(v) => v.rows,
        }
    }
    fn cols(&self) -> usize {
        match self {
            AOperand::Packed(p) => p.cols(),
            AOperand::View(v) => v.cols,
        }
    }
}

/// What the write-back does besides storing `A·B`, and which tiles of C it computes.
#[derive(Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added to every element of row i (a convolution's bias, one per output channel).
    pub bias: Option<&'a [f32]>,
    /// `C += A·B` instead of `C = A·B`. When false, C is only written, never read, so it may
    /// hold garbage or NaN on entry (the BLIS beta = 0 contract).
    pub accumulate: bool,
    /// `C = max(C, 0)` once the sum is complete (a convolution's ReLU), applied in the last K
    /// block's write-back while the tile is still in cache: it saves a pass over C, which for
    /// VGG's early layers is tens of megabytes. NaN becomes 0, as in [`elementwise::relu`].
    ///
    /// [`elementwise::relu`]: crate::kernels::elementwise::relu
    pub relu: bool,
    /// Compute only the tiles of C that reach its upper triangle (some row i <= some column j),
    /// leaving those wholly below the diagonal unwritten: for a symmetric product (a Gram
    /// matrix `F Fᵀ`) whose caller mirrors the upper triangle, about half the multiplications,
    /// as BLAS's SYRK. B is packed as for the full product; only micro-kernel calls are skipped.
    pub upper: bool,
}

/// `C (m x n, row-major) = A (m x k) · B (k x n) [+ bias] [+ C]`, then `max(C, 0)` if asked.
pub fn gemm(a: AOperand, b: &impl PackB, c: &mut [f32], epilogue: Epilogue) {
    let n = b.cols();
    gemm_with(a, b, SharedC::new(c, n), epilogue, None);
}

/// [`gemm`] into uninitialised memory, which it only writes: `accumulate` (which reads C) and
/// `upper` (which leaves tiles unwritten) must be off. Every element of C is written, so the
/// caller may then take C as initialised. With `mask`, the ReLU's mask as [`gemm_relu_mask`].
pub fn gemm_uninit(
    a: AOperand,
    b: &impl PackB,
    c: &mut [MaybeUninit<f32>],
    epilogue: Epilogue,
    mask: Option<&mut [u8]>,
) {
    assert!(!epilogue.accumulate && !epilogue.upper, "gemm_uninit: C is only written, and all of it");
    if let Some(mask) = &mask {
        assert!(epilogue.relu && mask.len() == c.len(), "gemm: a ReLU mask needs the ReLU, one byte per element of C");
    }
    let n = b.cols();
    gemm_with(a, b, SharedC::from_uninit(c, n), epilogue, mask);
}

/// [`gemm`] with its ReLU (`epilogue.relu` must be set), writing also `mask = (C > 0)`, one
/// byte per element of C, in the same write-back: the mask a ReLU's backward reads, made
/// while each tile is in cache rather than by a second pass over C.
pub fn gemm_relu_mask(a: AOperand, b: &impl PackB, c: &mut [f32], epilogue: Epilogue, mask: &mut [u8]) {
    assert!(epilogue.relu, "gemm: a ReLU mask needs the ReLU");
    assert_eq!(mask.len(), c.len(), "gemm: one mask byte per element of C");
    let n = b.cols();
    gemm_with(a, b, SharedC::new(c, n), epilogue, Some(mask));
}

/// The GEMM into `c`, which is initialised wherever it is read: everywhere when
/// `epilogue.accumulate` ([`gemm`] and [`gemm_relu_mask`] pass initialised memory, and
/// [`gemm_uninit`] refuses to accumulate); else each element is written (by the first K block)
/// before anything reads it.
fn gemm_with(a: AOperand, b: &impl PackB, c: SharedC<'_>, epilogue: Epilogue, mask: Option<&mut [u8]>) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "gemm: A is {m}x{k} but B has {} rows", b.rows());
    assert!(c.len == m * n && c.cols == n, "gemm: C must be {m}x{n}");
    if let Some(bias) = epilogue.bias {
        assert_eq!(bias.len(), m, "gemm: one bias per row of C");
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        let mut masks = mask.map(|m| m.chunks_exact_mut(n));
        for i in 0..m {
            let b = epilogue.bias.map_or(0.0, |bias| bias[i]);
            // SAFETY: no task runs, so row i is this loop's alone; it is initialised when
            // accumulating (see `gemm_with`), and written whole before `row` reads it otherwise.
            let row = unsafe {
                if !epilogue.accumulate {
                    c.row_uninit(i, 0, n).iter_mut().for_each(|v| _ = v.write(b));
                }
                c.row(i, 0, n)
            };
            if epilogue.accumulate {
                row.iter_mut().for_each(|v| *v += b);
            }
            if epilogue.relu {
                relu_in_place(row);
            }
            if let Some(mask) = masks.as_mut().and_then(Iterator::next) {
                positive_mask_into(row, mask);
            }
        }
        return;
    }

    // Parallel tasks are column blocks of C (JC loop), each over all of M so that its packed B
    // block (for a convolution, the costly im2col gather) is made once. When that gives too few
    // tasks to keep every thread busy, the columns are narrowed and then M is split too; but
    // not an A of one MC block whose columns already give every thread a task: each task
    // would pack the same B again for a few rows (a weight gradient, M = cout = 64 rows by
    // K = pixels: 64 x 4096 x 576 took 1.37 ms split, 0.81 ms not, `benches/README.md`). The
    // result does not depend on these choices (see the module docs).
    let threads = rayon::current_num_threads();
    let want = 4 * threads;
    let nc = (n.div_ceil(want).div_ceil(NR) * NR).clamp(NR, NC);
    let blocks = n.div_ceil(nc);
    let mt = if blocks >= want || (m <= MC && blocks >= threads) {
        m
    } else {
        (m.div_ceil(want.div_ceil(blocks))).div_ceil(MR) * MR
    };
    let mt = mt.max(MR);
    let tasks: Vec<(usize, usize)> =
        (0..m).step_by(mt).flat_map(|m0| (0..n).step_by(nc).map(move |n0| (m0, n0))).collect();

    // A view of A would be packed again by every column task: pack it once, in parallel.
    let packed;
    let a = match a {
        AOperand::View(v) if n > nc => {
            packed = PackedA::new(v);
            AOperand::Packed(packed.view())
        }
        a => a,
    };
    // Scratch per worker, no larger than this call needs (small GEMMs, like the slices of a
    // Gram matrix, would otherwise spend their time zeroing full-size buffers).
    let kc_max = KC.min(k);
    let a_len = match a {
        AOperand::Packed(_) => 0,
        AOperand::View(_) => MC.min(mt).div_ceil(MR) * MR * kc_max,
    };
    let b_len = nc.div_ceil(NR) * NR * kc_max;
    let mask = mask.map(|mask| SharedC::new(mask, n));
    tasks.into_par_iter().for_each_init(
        || (vec![0.0; a_len], vec![0.0; b_len]),
        |(a_buf, b_buf), (m0, n0)| {
            let (mc, ncb) = (mt.min(m - m0), nc.min(n - n0));
            block::<false>(&a, b, (&c, mask.as_ref()), (m0, mc), (n0, ncb), k, epilogue, a_buf, b_buf);
        },
    );
}

/// `C (m x n) = A·B` for a packed A, on the calling thread alone: for callers that are already
/// parallel over many small independent products (Winograd convolution's 36 per batch of
/// tiles, see `kernels::winograd`), where splitting each one again would cost more than it
/// gains. The same blocking and summation order as [`gemm`]; `b_buf` is scratch for B's
/// packed blocks, grown when too small and never cleared.
pub fn gemm_serial(a: PackedA<&[f32]>, b: &impl PackB, c: &mut [f32], b_buf: &mut Vec<f32>) {
    gemm_serial_rows(a, 0..a.rows(), b, c, b_buf, false);
}

/// Rows `rows` of `A·B` into `c` (`rows.len() x n`), as [`gemm_serial`]: one task's share
/// of a product whose rows are split between tasks (Winograd convolution on an image with
/// too few tiles to give every thread a batch of its own). `rows.start` is a multiple of MR,
/// where A's packed micro-panels begin; the values are those of the same rows of the whole
/// product, bit for bit. `a_from_memory`: A is too large to stay in cache between calls, so the
/// micro-kernel prefetches it (see `microkernel_rows`; the values are the same either way).
pub fn gemm_serial_rows(
    a: PackedA<&[f32]>,
    rows: Range<usize>,
    b: &impl PackB,
    c: &mut [f32],
    b_buf: &mut Vec<f32>,
    a_from_memory: bool,
) {
    let (m, k, n) = (rows.len(), a.cols(), b.cols());
    assert!(rows.start.is_multiple_of(MR) && rows.end <= a.rows(), "gemm: rows {rows:?} of A's {}", a.rows());
    assert_eq!(b.rows(), k, "gemm: A is {}x{k} but B has {} rows", a.rows(), b.rows());
    assert_eq!(c.len(), m * n, "gemm: C must be {m}x{n}");
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let need = NC.min(n).div_ceil(NR) * NR * KC.min(k);
    if b_buf.len() < need {
        b_buf.resize(need, 0.0);
    }
    let c = SharedC::from_row(c, n, rows.start);
    for n0 in (0..n).step_by(NC) {
        let nc = NC.min(n - n0);
        let (a, c, epilogue) = (&AOperand::Packed(a), (&c, None), Epilogue::default());
        if a_from_memory {
            block::<true>(a, b, c, (rows.start, m), (n0, nc), k, epilogue, &mut [], b_buf);
        } else {
            block::<false>(a, b, c, (rows.start, m), (n0, nc), k, epilogue, &mut [], b_buf);
        }
    }
}

/// One block of C (and of its ReLU mask, if asked), rows `m0..m0+mt`, columns `n0..n0+nc`:
/// the PC, IC, JR and IR loops. `PREFETCH`: the micro-kernel prefetches A (`microkernel_rows`).
#[allow(clippy::too_many_arguments)]
fn block<const PREFETCH: bool>(
    a: &AOperand,
    b: &impl PackB,
    (c, mask): (&SharedC, Option<&SharedC<u8>>),
    (m0, mt): (usize, usize),
    (n0, nc): (usize, usize),
    k: usize,
    epilogue: Epilogue,
    a_buf: &mut [f32],
    b_buf: &mut [f32],
) {
    let mut tile = [[0.0f32; NR]; MR];
    let mut offsets = [0usize; KC];
    // PC loop (4th): K in KC blocks, in order; one packed B block each.
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let in_place = b.rows_in_place(k0, kc, &mut offsets[..kc]);
        let b_block = &mut b_buf[..nc.div_ceil(NR) * NR * kc];
        b.pack(k0, kc, n0, nc, b_block);
        let (first, last) = (k0 == 0, k0 + kc == k);
        // IC loop (3rd): M in MC blocks, each packed A block reused across all of B's panels.
        for i0 in (m0..m0 + mt).step_by(MC) {
            let mc = MC.min(m0 + mt - i0);
            let a_block: &[f32] = match a {
                AOperand::Packed(p) => p.block(i0, mc, k0, kc),
                AOperand::View(v) => {
                    let len = mc.div_ceil(MR) * MR * kc;
                    pack_a(v, i0, mc, k0, kc, &mut a_buf[..len]);
                    &a_buf[..len]
                }
            };
            // JR loop (2nd): NR-column micro-panels of B.
            for (jp, b_panel) in b_block.chunks_exact(kc * NR).enumerate() {
                let j = n0 + jp * NR;
                let nr = NR.min(n0 + nc - j);
                let direct = in_place.and_then(|data| Some((data, b.panel_in_place(j)?)));
                // IR loop (1st): MR-row micro-panels of A.
                for (ip, a_panel) in a_block.chunks_exact(kc * MR).enumerate() {
                    let i = i0 + ip * MR;
                    if epilogue.upper && i >= j + nr {
                        continue; // every row of this tile is below every column
                    }
                    let mr = MR.min(i0 + mc - i);
                    // A panel of at most HALF real rows (a layer's last, when its channels
                    // are few or not a multiple of MR) skips the other half's zeros.
                    match (direct, mr <= HALF) {
                        (Some((data, base)), half) => {
                            let rows = offsets[..kc].iter().map(|&o| &data[o + base..o + base + NR]);
                            if half {
                                microkernel_rows::<HALF, PREFETCH>(a_panel, rows, &mut tile)
                            } else {
                                microkernel_rows::<MR, PREFETCH>(a_panel, rows, &mut tile)
                            }
                        }
                        (None, true) => {
                            microkernel_rows::<HALF, PREFETCH>(a_panel, b_panel.chunks_exact(NR), &mut tile)
                        }
                        (None, false) => microkernel_rows::<MR, PREFETCH>(a_panel, b_panel.chunks_exact(NR), &mut tile),
                    }
                    for (r, t) in tile.iter().enumerate().take(mr) {
                        // SAFETY: the mask has C's shape, and the same block is this task's.
                        let mask = mask.filter(|_| last).map(|m| unsafe { m.row(i + r, j, nr) });
                        write_back(c, (i + r, j), &t[..nr], first, last, epilogue, mask);
                    }
                }
            }
        }
    }
}

/// Stores one row of a tile into C at `(row, j)`: the first K block overwrites (or accumulates
/// into) C and adds the bias; later K blocks add their partial sums; the last one applies the
/// ReLU and writes the row's `mask` (given for the last block only).
#[inline(always)]
fn write_back(
    c: &SharedC,
    (row, j): (usize, usize),
    tile: &[f32],
    first: bool,
    last: bool,
    epilogue: Epilogue,
    mask: Option<&mut [u8]>,
) {
    let bias = epilogue.bias.map_or(0.0, |b| b[row]);
    // SAFETY: row `row`, columns j..j+len lie inside the calling task's block of C, and the
    // blocks of different tasks are disjoint. The range is initialised wherever it is read
    // (`row`): by the caller when accumulating (see `gemm_with`), else by the first K block,
    // which only writes it (`row_uninit`).
    let out = unsafe {
        if first && !epilogue.accumulate {
            for (o, t) in c.row_uninit(row, j, tile.len()).iter_mut().zip(tile) {
                o.write(t + bias);
            }
        }
        c.row(row, j, tile.len())
    };
    if !first {
        for (o, t) in out.iter_mut().zip(tile) {
            *o += t;
        }
    } else if epilogue.accumulate {
        for (o, t) in out.iter_mut().zip(tile) {
            *o += t + bias;
        }
    }
    if last && epilogue.relu {
        relu_in_place(out);
        if let Some(mask) = mask {
            positive_mask_into(out, mask);
        }
    }
}

/// `mask = (y > 0)`, one byte per value: a ReLU's mask recovered from its output, as the
/// standalone `elementwise::relu` makes it from its input.
#[inline(always)]
pub(crate) fn positive_mask_into(y: &[f32], mask: &mut [u8]) {
    for (m, &y) in mask.iter_mut().zip(y) {
        *m = (y > 0.0) as u8;
    }
}

/// `v = max(v, 0)`, NaN to 0, exactly as the standalone ReLU.
#[inline(always)]
fn relu_in_place(out: &mut [f32]) {
    for o in out {
        *o = if *o > 0.0 { *o } else { 0.0 };
    }
}

/// A matrix C shared by parallel tasks, each of which writes only its own elements (here a
/// block of C, and of its ReLU mask; in `kernels::winograd`, the pixels of its own tiles).
pub(crate) struct SharedC<'a, T = f32> {
    ptr: *mut T,
    len: usize,
    cols: usize,
    /// The row index of the memory's first row (a block of rows of a larger matrix).
    first_row: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: SharedC is a `&mut [T]` handed to several tasks; `row` is the only access and its
// contract (disjoint rows/columns per task) rules out data races.
unsafe impl<T: Send> Sync for SharedC<'_, T> {}

impl<'a, T> SharedC<'a, T> {
    pub(crate) fn new(c: &'a mut [T], cols: usize) -> Self {
        SharedC::from_row(c, cols, 0)
    }

    /// Rows `first_row..` of a larger matrix, addressed by their rows there.
    pub(crate) fn from_row(c: &'a mut [T], cols: usize, first_row: usize) -> Self {
        SharedC { ptr: c.as_mut_ptr(), len: c.len(), cols, first_row, _borrow: PhantomData }
    }

    /// Over memory not yet written: ranges may be taken by [`SharedC::row_uninit`] to write
    /// them, and by [`SharedC::row`] only once written.
    pub(crate) fn from_uninit(c: &'a mut [MaybeUninit<T>], cols: usize) -> Self {
        // MaybeUninit<T> has T's layout.
        SharedC { ptr: c.as_mut_ptr().cast(), len: c.len(), cols, first_row: 0, _borrow: PhantomData }
    }

    /// Row `i`, columns `j..j + len`, to write (its values may be uninitialised).
    ///
    /// # Safety
    /// As [`SharedC::row`], but the range need not be initialised.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row_uninit(&self, i: usize, j: usize, len: usize) -> &mut [MaybeUninit<T>] {
        let start = (i - self.first_row) * self.cols + j;
        assert!(j + len <= self.cols && start + len <= self.len, "write outside C");
        // SAFETY: in bounds (asserted above) and unaliased (the caller's contract); MaybeUninit
        // asks nothing of the values.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start).cast(), len) }
    }

    /// Row `i`, columns `j..j + len`.
    ///
    /// # Safety
    /// No other live reference may overlap that range: each task asks only for ranges inside
    /// its own block of C, and blocks are disjoint. Every value in the range is initialised
    /// (always so for a `SharedC::new`; after being written for a `SharedC::from_uninit`).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row(&self, i: usize, j: usize, len: usize) -> &mut [T] {
        let start = (i - self.first_row) * self.cols + j;
        assert!(j + len <= self.cols && start + len <= self.len, "write outside C");
        // SAFETY: in bounds (asserted above) and unaliased (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    /// The prefetching micro-kernel only adds hints: every value is the same bits as without,
    /// on rows from a ragged start to a ragged end, K across a KC block, N across NC.
    #[test]
    fn prefetching_a_gives_the_same_bits() {
        let (m, k, n) = (5 * MR + 7, KC + 37, NC + 2 * NR);
        let mut rng = Rng::new(3);
        let (a, b) = (rng.vec(m * k), rng.vec(k * n));
        let packed = PackedA::new(MatRef::row_major(&a, m, k));
        let rows = MR..m - 2;
        let product = |prefetch| {
            let mut c = vec![f32::NAN; rows.len() * n];
            gemm_serial_rows(
                packed.view(),
                rows.clone(),
                &MatRef::row_major(&b, k, n),
                &mut c,
                &mut Vec::new(),
                prefetch,
            );
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let with = product(true);
        assert!(with.iter().all(|&v| !f32::from_bits(v).is_nan()), "every value written");
        assert_eq!(with, product(false));
    }
}
