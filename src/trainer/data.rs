//! How trainers draw examples: all draws come from a seeded stream of the job, so the
//! same seed gives the same batches whatever the thread scheduling.

use crate::rng::Rng;

/// OpenTrace's `DataLoader`: walks seeded permutations of `0..n`, reshuffling at each
/// new epoch; a batch that runs past the end of an epoch is topped up from the next.
#[derive(Debug, Clone)]
pub struct Loader {
    rng: Rng,
    order: Vec<usize>,
    pos: usize,
    /// Completed passes over the data (wraps).
    pub epochs: u64,
}

impl Loader {
    /// A loader over `n` examples, with its own stream.
    pub fn new(n: usize, rng: Rng) -> Self {
        let mut loader = Self {
            rng,
            order: (0..n).collect(),
            pos: 0,
            epochs: 0,
        };
        loader.rng.shuffle(&mut loader.order);
        loader
    }

    /// The next `size` indices (PrioritySearch's `sample`: never stops, counts wraps).
    pub fn sample(&mut self, size: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(size);
        if self.order.is_empty() {
            return out;
        }
        while out.len() < size {
            if self.pos == self.order.len() {
                self.rng.shuffle(&mut self.order);
                self.pos = 0;
                self.epochs += 1;
            }
            out.push(self.order[self.pos]);
            self.pos += 1;
        }
        out
    }

    /// One epoch as `ceil(n / size)` batches of exactly `size` (the last is topped up
    /// from a fresh permutation); the next call starts a new epoch (Minibatch's loop).
    pub fn epoch(&mut self, size: usize) -> Vec<Vec<usize>> {
        let n = self.order.len();
        if n == 0 || size == 0 {
            return Vec::new();
        }
        if self.pos != 0 {
            self.rng.shuffle(&mut self.order);
        }
        self.pos = 0;
        let epochs = self.epochs;
        let batches = n.div_ceil(size);
        let mut out = Vec::with_capacity(batches);
        for _ in 0..batches {
            out.push(self.sample(size));
        }
        // Discard the rest of a permutation a top-up started, as OpenTrace does.
        self.rng.shuffle(&mut self.order);
        self.pos = 0;
        self.epochs = epochs + 1;
        out
    }
}

/// Upstream GEPA's epoch-shuffled minibatch sampler: each epoch is a shuffle of the ids
/// padded to a multiple of the batch size with the least-used ids, cut into batches.
#[derive(Debug, Clone)]
pub struct EpochShuffled {
    rng: Rng,
    n: usize,
    size: usize,
    order: Vec<usize>,
    pos: usize,
}

impl EpochShuffled {
    /// A sampler of `size`-example batches over `n` ids.
    pub fn new(n: usize, size: usize, rng: Rng) -> Self {
        Self {
            rng,
            n,
            size: size.clamp(1, n.max(1)),
            order: Vec::new(),
            pos: 0,
        }
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.n == 0 {
            return Vec::new();
        }
        if self.pos + self.size > self.order.len() {
            let mut ids: Vec<usize> = (0..self.n).collect();
            self.rng.shuffle(&mut ids);
            let mut uses = vec![1usize; self.n];
            while !ids.len().is_multiple_of(self.size) {
                // The least-used id, earliest in the shuffled order on ties.
                let pick = *ids
                    .iter()
                    .min_by_key(|&&i| uses[i])
                    .expect("ids is not empty");
                uses[pick] += 1;
                ids.push(pick);
            }
            self.order = ids;
            self.pos = 0;
        }
        let batch = self.order[self.pos..self.pos + self.size].to_vec();
        self.pos += self.size;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_counts_wraps_like_opentrace() {
        // N=10, B*K=2: five draws use one epoch exactly, the sixth wraps.
        let mut l = Loader::new(10, Rng::stream(1, "d"));
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.extend(l.sample(2));
        }
        assert_eq!(l.epochs, 0);
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        l.sample(2);
        assert_eq!(l.epochs, 1);
    }

    #[test]
    fn epochs_cover_every_example() {
        let mut l = Loader::new(5, Rng::stream(2, "d"));
        let batches = l.epoch(2);
        assert_eq!(batches.len(), 3);
        assert!(batches.iter().all(|b| b.len() == 2));
        let mut first: Vec<usize> = batches.concat()[..5].to_vec();
        first.sort();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        assert_eq!(l.epochs, 1);
    }

    #[test]
    fn epoch_shuffled_pads_with_least_used_ids() {
        let mut s = EpochShuffled::new(4, 3, Rng::stream(3, "g"));
        let mut all = Vec::new();
        for _ in 0..4 {
            let b = s.next_batch();
            assert_eq!(b.len(), 3);
            all.extend(b);
        }
        // Two epochs of 6 (4 ids + 2 padding), every id at least twice.
        for id in 0..4 {
            assert!(all.iter().filter(|&&i| i == id).count() >= 2);
        }
        assert_eq!(
            EpochShuffled::new(2, 3, Rng::stream(1, "g"))
                .next_batch()
                .len(),
            2
        );
    }
}
