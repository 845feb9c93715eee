//! Statistics over seeds: descriptive numbers and seeded bootstrap confidence intervals.
//!
//! Why seeded: `summary.json` and `gate.json` must be reproducible byte for byte, so every
//! bootstrap draws from an [`Rng`] stream named after what it measures (e.g. the group's
//! identity), never from a global or time-seeded generator. Pure functions, no I/O.

use serde::Serialize;

use crate::rng::Rng;

/// Resamples of every bootstrap interval in the run-level files.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// Confidence level of every interval.
pub const CI_LEVEL: f64 = 0.95;

/// Arithmetic mean; `None` for no values.
pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (n − 1 in the denominator); `None` below two values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// Median (mean of the two middle values for an even count, computed as numpy does, so
/// pandas gives the same bits); `None` for no values.
pub fn median(xs: &[f64]) -> Option<f64> {
    let s = sorted(xs);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// Quantile `q` in `[0, 1]` of sorted values with linear interpolation between closest
/// ranks (numpy's default, so notebooks computing the same number agree).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let (lo, hi, weight) = closest_ranks(n, q);
            sorted[lo] + (sorted[hi] - sorted[lo]) * weight
        }
    }
}

/// The two closest ranks around quantile `q` of `n > 1` values, and the upper one's weight.
fn closest_ranks(n: usize, q: f64) -> (usize, usize, f64) {
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = pos.floor() as usize;
    (lo, (lo + 1).min(n - 1), pos - lo as f64)
}

