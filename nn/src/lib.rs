//! Losses and optimisers for style transfer, built on the `tensor` engine.
//!
//! | file | what it holds |
//! |---|---|
//! | `loss.rs` | content, Gram style and total-variation losses (Gatys et al.) |
//! | `layers.rs` | trainable layers (reflection-padded conv, instance/batch norm) and [`layers::Ctx`], a forward pass's parameter binding |
//! | `transformer.rs` | the feed-forward style network of Johnson et al. (2016), its parameters and model file |
//! | `model_file.rs` | a trained model's tensors and metadata in a validated safetensors file |
//! | `optim/lbfgs.rs` | L-BFGS with PyTorch's semantics, optional strong-Wolfe line search |
//! | `optim/adam.rs` | Adam with bias correction |
//!
//! Optimisers work on tensors and a loss-and-gradient closure (or, for a network, a list of
//! parameters and their gradients), so they are tested on Rosenbrock and quadratics without any
//! network (as `scipy.optimize` is).

pub mod layers;
pub mod loss;
pub mod model_file;
pub mod optim;
pub mod transformer;
