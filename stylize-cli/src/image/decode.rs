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
/// none); an unreadable EXIF block is ignored rather than refusing a decodable image. An
/// embedded RGB ICC profile (Adobe RGB, Display P3, ...) is converted to sRGB, see
/// `to_srgb`.
pub fn load_rgb(path: &Path) -> Result<Tensor, ImageError> {
    let rgb = load_rgb8(path)?;
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    Ok(from_planes(width, height, planar_from_interleaved(rgb.as_raw(), width, height)))
}

fn load_rgb8(path: &Path) -> Result<image::RgbImage, ImageError> {
    let p = || path.to_path_buf();
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ImageError::NotFound { path: p() },
        _ => ImageError::Read { path: p(), error: e },
    })?;
    if meta.is_dir() {
        return Err(ImageError::NotAFile { path: p() });
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty { path: p() });
    }
    // The file is read whole (the JPEG check needs its end): a file larger than any image
    // decodes to is refused before it is read, as the decoder would refuse its pixels.
    if meta.len() > MAX_DECODE_BYTES {
        let detail = format!("the file is {} MiB", meta.len() >> 20);
        return Err(ImageError::TooMuchMemory { path: p(), detail });
    }
    let bytes = fs::read(path).map_err(|e| ImageError::Read { path: p(), error: e })?;
    let mut reader = image::ImageReader::new(io::Cursor::new(bytes.as_slice()))
        .with_guessed_format()
        .map_err(|e| ImageError::Read { path: p(), error: e })?;
    // Content first, then the name: a file named `.png` that is not one is a damaged PNG.
    if let (None, Ok(named)) = (reader.format(), image::ImageFormat::from_path(path)) {
        reader.set_format(named);
    }
    match reader.format() {
        None => return Err(ImageError::NotAnImage { path: p() }),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_whole(&bytes) => {
            let detail = "the file ends before its end-of-image marker".into();
            return Err(ImageError::Corrupt { path: p(), detail });
        }
        Some(_) => {}
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
    // A profile that cannot be read is treated as none, as browsers do: the pixels still decode.
    let icc = decoder.icc_profile().ok().flatten();
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_error(path, e))?;
    img.apply_orientation(orientation);
    if img.width() == 0 || img.height() == 0 {
        let detail = format!("it has no pixels ({}x{})", img.width(), img.height());
        return Err(ImageError::Corrupt { path: p(), detail });
    }
    let has_rgb = !matches!(
        img.color(),
        image::ColorType::L8 | image::ColorType::La8 | image::ColorType::L16 | image::ColorType::La16
    );
    let mut rgb = img.into_rgb8();
    if let (Some(icc), true) = (icc, has_rgb) {
        to_srgb(&icc, &mut rgb);
    }
    Ok(rgb)
}

/// Converts 8-bit RGB pixels described by the ICC profile `icc` to sRGB, in place, as a
/// colour-managed viewer shows them (perceptual intent, moxcms). VGG19 learnt from sRGB photos
/// and the output is written untagged, that is as sRGB, so a wide-gamut photo read as if it were
/// sRGB would come out dull. Profiles that are not RGB (grey, CMYK: the decoder has already made
/// RGB of those), already sRGB, or unreadable leave the pixels as they are.
fn to_srgb(icc: &[u8], rgb: &mut image::RgbImage) {
    use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};
    let Ok(profile) = ColorProfile::new_from_slice(icc) else { return };
    if profile.color_space != DataColorSpace::Rgb {
        return;
    }
    let srgb = ColorProfile::new_srgb();
    let Ok(transform) = profile.create_transform_8bit(Layout::Rgb, &srgb, Layout::Rgb, TransformOptions::default())
    else {
        return;
    };
    if is_srgb(transform.as_ref()) {
        return;
    }
    let mut converted = vec![0u8; rgb.as_raw().len()];
    if transform.transform(rgb.as_raw(), &mut converted).is_ok() {
        let (w, h) = rgb.dimensions();
        *rgb = image::RgbImage::from_raw(w, h, converted).expect("the same size");
    }
}

