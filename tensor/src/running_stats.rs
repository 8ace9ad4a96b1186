//! Batch normalisation's statistics: those of one training batch ([`BatchStats`], returned by
//! [`Tape::batch_norm_train`](crate::Tape::batch_norm_train)) and the running estimates a layer
//! keeps for inference ([`RunningStats`], read by
//! [`Tape::batch_norm_eval`](crate::Tape::batch_norm_eval)).
//!
//! The split: ops are functions of their inputs and change nothing but the tape, so the
//! batch-norm op does not touch the running estimates. They are state of the layer, which owns a
//! `RunningStats` next to its γ and β, and after a training forward calls
//! [`RunningStats::update`] with the batch's statistics. Nothing moves unless the layer asks: a
//! forward run for a gradient check, a validation batch, or a second forward of the same batch
//! leaves the estimates alone, and the layer decides the momentum (and could equally average the
//! statistics of several micro-batches before one update).

use crate::{Error, Shape};

/// The per-channel statistics a training forward normalised with: the mean and the biased
/// variance over the `count = n·h·w` values of each channel.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub count: usize,
}

/// A batch-norm layer's running estimates of each channel's mean and variance (PyTorch's
/// `running_mean` and `running_var` buffers), which inference normalises with.
///
/// Invariant: `mean.len() == var.len()`, the number of channels.
#[derive(Clone, Debug, PartialEq)]
pub struct RunningStats {
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl RunningStats {
    /// PyTorch's default momentum for [`RunningStats::update`].
    pub const DEFAULT_MOMENTUM: f32 = 0.1;

    /// The estimates before any batch: mean 0 and variance 1 (PyTorch's initial buffers), so
    /// an untrained layer in inference mode is `γ·x/√(1 + ε) + β`.
    pub fn new(channels: usize) -> Self {
        RunningStats { mean: vec![0.0; channels], var: vec![1.0; channels] }
    }

    /// Estimates read back from a model file.
    pub fn from_parts(mean: Vec<f32>, var: Vec<f32>) -> Result<Self, Error> {
        if mean.len() != var.len() {
            return Err(Error::ShapeMismatch {
                op: "RunningStats",
                expected: format!("a variance per channel, [{}] like the mean", mean.len()),
                got: Shape::new(&[var.len()]),
            });
        }
        Ok(RunningStats { mean, var })
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    pub fn var(&self) -> &[f32] {
        &self.var
    }

    /// `running = (1 - momentum)·running + momentum·batch`, PyTorch's update, with the batch
    /// variance made unbiased (`var·M/(M - 1)`, M = n·h·w values per channel) for the estimate
    /// although the batch itself was normalised with the biased one. Computed in f64.
    pub fn update(&mut self, batch: &BatchStats, momentum: f32) -> Result<(), Error> {
        if batch.mean.len() != self.channels() || batch.var.len() != self.channels() {
            return Err(Error::ShapeMismatch {
                op: "RunningStats::update",
                expected: format!("statistics of {} channels", self.channels()),
                got: Shape::new(&[batch.mean.len()]),
            });
        }
        if batch.count < 2 {
            return Err(Error::BadGeometry {
                op: "RunningStats::update",
                reason: format!("an unbiased variance needs 2 values per channel, the batch had {}", batch.count),
            });
        }
        let (m, keep) = (momentum as f64, 1.0 - momentum as f64);
        let unbiased = batch.count as f64 / (batch.count - 1) as f64;
        for (r, &b) in self.mean.iter_mut().zip(&batch.mean) {
            *r = (keep * *r as f64 + m * b as f64) as f32;
        }
        for (r, &b) in self.var.iter_mut().zip(&batch.var) {
            *r = (keep * *r as f64 + m * b as f64 * unbiased) as f32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_follows_pytorch() {
        // One channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
        // torch.nn.BatchNorm2d(1) after one training forward: running_mean = 0.9·0 + 0.1·2.5
        // = 0.25, running_var = 0.9·1 + 0.1·5/3 = 1.0666….
        let mut r = RunningStats::new(1);
        let batch = BatchStats { mean: vec![2.5], var: vec![1.25], count: 4 };
        r.update(&batch, RunningStats::DEFAULT_MOMENTUM).unwrap();
        assert_eq!(r.mean(), &[0.25]);
        assert_eq!(r.var(), &[(0.9f64 + 0.1 * 5.0 / 3.0) as f32]);
    }

    #[test]
    fn mismatches_are_errors() {
        assert!(RunningStats::from_parts(vec![0.0; 3], vec![1.0; 2]).is_err());
        let mut r = RunningStats::new(2);
        let one_channel = BatchStats { mean: vec![0.0], var: vec![1.0], count: 8 };
        assert!(matches!(r.update(&one_channel, 0.1), Err(Error::ShapeMismatch { .. })));
        let one_value = BatchStats { mean: vec![0.0; 2], var: vec![0.0; 2], count: 1 };
        assert!(matches!(r.update(&one_value, 0.1), Err(Error::BadGeometry { .. })));
        assert_eq!(r, RunningStats::new(2), "a refused update changes nothing");
    }
}
