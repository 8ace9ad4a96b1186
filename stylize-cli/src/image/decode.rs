//! Decoding: any format `image` reads, as the reference's `Image.open(p).convert("RGB")`.

use std::fs;
use std::io;
use std::path::Path;

use image::ImageDecoder;
use tensor::Tensor;

use super::{from_planes, ImageError};

/// Widest or tallest image we agree to decode. A crafted PNG can claim 10⁵ x 10⁵ pixels in a
/// few bytes (a "decompression bomb"); a real photo is far below this.
pub const MAX_SIDE: u32 = 16384;

/// Most bytes the decoder may allocate for one image. 1 GiB holds a 16384 x 16384 RGB8 image
/// (768 MiB) but not a bomb that would take the machine down before any error is shown.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Reads any image `image` can decode (PNG, JPEG, WebP, BMP, TIFF, GIF) as 8-bit RGB.
///
/// The format is sniffed from the first bytes, so a PNG named `.jpg` still loads. 16-bit images
/// are reduced to 8 bits and grey or palette images expanded to RGB, so every value is an exact
/// integer in 0..255, as the reference reads them. An EXIF orientation is applied, so a phone
/// photo comes in upright (PIL's `Image.open` would leave it sideways; the golden images carry
/// none); an unreadable EXIF block is ignored rather than refusing a decodable image.
pub fn load_rgb(path: &Path) -> Result<Tensor, ImageError> {
    let rgb = load_rgb8(path)?;
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(from_planes(width, height, planar_from_interleaved(rgb.as_raw(), width, height)))
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

#[cfg(test)]
mod tests {
    use image::codecs::png::PngEncoder;
    use image::{ExtendedColorType, ImageEncoder};

    use super::*;
    use crate::image::{ramp, save};

    #[test]
    fn alpha_is_dropped_and_grey_expanded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rgba.png");
        image::RgbaImage::from_raw(2, 1, vec![10, 20, 30, 0, 40, 50, 60, 128]).unwrap().save(&p).unwrap();
        assert_eq!(load_rgb(&p).unwrap().data(), [10.0, 40.0, 20.0, 50.0, 30.0, 60.0]);
        let g = dir.path().join("grey.png");
        image::GrayImage::from_raw(1, 2, vec![7, 200]).unwrap().save(&g).unwrap();
        assert_eq!(load_rgb(&g).unwrap().data(), [7.0, 200.0, 7.0, 200.0, 7.0, 200.0]);
    }

    #[test]
    fn format_is_sniffed_not_taken_from_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("really_a_png.jpg");
        image::RgbImage::from_raw(1, 1, vec![1, 2, 3]).unwrap().save_with_format(&p, image::ImageFormat::Png).unwrap();
        assert_eq!(load_rgb(&p).unwrap().data(), [1.0, 2.0, 3.0]);
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
        assert_eq!(crate::image::size(&img), (2, 3));
        // Rotated clockwise, the top row reads the old left column from bottom to top.
        let red: Vec<f32> = img.data()[..6].to_vec();
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
        save(&ramp(64, 64), &good).unwrap();
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
}
