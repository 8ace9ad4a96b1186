//! stylize: neural style transfer (Gatys, Ecker & Bethge) on the CPU, as a library. The
//! `stylize` command (`main.rs` and `cli/`) is its thinnest user: it parses flags, shows
//! progress and writes files, and everything else is here.
//!
//! One image, followed from its file back to its file: [`image::load_rgb`] decodes it into a
//! tensor `[1, 3, H, W]`; [`transfer::transfer`] resizes it per scale ([`image::resize_longest`]),
//! moves it into VGG's space once ([`vgg::Vgg19::preprocess`]), and lets an optimiser descend
//! [`objective::Objective`]'s loss on it; the result comes back as RGB in an
//! [`transfer::Outcome`], and [`image::save`] encodes it atomically.
//!
//! | file | what it holds |
//! |---|---|
//! | `train.rs` | the training phase: a feed-forward network learns a style from photo crops; checkpoints that resume exactly |
//! | `apply.rs` | the transfer phase: a trained network repaints a photo, in tiles past one tile's size |
//! | `batch.rs` | `apply`'s inputs (files, folders) and outputs, and `--shard K/N` for job arrays |
//! | `image/` | decode, resize (Pillow's Lanczos), encode: the image is a `Tensor` throughout |
//! | `color.rs` | luminance-only transfer (`--preserve-colors`) in YIQ |
//! | `objective.rs` | the Gatys loss at an image, with its gradient; the default layers and weights |
//! | `schedule.rs` | the coarse-to-fine scale sizes |
//! | `tiles.rs` | a network over overlapping tiles, blended: any image size in bounded memory |
//! | `transfer.rs` | the optimisation loop: [`transfer::Settings`] (every default), observer events, outcome |
//! | `memory.rs` | the memory estimate checked before a run starts |
//! | `bench.rs` | seconds and FLOPs of one optimisation step |
//! | `photos.rs` | training photos: a folder read as seeded random crops with flips |
//! | `output.rs` | checking outputs before work; the one atomic-write helper |
//! | `npy.rs` | writing NumPy `.npy` files (`eval --grad-out`) |

pub mod apply;
pub mod batch;
pub mod bench;
pub mod color;
pub mod image;
pub mod memory;
pub mod npy;
pub mod objective;
pub mod output;
pub mod photos;
pub mod schedule;
pub mod tiles;
pub mod train;
pub mod transfer;

use crate::image::ImageError;
use crate::output::OutputError;

/// Everything the library can fail with. Messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Vgg(#[from] vgg::Error),
    #[error(transparent)]
    Tensor(#[from] tensor::Error),
    #[error("at least one style image is needed")]
    NoStyle,
    #[error(
        "the output would be {width}x{height} pixels, but VGG19's {layer} needs at least {min}x{min}; \
         raise --size or use a less elongated content image"
    )]
    TooSmall { width: usize, height: usize, layer: &'static str, min: usize },
    #[error(
        "a {width}x{height} output needs about {} of memory, but only {} is available; lower --size",
        memory::format_bytes(*needed), memory::format_bytes(*available)
    )]
    OutOfMemory { width: usize, height: usize, needed: u64, available: u64 },
    #[error(
        "the style image resized to {width}x{height} needs about {} of memory for its targets, but only {} is \
         available; lower --style-scale",
        memory::format_bytes(*needed), memory::format_bytes(*available)
    )]
    StyleOutOfMemory { width: usize, height: usize, needed: u64, available: u64 },
    #[error(
        "the style image resized to {width}x{height} is too small for VGG19's {layer}, which needs at least {min}x{min}; \
         use a less elongated style image, or a larger --style-scale or --size"
    )]
    StyleTooSmall { width: usize, height: usize, layer: &'static str, min: usize },
    #[error(
        "a training step on {batch} crops of {size}x{size} needs about {} of memory, but only {} is available; \
         lower --batch, --size or --width",
        memory::format_bytes(*needed), memory::format_bytes(*available)
    )]
    TrainOutOfMemory { batch: usize, size: usize, needed: u64, available: u64 },
    #[error(transparent)]
    Observer(transfer::ObserverError),
    #[error(transparent)]
    Model(nn::model_file::ModelError),
    #[error(transparent)]
    Photos(#[from] photos::PhotosError),
    #[error("a {width}x{height} picture is too small for the network; it needs at least {min} pixels on each side")]
    TooSmallToApply { width: usize, height: usize, min: usize },
    #[error(
        "--size {size}: training crops must be a multiple of 4 pixels (the network halves them twice), at least 16"
    )]
    BadTrainSize { size: usize },
    #[error(
        "--border {border}: the mirrored border of the {size}-pixel training crops must be a multiple of 4 (the network's \
         pixel grid) and smaller than the crops"
    )]
    BadTrainBorder { border: usize, size: usize },
    #[error("--lr-decay {decay} is longer than the run (--steps {steps}); the rate can fall over at most every step")]
    BadLrDecay { decay: usize, steps: usize },
    /// `reason` says what to lower (the optimiser's error).
    #[error("training diverged at step {step}: {reason}, or resume from an earlier checkpoint")]
    Diverged { step: usize, reason: String },
    #[error(
        "{}: was made with {key} = {checkpoint}, but this run has {now}; resume with the same settings and style images, \
         or start a new run", path.display()
    )]
    ResumeMismatch { path: std::path::PathBuf, key: String, checkpoint: String, now: String },
    #[error(
        "{}: is a {model} network, but this run trains a {run} one; pass --width and --variant to match it",
        path.display()
    )]
    InitMismatch { path: std::path::PathBuf, model: String, run: String },
}

impl From<transfer::ObserverError> for Error {
    fn from(e: transfer::ObserverError) -> Self {
        Error::Observer(e)
    }
}
