//! Training photos: a folder of images, read as random square crops with random flips.
//!
//! Johnson et al. (2016) train on 256x256 crops of COCO photos; so does `stylize train`, on any
//! folder. [`Photos::open`] decodes every file once to know which are usable (skipping, with a
//! reason each, what cannot be read or is smaller than a crop), and keeps only their paths and
//! sizes; [`Photos::batch`] decodes the chosen photos again each step (a few milliseconds each,
//! against a training step of seconds), so a folder of any size trains in bounded memory.
//! Everything random comes from one seeded [`Rng`] the caller owns, so the same seed gives the
//! same batches, and a resumed run continues the same sequence.

use std::path::{Path, PathBuf};

use tensor::{Rng, Tensor};

use crate::batch::image_files;
use crate::image::{self, ImageError};

/// Why a folder cannot be trained on.
#[derive(Debug, thiserror::Error)]
pub enum PhotosError {
    #[error("{}: cannot list the folder: {error}", path.display())]
    Folder { path: PathBuf, error: std::io::Error },
    #[error("{}: is not a folder; give the folder that holds the training photos", path.display())]
    NotAFolder { path: PathBuf },
    #[error(
        "{}: holds no images; put JPEG or PNG photos in it (the repository ships some in data/photos){hint}",
        path.display()
    )]
    /// `hint`: `batch::subfolder_hint`'s, read when the folder was listed.
    Empty { path: PathBuf, hint: String },
    #[error(
        "{}: none of its {files} files is a usable photo of at least {size}x{size} pixels ({} skipped: {}); \
         add photos or lower --size", path.display(), skipped.len(), skipped.first().map_or(String::new(), |s| s.reason.clone())
    )]
    NoneUsable { path: PathBuf, files: usize, size: usize, skipped: Vec<Skipped> },
}

/// A file left out, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The usable photos of a folder.
#[derive(Clone, Debug)]
pub struct Photos {
    /// `(path, width, height)`, sorted by path so the order does not depend on the file system.
    photos: Vec<(PathBuf, usize, usize)>,
    /// The side of a crop.
    size: usize,
}

impl Photos {
    /// Every image file (by extension) directly in `dir` that decodes to an image at least
    /// `size` pixels on its shorter side; the rest are returned as [`Skipped`], one reason each.
    pub fn open(dir: &Path, size: usize) -> Result<(Photos, Vec<Skipped>), PhotosError> {
        if !dir.is_dir() {
            return Err(PhotosError::NotAFolder { path: dir.to_path_buf() });
        }
        // Images by extension: a README or a script beside the photos is no photo to warn about.
        let files = image_files(dir).map_err(|error| PhotosError::Folder { path: dir.to_path_buf(), error })?;
        if files.is_empty() {
            return Err(PhotosError::Empty { path: dir.to_path_buf(), hint: crate::batch::subfolder_hint(dir) });
        }
        let (mut photos, mut skipped) = (Vec::new(), Vec::new());
        for path in &files {
            match image::load_rgb(path) {
                Ok(img) => {
                    let (w, h) = image::size(&img);
                    if w.min(h) >= size {
                        photos.push((path.clone(), w, h));
                    } else {
                        let reason = format!("{w}x{h} is smaller than a {size}x{size} crop");
                        skipped.push(Skipped { path: path.clone(), reason });
                    }
                }
                Err(e) => skipped.push(Skipped { path: path.clone(), reason: short_reason(&e) }),
            }
        }
        if photos.is_empty() {
            return Err(PhotosError::NoneUsable { path: dir.to_path_buf(), files: files.len(), size, skipped });
        }
        Ok((Photos { photos, size }, skipped))
    }

    pub fn len(&self) -> usize {
        self.photos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }

    /// The side of the crops.
    pub fn crop_size(&self) -> usize {
        self.size
    }

    /// `n` crops `[n, 3, size, size]`: each a random photo, a random position, and a horizontal
    /// flip half of the time. A photo that can no longer be read (changed since `open`) is an
    /// error rather than a silently different batch.
    pub fn batch(&self, rng: &mut Rng, n: usize) -> Result<Tensor, ImageError> {
        let s = self.size;
        let mut data = Vec::with_capacity(n * 3 * s * s);
        for _ in 0..n {
            let (path, w, h) = &self.photos[pick(rng, self.photos.len())];
            let (x0, y0) = (pick(rng, w - s + 1), pick(rng, h - s + 1));
            let flip = rng.next_u64() & 1 == 1;
            let img = image::load_rgb(path)?;
            let (w, h) = image::size(&img);
            assert!(w >= x0 + s && h >= y0 + s, "{} changed size since it was opened", path.display());
            for plane in img.data().chunks_exact(w * h) {
                for row in plane.chunks_exact(w).skip(y0).take(s) {
                    let row = &row[x0..x0 + s];
                    if flip {
                        data.extend(row.iter().rev());
                    } else {
                        data.extend_from_slice(row);
                    }
                }
            }
        }
        Ok(Tensor::new([n, 3, s, s], data).expect("n crops of 3 x size x size"))
    }
}

