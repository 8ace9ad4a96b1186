//! Reading and writing images and `.npy` arrays at the edge of the program.
//!
//! Everything inside stylize sees an image as [`Image`]: planar RGB floats in 0..255, the
//! NCHW layout of the tensor engine with N = 1. This file is the only place that knows about
//! file formats, and it follows `shared/reference/gatys_reference.py`:
//!
//! - [`load_rgb`] is the reference's `load_image` without the resize: `Image.open(p).convert("RGB")`,
//!   the exact 8-bit integers as f32. Alpha is dropped, not composited, as PIL's convert does.
//! - [`resize_longest`] is its resize: Lanczos on the 8-bit image, longest side = N, each side
//!   `max(1, round(side * scale))`. It is a port of Pillow's resampler (`libImaging/Resample.c`),
//!   so results match the reference value for value rather than to within ±1.
//! - [`save_rgb_atomic`] is its `save_image`: round half to even (as `torch.round`), clamp to
//!   0..255. The file is written to a temporary name in the target's folder and renamed over it,
//!   so a crash or an encoder error never leaves a half-written image behind.
//! - [`save_npy_f32`] / [`load_npy_f64`] read and write NumPy arrays, for `eval --grad-out` and for
//!   tests against `shared/golden/*/grad_f64.npy`.
//!
//! Errors name the file and end with what to do, because they are shown to users as they are.

use std::f64::consts::PI;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::tiff::TiffEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageDecoder, ImageEncoder};

/// Widest or tallest image we agree to decode. A crafted PNG can claim 10⁵ x 10⁵ pixels in a
/// few bytes (a "decompression bomb"); a real photo is far below this.
pub const MAX_SIDE: u32 = 16384;

/// Most bytes the decoder may allocate for one image. 1 GiB holds a 16384 x 16384 RGB8 image
/// (768 MiB) but not a bomb that would take the machine down before any error is shown.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// JPEG quality for outputs. The encoder's default (75) shows block artefacts on the fine
/// brush-stroke textures style transfer produces; 95 does not, at about twice the size.
pub const JPEG_QUALITY: u8 = 95;

/// An RGB image, planar: `data[(c * height + y) * width + x]`, values in 0..255 as f32.
///
/// This is the NCHW layout of the tensor engine with N = 1, so `data` can become a tensor of
/// shape [1, 3, height, width] without copying. Invariant: `data.len() == 3 * width * height`.
/// Values are not clamped: an image being optimised may leave 0..255, and only
/// [`save_rgb_atomic`] brings it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Image {
    /// Wraps planar data, checking the one invariant.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), 3 * width * height, "Image::new: data.len() must be 3 * {width} * {height}");
        Image { width, height, data }
    }

    /// One channel (0 = R, 1 = G, 2 = B) as a row-major H x W plane.
    pub fn channel(&self, c: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[c * n..(c + 1) * n]
    }

    /// The NCHW shape [1, 3, height, width].
    pub fn shape(&self) -> [usize; 4] {
        [1, 3, self.height, self.width]
    }
}

/// What can go wrong reading or writing an image or array. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: no such file; check the path (relative paths start from the current folder)", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: is a folder, not an image file; give the path of an image inside it", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: the file is empty (0 bytes); it may still be downloading or copying, or be a failed export", path.display())]
    Empty { path: PathBuf },
    #[error("{}: cannot read: {source}; check the permissions", path.display())]
    Read { path: PathBuf, source: io::Error },
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
    #[error("{}: the folder {} does not exist; create it first", path.display(), dir.display())]
    NoSuchDir { path: PathBuf, dir: PathBuf },
    #[error("{}: {} is not a folder", path.display(), dir.display())]
    NotADir { path: PathBuf, dir: PathBuf },
    #[error("{}: is a folder; give a file name such as {}", path.display(), path.join("out.png").display())]
    OutputIsDir { path: PathBuf },
    #[error(
        "{}: refusing to save: pixel (x {x}, y {y}, channel {channel}) is NaN; the optimisation diverged, \
         try a smaller --lr or --style-weight",
        path.display()
    )]
    NotANumber { path: PathBuf, x: usize, y: usize, channel: usize },
    #[error("{}: encoding failed: {detail}; try another format, e.g. .png", path.display())]
    Encode { path: PathBuf, detail: String },
    #[error("{}: cannot write: {source}; check the folder exists, is writable and the disk is not full", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: not a usable .npy file: {reason}", path.display())]
    Npy { path: PathBuf, reason: String },
}

fn unknown_extension(ext: &Option<String>) -> String {
    match ext {
        Some(e) => format!("unknown output extension '.{e}'"),
        None => "no file extension to choose the output format by".to_string(),
    }
}

