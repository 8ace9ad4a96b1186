//! The recorded ops and what each saves for its backward pass.
//!
//! An input is `Some(node)` when it is tracked and `None` when it is a constant; backward
//! computes gradients only for `Some` inputs (tinygrad's `needs_input_grad`). Saved state is
//! the least that backward needs: a mask for ReLU, the argmax for max-pool, a shared `Arc` of
//! the packed weights for a frozen convolution (nothing of its input), x̂ and γ/σ for a
//! normalisation.

use std::sync::Arc;

use crate::autograd::tape::NodeId;
use crate::kernels::conv::{InputView, PackedConv};
use crate::kernels::norm::NormGeometry;
use crate::kernels::pad;
use crate::{Shape, Tensor};

/// Declares an enum and its `ALL` list from one list of variants, so that `ALL` cannot miss one.
macro_rules! enum_with_all {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
        }
    };
}

enum_with_all! {
    /// What kind of op a tape recorded: the crate's `Op` without its saved state, one variant
    /// per `Op` variant, of the same name.
    ///
    /// It makes an op without a gradient check fail to compile:
    /// 1. `Op::kind` matches every `Op` variant, so a new one needs a kind here;
    /// 2. `tests/gradcheck.rs` matches every `OpKind` with no wildcard arm to pick that kind's
    ///    finite-difference checks, so a new kind needs a check there;
    /// 3. `ALL` is generated from the same list as the enum, and the test runs the check of
    ///    every kind in `ALL`, so none is skipped. Each check also asserts that the tape it
    ///    built recorded an op of its kind ([`Tape::kinds`](crate::Tape::kinds)).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum OpKind {
        Leaf,
        Conv2d,
        Relu,
        MaxPool2,
        Gram,
        Add,
        Scale,
        MeanSquaredError,
        NeighbourDiff,
        ReflectionPad2d,
        Crop2d,
        UpsampleNearest2x,
        LeakyRelu,
        InstanceNorm,
        BatchNorm,
        SoftClamp,
    }
}

pub(crate) enum Op {
    /// A tensor the caller wants the gradient of.
    Leaf,
    /// `y = conv(x, W) + b` on an `[n, cin, h, w]` input. `weight`/`bias` are their nodes
    /// when tracked; `input` is kept only when the weight is (its gradient needs x, the
    /// bias's only dY).
    /// `relu_mask` is `(y > 0)` when a ReLU was fused into the forward (`y = max(conv, 0)`):
    /// backward masks the gradient first, as the separate [`Op::Relu`] would. The layer read
    /// x as `view` shows it (upsampled, within a mirrored border: `Conv2d::upsampled`,
    /// `Conv2d::reflected`); `input` is x itself, and backward writes the view out again.
    Conv2d {
        x: Option<NodeId>,
        conv: Arc<PackedConv>,
        input_shape: Shape,
        view: InputView,
        weight: Option<NodeId>,
        bias: Option<NodeId>,
        input: Option<Tensor>,
        relu_mask: Option<Vec<u8>>,
    },
    /// `y = max(x, 0)`; `mask[i] = (x[i] > 0)`.
    Relu {
        x: NodeId,
        mask: Vec<u8>,
    },
    /// 2x2 max-pool; which cell of each window won.
    MaxPool2 {
        x: NodeId,
        argmax: Vec<u8>,
        input_shape: Shape,
    },
    /// `G = F Fᵀ / n` per item of `[b, c, h, w]` (or of `[c, n]`) features; saves F.
    Gram {
        x: NodeId,
        features: Tensor,
    },
    Add {
        a: Option<NodeId>,
        b: Option<NodeId>,
    },
    Scale {
        x: NodeId,
        factor: f32,
    },
    /// `mean((x - target)²)` against a constant target; saves `x - target` (for
    /// `mean_square`, whose target is zero, a shared clone of x).
    MeanSquaredError {
        x: NodeId,
        diff: Tensor,
    },
    /// Neighbour differences along rows (`along_rows`) or columns of `[n, c, h, w]`.
    NeighbourDiff {
        x: NodeId,
        input_shape: Shape,
        along_rows: bool,
    },
    /// Reflection padding by `pad` on every side of `[n, c, h, w]`; backward needs only where
    /// each output pixel came from, which the shape and `pad` say.
    ReflectionPad2d {
        x: NodeId,
        input_shape: Shape,
        pad: usize,
    },
    /// The window `win` of every plane of `[n, c, h, w]`; backward needs only the shapes.
    Crop2d {
        x: NodeId,
        input_shape: Shape,
        win: pad::Window,
    },
    /// Nearest-neighbour 2x upsampling of `[n, c, h, w]`.
    UpsampleNearest2x {
        x: NodeId,
        input_shape: Shape,
    },
    /// `y = x` where x > 0, else `slope·x`; `mask[i] = (x[i] > 0)`.
    LeakyRelu {
        x: NodeId,
        mask: Vec<u8>,
        slope: f32,
    },
    /// Instance normalisation, statistics per `(sample, channel)`.
    InstanceNorm(Normalized),
    /// Batch normalisation, with the batch's statistics (training) or running ones (inference).
    BatchNorm(Normalized),
    /// `y = mid + half·tanh((x - mid)/half)` per channel; `slope[i] = 1 - tanh²`, dy/dx.
    SoftClamp {
        x: NodeId,
        slope: Vec<f32>,
    },
}