/// A uniform choice in `0..n` (n >= 1); the modulo bias over 2^64 is far below anything visible.
fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// The error without the path (the warning names it already).
fn short_reason(e: &ImageError) -> String {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((_, reason)) => reason.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{from_planes, save};

    /// A folder with a 40x30 and a 20x50 photo, a 10x10 one, a text file and a hidden file.
    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ramp = |w: usize, h: usize| from_planes(w, h, (0..3 * w * h).map(|i| (i % 256) as f32).collect());
        save(&ramp(40, 30), &dir.path().join("a.png")).unwrap();
        save(&ramp(20, 50), &dir.path().join("b.png")).unwrap();
        save(&ramp(10, 10), &dir.path().join("small.png")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a photo, and not named like one").unwrap();
        std::fs::write(dir.path().join("broken.jpg"), b"not a photo, though named like one").unwrap();
        std::fs::write(dir.path().join(".DS_Store"), b"junk").unwrap();
        dir
    }

    #[test]
    fn unusable_files_are_skipped_with_a_reason_each() {
        let dir = folder();
        let (photos, skipped) = Photos::open(dir.path(), 16).unwrap();
        assert_eq!(photos.len(), 2);
        let reasons: Vec<(String, String)> = skipped
            .iter()
            .map(|s| (s.path.file_name().unwrap().to_string_lossy().into_owned(), s.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 2, "notes.txt is not looked at: {reasons:?}");
        assert_eq!(reasons[0].0, "broken.jpg");
        assert!(reasons[0].1.contains("damaged"), "{reasons:?}");
        assert_eq!(reasons[1], ("small.png".into(), "10x10 is smaller than a 16x16 crop".into()));
    }

    #[test]
    fn crops_are_reproducible_from_the_seed_and_come_from_the_photos() {
        let dir = folder();
        let (photos, _) = Photos::open(dir.path(), 16).unwrap();
        let a = photos.batch(&mut Rng::new(5), 4).unwrap();
        let b = photos.batch(&mut Rng::new(5), 4).unwrap();
        let c = photos.batch(&mut Rng::new(6), 4).unwrap();
        assert_eq!(a.shape().dims(), [4, 3, 16, 16]);
        assert_eq!(a.data(), b.data());
        assert_ne!(a.data(), c.data());
        // Each crop row is a run of the ramp (i % 256 along the row), forwards or mirrored.
        for row in a.data().chunks_exact(16) {
            let step = (row[1] - row[0]).rem_euclid(256.0);
            assert!(step == 1.0 || step == 255.0, "{row:?}");
        }
    }

    #[test]
    fn useless_folders_are_errors() {
        let dir = folder();
        let err = Photos::open(dir.path(), 64).unwrap_err();
        assert!(matches!(&err, PhotosError::NoneUsable { files: 4, size: 64, .. }), "{err}");
        let only_text = tempfile::tempdir().unwrap();
        std::fs::write(only_text.path().join("README.md"), b"photos go here").unwrap();
        assert!(matches!(Photos::open(only_text.path(), 16).unwrap_err(), PhotosError::Empty { .. }));
        assert!(err.to_string().contains("lower --size"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(Photos::open(empty.path(), 16).unwrap_err(), PhotosError::Empty { .. }));
        // Photos one folder down: the error says the subfolders are not searched, and names them.
        for sub in ["2023", "2024", "2025", "2026", ".cache"] {
            std::fs::create_dir(empty.path().join(sub)).unwrap();
        }
        let err = Photos::open(empty.path(), 16).unwrap_err().to_string();
        assert!(err.contains("subfolders are not searched, and it has 4 (2023, 2024, 2025 and 1 more)"), "{err}");
        let err = Photos::open(&dir.path().join("a.png"), 16).unwrap_err();
        assert!(matches!(err, PhotosError::NotAFolder { .. }), "{err}");
    }
}