/// Reads any image `image` can decode (PNG, JPEG, WebP, BMP, TIFF, GIF) as 8-bit RGB.
///
/// The format is sniffed from the first bytes, so a PNG named `.jpg` still loads. 16-bit images
/// are reduced to 8 bits and grey or palette images expanded to RGB, so every value is an exact
/// integer in 0..255, as the reference reads them. An EXIF orientation is applied, so a phone
/// photo comes in upright (PIL's `Image.open` would leave it sideways; the golden images carry
/// none); an unreadable EXIF block is ignored rather than refusing a decodable image.
pub fn load_rgb(path: &Path) -> Result<Image, ImageError> {
    let rgb = load_rgb8(path)?;
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(Image::new(width, height, planar_from_interleaved(rgb.as_raw(), width, height)))
}

fn load_rgb8(path: &Path) -> Result<image::RgbImage, ImageError> {
    let p = || path.to_path_buf();
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ImageError::NotFound { path: p() },
        _ => ImageError::Read { path: p(), source: e },
    })?;
    if meta.is_dir() {
        return Err(ImageError::NotAFile { path: p() });
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty { path: p() });
    }
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| ImageError::Read { path: p(), source: e })?;
    if reader.format().is_none() {
        return Err(ImageError::NotAnImage { path: p() });
    }
    // Only the allocation limit goes to the decoder: the side limit is checked here, after the
    // header is read, so that the error can say how big the image claims to be.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(path, e))?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::TooLarge { path: p(), width, height });
    }
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        let detail = format!("{width}x{height} {:?}", decoder.color_type());
        return Err(ImageError::TooMuchMemory { path: p(), detail });
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
    img.apply_orientation(orientation);
    if img.width() == 0 || img.height() == 0 {
        let detail = format!("it has no pixels ({}x{})", img.width(), img.height());
        return Err(ImageError::Corrupt { path: p(), detail });
    }
    Ok(img.into_rgb8())
}

fn decode_error(path: &Path, e: image::ImageError) -> ImageError {
    let path = path.to_path_buf();
    match e {
        image::ImageError::Limits(l) => ImageError::TooMuchMemory { path, detail: l.to_string() },
        image::ImageError::Unsupported(u) => ImageError::Unsupported { path, detail: u.to_string() },
        image::ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            ImageError::Corrupt { path, detail: "the file ends early".into() }
        }
        image::ImageError::IoError(io) => ImageError::Read { path, source: io },
        other => ImageError::Corrupt { path, detail: other.to_string() },
    }
}

/// [r g b r g b ...] rows -> [R plane, G plane, B plane].
fn planar_from_interleaved(rgb: &[u8], width: usize, height: usize) -> Vec<f32> {
    let n = width * height;
    let mut data = vec![0.0f32; 3 * n];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        data[i] = f32::from(px[0]);
        data[n + i] = f32::from(px[1]);
        data[2 * n + i] = f32::from(px[2]);
    }
    data
}

// ---------------------------------------------------------------------------------------------
// Resampling: a port of Pillow's separable resampler (libImaging/Resample.c, Pillow >= 4).
//
// `image::imageops::resize` is not used: on u8 it differs from Pillow by ±1 here and there (it
// runs the vertical pass first through an f32 buffer and places its window differently), and on
// f32 it clamps to 0..1, which would destroy 0..255 data. One coefficient routine serves both
// the 8-bit path (bit-exact with the reference's `Image.resize(..., Image.LANCZOS)`) and the
// float path used for coarse-to-fine upsampling.
// ---------------------------------------------------------------------------------------------

/// Lanczos-3: sinc(x) sinc(x/3) on [-3, 3). Pillow's `lanczos_filter`, support 3.
fn lanczos3(x: f64) -> f64 {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            (x * PI).sin() / (x * PI)
        }
    }
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Filter taps for resampling one axis from `n_in` to `n_out` samples (Pillow's
/// `precompute_coeffs`). Output i reads inputs `start[i] .. start[i] + taps[i].len()`.
/// When shrinking, the kernel is stretched by the scale so it also low-passes (anti-aliasing).
struct AxisTaps {
    start: Vec<usize>,
    taps: Vec<Vec<f64>>,
}

fn axis_taps(n_in: usize, n_out: usize) -> AxisTaps {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = 3.0 * filter_scale;
    let mut start = Vec::with_capacity(n_out);
    let mut taps = Vec::with_capacity(n_out);
    for i in 0..n_out {
        let center = (i as f64 + 0.5) * scale;
        // `as i64` truncates toward zero, as C's (int) does in Pillow.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
        let mut w: Vec<f64> = (lo..hi).map(|x| lanczos3((x as f64 - center + 0.5) / filter_scale)).collect();
        let sum: f64 = w.iter().sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|v| *v /= sum);
        }
        start.push(lo);
        taps.push(w);
    }
    AxisTaps { start, taps }
}

/// Pillow's 8-bit fixed point: weights scaled by 2^22, rounded half away from zero.
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn fixed_point(taps: &AxisTaps) -> Vec<Vec<i64>> {
    let one = f64::from(1u32 << PRECISION_BITS);
    let round = |k: f64| {
        if k < 0.0 {
            (-0.5 + k * one) as i64
        } else {
            (0.5 + k * one) as i64
        }
    };
    taps.taps.iter().map(|w| w.iter().map(|&k| round(k)).collect()).collect()
}

