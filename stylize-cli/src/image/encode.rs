//! Encoding: the reference's `save_image` (round half to even as `torch.round`, clamp to
//! 0..255), in the format the file extension names, written atomically.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::tiff::TiffEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};
use tensor::Tensor;

use super::{size, ImageError};
use crate::output::{self, FillError};

/// JPEG quality for outputs. The encoder's default (75) shows block artefacts on the fine
/// brush-stroke textures style transfer produces; 95 does not, at about twice the size.
pub const JPEG_QUALITY: u8 = 95;

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

/// Checks, before any compute, that an image can be saved at `path`: a known extension, and
/// a folder this user can create files in ([`output::check`]). Nothing is left behind.
pub fn check_output_path(path: &Path) -> Result<OutputFormat, ImageError> {
    let format = output_format(path)?;
    output::check(path)?;
    Ok(format)
}

/// Saves an image `[1, 3, H, W]` in the format its extension names, rounded half to even (as
/// the reference's `torch.round`) and clamped to 0..255; ±infinity clamps, NaN is refused with
/// an error. The file is written whole or not at all ([`output::write_atomic`]).
pub fn save(img: &Tensor, path: &Path) -> Result<(), ImageError> {
    let format = output_format(path)?;
    let (w, h) = size(img);
    assert_eq!(img.shape().dims(), [1, 3, h, w], "save: one RGB image");
    let n = w * h;
    let data = img.data();
    if let Some(i) = data.iter().position(|v| v.is_nan()) {
        let (channel, y, x) = (i / n, (i % n) / w, i % w);
        return Err(ImageError::NotANumber { path: path.to_path_buf(), x, y, channel });
    }
    let mut rgb = vec![0u8; 3 * n];
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = data[c * n + i].round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
    let (w, h) = (w as u32, h as u32);
    output::write_atomic(path, |file| {
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
            image::ImageError::IoError(io) => FillError::Io(io),
            other => FillError::Encode(format!("encoding failed: {other}")),
        })?;
        out.flush().map_err(FillError::Io)
    })?;
    Ok(())
}

/// A finished image that could not be written where asked: why, and where it went instead.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", match rescued {
    Some(p) => format!("; the image was saved to {} instead", p.display()),
    None => "; saving it beside the target and in the temporary folder failed too".to_string(),
})]
pub struct SaveFailure {
    pub error: ImageError,
    pub rescued: Option<PathBuf>,
}

