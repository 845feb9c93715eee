//! NumPy's legacy `RandomState` (MT19937 seeded with an integer), as far as the
//! reference's example selection uses it: `RandomState(seed).permutation(n)` and
//! `RandomState(seed).shuffle(indices)`. NumPy keeps this stream stable across versions,
//! so a job draws the same examples here as in the reference.

/// The MT19937 state of `RandomState(seed)` for an integer seed.
#[derive(Debug, Clone)]
pub struct RandomState {
    key: [u32; 624],
    pos: usize,
}

impl RandomState {
    /// `numpy.random.RandomState(seed)` (NumPy's `mt19937_seed`: Knuth's initialiser).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; 624];
        let mut s = seed;
        for (pos, slot) in key.iter_mut().enumerate() {
            *slot = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(pos as u32 + 1);
        }
        Self { key, pos: 624 }
    }

    fn regenerate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.key[i] & UPPER) | (self.key[(i + 1) % 624] & LOWER);
            let mag = if y & 1 == 1 { MATRIX } else { 0 };
            self.key[i] = self.key[(i + 397) % 624] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32 random bits (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.regenerate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform in `0..=max` by masked rejection (NumPy's `random_interval`).
    fn interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u64::from(u32::MAX) {
            loop {
                let value = u64::from(self.next_u32()) & mask;
                if value <= max {
                    return value;
                }
            }
        }
        loop {
            let value = ((u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())) & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// Shuffle in place as `RandomState.shuffle` does (Fisher–Yates from the end).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u64) as usize;
            items.swap(i, j);
        }
    }

    /// `RandomState.permutation(n)`: `0..n` shuffled.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut out: Vec<usize> = (0..n).collect();
        self.shuffle(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_numpys() {
        // `bg = numpy.random.MT19937(); bg._legacy_seeding(42); bg.random_raw()` (the
        // generator of RandomState(42)) gives 1608637542 first.
        assert_eq!(RandomState::new(42).next_u32(), 1_608_637_542);
    }

    #[test]
    fn selections_match_the_reference() {
        // Vectors from the reference (docs/tasks.md, multi-objective tasks).
        assert_eq!(
            RandomState::new(42).permutation(7473)[..10],
            [1297, 576, 5462, 4336, 7105, 6808, 4404, 1649, 5958, 6366]
        );
        assert_eq!(
            RandomState::new(42).permutation(10),
            [8, 1, 5, 0, 7, 2, 9, 4, 3, 6]
        );
        assert_eq!(
            RandomState::new(0).permutation(10),
            [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
        );
        let twenty = RandomState::new(42).permutation(20);
        assert_eq!(
            twenty[..15],
            [0, 17, 15, 1, 8, 5, 11, 3, 18, 16, 13, 2, 9, 19, 4]
        );
        assert_eq!(twenty[15..], [12, 7, 10, 14, 6]);
    }
}
