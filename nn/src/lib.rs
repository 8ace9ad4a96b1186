//! Losses and optimisers for style transfer, built on the `tensor` engine.
//!
//! | file | what it holds |
//! |---|---|
//! | `loss.rs` | content, Gram style and total-variation losses (Gatys et al.) |
//! | `model_file.rs` | a trained model's tensors and metadata in a validated safetensors file |
//! | `optim/lbfgs.rs` | L-BFGS with PyTorch's semantics, optional strong-Wolfe line search |
//! | `optim/adam.rs` | Adam with bias correction |
//!
//! Optimisers work on a flat `&mut [f32]` and a loss-and-gradient closure, so they are tested on
//! Rosenbrock and quadratics without any network (as `scipy.optimize` is).

pub mod loss;
pub mod model_file;
pub mod optim;
