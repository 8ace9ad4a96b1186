//! The stylize tensor engine: an f32 tensor, fast CPU kernels and reverse-mode autograd.
//!
//! | file | what it holds |
//! |---|---|
//! | `shape.rs` | [`Shape`]: up to 4 dims, row-major (NCHW) |
//! | `tensor.rs` | [`Tensor`]: shape + `Arc`'d data; invariant `data.len() == shape.numel()` |
//! | `error.rs` | [`Error`]: names the op and the shapes |
//! | `rng.rs` | [`Rng`]: seeded SplitMix64 for test data, bench inputs and noise images |
//! | `running_stats.rs` | [`BatchStats`], [`RunningStats`]: batch norm's statistics, and why the layer (not the op) keeps the running ones |
//! | `ops.rs` | every differentiable op, as a method on [`Tape`]; [`Conv2d`] |
//! | `autograd/tape.rs` | [`Tape`], [`Var`], [`NodeId`], `backward` → [`Grads`] |
//! | `autograd/op.rs` | `Op`: one variant per op, holding exactly its saved state; [`OpKind`], the list a gradient check must cover |
//! | `autograd/backward.rs` | the backward rule of every op, one exhaustive `match` |
//! | `huge_pages.rs` | [`HugePages`]: the global allocator the binaries use, and why (page faults) |
//! | `huge_pages/reuse.rs` | which freed large blocks the allocator keeps for reuse: never above the peak |
//! | `kernels/` | slices in, slices out: GEMM, convolution, pooling, Gram, padding, upsampling, normalisation, elementwise, reductions, and `reference.rs`, the scalar twin of each |
//!
//! ```
//! use tensor::{Tape, Tensor};
//! let mut tape = Tape::new();
//! let x = tape.leaf(Tensor::new([4], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
//! let y = tape.scale(&x, 2.0);
//! let loss = tape.mean_square(&y).unwrap(); // mean(4x²)
//! let grads = tape.backward(&loss).unwrap();
//! assert_eq!(grads.get(&x).unwrap().data(), &[2.0, 4.0, 6.0, 8.0]); // 8x / 4
//! ```

pub mod autograd;
mod error;
pub mod huge_pages;
pub mod kernels;
mod ops;
mod rng;
mod running_stats;
mod shape;
mod tensor;

pub use autograd::op::OpKind;
pub use autograd::tape::{Grads, NodeId, Tape, Var};
pub use error::Error;
pub use huge_pages::HugePages;
pub use kernels::conv::ConvGeometry;
pub use ops::Conv2d;
pub use rng::Rng;
pub use running_stats::{BatchStats, RunningStats};
pub use shape::Shape;
pub use tensor::Tensor;