/// What the backward of a normalisation keeps ([`Op::InstanceNorm`], [`Op::BatchNorm`]): x̂
/// and `γ/σ`, each only when a gradient needs it, and never x or y.
pub(crate) struct Normalized {
    pub x: Option<NodeId>,
    pub gamma: Option<NodeId>,
    pub beta: Option<NodeId>,
    /// x's shape as `[n, c, h·w]`, and whether the statistics came from x.
    pub geometry: NormGeometry,
    /// `x̂ = (x - μ)/σ`, kept when γ is tracked (`dγ = Σ dy·x̂`) or when x is and the statistics
    /// came from x (dx's `x̂·mean(dy·x̂)` term).
    pub xhat: Option<Vec<f32>>,
    /// `γ[c]/σ` per group, kept when x is tracked.
    pub dx_scale: Option<Vec<f32>>,
}

impl Op {
    /// This op's [`OpKind`]; the match is exhaustive, so a new variant needs a kind.
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Leaf => OpKind::Leaf,
            Op::Conv2d { .. } => OpKind::Conv2d,
            Op::Relu { .. } => OpKind::Relu,
            Op::MaxPool2 { .. } => OpKind::MaxPool2,
            Op::Gram { .. } => OpKind::Gram,
            Op::Add { .. } => OpKind::Add,
            Op::Scale { .. } => OpKind::Scale,
            Op::MeanSquaredError { .. } => OpKind::MeanSquaredError,
            Op::NeighbourDiff { .. } => OpKind::NeighbourDiff,
            Op::ReflectionPad2d { .. } => OpKind::ReflectionPad2d,
            Op::Crop2d { .. } => OpKind::Crop2d,
            Op::UpsampleNearest2x { .. } => OpKind::UpsampleNearest2x,
            Op::LeakyRelu { .. } => OpKind::LeakyRelu,
            Op::InstanceNorm(_) => OpKind::InstanceNorm,
            Op::BatchNorm(_) => OpKind::BatchNorm,
            Op::SoftClamp { .. } => OpKind::SoftClamp,
        }
    }

    /// Bytes this op keeps alive for its backward (shared tensors counted in full).
    pub(crate) fn saved_bytes(&self) -> usize {
        let t = |t: &Option<Tensor>| t.as_ref().map_or(0, Tensor::bytes);
        match self {
            Op::Conv2d { input, relu_mask, .. } => t(input) + relu_mask.as_ref().map_or(0, Vec::len),
            Op::Relu { mask, .. } => mask.len(),
            Op::MaxPool2 { argmax, .. } => argmax.len(),
            Op::Gram { features, .. } => features.bytes(),
            Op::MeanSquaredError { diff, .. } => diff.bytes(),
            Op::Leaf | Op::Add { .. } | Op::Scale { .. } | Op::NeighbourDiff { .. } => 0,
            Op::ReflectionPad2d { .. } | Op::Crop2d { .. } | Op::UpsampleNearest2x { .. } => 0,
            Op::LeakyRelu { mask, .. } => mask.len(),
            Op::SoftClamp { slope, .. } => std::mem::size_of_val(slope.as_slice()),
            Op::InstanceNorm(norm) | Op::BatchNorm(norm) => {
                let floats = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, |v| v.len() * std::mem::size_of::<f32>());
                floats(&norm.xhat) + floats(&norm.dx_scale)
            }
        }
    }
}
