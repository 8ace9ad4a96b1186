//! Model files: the trained network's tensors and what made them, in one safetensors file.
//!
//! A model file is a safetensors file (<https://github.com/huggingface/safetensors>: an 8-byte
//! header length, a JSON header naming each tensor's dtype, shape and byte range, then the raw
//! little-endian data) whose `__metadata__` carries `stylize.format` = [`FORMAT`] and whatever
//! the writer records (architecture, width, style image hash, loss weights, steps, final loss).
//! Tensors are F32 and named as the layers' fields are (`res1.conv1.weight`), so the file and
//! the code explain each other.
//!
//! Reading validates before it allocates: the `safetensors` crate checks that every byte range
//! lies inside the file, so no header can claim more memory than the file holds; then each
//! tensor's dtype and values are checked, and [`ModelFile::take`] checks each shape against what
//! the network expects. A damaged or foreign file is an error naming the problem, never a panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tensor::Tensor;

/// The metadata key that marks a stylize model, and its value for this version of the format.
pub const FORMAT_KEY: &str = "stylize.format";
pub const FORMAT: &str = "stylize-model-1";

/// The largest model file read: ten times the full-width network (1.68 M parameters, 6.7 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: cannot read: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {bytes} bytes is larger than any stylize model ({} MiB at most); is it the right file?", path.display(), MAX_FILE_BYTES >> 20)]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{}: not a model file ({reason}); it may be damaged or not a safetensors file: train it again with `stylize train`", path.display())]
    NotSafetensors { path: PathBuf, reason: String },
    #[error(
        "{}: a safetensors file, but not a stylize model (no `{FORMAT_KEY}` metadata); VGG19 weights go to --weights, \
         models come from `stylize train`", path.display()
    )]
    NotAModel { path: PathBuf },
    #[error("{}: model format `{found}`, this stylize reads `{FORMAT}`; use the stylize that trained it, or train again", path.display())]
    WrongFormat { path: PathBuf, found: String },
    #[error("{}: the metadata lacks `{key}`; the file is damaged or was not written by `stylize train`", path.display())]
    MissingMetadata { path: PathBuf, key: String },
    #[error("{}: metadata `{key}` = `{value}` is not valid ({reason})", path.display())]
    BadMetadata { path: PathBuf, key: String, value: String, reason: String },
    #[error("{}: tensor `{name}` is {dtype}, expected F32; the file is damaged", path.display())]
    WrongDtype { path: PathBuf, name: String, dtype: String },
    #[error("{}: has no tensor `{name}`; the file is damaged or is a different architecture", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: tensor `{name}` has shape {got:?}, the network expects {expected:?}; the file does not match its own metadata", path.display())]
    WrongShape { path: PathBuf, name: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("{}: tensor `{name}` holds NaN or infinite values; the training diverged or the file is damaged", path.display())]
    NonFinite { path: PathBuf, name: String },
    #[error("{}: tensors {names:?} are not part of the network its metadata describes; the file is damaged", path.display())]
    Unexpected { path: PathBuf, names: Vec<String> },
}

/// A model's tensors by name, and its metadata.
#[derive(Clone, Debug, Default)]
pub struct ModelFile {
    /// Where it was read from (for errors); empty for a model being written.
    pub path: PathBuf,
    pub metadata: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, Tensor>,
}