/// Sum + 2^21, arithmetic shift by 22 (a floor), clip to 0..255: Pillow's `clip8`.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One u8 plane (h x w) -> (h x new_w), Pillow's `ImagingResampleHorizontal_8bpc`.
fn resample_rows_u8(src: &[u8], w: usize, h: usize, new_w: usize) -> Vec<u8> {
    let t = axis_taps(w, new_w);
    let k = fixed_point(&t);
    let mut out = vec![0u8; h * new_w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..new_w {
            let px = &row[t.start[x]..t.start[x] + k[x].len()];
            let acc = px.iter().zip(&k[x]).fold(1i64 << (PRECISION_BITS - 1), |a, (&p, &c)| a + i64::from(p) * c);
            out[y * new_w + x] = clip8(acc);
        }
    }
    out
}

/// One u8 plane (h x w) -> (new_h x w), Pillow's `ImagingResampleVertical_8bpc`.
fn resample_cols_u8(src: &[u8], w: usize, h: usize, new_h: usize) -> Vec<u8> {
    let t = axis_taps(h, new_h);
    let k = fixed_point(&t);
    let mut out = vec![0u8; new_h * w];
    for y in 0..new_h {
        for x in 0..w {
            let acc = k[y]
                .iter()
                .enumerate()
                .fold(1i64 << (PRECISION_BITS - 1), |a, (j, &c)| a + i64::from(src[(t.start[y] + j) * w + x]) * c);
            out[y * w + x] = clip8(acc);
        }
    }
    out
}

/// The size the reference gives an image whose longest side becomes `longest`: the scale is
/// `longest / max(w, h)` and each side `max(1, round(side * scale))`. Python's `round` is half
/// to even, hence `round_ties_even`; 512x384 -> 192 gives 192x144.
pub fn longest_side_size(width: usize, height: usize, longest: usize) -> (usize, usize) {
    let s = longest as f64 / width.max(height) as f64;
    let side = |n: usize| ((n as f64 * s).round_ties_even() as usize).max(1);
    (side(width), side(height))
}

/// Resizes so the longest side is `longest`, keeping the aspect ratio, as the reference's
/// `load_image(path, size)` does; returns a copy when the longest side already has that length.
///
/// The work is done on 8-bit values, with Pillow's Lanczos and its fixed-point rounding (horizontal
/// pass, round to u8, vertical pass, round to u8), because the reference resizes the 8-bit image
/// and only then converts to float: the result is integers, equal to the reference's. `img` is
/// rounded to u8 first, which is exact for anything [`load_rgb`] returned. For float images that
/// must keep their fractions (the one being optimised), use [`resize_exact`].
pub fn resize_longest(img: &Image, longest: usize) -> Image {
    assert!(longest > 0, "resize_longest: longest side must be positive");
    if img.width.max(img.height) == longest {
        return img.clone();
    }
    let (new_w, new_h) = longest_side_size(img.width, img.height, longest);
    let (w, h) = (img.width, img.height);
    let mut data = Vec::with_capacity(3 * new_w * new_h);
    for c in 0..3 {
        let mut plane: Vec<u8> = img.channel(c).iter().map(|&v| v.round_ties_even().clamp(0.0, 255.0) as u8).collect();
        // Pillow skips a pass whose axis keeps its length; the passes are not the identity.
        if new_w != w {
            plane = resample_rows_u8(&plane, w, h, new_w);
        }
        if new_h != h {
            plane = resample_cols_u8(&plane, new_w, h, new_h);
        }
        data.extend(plane.iter().map(|&v| f32::from(v)));
    }
    Image::new(new_w, new_h, data)
}

/// Resizes float data to exactly `width` x `height` with the same Lanczos-3 filter, without
/// rounding or clamping, for carrying the image being optimised from one scale to the next.
///
/// Lanczos overshoots a little at hard edges (values slightly outside 0..255); that is left in,
/// since the optimiser does not clamp either and the saved image is clamped at the end.
pub fn resize_exact(img: &Image, width: usize, height: usize) -> Image {
    assert!(width > 0 && height > 0, "resize_exact: target size {width}x{height} must be positive");
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }
    let (w, h) = (img.width, img.height);
    let tx = axis_taps(w, width);
    let ty = axis_taps(h, height);
    let mut data = Vec::with_capacity(3 * width * height);
    let mut rows = vec![0.0f32; h * width];
    for c in 0..3 {
        let src = img.channel(c);
        for y in 0..h {
            for x in 0..width {
                let px = &src[y * w + tx.start[x]..];
                rows[y * width + x] = tx.taps[x].iter().zip(px).map(|(&k, &p)| k * f64::from(p)).sum::<f64>() as f32;
            }
        }
        for y in 0..height {
            for x in 0..width {
                let acc: f64 = ty.taps[y]
                    .iter()
                    .enumerate()
                    .map(|(j, &k)| k * f64::from(rows[(ty.start[y] + j) * width + x]))
                    .sum();
                data.push(acc as f32);
            }
        }
    }
    Image::new(width, height, data)
}

