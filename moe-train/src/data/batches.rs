//! Deterministic batches: the train stream is cut into windows of `seq_len + 1` tokens
//! (stride `seq_len`); each epoch visits them in a permutation seeded by `(seed, epoch)`, so
//! the data position is one counter and a resumed run sees exactly the same batches.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::TokenSplit;

/// Inputs and next-token targets of one micro-batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[batch_size, seq_len]`.
    pub inputs: Tensor<2, Int>,
    /// `[batch_size, seq_len]`: `inputs` shifted by one token.
    pub targets: Tensor<2, Int>,
    /// Start of each sequence in the stream.
    pub starts: Vec<usize>,
}

/// Builds the batch of the windows starting at `starts`.
pub fn make_batch(
    split: &TokenSplit,
    starts: Vec<usize>,
    seq_len: usize,
    device: &Device,
) -> Batch {
    let rows = starts.len();
    let mut inputs = Vec::with_capacity(rows * seq_len);
    let mut targets = Vec::with_capacity(rows * seq_len);
    for &start in &starts {
        let window = &split.tokens[start..start + seq_len + 1];
        inputs.extend(window[..seq_len].iter().map(|&t| t as i64));
        targets.extend(window[1..].iter().map(|&t| t as i64));
    }
    let tensor = |v: Vec<i64>| Tensor::from_data(TensorData::new(v, [rows, seq_len]), device);
    Batch {
        inputs: tensor(inputs),
        targets: tensor(targets),
        starts,
    }
}

/// Hands out training windows in seeded per-epoch permutations.
#[derive(Debug, Clone)]
pub struct Batcher {
    seed: u64,
    seq_len: usize,
    num_windows: usize,
    epoch: Option<(u64, Vec<usize>)>,
}

impl Batcher {
    /// A batcher over `num_windows` windows of `seq_len` tokens.
    pub fn new(seed: u64, seq_len: usize, num_windows: usize) -> Self {
        assert!(num_windows > 0, "checked by Dataset::check_sizes");
        Self {
            seed,
            seq_len,
            num_windows,
            epoch: None,
        }
    }

    /// Stream offsets of the `count` windows at data positions `position..position + count`.
    pub fn starts(&mut self, position: u64, count: usize) -> Vec<usize> {
        (position..position + count as u64)
            .map(|p| self.window(p) * self.seq_len)
            .collect()
    }

    /// Epoch of data position `position`.
    pub fn epoch_of(&self, position: u64) -> u64 {
        position / self.num_windows as u64
    }

    fn window(&mut self, position: u64) -> usize {
        let epoch = self.epoch_of(position);
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.num_windows).collect();
            let mut rng =
                StdRng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            order.shuffle(&mut rng);
            self.epoch = Some((epoch, order));
        }
        let (_, order) = self.epoch.as_ref().expect("set above");
        order[(position % self.num_windows as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_is_a_permutation_and_positions_are_reproducible() {
        let mut a = Batcher::new(7, 4, 10);
        let epoch0 = a.starts(0, 10);
        let mut sorted = epoch0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).map(|w| w * 4).collect::<Vec<_>>());
        let epoch1 = a.starts(10, 10);
        assert_ne!(epoch0, epoch1, "a new order each epoch");
        // A fresh batcher (as after a resume) gives the same windows at the same positions.
        let mut b = Batcher::new(7, 4, 10);
        assert_eq!(b.starts(13, 5), a.starts(13, 5));
        assert_eq!(b.starts(3, 4), epoch0[3..7].to_vec());
    }
}
