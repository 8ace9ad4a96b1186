//! Errors of the tensor engine: the op, and the shapes it expected and got.

use crate::Shape;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: expected {expected}, got shape {got}")]
    ShapeMismatch { op: &'static str, expected: String, got: Shape },
    #[error("{op}: {reason}")]
    BadGeometry { op: &'static str, reason: String },
    #[error("tensor data has {len} values but shape {shape} needs {}", shape.numel())]
    DataLength { shape: Shape, len: usize },
    #[error("backward: the loss must be a single value, got shape {0}")]
    NonScalarLoss(Shape),
}