// ---------------------------------------------------------------------------------------------
// Writing images
// ---------------------------------------------------------------------------------------------

/// Output formats, chosen by the file extension. GIF is readable but not offered for output:
/// its 256-colour palette would band a painting-like result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    /// Quality [`JPEG_QUALITY`].
    Jpeg,
    /// Lossless: the only WebP encoder in `image` 0.25.
    Webp,
    Bmp,
    Tiff,
}

impl OutputFormat {
    /// Accepted extensions, for error messages and `--help`.
    pub const EXTENSIONS: [&'static str; 7] = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

    fn from_extension(ext: &str) -> Option<OutputFormat> {
        match ext.to_ascii_lowercase().as_str() {
            "png" => Some(OutputFormat::Png),
            "jpg" | "jpeg" => Some(OutputFormat::Jpeg),
            "webp" => Some(OutputFormat::Webp),
            "bmp" => Some(OutputFormat::Bmp),
            "tif" | "tiff" => Some(OutputFormat::Tiff),
            _ => None,
        }
    }
}

/// The output format for `path`, from its extension (case-insensitive).
pub fn output_format(path: &Path) -> Result<OutputFormat, ImageError> {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    ext.as_deref()
        .and_then(OutputFormat::from_extension)
        .ok_or_else(|| ImageError::UnknownExtension { path: path.to_path_buf(), ext })
}

/// Checks, before any compute, that `path` can be an output: known extension, not a folder,
/// and its folder exists (no folder part means the current folder). It does not create
/// anything, so a run that fails later leaves no trace. Write permission is only known when
/// [`save_rgb_atomic`] tries; call that early (e.g. on the initial image) to be sure.
pub fn check_output_path(path: &Path) -> Result<OutputFormat, ImageError> {
    let format = output_format(path)?;
    check_output_dir(path)?;
    Ok(format)
}

/// Checks that `path` could be created: it is not a folder and its folder exists. For outputs
/// that are not images (logs, `.npy` files), before any compute.
pub fn check_output_dir(path: &Path) -> Result<(), ImageError> {
    if path.is_dir() {
        return Err(ImageError::OutputIsDir { path: path.to_path_buf() });
    }
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ImageError::NotADir { path: path.to_path_buf(), dir: dir.to_path_buf() }),
        Err(_) => Err(ImageError::NoSuchDir { path: path.to_path_buf(), dir: dir.to_path_buf() }),
    }
}

/// The folder `path` lives in; "out.png" has parent "" which means ".".
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Saves `img` in the format its extension names, rounded half to even (as the reference's
/// `torch.round`) and clamped to 0..255; ±infinity clamps, NaN is refused with an error.
///
/// The bytes go to a temporary file in the same folder, which is flushed, synced and then
/// renamed over `path`. A rename within one file system is atomic, so readers see the old file
/// or the new one, never half of one, and an encoder error leaves `path` untouched.
pub fn save_rgb_atomic(img: &Image, path: &Path) -> Result<(), ImageError> {
    let format = output_format(path)?;
    assert_eq!(img.data.len(), 3 * img.width * img.height, "save_rgb_atomic: Image invariant broken");
    let n = img.width * img.height;
    if let Some(i) = img.data.iter().position(|v| v.is_nan()) {
        let (channel, y, x) = (i / n, (i % n) / img.width, i % img.width);
        return Err(ImageError::NotANumber { path: path.to_path_buf(), x, y, channel });
    }
    let mut rgb = vec![0u8; 3 * n];
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = img.data[c * n + i].round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
    let (w, h) = (img.width as u32, img.height as u32);
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        let encoded = match format {
            OutputFormat::Png => PngEncoder::new(&mut out).write_image(&rgb, w, h, ExtendedColorType::Rgb8),
            OutputFormat::Jpeg => {
                JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(&rgb, w, h, ExtendedColorType::Rgb8)
            }
            OutputFormat::Webp => WebPEncoder::new_lossless(&mut out).write_image(&rgb, w, h, ExtendedColorType::Rgb8),
            OutputFormat::Bmp => BmpEncoder::new(&mut out).write_image(&rgb, w, h, ExtendedColorType::Rgb8),
            OutputFormat::Tiff => TiffEncoder::new(&mut out).write_image(&rgb, w, h, ExtendedColorType::Rgb8),
        };
        encoded.map_err(|e| match e {
            image::ImageError::IoError(io) => AtomicError::Io(io),
            other => AtomicError::Encode(other.to_string()),
        })?;
        out.flush().map_err(AtomicError::Io)
    })
}

enum AtomicError {
    Io(io::Error),
    Encode(String),
}

