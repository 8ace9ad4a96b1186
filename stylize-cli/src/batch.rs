//! Many pictures in one command: which inputs `stylize apply` reads, where each result goes,
//! and which slice of them this process takes when a scheduler runs many copies (a Slurm job
//! array, a Kubernetes Indexed Job), each with its own `--shard K/N`.

use std::path::{Path, PathBuf};

/// File extensions read as images when a folder is given.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"];

/// One picture to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// Slice `index` of `count` (0-based, as `SLURM_ARRAY_TASK_ID` with `--array=0-(N-1)` and
/// Kubernetes' `JOB_COMPLETION_INDEX` count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N` with `0 <= K < N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("'{s}' is not K/N (e.g. 3/16)"))?;
        let parse = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("'{v}' in '{s}' is not a whole number"));
        let (index, count) = (parse(k)?, parse(n)?);
        if count == 0 || index >= count {
            return Err(format!(
                "'{s}': K counts from 0 and must be below N (0/{count} .. {}/{count})",
                count.max(1) - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{}: no such file or folder", path.display())]
    NotFound { path: PathBuf },
    #[error("{}: cannot list the folder: {error}", path.display())]
    Folder { path: PathBuf, error: std::io::Error },
    /// `hint`: [`subfolder_hint`]'s, read when the folder was listed.
    #[error("{}: holds no images ({}){hint}", path.display(), IMAGE_EXTENSIONS.join(", "))]
    NoImages { path: PathBuf, hint: String },
    #[error("{} inputs need -o to be a folder, but {} is a file; give a folder (it is created if missing)", count, output.display())]
    OutputNotAFolder { count: usize, output: PathBuf },
    #[error("{} and {} would both be written to {}; rename one of them", first.display(), second.display(), output.display())]
    Collision { first: PathBuf, second: PathBuf, output: PathBuf },
    #[error("{}: the picture would be written over this photo; give -o another folder or file name", input.display())]
    OverwritesInput { input: PathBuf },
}

/// The pictures to make from `inputs` (files, or folders whose images are taken in name
/// order) into `output`, and this process's slice of them.
///
/// One input file and an `output` that is not an existing folder nor ends with `/`: `output`
/// is the file. Else `output` is a folder (it need not exist yet) and each result is named after its input,
/// keeping the input's extension (GIF becomes PNG, its palette would band a painting).
pub fn jobs(inputs: &[PathBuf], output: &Path, shard: Option<Shard>) -> Result<Vec<Job>, BatchError> {
    let mut files = Vec::new();
    let mut from_folder = false;
    for input in inputs {
        if input.is_dir() {
            from_folder = true;
            let found = image_files(input).map_err(|error| BatchError::Folder { path: input.clone(), error })?;
            if found.is_empty() {
                return Err(BatchError::NoImages { path: input.clone(), hint: subfolder_hint(input) });
            }
            files.extend(found);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            return Err(BatchError::NotFound { path: input.clone() });
        }
    }
    // `out/` names a folder even before it exists.
    let names_a_folder = output.is_dir() || output.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR);
    let single = files.len() == 1 && !from_folder && !names_a_folder;
    if !single && output.is_file() {
        return Err(BatchError::OutputNotAFolder { count: files.len(), output: output.to_path_buf() });
    }
    let mut jobs: Vec<Job> = files
        .into_iter()
        .map(|input| {
            let output = if single { output.to_path_buf() } else { output.join(output_name(&input)) };
            Job { input, output }
        })
        .collect();
    // `apply M photos/ -o photos/` would replace the photos with their pictures.
    if let Some(job) = jobs.iter().find(|j| crate::output::is_same_file(&j.input, &j.output)) {
        return Err(BatchError::OverwritesInput { input: job.input.clone() });
    }
    let mut by_output: Vec<&Job> = jobs.iter().collect();
    by_output.sort_by(|a, b| a.output.cmp(&b.output));
    if let Some(pair) = by_output.windows(2).find(|p| p[0].output == p[1].output) {
        return Err(BatchError::Collision {
            first: pair[0].input.clone(),
            second: pair[1].input.clone(),
            output: pair[0].output.clone(),
        });
    }
    if let Some(Shard { index, count }) = shard {
        jobs = jobs.into_iter().enumerate().filter(|(i, _)| i % count == index).map(|(_, j)| j).collect();
    }
    Ok(jobs)
}

/// The image files (by extension, hidden files left out) directly in `dir`, sorted by name so
/// the order does not depend on the file system.
pub fn image_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|p| {
        p.is_file()
            && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            && p.extension().is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
    });
    files.sort();
    Ok(files)
}

