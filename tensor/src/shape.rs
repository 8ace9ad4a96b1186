//! `Shape`: up to four dimensions, row-major (NCHW for images).

use std::fmt;

/// The dimensions of a tensor, outermost first. Rank 0 is a scalar (one element).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; 4],
    rank: usize,
}

impl Shape {
    /// Panics on more than four dimensions: shapes are written by our own code, never read
    /// from users, so that would be a bug here.
    pub fn new(dims: &[usize]) -> Self {
        assert!(dims.len() <= 4, "shapes have at most 4 dimensions, got {dims:?}");
        let mut d = [1; 4];
        d[..dims.len()].copy_from_slice(dims);
        Shape { dims: d, rank: dims.len() }
    }

    pub fn scalar() -> Self {
        Shape::new(&[])
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of elements: the product of the dimensions (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// `(n, c, h, w)` of a rank-4 shape.
    pub fn nchw(&self) -> Option<(usize, usize, usize, usize)> {
        (self.rank == 4).then(|| (self.dims[0], self.dims[1], self.dims[2], self.dims[3]))
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}