/// Writes through `fill` into a temp file beside `path`, then renames it over `path`. On any
/// error the temp file is deleted (NamedTempFile's drop) and `path` is left as it was.
fn write_atomic(path: &Path, fill: impl FnOnce(&mut fs::File) -> Result<(), AtomicError>) -> Result<(), ImageError> {
    let io_err = |source| ImageError::Write { path: path.to_path_buf(), source };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".stylize-").suffix(".tmp");
    // NamedTempFile is created 0600; an image should get the usual 0644 (umask 022) instead.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(parent_dir(path)).map_err(io_err)?;
    fill(tmp.as_file_mut()).map_err(|e| match e {
        AtomicError::Io(source) => io_err(source),
        AtomicError::Encode(detail) => ImageError::Encode { path: path.to_path_buf(), detail },
    })?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// NumPy .npy (format 1.0): magic "\x93NUMPY", version, little-endian header length, a Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (..), } padded with spaces and
// a newline so the data starts on a 64-byte boundary, then the raw C-order data.
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// ---------------------------------------------------------------------------------------------

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Writes `data` as a little-endian f32 ('<f4') C-order array of `shape`, atomically.
pub fn save_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ImageError> {
    let numel: usize = shape.iter().product();
    assert_eq!(numel, data.len(), "save_npy_f32: shape {shape:?} does not match {} values", data.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let unpadded = NPY_MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len()).expect("an npy header for a rank <= 8 shape fits in u16");
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        let mut write = || -> io::Result<()> {
            out.write_all(NPY_MAGIC)?;
            out.write_all(&[1, 0])?;
            out.write_all(&header_len.to_le_bytes())?;
            out.write_all(header.as_bytes())?;
            for v in data {
                out.write_all(&v.to_le_bytes())?;
            }
            out.flush()
        };
        write().map_err(AtomicError::Io)
    })
}

/// Reads a '<f4' array as f32. Fails (clearly) on '<f8', which would lose precision silently.
pub fn load_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), ImageError> {
    let (shape, descr, bytes) = read_npy(path)?;
    match descr.as_str() {
        "<f4" => Ok((shape, bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())),
        other => Err(npy_error(path, format!("dtype '{other}', expected '<f4' (use load_npy_f64 for '<f8')"))),
    }
}

/// Reads a '<f4' or '<f8' array as f64, e.g. `shared/golden/*/grad_f64.npy` for gradient tests.
pub fn load_npy_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>), ImageError> {
    let (shape, descr, bytes) = read_npy(path)?;
    let data = match descr.as_str() {
        "<f4" => bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect(),
        "<f8" => bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8"))).collect(),
        other => return Err(npy_error(path, format!("dtype '{other}', expected '<f4' or '<f8'"))),
    };
    Ok((shape, data))
}

fn npy_error(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::Npy { path: path.to_path_buf(), reason: reason.into() }
}