/// For a folder with no images of its own: that its subfolders, if it has any, are not
/// searched (a photo collection sorted into folders by year is a common case), naming a few.
pub fn subfolder_hint(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else { return String::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    match names.len() {
        0 => String::new(),
        n => {
            let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            let more = if n > 3 { format!(" and {} more", n - 3) } else { String::new() };
            format!("; subfolders are not searched, and it has {n} ({shown}{more}): give one of them")
        }
    }
}

/// `photo.jpg` -> `photo.jpg`, `anim.gif` -> `anim.png`.
fn output_name(input: &Path) -> PathBuf {
    let name = PathBuf::from(input.file_name().expect("a file has a name"));
    match input.extension() {
        Some(e) if e.eq_ignore_ascii_case("gif") => name.with_extension("png"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn folder(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for n in names {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn one_file_to_one_file_or_into_a_folder() {
        let dir = folder(&["a.jpg"]);
        let a = dir.path().join("a.jpg");
        let out = dir.path().join("styled.png");
        assert_eq!(jobs(std::slice::from_ref(&a), &out, None).unwrap(), [Job { input: a.clone(), output: out }]);
        let into = dir.path().join("results");
        fs::create_dir(&into).unwrap();
        assert_eq!(jobs(std::slice::from_ref(&a), &into, None).unwrap()[0].output, into.join("a.jpg"));
        // A folder yet to be made, named with a trailing separator.
        let new = PathBuf::from(format!("{}{}", dir.path().join("new").display(), std::path::MAIN_SEPARATOR));
        assert_eq!(jobs(std::slice::from_ref(&a), &new, None).unwrap()[0].output, new.join("a.jpg"));
    }

    #[test]
    fn a_folder_gives_its_images_in_name_order() {
        let dir = folder(&["c.png", "a.JPG", "b.gif", "notes.txt", "d.webp"]);
        let out = dir.path().join("out");
        let j = jobs(&[dir.path().to_path_buf()], &out, None).unwrap();
        let names: Vec<_> =
            j.iter().map(|j| j.output.strip_prefix(&out).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.JPG", "b.png", "c.png", "d.webp"]);
    }

    #[test]
    fn shards_split_the_jobs_without_overlap() {
        let names: Vec<String> = (0..10).map(|i| format!("p{i:02}.png")).collect();
        let dir = folder(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let out = dir.path().join("out");
        let all = jobs(&[dir.path().to_path_buf()], &out, None).unwrap();
        let mut union = Vec::new();
        for index in 0..3 {
            let part = jobs(&[dir.path().to_path_buf()], &out, Some(Shard { index, count: 3 })).unwrap();
            assert!((3..=4).contains(&part.len()), "{part:?}");
            union.extend(part);
        }
        union.sort_by(|a, b| a.input.cmp(&b.input));
        assert_eq!(union, all);
    }

    #[test]
    fn bad_batches_are_errors() {
        let dir = folder(&["a.png", "b.png", "notes.txt"]);
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        let err = jobs(&[a.clone(), b.clone()], &dir.path().join("notes.txt"), None).unwrap_err();
        assert!(matches!(err, BatchError::OutputNotAFolder { count: 2, .. }), "{err}");
        let err = jobs(&[a.clone(), a.clone()], &dir.path().join("out"), None).unwrap_err();
        assert!(matches!(err, BatchError::Collision { .. }), "{err}");
        let err = jobs(&[dir.path().join("missing.png")], &dir.path().join("o.png"), None).unwrap_err();
        assert!(matches!(err, BatchError::NotFound { .. }), "{err}");
        let empty = folder(&["notes.txt"]);
        let err = jobs(&[empty.path().to_path_buf()], &dir.path().join("out"), None).unwrap_err();
        assert!(matches!(err, BatchError::NoImages { .. }), "{err}");
        assert!(!err.to_string().contains("subfolders"), "{err}");
        // Writing over the inputs: a folder into itself (by another spelling too), a file onto itself.
        let err = jobs(&[dir.path().to_path_buf()], &dir.path().join("."), None).unwrap_err();
        assert!(matches!(&err, BatchError::OverwritesInput { input } if *input == a), "{err}");
        let err = jobs(std::slice::from_ref(&b), &b, None).unwrap_err();
        assert!(matches!(err, BatchError::OverwritesInput { .. }), "{err}");
        assert!(jobs(std::slice::from_ref(&b), &dir.path().join("b.styled.png"), None).is_ok());
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("3/16".parse::<Shard>(), Ok(Shard { index: 3, count: 16 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        assert!("16/16".parse::<Shard>().unwrap_err().contains("below N"));
        assert!("1/0".parse::<Shard>().is_err());
        assert!("3".parse::<Shard>().unwrap_err().contains("K/N"));
        assert!("a/4".parse::<Shard>().unwrap_err().contains("whole number"));
    }
}
