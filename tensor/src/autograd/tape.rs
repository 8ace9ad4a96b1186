//! The tape: ops recorded in execution order, replayed backwards.
//!
//! Because ops are appended as they run, the tape is already a topological order: `backward`
//! walks it in reverse with no graph search (unlike micrograd's or candle's depth-first sort).
//! Gradients live in a `Vec` indexed by [`NodeId`]; each is taken when its op is replayed and
//! the op's saved state is dropped right after, so memory shrinks as backward proceeds.

use crate::autograd::backward;
use crate::autograd::op::{Op, OpKind};
use crate::kernels::elementwise;
use crate::{Error, Shape, Tensor};

/// The position of a recorded op (its output) on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(pub(crate) usize);

/// A value flowing through ops: a tensor, plus its node on the tape when gradients must flow
/// through it. A `Var` with no node is a constant: ops on constants only record nothing, so the
/// target passes of style transfer (content and style features) leave the tape empty.
#[derive(Clone, Debug)]
pub struct Var {
    value: Tensor,
    node: Option<NodeId>,
}

impl Var {
    /// A value no gradient flows to.
    pub fn constant(value: Tensor) -> Self {
        Var { value, node: None }
    }

    pub fn value(&self) -> &Tensor {
        &self.value
    }

    pub fn shape(&self) -> Shape {
        self.value.shape()
    }

    pub fn node(&self) -> Option<NodeId> {
        self.node
    }

    pub fn is_tracked(&self) -> bool {
        self.node.is_some()
    }

    /// The value and its node, for an op that consumes its input.
    pub(crate) fn into_parts(self) -> (Tensor, Option<NodeId>) {
        (self.value, self.node)
    }
}

/// The record of tracked ops, in the order they ran.
#[derive(Default)]
pub struct Tape {
    ops: Vec<Op>,
}

impl Tape {
    pub fn new() -> Self {
        Tape::default()
    }

    /// A value whose gradient `backward` will return (the image being optimised, or a weight
    /// being trained).
    pub fn leaf(&mut self, value: Tensor) -> Var {
        self.record(value, Op::Leaf)
    }

    pub(crate) fn record(&mut self, value: Tensor, op: Op) -> Var {
        self.ops.push(op);
        Var { value, node: Some(NodeId(self.ops.len() - 1)) }
    }

    /// Number of recorded ops (leaves included).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The kinds of the recorded ops, in the order they ran (to print a tape, or for a test to
    /// see what an op recorded).
    pub fn kinds(&self) -> impl Iterator<Item = OpKind> + '_ {
        self.ops.iter().map(Op::kind)
    }

    /// Bytes the recorded ops keep alive for backward (what a memory estimate must count).
    pub fn saved_bytes(&self) -> usize {
        self.ops.iter().map(Op::saved_bytes).sum()
    }

    /// `∂loss/∂leaf` for every leaf the loss depends on. Consumes the tape.
    pub fn backward(self, loss: &Var) -> Result<Grads, Error> {
        if loss.shape().numel() != 1 {
            return Err(Error::NonScalarLoss(loss.shape()));
        }
        self.backward_with(loss, Tensor::from_parts(loss.shape(), vec![1.0]))
    }

    /// `∂⟨dy, y⟩/∂leaf` for every leaf `y` depends on: backward seeded with a given `dy = ∂L/∂y`
    /// rather than 1, for a `y` of any shape (a vector-Jacobian product; PyTorch's
    /// `y.backward(dy)`). Gradient checks use it to project an op's output on a random
    /// direction without recording any op for the projection. Consumes the tape.
    pub fn backward_with(self, y: &Var, dy: Tensor) -> Result<Grads, Error> {
        if dy.shape() != y.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward",
                expected: format!("a gradient of the output's shape {}", y.shape()),
                got: dy.shape(),
            });
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; self.ops.len()];
        let Some(root) = y.node else {
            return Ok(Grads { grads });
        };
        grads[root.0] = Some(dy);
        for (id, op) in self.ops.into_iter().enumerate().take(root.0 + 1).rev() {
            let Some(g) = grads[id].take() else { continue };
            if let Op::Leaf = op {
                grads[id] = Some(g);
                continue;
            }
            for (input, g_in) in backward::backward(op, g, &mut grads) {
                debug_assert!(input.0 < id, "tape order is topological");
                accumulate(&mut grads[input.0], g_in);
            }
        }
        Ok(Grads { grads })
    }
}

/// `slot += g`: a value used by several ops receives the sum of their gradients.
fn accumulate(slot: &mut Option<Tensor>, g: Tensor) {
    *slot = Some(match slot.take() {
        None => g,
        Some(acc) => {
            let shape = acc.shape();
            let mut sum = acc.into_vec();
            elementwise::add_assign(&mut sum, g.data());
            Tensor::from_parts(shape, sum)
        }
    });
}

/// The gradients `backward` computed, one per leaf.
pub struct Grads {
    grads: Vec<Option<Tensor>>,
}

impl Grads {
    /// `∂loss/∂v`, or `None` when `v` is not a leaf of this tape or the loss does not depend on it.
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        v.node.and_then(|n| self.grads.get(n.0)?.as_ref())
    }

    /// Like [`Grads::get`], moving the gradient out.
    pub fn take(&mut self, v: &Var) -> Option<Tensor> {
        v.node.and_then(|n| self.grads.get_mut(n.0)?.take())
    }
}
