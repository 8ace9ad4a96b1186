//! Packing: copying blocks of A and B into the order the micro-kernel reads them.
//!
//! A block of A (`mc x kc`) becomes `ceil(mc / MR)` micro-panels, each `kc` columns of `MR`
//! consecutive rows ("column-major micro-panels"); a block of B (`kc x nc`) becomes
//! `ceil(nc / NR)` micro-panels, each `kc` rows of `NR` consecutive columns. Ragged edges are
//! padded with zeros, so the micro-kernel never branches; the write-back drops the padding.

use rayon::prelude::*;

use super::params::{KC, MR, NR};

/// A read-only strided view of a row-major or transposed matrix.
///
/// Element `(i, j)` is `data[i * row_stride + j * col_stride]`. Transposing swaps the strides,
/// so `Aᵀ` and `Bᵀ` operands cost nothing until they are packed.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A contiguous row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "row-major matrix of {rows}x{cols}");
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Columns `j0..j0 + cols` of this matrix, as a view of the same data.
    pub fn columns(self, j0: usize, cols: usize) -> Self {
        assert!(j0 + cols <= self.cols, "columns {j0}..{} of a {}-column matrix", j0 + cols, self.cols);
        MatRef { data: &self.data[j0 * self.col_stride..], cols, ..self }
    }

    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }
}

/// A source of the B operand that can pack any `kc x nc` block of itself.
///
/// Plain matrices implement it by copying; convolution implements it by gathering image
/// patches (im2col fused into packing, see `kernels::conv`), so the im2col matrix is never
/// materialised.
pub trait PackB: Sync {
    /// Rows of B (the shared dimension K).
    fn rows(&self) -> usize;
    /// Columns of B (N).
    fn cols(&self) -> usize;
    /// Writes B[k0..k0+kc, n0..n0+nc] as NR-column micro-panels into `out`
    /// (`ceil(nc / NR) * kc * NR` floats), zero-padding columns past `nc`. Panels that
    /// [`PackB::panel_in_place`] reports may be left unwritten.
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, out: &mut [f32]);

    /// Whether the micro-kernel may read micro-panels of rows `k0..k0+kc` straight from B's
    /// own memory instead of from a packed copy (the "implicit GEMM" of convolution: an im2col
    /// row over an unpadded image is a shifted image row). If so, returns that memory and
    /// writes into `offsets` where each row starts in it. The default: always pack.
    fn rows_in_place(&self, _k0: usize, _kc: usize, _offsets: &mut [usize]) -> Option<&[f32]> {
        None
    }

    /// For a panel of columns `j..j+NR` that can be read in place, the shift `base` such that
    /// its row `k` is `data[offsets[k] + base..][..NR]`.
    fn panel_in_place(&self, _j: usize) -> Option<usize> {
        None
    }
}

impl PackB for MatRef<'_> {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, out: &mut [f32]) {
        if self.col_stride == 1 {
            // Row-major B: each row of the block is read straight through and dealt out, NR
            // floats to each panel. (Going panel by panel instead walks down kc rows at once,
            // which in a long matrix lie a power of two apart and contend for one cache set.)
            for k in 0..kc {
                let row = &self.data[(k0 + k) * self.row_stride + n0..][..nc];
                let mut chunks = row.chunks_exact(NR);
                for (p, chunk) in (&mut chunks).enumerate() {
                    out[(p * kc + k) * NR..][..NR].copy_from_slice(chunk);
                }
                let tail = chunks.remainder();
                if !tail.is_empty() {
                    let dst = &mut out[(nc / NR * kc + k) * NR..][..NR];
                    dst[..tail.len()].copy_from_slice(tail);
                    dst[tail.len()..].fill(0.0);
                }
            }
            return;
        }
        for (p, panel) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
            let j0 = n0 + p * NR;
            let width = NR.min(n0 + nc - j0);
            if self.row_stride == 1 && width == NR {
                // A transposed matrix (the Fᵀ of a Gram matrix): its columns are contiguous, so
                // each is read straight through and scattered down the panel (for the same
                // reason, not all NR side by side).
                for j in 0..NR {
                    let column = &self.data[(j0 + j) * self.col_stride + k0..][..kc];
                    for (v, &x) in panel[j..].iter_mut().step_by(NR).zip(column) {
                        *v = x;
                    }
                }
                continue;
            }
            for (k, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, v) in row[..width].iter_mut().enumerate() {
                    *v = self.at(k0 + k, j0 + j);
                }
                row[width..].fill(0.0);
            }
        }
    }
}

/// Packs A[m0..m0+mc, k0..k0+kc] as MR-row micro-panels into `out`
/// (`ceil(mc / MR) * kc * MR` floats), zero-padding rows past `mc`.
pub fn pack_a(a: &MatRef, m0: usize, mc: usize, k0: usize, kc: usize, out: &mut [f32]) {
    for (p, panel) in out.chunks_exact_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let i0 = m0 + p * MR;
        let height = MR.min(m0 + mc - i0);
        if a.col_stride == 1 && height == MR {
            // Row-major A: read its MR contiguous rows side by side, one float of each per k.
            let rows: [&[f32]; MR] = std::array::from_fn(|i| &a.data[(i0 + i) * a.row_stride + k0..][..kc]);
            for (k, col) in panel.chunks_exact_mut(MR).enumerate() {
                for (v, row) in col.iter_mut().zip(&rows) {
                    *v = row[k];
                }
            }
            continue;
        }
        for (k, col) in panel.chunks_exact_mut(MR).enumerate() {
            for (i, v) in col[..height].iter_mut().enumerate() {
                *v = a.at(i0 + i, k0 + k);
            }
            col[height..].fill(0.0);
        }
    }
}