/// (shape, descr, data bytes) of a C-order .npy file of version 1, 2 or 3.
fn read_npy(path: &Path) -> Result<(Vec<usize>, String, Vec<u8>), ImageError> {
    let mut bytes = Vec::new();
    fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ImageError::NotFound { path: path.to_path_buf() },
        _ => ImageError::Read { path: path.to_path_buf(), source: e },
    })?;
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(npy_error(path, "missing the \\x93NUMPY magic"));
    }
    // Version 1 has a u16 header length; 2 and 3 a u32 (3 only changes the header's encoding).
    let (header_start, header_len) = match bytes[6] {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 if bytes.len() >= 12 => (12, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize),
        v => return Err(npy_error(path, format!("unsupported format version {v}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| npy_error(path, "truncated or non-text header"))?;
    let descr = dict_value(header, "descr")
        .and_then(|v| v.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| npy_error(path, format!("no 'descr' in header {header}")))?
        .to_string();
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(npy_error(path, "Fortran-order arrays are not supported; save with np.ascontiguousarray"));
    }
    let shape: Vec<usize> = dict_value(header, "shape")
        .and_then(|v| {
            let inner = v.strip_prefix('(')?.split(')').next()?;
            inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
        })
        .ok_or_else(|| npy_error(path, format!("bad 'shape' in header {header}")))?;
    let item = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        _ => 1,
    };
    let numel: usize = shape.iter().product();
    let data = bytes.split_off(data_start);
    if data.len() != numel * item {
        let reason =
            format!("shape {shape:?} of {descr} needs {} data bytes, the file has {}", numel * item, data.len());
        return Err(npy_error(path, reason));
    }
    Ok((shape, descr, data))
}

/// The text after `'key':` in a Python dict literal, leading spaces trimmed.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}':"))?;
    Some(header[at + key.len() + 3..].trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize) -> Image {
        let data = (0..3 * width * height).map(|i| ((i * 37 + i / 7) % 256) as f32).collect();
        Image::new(width, height, data)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn png_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let img = ramp(7, 5);
        for name in ["a.png", "a.webp", "a.bmp", "a.tiff", "A.PNG"] {
            let p = dir.path().join(name);
            save_rgb_atomic(&img, &p).unwrap();
            assert_eq!(load_rgb(&p).unwrap(), img, "{name}");
        }
    }

    #[test]
    fn jpeg_round_trip_is_close() {
        let dir = tempfile::tempdir().unwrap();
        let img = Image::new(16, 16, (0..768).map(|i| 100.0 + (i % 16) as f32).collect());
        let p = dir.path().join("a.jpg");
        save_rgb_atomic(&img, &p).unwrap();
        let back = load_rgb(&p).unwrap();
        let worst = img.data.iter().zip(&back.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 6.0, "JPEG q{JPEG_QUALITY} error {worst}");
    }

    #[test]
    fn save_rounds_half_to_even_and_clamps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.png");
        let vals = [0.5, 1.5, 2.5, -3.0, 300.0, f32::INFINITY, f32::NEG_INFINITY, 254.49, 7.0];
        let mut data = vals.to_vec();
        data.extend_from_slice(&vals);
        data.extend_from_slice(&vals);
        save_rgb_atomic(&Image::new(9, 1, data), &p).unwrap();
        let back = load_rgb(&p).unwrap();
        assert_eq!(back.channel(0), &[0.0, 2.0, 2.0, 0.0, 255.0, 255.0, 0.0, 254.0, 7.0]);
    }

    #[test]
    fn nan_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nan.png");
        let mut img = ramp(4, 3);
        img.data[12 + 4 + 2] = f32::NAN; // channel 1, y 1, x 2
        let err = save_rgb_atomic(&img, &p).unwrap_err();
        assert!(matches!(err, ImageError::NotANumber { x: 2, y: 1, channel: 1, .. }), "{err}");
        assert!(files_in(dir.path()).is_empty());
    }

    #[test]
    fn failed_encode_keeps_the_old_file_and_leaves_no_temp() {
        // Lossless WebP cannot encode a side over 16384, so the encoder fails after the temp
        // file exists: the old output must survive and the temp file must be gone.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.webp");
        fs::write(&p, b"previous result").unwrap();
        let err = save_rgb_atomic(&Image::new(20000, 1, vec![9.0; 60000]), &p).unwrap_err();
        assert!(matches!(err, ImageError::Encode { .. }), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"previous result");
        assert_eq!(files_in(dir.path()), ["out.webp"]);
    }

    #[cfg(unix)]
    #[test]
    fn saved_image_is_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("perm.png");
        save_rgb_atomic(&ramp(2, 2), &p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn alpha_is_dropped_and_grey_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rgba.png");
        image::RgbaImage::from_raw(2, 1, vec![10, 20, 30, 0, 40, 50, 60, 128]).unwrap().save(&p).unwrap();
        assert_eq!(load_rgb(&p).unwrap().data, [10.0, 40.0, 20.0, 50.0, 30.0, 60.0]);
        let g = dir.path().join("grey.png");
        image::GrayImage::from_raw(1, 2, vec![7, 200]).unwrap().save(&g).unwrap();
        assert_eq!(load_rgb(&g).unwrap().data, [7.0, 200.0, 7.0, 200.0, 7.0, 200.0]);
    }

    #[test]
    fn format_is_sniffed_not_taken_from_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("really_a_png.jpg");
        image::RgbImage::from_raw(1, 1, vec![1, 2, 3]).unwrap().save_with_format(&p, image::ImageFormat::Png).unwrap();
        assert_eq!(load_rgb(&p).unwrap().data, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 3x2 image tagged "rotate 90° clockwise to display" (EXIF orientation 6).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("phone.png");
        let pixels: Vec<u8> = (0..6u8).flat_map(|i| [10 * i, 0, 0]).collect();
        let mut png = Vec::new();
        let mut encoder = PngEncoder::new(&mut png);
        // A big-endian TIFF header, one IFD entry: tag 0x0112 (Orientation), SHORT, 1 value: 6.
        let exif = [b"MM\0*\0\0\0\x08\0\x01".as_slice(), &[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0], &[0; 4]].concat();
        encoder.set_exif_metadata(exif).unwrap();
        encoder.write_image(&pixels, 3, 2, ExtendedColorType::Rgb8).unwrap();
        fs::write(&p, png).unwrap();
        let img = load_rgb(&p).unwrap();
        assert_eq!((img.width, img.height), (2, 3));
        // Rotated clockwise, the top row reads the old left column from bottom to top.
        let red: Vec<f32> = img.data[..6].to_vec();
        assert_eq!(red, [30.0, 0.0, 40.0, 10.0, 50.0, 20.0]);
    }

    #[test]
    fn load_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.png");
        let err = load_rgb(&missing).unwrap_err();
        assert!(matches!(err, ImageError::NotFound { .. }) && err.to_string().contains("missing.png"), "{err}");

        assert!(matches!(load_rgb(dir.path()).unwrap_err(), ImageError::NotAFile { .. }));

        let empty = dir.path().join("empty.png");
        fs::write(&empty, b"").unwrap();
        assert!(matches!(load_rgb(&empty).unwrap_err(), ImageError::Empty { .. }));

        let text = dir.path().join("notes.txt");
        fs::write(&text, b"hello, not an image").unwrap();
        assert!(matches!(load_rgb(&text).unwrap_err(), ImageError::NotAnImage { .. }));

        let fake = dir.path().join("fake.png");
        fs::write(&fake, b"hello, not an image").unwrap();
        let err = load_rgb(&fake).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");

        // A real PNG cut in half.
        let good = dir.path().join("good.png");
        save_rgb_atomic(&ramp(64, 64), &good).unwrap();
        let bytes = fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_rgb(&cut).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn decompression_bomb_is_refused_from_the_header() {
        // A valid PNG header claiming 100000 x 100000 pixels, no data: must fail before decoding.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bomb.png");
        let mut png = Vec::new();
        PngEncoder::new(&mut png).write_image(&[0, 0, 0], 1, 1, ExtendedColorType::Rgb8).unwrap();
        // IHDR width/height live at bytes 16..24; the CRC is then wrong, so fix it as well.
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        fs::write(&p, &png).unwrap();
        let err = load_rgb(&p).unwrap_err();
        assert!(matches!(err, ImageError::TooLarge { width: 100_000, height: 100_000, .. }), "{err}");
        assert!(err.to_string().contains("100000x100000"), "{err}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn longest_side_rounding_matches_the_reference() {
        assert_eq!(longest_side_size(512, 384, 192), (192, 144));
        assert_eq!(longest_side_size(384, 512, 192), (144, 192));
        assert_eq!(longest_side_size(1000, 1, 100), (100, 1)); // max(1, round(0.1))
        assert_eq!(longest_side_size(5, 3, 3), (3, 2)); // round(1.8)
        assert_eq!(longest_side_size(4, 1, 10), (10, 2)); // round(2.5) = 2: Python rounds half to even
        let out = resize_longest(&ramp(512, 384), 192);
        assert_eq!((out.width, out.height), (192, 144));
        assert_eq!(out.data.len(), 3 * 192 * 144);
    }

    #[test]
    fn resize_longest_is_a_copy_at_the_same_size() {
        let img = ramp(30, 20);
        assert_eq!(resize_longest(&img, 30), img);
    }

    /// Pillow 13.0.0, the reference's resize, on the `ramp` image:
    /// ```python
    /// import numpy as np; from PIL import Image
    /// w, h = 9, 6; i = np.arange(3*w*h); d = ((i*37 + i//7) % 256).astype(np.uint8).reshape(3, h, w)
    /// for size in (5, 14):
    ///     im = Image.fromarray(d.transpose(1, 2, 0)); s = size / max(im.size)
    ///     r = im.resize((max(1, round(im.width*s)), max(1, round(im.height*s))), Image.LANCZOS)
    ///     print(r.size, np.asarray(r).transpose(2, 0, 1).flatten().tolist()[:45])
    /// ```
    /// (the 14 px case is checked on its first 24 values). Whole images of many sizes were also
    /// compared against Pillow when this was written, all equal.
    #[test]
    fn resize_longest_matches_pillow_exactly() {
        let down: [f32; 45] = PILLOW_9X6_TO_5;
        let out = resize_longest(&ramp(9, 6), 5);
        assert_eq!((out.width, out.height), (5, 3));
        assert_eq!(out.data, down);
        let out = resize_longest(&ramp(9, 6), 14);
        assert_eq!((out.width, out.height), (14, 9));
        assert_eq!(out.data[..24], PILLOW_9X6_TO_14_FIRST24);
    }

    #[rustfmt::skip]
    const PILLOW_9X6_TO_5: [f32; 45] = [
        67., 136., 143., 98., 79., 149., 105., 104., 144., 143., 106., 161., 159., 111., 110.,
        137., 114., 143., 111., 140., 134., 123., 91., 116., 144., 87., 123., 170., 129., 99.,
        161., 121., 109., 161., 157., 134., 129., 98., 100., 137., 108., 87., 148., 151., 99.,
    ];
    #[rustfmt::skip]
    const PILLOW_9X6_TO_14_FIRST24: [f32; 24] = [
        0., 7., 37., 62., 81., 99., 121., 153., 200., 255., 191., 16., 0., 47.,
        28., 39., 64., 86., 121., 168., 210., 171., 100., 125.,
    ];

    #[test]
    fn resize_exact_keeps_constants_and_fractions() {
        // Lanczos weights are normalised, so a constant image stays constant, unclamped.
        let img = Image::new(5, 4, vec![-12.25; 60]);
        let up = resize_exact(&img, 11, 7);
        assert_eq!((up.width, up.height), (11, 7));
        assert!(up.data.iter().all(|v| (v + 12.25).abs() < 1e-4), "{:?}", &up.data[..5]);
        let same = resize_exact(&img, 5, 4);
        assert_eq!(same, img);
    }

    #[test]
    fn resize_exact_agrees_with_the_8_bit_path_before_rounding() {
        // A smooth mid-range image, so the 8-bit path never clamps between its passes.
        let data =
            (0..3).flat_map(|c| (0..6).flat_map(move |y| (0..9).map(move |x| (60 + 10 * c + 3 * y + 2 * x) as f32)));
        let img = Image::new(9, 6, data.collect());
        let float = resize_exact(&img, 14, 9);
        let int = resize_longest(&img, 14);
        // The 8-bit path rounds after each pass: 0.5 after the first, carried through weights
        // whose absolute sum is below 1.2, plus 0.5 after the second.
        for (f, i) in float.data.iter().zip(&int.data) {
            assert!((f - i).abs() <= 1.1, "{f} vs {i}");
        }
    }

    #[test]
    fn output_format_from_extension() {
        assert_eq!(output_format(Path::new("a/b.PNG")).unwrap(), OutputFormat::Png);
        assert_eq!(output_format(Path::new("x.jpeg")).unwrap(), OutputFormat::Jpeg);
        assert_eq!(output_format(Path::new("x.Jpg")).unwrap(), OutputFormat::Jpeg);
        assert_eq!(output_format(Path::new("x.tif")).unwrap(), OutputFormat::Tiff);
        let err = output_format(Path::new("out.gif")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'.gif'") && msg.contains("png, jpg, jpeg, webp"), "{msg}");
        let err = output_format(Path::new("out")).unwrap_err();
        assert!(matches!(err, ImageError::UnknownExtension { ext: None, .. }), "{err}");
    }

    #[test]
    fn check_output_path_checks_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_output_path(&dir.path().join("o.webp")).unwrap(), OutputFormat::Webp);
        assert_eq!(check_output_path(Path::new("bare-name.png")).unwrap(), OutputFormat::Png);
        let err = check_output_path(&dir.path().join("nope/o.png")).unwrap_err();
        assert!(matches!(err, ImageError::NoSuchDir { .. }), "{err}");
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(check_output_path(&file.join("o.png")).unwrap_err(), ImageError::NotADir { .. }));
        let sub = dir.path().join("sub.png");
        fs::create_dir(&sub).unwrap();
        assert!(matches!(check_output_path(&sub).unwrap_err(), ImageError::OutputIsDir { .. }));
        assert!(files_in(dir.path()) == ["file", "sub.png"], "nothing was created");
    }

    #[test]
    fn npy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        save_npy_f32(&p, &[1, 2, 3, 4], &data).unwrap();
        let bytes = fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % 64, 0, "data starts 64-byte aligned");
        assert_eq!(load_npy_f32(&p).unwrap(), (vec![1, 2, 3, 4], data.clone()));
        let (shape, wide) = load_npy_f64(&p).unwrap();
        assert_eq!(shape, [1, 2, 3, 4]);
        assert!(wide.iter().zip(&data).all(|(a, &b)| *a == f64::from(b)));

        save_npy_f32(&p, &[3], &[1.0, 2.0, 3.0]).unwrap();
        let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
        assert!(text.contains("'shape': (3,), }"), "{text}");
        assert_eq!(load_npy_f32(&p).unwrap(), (vec![3], vec![1.0, 2.0, 3.0]));
    }

    #[test]
    fn npy_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        fs::write(&p, b"not numpy at all").unwrap();
        assert!(matches!(load_npy_f64(&p).unwrap_err(), ImageError::Npy { .. }));
        save_npy_f32(&p, &[2, 2], &[1.0; 4]).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        bytes.pop();
        fs::write(&p, &bytes).unwrap();
        let err = load_npy_f64(&p).unwrap_err();
        assert!(err.to_string().contains("needs 16 data bytes, the file has 15"), "{err}");
    }

    /// The golden files the numerics are checked against must be readable here.
    #[test]
    fn reads_the_golden_arrays() {
        // The reference's files, copied into the repo (tests/golden/README.md).
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/a");
        let (shape, grad) = load_npy_f64(&golden.join("grad_f64.npy")).unwrap();
        assert_eq!(shape, [1, 3, 64, 96]);
        assert!(grad.iter().all(|v| v.is_finite()) && grad.iter().any(|&v| v != 0.0));
        let (shape, gram) = load_npy_f32(&golden.join("gram_style_relu1_1.npy")).unwrap();
        assert_eq!(shape, [64, 64]);
        // A Gram matrix is symmetric.
        assert!((0..64)
            .all(|i| (0..64)
                .all(|j| (gram[i * 64 + j] - gram[j * 64 + i]).abs() <= 1e-3 * gram[i * 64 + j].abs().max(1.0))));
        assert_eq!(load_rgb(&golden.join("content.png")).unwrap().shape(), [1, 3, 64, 96]);
    }
}
