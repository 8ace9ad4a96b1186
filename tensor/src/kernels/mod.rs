//! The compute kernels: slices and dimensions in, slices out. No `Tensor`, no `Result`:
//! callers (`crate::ops`) validate shapes, kernels `assert!` them. This is the only module
//! where `unsafe` may appear, each block with a `SAFETY:` note.
//!
//! - [`simd`]: the vector type (`wide::f32x16` with AVX-512, `f32x8` otherwise)
//! - [`gemm`]: packed, blocked, parallel GEMM with its micro-kernel
//! - [`conv`]: convolution as an implicit GEMM (im2col panels read in place from the padded
//!   image), and its backward passes
//! - [`winograd`]: Winograd F(4x4, 3x3) convolution for 3x3 stride-1 layers (four times
//!   fewer multiplications), forward and backward to the input
//! - [`pool`]: 2x2 max-pooling and its backward
//! - [`pad`], [`upsample`]: reflection padding and nearest-neighbour 2x upsampling, and their
//!   backward passes
//! - [`norm`]: instance and batch normalisation (statistics, normalise, backward)
//! - [`gram`]: Gram matrices and their backward
//! - [`elementwise`], [`reduce`]: ReLU and leaky ReLU, maps, neighbour differences;
//!   fixed-partition sums
//! - [`reference`](mod@reference): the scalar twin of each of the above, for tests and benches to hold the
//!   fast kernels to; no fast kernel calls it, so the twins stay independent
#![allow(unsafe_code)]

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod gram;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod reduce;
pub mod reference;
pub mod simd;
pub mod upsample;
pub mod winograd;
