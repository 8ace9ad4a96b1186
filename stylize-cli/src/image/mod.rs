//! Images at the edge of the program: decode, resize, encode.
//!
//! Inside stylize an image is a [`Tensor`] `[1, 3, H, W]`: planar RGB in 0..255 as f32, the
//! engine's NCHW layout, from the moment a file is decoded to the moment it is encoded. Values
//! are not clamped in between (an image being optimised may leave 0..255); only [`save`]
//! brings them back. The files follow `shared/reference/gatys_reference.py`, so that the golden
//! numbers match:
//!
//! | file | what it holds |
//! |---|---|
//! | `decode.rs` | [`load_rgb`]: PIL's `Image.open(p).convert("RGB")`, exact 8-bit integers as f32, EXIF orientation applied |
//! | `resize.rs` | [`resize_longest`] (Pillow's Lanczos on 8-bit values, value for value) and [`resize_exact`] (the same filter on floats) |
//! | `encode.rs` | [`save`]: round half to even, clamp, encode by extension, write atomically; [`save_or_rescue`] keeps a finished image when the disk refuses it |
//!
//! Errors name the file and end with what to do, because they are shown to users as they are.

mod decode;
mod encode;
mod resize;

use std::io;
use std::path::PathBuf;

pub use decode::{is_picture, load_rgb, MAX_DECODE_BYTES, MAX_SIDE};
pub use encode::{check_output_path, output_format, save, save_or_rescue, OutputFormat, SaveFailure, JPEG_QUALITY};
pub use resize::{longest_side_size, resize_exact, resize_longest};
use tensor::Tensor;

use crate::output::OutputError;

/// An image tensor `[1, 3, height, width]` from planar RGB data (R plane, G plane, B plane).
pub fn from_planes(width: usize, height: usize, data: Vec<f32>) -> Tensor {
    Tensor::new([1, 3, height, width], data).expect("from_planes: data.len() must be 3 * width * height")
}

/// `(width, height)` of an image tensor `[n, c, height, width]`.
pub fn size(img: &Tensor) -> (usize, usize) {
    let (_, _, h, w) = img.shape().nchw().expect("an image tensor is [n, c, h, w]");
    (w, h)
}

/// What can go wrong reading or writing an image. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: no such file; check the path (relative paths start from the current folder)", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: is a folder, not an image file; give the path of an image inside it", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: the file is empty (0 bytes); it may still be downloading or copying, or be a failed export", path.display())]
    Empty { path: PathBuf },
    #[error("{}: cannot read: {error}; check the permissions", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{}: not a recognised image; use a PNG, JPEG, WebP, BMP, TIFF or GIF file", path.display())]
    NotAnImage { path: PathBuf },
    #[error("{}: {detail}; convert it to PNG or JPEG first", path.display())]
    Unsupported { path: PathBuf, detail: String },
    #[error("{}: the image is damaged or truncated ({detail}); open it in an image viewer and re-save it", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{}: the image is {width}x{height}, larger than the {MAX_SIDE}x{MAX_SIDE} stylize accepts; \
         shrink it with an image editor first (--size sets the output size anyway)",
        path.display()
    )]
    TooLarge { path: PathBuf, width: u32, height: u32 },
    #[error(
        "{}: decoding would need more than {} MiB ({detail}); shrink the image or save it as 8-bit RGB",
        path.display(), MAX_DECODE_BYTES >> 20
    )]
    TooMuchMemory { path: PathBuf, detail: String },
    #[error("{}: {}; use one of: {}", path.display(), unknown_extension(ext), OutputFormat::EXTENSIONS.join(", "))]
    UnknownExtension { path: PathBuf, ext: Option<String> },
    #[error(
        "{}: refusing to save: pixel (x {x}, y {y}, channel {channel}) is NaN; the optimisation diverged, \
         try a smaller --lr or --style-weight",
        path.display()
    )]
    NotANumber { path: PathBuf, x: usize, y: usize, channel: usize },
    #[error(transparent)]
    Output(#[from] OutputError),
}

fn unknown_extension(ext: &Option<String>) -> String {
    match ext {
        Some(e) => format!("unknown output extension '.{e}'"),
        None => "no file extension to choose the output format by".to_string(),
    }
}

/// A 0..255 test pattern, `d[i] = (37 i + i / 7) mod 256` over the planar data: the image the
/// Pillow literals in the resize tests were made from.
#[cfg(test)]
pub(crate) fn ramp(width: usize, height: usize) -> Tensor {
    from_planes(width, height, (0..3 * width * height).map(|i| ((i * 37 + i / 7) % 256) as f32).collect())
}