/// The whole of a constant A operand, packed once (the network's weights), or a view of one
/// packed elsewhere (`PackedA<&[f32]>`: Winograd's transformed weights, written straight into
/// this layout by [`PackedA::index`]).
///
/// Layout: for each KC block of columns, all MR-row micro-panels of that block, one after
/// another; so the A block of any MR-aligned row range is one contiguous slice.
#[derive(Clone, Copy, Debug)]
pub struct PackedA<D = Vec<f32>> {
    rows: usize,
    cols: usize,
    data: D,
}

impl PackedA {
    pub fn new(a: MatRef) -> Self {
        let padded_rows = a.rows.div_ceil(MR) * MR;
        let mut data = vec![0.0; padded_rows * a.cols];
        if !data.is_empty() {
            // One KC block of columns per task; the last block may be shorter.
            data.par_chunks_mut(KC * padded_rows).enumerate().for_each(|(p, block)| {
                pack_a(&a, 0, a.rows, p * KC, block.len() / padded_rows, block);
            });
        }
        PackedA { rows: a.rows, cols: a.cols, data }
    }

    /// Floats of a packed `rows x cols` matrix: its rows padded to a multiple of MR.
    pub fn len_for(rows: usize, cols: usize) -> usize {
        rows.div_ceil(MR) * MR * cols
    }

    /// [`PackedA::bytes`] of a `rows x cols` matrix, before packing it.
    pub fn bytes_for(rows: usize, cols: usize) -> usize {
        PackedA::len_for(rows, cols) * std::mem::size_of::<f32>()
    }

    /// Where element `(i, k)` of a packed `rows x cols` matrix lies (rows `rows..` up to the
    /// next multiple of MR are the zero padding): in KC block `k0`, micro-panel `i / MR`, column
    /// `k - k0`, lane `i % MR`.
    #[inline(always)]
    pub fn index(rows: usize, cols: usize, i: usize, k: usize) -> usize {
        let k0 = k / KC * KC;
        let kc = KC.min(cols - k0);
        k0 * rows.div_ceil(MR) * MR + (i / MR * kc + (k - k0)) * MR + i % MR
    }
}

impl<'a> PackedA<&'a [f32]> {
    /// A `rows x cols` matrix already in the packed layout (see [`PackedA::index`]).
    pub fn from_packed(rows: usize, cols: usize, data: &'a [f32]) -> Self {
        assert_eq!(data.len(), PackedA::len_for(rows, cols), "packed {rows}x{cols} matrix");
        PackedA { rows, cols, data }
    }
}

impl<D: AsRef<[f32]>> PackedA<D> {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held: the matrix with its rows padded to a multiple of MR.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.data.as_ref())
    }

    /// A borrowed view, as the GEMMs take it.
    pub fn view(&self) -> PackedA<&[f32]> {
        PackedA { rows: self.rows, cols: self.cols, data: self.data.as_ref() }
    }

    /// The packed block of rows `m0..m0+mc` (m0 a multiple of MR) and columns `k0..k0+kc`
    /// (k0 a multiple of KC, kc the length of that KC block).
    pub fn block(&self, m0: usize, mc: usize, k0: usize, kc: usize) -> &[f32] {
        debug_assert!(m0.is_multiple_of(MR) && k0.is_multiple_of(KC));
        let padded_rows = self.rows.div_ceil(MR) * MR;
        let start = k0 * padded_rows + m0 * kc;
        &self.data.as_ref()[start..start + mc.div_ceil(MR) * MR * kc]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PackedA::index` says where `PackedA::new` put each element, across KC blocks, ragged
    /// panels and a short last block; everything else is padding zeros.
    #[test]
    fn index_finds_every_packed_element() {
        for (rows, cols) in [(1, 1), (MR, KC), (MR + 1, KC + 3), (2 * MR + 5, 2 * KC + 17)] {
            let data: Vec<f32> = (0..rows * cols).map(|v| v as f32 + 1.0).collect();
            let packed = PackedA::new(MatRef::row_major(&data, rows, cols));
            assert_eq!(packed.data.len(), PackedA::len_for(rows, cols));
            let mut seen = vec![false; packed.data.len()];
            for i in 0..rows {
                for k in 0..cols {
                    let at = PackedA::index(rows, cols, i, k);
                    assert_eq!(packed.data[at], data[i * cols + k], "{rows}x{cols} at ({i}, {k})");
                    seen[at] = true;
                }
            }
            let padding = packed.data.iter().zip(&seen).filter(|(_, &s)| !s);
            assert!(padding.clone().all(|(&v, _)| v == 0.0), "{rows}x{cols}: padding is zero");
            assert_eq!(padding.count(), PackedA::len_for(rows, cols) - rows * cols);
        }
    }
}