/// [`quantile_sorted`] of `values` sorted, without sorting them: the one or two order
/// statistics it interpolates between are found by selection (`values` is reordered).
pub fn quantile_select(values: &mut [f64], q: f64) -> f64 {
    match values.len() {
        0 => f64::NAN,
        1 => values[0],
        n => {
            let (lo, hi, weight) = closest_ranks(n, q);
            let (_, low, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
            let low = *low;
            let high = if hi == lo {
                low
            } else {
                above.iter().copied().min_by(f64::total_cmp).unwrap_or(low)
            };
            low + (high - low) * weight
        }
    }
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Percentile bootstrap interval of the mean: `resamples` means of `xs` resampled with
/// replacement, cut at `(1 − level)/2` and `(1 + level)/2`. `None` below two values (one
/// seed says nothing about spread). For paired data pass the differences.
pub fn bootstrap_mean_ci(
    xs: &[f64],
    resamples: usize,
    level: f64,
    rng: &mut Rng,
) -> Option<(f64, f64)> {
    let n = xs.len();
    if n < 2 || resamples == 0 {
        return None;
    }
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| xs[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    let tail = (1.0 - level) / 2.0;
    Some((
        quantile_select(&mut means, tail),
        quantile_select(&mut means, 1.0 - tail),
    ))
}

/// The bootstrap stream for one measured quantity, named by `label` (group identity and
/// metric), so an interval does not change when other groups are added or reordered.
pub fn bootstrap_rng(label: &str) -> Rng {
    Rng::stream(0, &format!("bootstrap/{label}"))
}

/// Descriptive statistics of one metric over seeds, as `summary.json` writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Describe {
    /// Values counted.
    pub n: usize,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub std: Option<f64>,
    /// Lowest.
    pub min: Option<f64>,
    /// Highest.
    pub max: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// Lower end of the bootstrap 95% interval of the mean.
    pub ci95_low: Option<f64>,
    /// Upper end.
    pub ci95_high: Option<f64>,
}

impl Describe {
    /// Describe `xs`, the interval drawn from the stream named `label`. Non-finite
    /// values are ignored (JSON cannot hold them and they would poison every number).
    pub fn of(xs: &[f64], label: &str) -> Self {
        let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let ci = bootstrap_mean_ci(
            &xs,
            BOOTSTRAP_RESAMPLES,
            CI_LEVEL,
            &mut bootstrap_rng(label),
        );
        Self {
            n: xs.len(),
            mean: mean(&xs),
            std: sample_std(&xs),
            min: xs.iter().copied().reduce(f64::min),
            max: xs.iter().copied().reduce(f64::max),
            median: median(&xs),
            ci95_low: ci.map(|c| c.0),
            ci95_high: ci.map(|c| c.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn descriptive_numbers_match_hand_computed_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, so the sample
        // variance is 32/7; the median is (4 + 5)/2.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&xs), Some(5.0));
        assert!(close(sample_std(&xs).unwrap(), (32.0f64 / 7.0).sqrt()));
        assert_eq!(median(&xs), Some(4.5));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(mean(&[]), None);
        assert_eq!(sample_std(&[1.0]), None);
        assert_eq!(median(&[]), None);
        // numpy.quantile([1, 2, 3, 4], 0.25) == 1.75
        assert!(close(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75));
        assert!(close(quantile_sorted(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0));
        // Selection gives the very numbers of sorting, ties and repeats included.
        let mut rng = Rng::stream(7, "quantiles");
        for n in [2, 3, 10, 2000] {
            let xs: Vec<f64> = (0..n)
                .map(|_| (rng.below(50) as f64 - 25.0) / 8.0)
                .collect();
            for q in [0.0, 0.025, 0.25, 0.5, 0.975, 1.0] {
                let mut shuffled = xs.clone();
                assert_eq!(
                    quantile_select(&mut shuffled, q).to_bits(),
                    quantile_sorted(&sorted(&xs), q).to_bits(),
                    "n {n} q {q}"
                );
            }
        }
    }

    #[test]
    fn describe_collects_everything_and_ignores_non_finite_values() {
        let d = Describe::of(&[-1.0, -3.0, f64::NAN, -2.0], "t");
        assert_eq!(d.n, 3);
        assert_eq!(d.mean, Some(-2.0));
        assert_eq!(d.std, Some(1.0));
        assert_eq!(
            (d.min, d.max, d.median),
            (Some(-3.0), Some(-1.0), Some(-2.0))
        );
        let (lo, hi) = (d.ci95_low.unwrap(), d.ci95_high.unwrap());
        assert!((-3.0..=-2.0).contains(&lo) && (-2.0..=-1.0).contains(&hi));
        let one = Describe::of(&[0.5], "t");
        assert_eq!((one.mean, one.std, one.ci95_low), (Some(0.5), None, None));
        assert_eq!(Describe::of(&[], "t"), Describe::default());
    }

    #[test]
    fn bootstrap_is_deterministic_per_label_and_sane() {
        let xs: Vec<f64> = (0..20).map(|i| f64::from(i) / 10.0).collect();
        let a = bootstrap_mean_ci(&xs, 2000, 0.95, &mut bootstrap_rng("g/score"));
        let b = bootstrap_mean_ci(&xs, 2000, 0.95, &mut bootstrap_rng("g/score"));
        let c = bootstrap_mean_ci(&xs, 2000, 0.95, &mut bootstrap_rng("other"));
        assert_eq!(a, b, "same label, same interval");
        assert_ne!(a, c, "another label draws another stream");
        let (lo, hi) = a.unwrap();
        let m = mean(&xs).unwrap();
        assert!(
            lo < m && m < hi,
            "the interval holds the mean: {lo} {m} {hi}"
        );
        // Normal theory: mean ± 1.96·sd/√n ≈ 0.95 ± 0.26; the bootstrap lands near it.
        let half = 1.96 * sample_std(&xs).unwrap() / (xs.len() as f64).sqrt();
        assert!(
            ((hi - lo) / 2.0 - half).abs() < 0.05,
            "{lo} {hi} vs ±{half}"
        );
        // Constant values: a zero-width interval at the value.
        let flat = bootstrap_mean_ci(&[-1.0; 5], 100, 0.95, &mut bootstrap_rng("f"));
        assert_eq!(flat, Some((-1.0, -1.0)));
        assert_eq!(
            bootstrap_mean_ci(&[1.0], 100, 0.95, &mut bootstrap_rng("f")),
            None
        );
    }
}
