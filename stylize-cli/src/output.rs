//! Where results go: every output is checked before any work, and written whole or not at all.
//!
//! [`check`] runs before the first VGG pass for every file a command will write (the image, the
//! log, `.npy` gradients, models): the folder must exist and this user must be able to create a
//! file in it, which is only known by trying, so a file is created there and removed again. A
//! read-only folder is then refused in the first second instead of after twenty minutes of work.
//!
//! [`write_atomic`] is the one way files are written: into a temporary file beside the target,
//! flushed and synced, then renamed over it. A rename within one file system is atomic, so a
//! reader sees the old file or the new one, never half of one, and a failed encode leaves the
//! old file as it was.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What can stop a file from being written. Each message names the path once.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{}: the folder {} does not exist; create it first", path.display(), dir.display())]
    NoSuchDir { path: PathBuf, dir: PathBuf },
    #[error("{}: {} is not a folder", path.display(), dir.display())]
    NotADir { path: PathBuf, dir: PathBuf },
    #[error("{}: is a folder; give a file name such as {}", path.display(), path.join("out.png").display())]
    IsADir { path: PathBuf },
    #[error(
        "{}: cannot create files in {} ({reason}); choose a folder you can write to",
        path.display(), dir.display()
    )]
    NotWritable { path: PathBuf, dir: PathBuf, reason: String },
    #[error("{}: cannot write ({reason}); check that the folder still exists and the disk is not full", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("{}: {detail}; try another format, e.g. .png", path.display())]
    Encode { path: PathBuf, detail: String },
}

/// Checks, without leaving a trace, that a file can be created at `path`: it is not a folder,
/// its folder exists, and a file can be created and removed there.
pub fn check(path: &Path) -> Result<(), OutputError> {
    if path.is_dir() {
        return Err(OutputError::IsADir { path: path.to_path_buf() });
    }
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(OutputError::NotADir { path: path.to_path_buf(), dir: dir.to_path_buf() }),
        Err(_) => return Err(OutputError::NoSuchDir { path: path.to_path_buf(), dir: dir.to_path_buf() }),
    }
    // The probe is removed when it is dropped, at the end of this statement.
    temp_file_in(dir).map(drop).map_err(|e| OutputError::NotWritable {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        reason: reason(&e),
    })
}

/// Whether `output` exists and is the file `input` (by its resolved path: `photos/a.jpg` and
/// `./photos/../photos/a.jpg` are one file), so that writing it would replace an input.
pub fn is_same_file(input: &Path, output: &Path) -> bool {
    match (fs::canonicalize(input), fs::canonicalize(output)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The folder `path` lives in; "out.png" has parent "", which means ".".
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A failure inside [`write_atomic`]'s `fill`: the disk, or the encoder.
pub enum FillError {
    Io(io::Error),
    Encode(String),
}

impl From<io::Error> for FillError {
    fn from(e: io::Error) -> Self {
        FillError::Io(e)
    }
}

/// Writes through `fill` into a temporary file beside `path`, syncs it and renames it over
/// `path`. On any error the temporary file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut fs::File) -> Result<(), FillError>) -> Result<(), OutputError> {
    let failed = |e: io::Error| OutputError::Write { path: path.to_path_buf(), reason: reason(&e) };
    let mut tmp = temp_file_in(parent_dir(path)).map_err(failed)?;
    fill(tmp.as_file_mut()).map_err(|e| match e {
        FillError::Io(e) => failed(e),
        FillError::Encode(detail) => OutputError::Encode { path: path.to_path_buf(), detail },
    })?;
    tmp.as_file().sync_all().map_err(failed)?;
    tmp.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

/// [`write_atomic`] for bytes already in memory.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    use std::io::Write;
    write_atomic(path, |f| f.write_all(bytes).map_err(FillError::Io))
}

/// A `.stylize-XXXXXX.tmp` file in `dir`, deleted on drop unless persisted.
fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".stylize-").suffix(".tmp");
    // NamedTempFile is created 0600; an output should get the usual 0644 (umask 022) instead.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// The system's words for an I/O error, without the path `tempfile` appends to them ("... at
/// path ..."): the message that shows this names the path already.
fn reason(e: &io::Error) -> String {
    let text = e.get_ref().map_or_else(|| e.to_string(), |inner| inner.to_string());
    match text.split_once(" at path ") {
        Some((reason, _)) => reason.to_string(),
        None => text,
    }
}

/// The names in `dir`, sorted: what a test checks was (not) left behind.
#[cfg(test)]
pub(crate) fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_a_writable_folder_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        check(&dir.path().join("o.png")).unwrap();
        assert!(files_in(dir.path()).is_empty());
    }

    #[test]
    fn check_refuses_what_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let err = check(&dir.path().join("nope/o.png")).unwrap_err();
        assert!(matches!(err, OutputError::NoSuchDir { .. }), "{err}");
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(check(&file.join("o.png")).unwrap_err(), OutputError::NotADir { .. }));
        let sub = dir.path().join("sub.png");
        fs::create_dir(&sub).unwrap();
        assert!(matches!(check(&sub).unwrap_err(), OutputError::IsADir { .. }));
        assert_eq!(files_in(dir.path()), ["file", "sub.png"], "nothing was created");
    }

    #[test]
    fn atomic_write_replaces_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_bytes_atomic(&p, b"first").unwrap();
        write_bytes_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let err = write_atomic(&p, |_| Err(FillError::Encode("no".into()))).unwrap_err();
        assert!(matches!(err, OutputError::Encode { .. }));
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(files_in(dir.path()), ["a.bin"], "no temporary file is left");
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("perm.bin");
        write_bytes_atomic(&p, b"x").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    }
}
