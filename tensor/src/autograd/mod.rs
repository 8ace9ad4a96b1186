//! Reverse-mode automatic differentiation on a tape.
//!
//! - [`tape`]: `Tape`, `Var`, `NodeId`, recording, and `backward`
//! - [`op`]: `Op`, one variant per differentiable op, holding exactly what its backward needs;
//!   `OpKind`, the same list without the saved state, which the gradient checks must cover
//! - [`backward`]: one exhaustive `match` over `Op` computing the wanted input gradients

pub mod backward;
pub mod op;
pub mod tape;