/// Whether the profile maps a grid of colours (5 levels per channel) to sRGB unchanged, to
/// within a level: then the pixels are left exactly as decoded, as for the many photos tagged
/// "sRGB IEC61966-2.1".
fn is_srgb(transform: &moxcms::Transform8BitExecutor) -> bool {
    const LEVELS: [u8; 5] = [0, 64, 128, 192, 255];
    let probe: Vec<u8> = (0..125).flat_map(|i| [LEVELS[i / 25], LEVELS[i / 5 % 5], LEVELS[i % 5]]).collect();
    let mut out = vec![0u8; probe.len()];
    transform.transform(&probe, &mut out).is_ok() && probe.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

/// Whether the file at `path` starts as an image format `image` knows does (PNG, JPEG, ...):
/// to tell a user who passed a photo where a model goes what they did.
pub fn is_picture(path: &Path) -> bool {
    let mut head = [0u8; 32];
    let n = fs::File::open(path).and_then(|mut f| io::Read::read(&mut f, &mut head)).unwrap_or(0);
    image::guess_format(&head[..n]).is_ok()
}

/// Whether a JPEG file reaches its end-of-image marker (`FF D9`) after its first scan.
///
/// Why: `image`'s JPEG decoder (zune-jpeg, not in strict mode) paints what a truncated file
/// lacks in flat grey and reports no error, so a photo cut short by a failed copy would be
/// stylised as a grey band without a word. PNG, WebP, BMP, TIFF and GIF decoders do report it.
/// The markers before the first scan (`FF DA`) are walked by their lengths, so a thumbnail's
/// own marker inside the EXIF block does not count; inside the scans an `FF` byte of data is
/// always followed by `00` or a restart marker (ITU-T T.81, B.1.1.5), so the first `FF D9`
/// after it is the image's end. A file with trailing bytes after that marker is whole. A
/// damaged header is left to the decoder, whose error says more.
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let mut i = 2; // past SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return true; // not a marker where one must be: the decoder's error to report
        }
        let marker = bytes[i + 1];
        match marker {
            0xFF => i += 1, // fill byte
            0x01 | 0xD0..=0xD8 => i += 2,
            0xD9 => return true, // an image with no scan: the decoder's error to report
            _ => {
                let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
                let data = i + 2 + len;
                if marker == 0xDA {
                    return bytes.get(data..).is_some_and(|rest| rest.windows(2).any(|w| w == [0xFF, 0xD9]));
                }
                i = data;
            }
        }
    }
    false
}