/// [`save`], and if the disk refuses it (a full disk, the folder removed during a run), the
/// same image beside the target as `NAME-rescued.EXT`, or failing that in the system's
/// temporary folder: a finished picture is never thrown away. An image that cannot be saved
/// anywhere (NaN pixels, an unknown extension) is not retried.
pub fn save_or_rescue(img: &Tensor, path: &Path) -> Result<(), SaveFailure> {
    let error = match save(img, path) {
        Ok(()) => return Ok(()),
        Err(e @ ImageError::Output(_)) => e,
        Err(e) => return Err(SaveFailure { error: e, rescued: None }),
    };
    let stem = path.file_stem().map_or("stylize".into(), |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map_or(String::new(), |e| e.to_string_lossy().into_owned());
    let beside = path.with_file_name(format!("{stem}-rescued.{ext}"));
    let in_temp = std::env::temp_dir().join(format!("{stem}-rescued-{}.{ext}", std::process::id()));
    let rescued = [beside, in_temp].into_iter().find(|p| save(img, p).is_ok());
    Err(SaveFailure { error, rescued })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::image::{from_planes, load_rgb, ramp};
    use crate::output::{files_in, OutputError};

    #[test]
    fn lossless_round_trips_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let img = ramp(7, 5);
        for name in ["a.png", "a.webp", "a.bmp", "a.tiff", "A.PNG"] {
            let p = dir.path().join(name);
            save(&img, &p).unwrap();
            assert_eq!(load_rgb(&p).unwrap().data(), img.data(), "{name}");
        }
    }

    #[test]
    fn jpeg_round_trip_is_close() {
        let dir = tempfile::tempdir().unwrap();
        let img = from_planes(16, 16, (0..768).map(|i| 100.0 + (i % 16) as f32).collect());
        let p = dir.path().join("a.jpg");
        save(&img, &p).unwrap();
        let back = load_rgb(&p).unwrap();
        let worst = img.data().iter().zip(back.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 6.0, "JPEG q{JPEG_QUALITY} error {worst}");
    }

    #[test]
    fn save_rounds_half_to_even_and_clamps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.png");
        let vals = [0.5, 1.5, 2.5, -3.0, 300.0, f32::INFINITY, f32::NEG_INFINITY, 254.49, 7.0];
        save(&from_planes(9, 1, vals.repeat(3)), &p).unwrap();
        let back = load_rgb(&p).unwrap();
        assert_eq!(&back.data()[..9], &[0.0, 2.0, 2.0, 0.0, 255.0, 255.0, 0.0, 254.0, 7.0]);
    }

    #[test]
    fn nan_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nan.png");
        let mut data = ramp(4, 3).data().to_vec();
        data[12 + 4 + 2] = f32::NAN; // channel 1, y 1, x 2
        let err = save(&from_planes(4, 3, data), &p).unwrap_err();
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
        let err = save(&from_planes(20000, 1, vec![9.0; 60000]), &p).unwrap_err();
        assert!(matches!(err, ImageError::Output(OutputError::Encode { .. })), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"previous result");
        assert_eq!(files_in(dir.path()), ["out.webp"]);
    }

    #[test]
    fn a_refused_write_is_rescued_beside_the_target_or_in_the_temporary_folder() {
        let dir = tempfile::tempdir().unwrap();
        let img = ramp(4, 3);
        // The target became a folder after the checks: the image goes beside it.
        let target = dir.path().join("out.png");
        fs::create_dir(&target).unwrap();
        let failure = save_or_rescue(&img, &target).unwrap_err();
        let beside = dir.path().join("out-rescued.png");
        assert_eq!(failure.rescued.as_deref(), Some(beside.as_path()));
        assert_eq!(load_rgb(&beside).unwrap().data(), img.data());
        let msg = failure.to_string();
        assert!(msg.contains("saved to") && msg.contains("out-rescued.png"), "{msg}");
        // The folder is gone: the image goes to the temporary folder.
        let gone = dir.path().join("removed/out.png");
        let failure = save_or_rescue(&img, &gone).unwrap_err();
        let rescued = failure.rescued.expect("rescued");
        assert!(rescued.starts_with(std::env::temp_dir()), "{}", rescued.display());
        assert_eq!(load_rgb(&rescued).unwrap().data(), img.data());
        fs::remove_file(rescued).unwrap();
        // NaN cannot be saved anywhere: no rescue is attempted.
        let failure = save_or_rescue(&from_planes(1, 1, vec![f32::NAN; 3]), &dir.path().join("n.png")).unwrap_err();
        assert!(matches!(failure.error, ImageError::NotANumber { .. }) && failure.rescued.is_none());
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
    fn check_output_path_checks_extension_and_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_output_path(&dir.path().join("o.webp")).unwrap(), OutputFormat::Webp);
        assert_eq!(check_output_path(Path::new("bare-name.png")).unwrap(), OutputFormat::Png);
        let err = check_output_path(&dir.path().join("nope/o.png")).unwrap_err();
        assert!(matches!(err, ImageError::Output(OutputError::NoSuchDir { .. })), "{err}");
        let err = check_output_path(&dir.path().join("nope/o.xyz")).unwrap_err();
        assert!(matches!(err, ImageError::UnknownExtension { .. }), "the extension is checked first: {err}");
        assert!(files_in(dir.path()).is_empty(), "nothing was created");
    }
}