impl ModelFile {
    /// The file's bytes: the tensors in name order, the metadata with [`FORMAT_KEY`] added.
    /// Deterministic: the same model gives the same bytes.
    ///
    /// `safetensors::serialize` takes the metadata as a `HashMap`, whose order changes from run
    /// to run, so the tensors are serialised without it and the metadata goes into the JSON
    /// header afterwards, keys sorted, padded with spaces to 8 bytes as the format asks.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.serialize_tensors();
        let n = u64::from_le_bytes(body[..8].try_into().expect("a header length")) as usize;
        let mut header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body[8..8 + n]).expect("safetensors writes a JSON object");
        let mut metadata = self.metadata.clone();
        metadata.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
        header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings"));
        let mut json = serde_json::to_string(&header).expect("strings and numbers");
        json.push_str(&" ".repeat((8 - json.len() % 8) % 8));
        [&(json.len() as u64).to_le_bytes()[..], json.as_bytes(), &body[8 + n..]].concat()
    }

    fn serialize_tensors(&self) -> Vec<u8> {
        let bytes: Vec<(&String, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, t)| (name, t.data().iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect();
        let views = self.tensors.values().zip(&bytes).map(|(t, (name, data))| {
            (name.as_str(), TensorView::new(Dtype::F32, t.shape().dims().to_vec(), data).expect("4 bytes per value"))
        });
        safetensors::serialize(views, &None).expect("F32 views serialise")
    }

    /// Reads and validates a model file (see the module docs).
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let io = |error| ModelError::Io { path: path.to_path_buf(), error };
        let bytes = std::fs::metadata(path).map_err(io)?.len();
        if bytes > MAX_FILE_BYTES {
            return Err(ModelError::TooLarge { path: path.to_path_buf(), bytes });
        }
        ModelFile::from_bytes(&std::fs::read(path).map_err(io)?, path)
    }

    /// Parses a model file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelError> {
        let p = || path.to_path_buf();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::NotSafetensors { path: p(), reason: e.to_string() })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| ModelError::NotSafetensors { path: p(), reason: e.to_string() })?;
        let metadata: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
        match metadata.get(FORMAT_KEY).map(String::as_str) {
            None => return Err(ModelError::NotAModel { path: p() }),
            Some(FORMAT) => {}
            Some(other) => return Err(ModelError::WrongFormat { path: p(), found: other.to_string() }),
        }
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(ModelError::WrongDtype { path: p(), name, dtype: format!("{:?}", view.dtype()) });
            }
            let values: Vec<f32> =
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::NonFinite { path: p(), name });
            }
            let t = Tensor::new(view.shape(), values)
                .map_err(|e| ModelError::NotSafetensors { path: p(), reason: format!("tensor `{name}`: {e}") })?;
            tensors.insert(name, t);
        }
        let mut metadata = metadata;
        metadata.remove(FORMAT_KEY);
        Ok(ModelFile { path: p(), metadata, tensors })
    }

    /// The metadata value of `key`.
    pub fn meta(&self, key: &str) -> Result<&str, ModelError> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| ModelError::MissingMetadata { path: self.path.clone(), key: key.to_string() })
    }

    /// The metadata value of `key`, parsed.
    pub fn meta_parsed<T: std::str::FromStr>(&self, key: &str) -> Result<T, ModelError>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.meta(key)?;
        value.parse().map_err(|e: T::Err| ModelError::BadMetadata {
            path: self.path.clone(),
            key: key.to_string(),
            value: value.to_string(),
            reason: e.to_string(),
        })
    }

    /// Moves tensor `name` out, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor { path: self.path.clone(), name: name.to_string() })?;
        if t.shape().dims() != shape {
            let got = t.shape().dims().to_vec();
            return Err(ModelError::WrongShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                got,
            });
        }
        Ok(t)
    }

    /// Fails if any tensor was not taken: a file with extra tensors is not the network it claims.
    pub fn finish(self) -> Result<(), ModelError> {
        if self.tensors.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Unexpected { path: self.path, names: self.tensors.into_keys().collect() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelFile {
        let mut m = ModelFile::default();
        m.metadata.insert("width".into(), "32".into());
        m.tensors.insert("conv1.weight".into(), Tensor::uniform([4, 3, 3, 3], -1.0, 1.0, 1));
        m.tensors.insert("conv1.bias".into(), Tensor::uniform([4], -1.0, 1.0, 2));
        m
    }

    fn here() -> &'static Path {
        Path::new("m.safetensors")
    }

    #[test]
    fn round_trip_keeps_every_tensor_and_the_metadata() {
        let m = model();
        let bytes = m.to_bytes();
        assert_eq!(bytes, m.to_bytes(), "deterministic");
        let mut back = ModelFile::from_bytes(&bytes, here()).unwrap();
        assert_eq!(back.meta("width").unwrap(), "32");
        assert_eq!(back.meta_parsed::<usize>("width").unwrap(), 32);
        assert!(!back.metadata.contains_key(FORMAT_KEY));
        let w = back.take("conv1.weight", &[4, 3, 3, 3]).unwrap();
        assert_eq!(w.data(), m.tensors["conv1.weight"].data());
        let err = back.clone().finish().unwrap_err();
        assert!(matches!(&err, ModelError::Unexpected { names, .. } if names == &["conv1.bias"]), "{err}");
        back.take("conv1.bias", &[4]).unwrap();
        back.finish().unwrap();
    }

    #[test]
    fn damaged_and_foreign_files_are_refused_by_name() {
        let bytes = model().to_bytes();
        let err = ModelFile::from_bytes(&bytes[..bytes.len() - 1], here()).unwrap_err();
        assert!(matches!(err, ModelError::NotSafetensors { .. }), "{err}");
        let foreign =
            safetensors::serialize([("x", TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap())], &None).unwrap();
        let err = ModelFile::from_bytes(&foreign, here()).unwrap_err();
        assert!(matches!(err, ModelError::NotAModel { .. }) && err.to_string().contains("--weights"), "{err}");
        let mut m = model();
        m.tensors.insert("bad".into(), Tensor::new([2], vec![1.0, f32::NAN]).unwrap());
        let err = ModelFile::from_bytes(&m.to_bytes(), here()).unwrap_err();
        assert!(matches!(&err, ModelError::NonFinite { name, .. } if name == "bad"), "{err}");
        let mut m = ModelFile::from_bytes(&model().to_bytes(), here()).unwrap();
        let err = m.take("conv1.weight", &[4, 3, 9, 9]).unwrap_err();
        assert!(matches!(err, ModelError::WrongShape { .. }), "{err}");
        let err = m.take("conv2.weight", &[1]).unwrap_err();
        assert!(matches!(err, ModelError::MissingTensor { .. }), "{err}");
        let err = m.meta_parsed::<usize>("steps").unwrap_err();
        assert!(matches!(err, ModelError::MissingMetadata { .. }), "{err}");
        m.metadata.insert("steps".into(), "many".into());
        assert!(matches!(m.meta_parsed::<usize>("steps").unwrap_err(), ModelError::BadMetadata { .. }));
    }

    #[test]
    fn another_format_version_is_named() {
        let mut metadata = std::collections::HashMap::new();
        metadata.insert(FORMAT_KEY.to_string(), "stylize-model-9".to_string());
        let bytes =
            safetensors::serialize([("x", TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap())], &Some(metadata))
                .unwrap();
        let err = ModelFile::from_bytes(&bytes, here()).unwrap_err();
        assert!(matches!(&err, ModelError::WrongFormat { found, .. } if found == "stylize-model-9"), "{err}");
    }
}