fn decode_error(path: &Path, e: image::ImageError) -> ImageError {
    let path = path.to_path_buf();
    match e {
        image::ImageError::Limits(l) => ImageError::TooMuchMemory { path, detail: l.to_string() },
        image::ImageError::Unsupported(u) => ImageError::Unsupported { path, detail: u.to_string() },
        image::ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            ImageError::Corrupt { path, detail: "the file ends early".into() }
        }
        image::ImageError::IoError(io) => ImageError::Read { path, error: io },
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

    /// Writes `pixels` (interleaved RGB8, one row) as a PNG tagged with `icc`.
    fn tagged_png(path: &Path, pixels: &[u8], icc: Vec<u8>) {
        let mut png = Vec::new();
        let mut encoder = PngEncoder::new(&mut png);
        encoder.set_icc_profile(icc).unwrap();
        encoder.write_image(pixels, (pixels.len() / 3) as u32, 1, ExtendedColorType::Rgb8).unwrap();
        fs::write(path, png).unwrap();
    }

    /// RGB -> XYZ of a colour space from its primaries' and white's xy chromaticities.
    fn rgb_to_xyz(primaries: [[f64; 2]; 3], white: [f64; 2]) -> [[f64; 3]; 3] {
        let xyz = |[x, y]: [f64; 2]| [x / y, 1.0, (1.0 - x - y) / y];
        let p = primaries.map(xyz);
        let m = [[p[0][0], p[1][0], p[2][0]], [p[0][1], p[1][1], p[2][1]], [p[0][2], p[1][2], p[2][2]]];
        let s = solve3(m, xyz(white));
        m.map(|row| [row[0] * s[0], row[1] * s[1], row[2] * s[2]])
    }

    /// Solves m x = v by Cramer's rule.
    fn solve3(m: [[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
        let det = |m: [[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d = det(m);
        std::array::from_fn(|c| {
            let mut mc = m;
            (0..3).for_each(|r| mc[r][c] = v[r]);
            det(mc) / d
        })
    }

    const SRGB_PRIMARIES: [[f64; 2]; 3] = [[0.64, 0.33], [0.30, 0.60], [0.15, 0.06]];
    const D65: [f64; 2] = [0.3127, 0.3290];

    fn srgb_decode(v: f64) -> f64 {
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    }

    fn srgb_encode(v: f64) -> f64 {
        if v <= 0.0031308 {
            12.92 * v
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        }
    }

    /// An 8-bit colour of a space (primaries, transfer) in sRGB, by the textbook matrices: both
    /// spaces have a D65 white, so no adaptation is needed.
    fn expected_srgb(rgb: [u8; 3], primaries: [[f64; 2]; 3], decode: fn(f64) -> f64) -> [f64; 3] {
        let lin = rgb.map(|v| decode(f64::from(v) / 255.0));
        let to_xyz = rgb_to_xyz(primaries, D65);
        let xyz: [f64; 3] = std::array::from_fn(|r| (0..3).map(|c| to_xyz[r][c] * lin[c]).sum());
        solve3(rgb_to_xyz(SRGB_PRIMARIES, D65), xyz).map(|v| 255.0 * srgb_encode(v.clamp(0.0, 1.0)))
    }

    /// Photos tagged Adobe RGB or Display P3 come in as sRGB, as a colour-managed viewer shows
    /// them: each colour (inside sRGB's gamut) within 2 levels of the textbook conversion, and
    /// visibly different from reading the numbers as sRGB. An sRGB tag or a damaged profile
    /// leaves the pixels exactly as they are.
    #[test]
    fn icc_profiles_are_converted_to_srgb() {
        let dir = tempfile::tempdir().unwrap();
        let colours: [[u8; 3]; 4] = [[128, 128, 128], [90, 140, 60], [160, 120, 110], [60, 80, 150]];
        let pixels: Vec<u8> = colours.iter().flatten().copied().collect();
        let adobe = [[0.64, 0.33], [0.21, 0.71], [0.15, 0.06]];
        let p3 = [[0.680, 0.320], [0.265, 0.690], [0.150, 0.060]];
        let adobe_decode: fn(f64) -> f64 = |v| v.powf(563.0 / 256.0);
        for (name, profile, primaries, decode) in [
            ("adobe", moxcms::ColorProfile::new_adobe_rgb(), adobe, adobe_decode),
            ("p3", moxcms::ColorProfile::new_display_p3(), p3, srgb_decode as fn(f64) -> f64),
        ] {
            let path = dir.path().join(format!("{name}.png"));
            tagged_png(&path, &pixels, profile.encode().unwrap());
            let img = load_rgb(&path).unwrap();
            let mut moved = 0.0f64;
            for (i, &c) in colours.iter().enumerate() {
                let want = expected_srgb(c, primaries, decode);
                let got: [f32; 3] = std::array::from_fn(|ch| img.data()[ch * colours.len() + i]);
                for ch in 0..3 {
                    let err = (f64::from(got[ch]) - want[ch]).abs();
                    assert!(err <= 2.0, "{name} {c:?}: got {got:?}, want {want:?}");
                    moved = moved.max((f64::from(got[ch]) - f64::from(c[ch])).abs());
                }
            }
            assert!(moved >= 8.0, "{name}: the conversion changed no colour by more than {moved} levels");
        }
        for (name, icc) in
            [("srgb", moxcms::ColorProfile::new_srgb().encode().unwrap()), ("junk", b"not a profile".to_vec())]
        {
            let path = dir.path().join(format!("{name}.png"));
            tagged_png(&path, &pixels, icc);
            let img = load_rgb(&path).unwrap();
            let got: Vec<u8> = (0..colours.len())
                .flat_map(|i| (0..3).map(move |ch| (ch, i)))
                .map(|(ch, i)| img.data()[ch * colours.len() + i] as u8)
                .collect();
            assert_eq!(got, pixels, "{name}");
        }
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

        // A file larger than any image decodes to is refused before it is read (sparse: no disk).
        let huge = dir.path().join("huge.png");
        fs::File::create(&huge).unwrap().set_len(MAX_DECODE_BYTES + 1).unwrap();
        let err = load_rgb(&huge).unwrap_err();
        assert!(matches!(err, ImageError::TooMuchMemory { .. }), "{err}");

        // A real PNG cut in half.
        let good = dir.path().join("good.png");
        save(&ramp(64, 64), &good).unwrap();
        let bytes = fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_rgb(&cut).unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    }

    /// A JPEG cut short anywhere after its header, which the decoder itself would paint grey
    /// without an error, is refused; the whole file, and the file with bytes after its end, load.
    #[test]
    fn a_truncated_jpeg_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.jpg");
        save(&ramp(96, 64), &good).unwrap();
        let bytes = fs::read(&good).unwrap();
        let whole = load_rgb(&good).unwrap();
        let trailing = dir.path().join("trailing.jpg");
        fs::write(&trailing, [bytes.as_slice(), b"camera maker's trailer"].concat()).unwrap();
        assert_eq!(load_rgb(&trailing).unwrap().data(), whole.data());
        let scan = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).expect("a scan");
        for cut_at in [scan + 20, bytes.len() / 2, bytes.len() - 2] {
            let cut = dir.path().join(format!("cut{cut_at}.jpg"));
            fs::write(&cut, &bytes[..cut_at]).unwrap();
            let err = load_rgb(&cut).unwrap_err();
            assert!(matches!(err, ImageError::Corrupt { .. }) && err.to_string().contains("end-of-image"), "{err}");
        }
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
