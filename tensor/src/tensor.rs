//! `Tensor`: an immutable f32 array with a shape, cheap to clone.

use std::sync::Arc;

use crate::kernels::{self, elementwise};
use crate::{Error, Rng, Shape};

/// A contiguous row-major f32 array. Clones share the data (`Arc`), so saving a tensor for a
/// backward pass or handing it to several ops copies nothing.
///
/// Invariant: `data.len() == shape.numel()`. Every constructor checks it; nothing mutates a
/// tensor in place, so it holds for the tensor's whole life.
#[derive(Clone)]
pub struct Tensor {
    shape: Shape,
    data: Arc<Vec<f32>>,
}

impl Tensor {
    /// A tensor of `shape` holding `data` in row-major order.
    pub fn new(shape: impl Into<Shape>, data: Vec<f32>) -> Result<Self, Error> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::DataLength { shape, len: data.len() });
        }
        Ok(Tensor { shape, data: Arc::new(data) })
    }

    /// For kernels' outputs, whose length is right by construction.
    pub(crate) fn from_parts(shape: Shape, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), shape.numel(), "kernel output fills its shape");
        Tensor { shape, data: Arc::new(data) }
    }

    pub fn zeros(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        Tensor::from_parts(shape, kernels::zeroed(shape.numel()))
    }

    /// Values uniform in [lo, hi) from an [`Rng`] seeded with `seed`, in row-major order: the
    /// same seed gives the same tensor on every run and platform (noise images, test inputs).
    pub fn uniform(shape: impl Into<Shape>, lo: f32, hi: f32, seed: u64) -> Self {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        Tensor::from_parts(shape, (0..shape.numel()).map(|_| rng.uniform_in(lo, hi)).collect())
    }

    pub fn scalar(v: f32) -> Self {
        Tensor::from_parts(Shape::scalar(), vec![v])
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The data, without a copy when this is the only reference to it.
    pub fn into_vec(self) -> Vec<f32> {
        Arc::try_unwrap(self.data).unwrap_or_else(|shared| (*shared).clone())
    }

    /// The data when this is the only reference to it, else the tensor back: for an op that
    /// may write its output over its input.
    pub(crate) fn try_into_vec(self) -> Result<Vec<f32>, Tensor> {
        let shape = self.shape;
        Arc::try_unwrap(self.data).map_err(|data| Tensor { shape, data })
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Option<f32> {
        (self.data.len() == 1).then(|| self.data[0])
    }

    /// `f` applied to every element (in parallel, see `kernels::elementwise`).
    pub(crate) fn map(&self, f: impl Fn(f32) -> f32 + Sync) -> Tensor {
        Tensor::from_parts(self.shape, elementwise::map(&self.data, f))
    }

    /// `f(self[i], other[i])` for every element; the shapes must match (callers check).
    pub(crate) fn zip_map(&self, other: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync) -> Tensor {
        Tensor::from_parts(self.shape, elementwise::zip_map(&self.data, &other.data, f))
    }

    /// True when every element is finite (no NaN, no infinity).
    pub fn is_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }

    /// Bytes of f32 data held (shared data counts in full).
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: Vec<f32> = self.data.iter().take(8).copied().collect();
        write!(f, "Tensor{} {head:?}{}", self.shape, if self.data.len() > 8 { "..." } else { "" })
    }
}
