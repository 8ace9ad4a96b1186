//! The compute kernels: slices and dimensions in, slices out. No `Tensor`, no `Result`:
//! callers (`crate::ops`) validate shapes, kernels `assert!` them. This is the only module
//! where `unsafe` may appear, each block with a `SAFETY:` note.
//!
//! - [`simd`]: the vector type (`wide::f32x16` with AVX-512, `f32x8` otherwise)
//! - [`gemm`]: packed, blocked, parallel GEMM with its micro-kernel
//! - [`conv`]: convolution as an implicit GEMM (im2col panels read in place from the padded
//!   image), and its backward passes
//! - [`few_outputs`]: sliding-window convolution for layers with at most 4 output channels
//!   (the style network's last), which as a GEMM would fill a quarter of the micro-kernel's tile
//! - [`sliding_gradient`]: the weight gradient of stride-1 layers with few outputs (the style
//!   network's thin ones) by sliding dY's rows over x's, without the GEMM's gather
//! - [`winograd`]: Winograd F(4x4, 3x3) convolution for 3x3 stride-1 layers (four times
//!   fewer multiplications), forward and backward to the input
//! - [`pool`]: 2x2 max-pooling and its backward
//! - [`pad`], [`upsample`]: reflection padding and nearest-neighbour 2x upsampling, and their
//!   backward passes
//! - [`norm`]: instance and batch normalisation (statistics, normalise, backward)
//! - [`gram`]: Gram matrices and their backward
//! - [`elementwise`], [`reduce`]: ReLU and leaky ReLU, the soft clamp of the style network's
//!   output, maps, neighbour differences;
//!   fixed-partition sums
//! - [`reference`](mod@reference): the scalar twin of each of the above, for tests and benches to hold the
//!   fast kernels to; no fast kernel calls it, so the twins stay independent
#![allow(unsafe_code)]

pub mod conv;
pub mod elementwise;
pub mod few_outputs;
pub mod gemm;
pub mod gram;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod reduce;
pub mod reference;
pub mod simd;
pub mod sliding_gradient;
pub mod upsample;
pub mod winograd;

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// `len` zeros, written by every thread when there are many: the buffer an op's kernel then
/// writes its output into.
///
/// Why: `vec![0.0; len]` is `calloc`, and a block `calloc` hands out again (glibc keeps freed
/// ones, see `huge_pages::keep_freed_blocks`) is zeroed by memset on the calling thread while
/// the others wait: 12% of `apply` at 512² (`benches/README.md`, "Zeroing outputs").
pub fn zeroed<T: Copy + Default + Send + Sync>(len: usize) -> Vec<T> {
    if len * std::mem::size_of::<T>() < PARALLEL_BYTES {
        return vec![T::default(); len];
    }
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(T::default(), len));
    v
}

/// A new buffer of `len` values, written by `fill` in parallel without being zeroed first:
/// `fill(i, piece)` gets the `i`-th `chunk`-long piece (the last may be shorter), uninitialised.
///
/// Why: a kernel that writes every value of its output gains nothing from [`zeroed`]'s pass of
/// zeros, which costs a write of the whole buffer to memory before the kernel's own (5% of
/// `apply` at 512² for the padding and upsampling alone, `benches/README.md`).
///
/// # Safety
/// `fill(i, piece)` must write every value of `piece`.
pub(crate) unsafe fn filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    assert!(chunk > 0 || len == 0, "pieces of no values cannot make up {len}");
    let mut v = Vec::with_capacity(len);
    if len > 0 {
        v.spare_capacity_mut()[..len].par_chunks_mut(chunk).enumerate().for_each(|(i, piece)| fill(i, piece));
    }
    // SAFETY: the pieces cover 0..len, and the caller's `fill` wrote every value of each.
    unsafe { v.set_len(len) };
    v
}

/// `piece` filled with zeros, and from then on initialised: the start of a [`filled`] piece
/// that a kernel then adds into.
pub(crate) fn write_zeros(piece: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    piece.iter_mut().for_each(|v| _ = v.write(0.0));
    // SAFETY: every value was just written.
    unsafe { piece.assume_init_mut() }
}

/// `y` seen as memory a kernel only writes (`&mut [MaybeUninit<f32>]`), so that one kernel
/// serves both outputs made for it uninitialised and buffers the caller already holds.
///
/// # Safety
/// Whatever receives the view writes only initialised values into it (never
/// `MaybeUninit::uninit()`), so that y stays initialised.
pub(crate) unsafe fn as_write_only(y: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller keeps every value initialised.
    unsafe { &mut *(y as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// Smallest buffer [`zeroed`] zeroes on several threads (below, the tasks cost more than the
/// memset saves).
const PARALLEL_BYTES: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_len_zeros_on_either_side_of_the_parallel_size() {
        let floats = PARALLEL_BYTES / 4;
        for len in [0, 3, floats - 1, floats, 3 * floats + 5] {
            let v: Vec<f32> = zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x.to_bits() == 0), "len {len}: +0.0 everywhere");
            let m: Vec<u8> = zeroed(4 * len + 1);
            assert_eq!(m.len(), 4 * len + 1);
            assert!(m.iter().all(|&b| b == 0));
        }
    }
}
