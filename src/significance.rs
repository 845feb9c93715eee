//! Whether one optimizer is better than another, and by how much (docs/analysis.md,
//! "Which optimizer is better"): Wilcoxon's signed-rank test over paired seeds, Holm's
//! step-down correction, and across tasks the average ranks, Friedman's test (with the
//! Iman–Davenport F) and Nemenyi's critical difference, as Demšar (2006, JMLR 7:1–30)
//! recommends for comparing several methods over several data sets; Dolan and Moré's
//! (2002) performance profiles. Pure functions; the distributions come from `statrs`.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, FisherSnedecor, Normal};

/// Ranks 1..n of `xs` (ascending), ties sharing their mean rank.
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Wilcoxon's signed-rank test of paired differences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// Pairs.
    pub n: usize,
    /// Sum of ranks of positive differences (zeros split evenly, as Demšar does).
    pub r_plus: f64,
    /// Sum of ranks of negative differences.
    pub r_minus: f64,
    /// Two-sided p-value: exact when there are at most 25 pairs and no zero or tied
    /// differences, else the normal approximation with the tie correction.
    pub p_value: f64,
    /// Whether `p_value` is exact.
    pub exact: bool,
}

/// Wilcoxon's signed-rank test of `diffs` (`a − b` per pair); `None` for no pairs.
pub fn wilcoxon(diffs: &[f64]) -> Option<Wilcoxon> {
    let diffs: Vec<f64> = diffs.iter().copied().filter(|d| d.is_finite()).collect();
    let n = diffs.len();
    if n == 0 {
        return None;
    }
    let abs: Vec<f64> = diffs.iter().map(|d| d.abs()).collect();
    let r = ranks(&abs);
    let (mut r_plus, mut r_minus) = (0.0, 0.0);
    for (d, rank) in diffs.iter().zip(&r) {
        if *d > 0.0 {
            r_plus += rank;
        } else if *d < 0.0 {
            r_minus += rank;
        } else {
            r_plus += rank / 2.0;
            r_minus += rank / 2.0;
        }
    }
    let t = r_plus.min(r_minus);
    let zeros = diffs.contains(&0.0);
    let mut sorted = abs.clone();
    sorted.sort_by(f64::total_cmp);
    let ties = sorted.windows(2).any(|w| w[0] == w[1]);
    let (p_value, exact) = if n <= 25 && !zeros && !ties {
        (exact_two_sided(n, t), true)
    } else {
        // Tie correction: each group of t equal |d| lowers the variance by (t³ − t)/48.
        let mut correction = 0.0;
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i;
            while j + 1 < sorted.len() && sorted[j + 1] == sorted[i] {
                j += 1;
            }
            let g = (j - i + 1) as f64;
            correction += (g * g * g - g) / 48.0;
            i = j + 1;
        }
        let nf = n as f64;
        let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - correction;
        let z = if var > 0.0 {
            (t - nf * (nf + 1.0) / 4.0) / var.sqrt()
        } else {
            0.0
        };
        let normal = Normal::new(0.0, 1.0).expect("the standard normal");
        ((2.0 * normal.cdf(z)).min(1.0), false)
    };
    Some(Wilcoxon {
        n,
        r_plus,
        r_minus,
        p_value,
        exact,
    })
}

/// P(W ≤ t) · 2 for the signed-rank statistic of n untied pairs: the number of subsets of
/// {1..n} with sum ≤ t, over 2ⁿ.
fn exact_two_sided(n: usize, t: f64) -> f64 {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0f64; max + 1];
    counts[0] = 1.0;
    for k in 1..=n {
        for s in (k..=max).rev() {
            counts[s] += counts[s - k];
        }
    }
    let t = t.floor() as usize;
    let below: f64 = counts[..=t.min(max)].iter().sum();
    (2.0 * below / 2f64.powi(n as i32)).min(1.0)
}

/// Holm's step-down adjustment of `p` (family-wise error), in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (i, &k) in order.iter().enumerate() {
        running = running.max(((m - i) as f64 * p[k]).min(1.0));
        adjusted[k] = running;
    }
    adjusted
}

/// Friedman's test of k methods over n blocks (tasks), scores higher-is-better.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Friedman {
    /// Methods.
    pub k: usize,
    /// Blocks.
    pub n: usize,
    /// Average rank of each method (1 = best), in the input order.
    pub average_ranks: Vec<f64>,
    /// Friedman's χ²_F.
    pub chi2: f64,
    /// Its p-value (χ² with k − 1 degrees of freedom).
    pub p_chi2: f64,
    /// Iman and Davenport's F_F, less conservative than χ²_F.
    pub f: f64,
    /// Its p-value (F with k − 1 and (k − 1)(n − 1) degrees of freedom).
    pub p_f: f64,
}

/// Friedman's test of `scores[block][method]` (higher is better; each block ranks the
/// methods, 1 for the best, ties sharing their mean rank). `None` below 2 methods or 2 blocks.
pub fn friedman(scores: &[Vec<f64>]) -> Option<Friedman> {
    let n = scores.len();
    let k = scores.first()?.len();
    if n < 2 || k < 2 || scores.iter().any(|b| b.len() != k) {
        return None;
    }
    let mut average_ranks = vec![0.0; k];
    for block in scores {
        let negated: Vec<f64> = block.iter().map(|x| -x).collect();
        for (sum, r) in average_ranks.iter_mut().zip(ranks(&negated)) {
            *sum += r / n as f64;
        }
    }
    Some(friedman_of_ranks(&average_ranks, n))
}

/// Friedman's statistics from the methods' average ranks over `n` blocks.
pub fn friedman_of_ranks(average_ranks: &[f64], n: usize) -> Friedman {
    let k = average_ranks.len();
    let average_ranks = average_ranks.to_vec();
    let (nf, kf) = (n as f64, k as f64);
    let chi2 = 12.0 * nf / (kf * (kf + 1.0))
        * (average_ranks.iter().map(|r| r * r).sum::<f64>() - kf * (kf + 1.0).powi(2) / 4.0);
    let p_chi2 = ChiSquared::new(kf - 1.0).map_or(f64::NAN, |d| 1.0 - d.cdf(chi2));
    let f = (nf - 1.0) * chi2 / (nf * (kf - 1.0) - chi2);
    let p_f =
        FisherSnedecor::new(kf - 1.0, (kf - 1.0) * (nf - 1.0)).map_or(f64::NAN, |d| 1.0 - d.cdf(f));
    Friedman {
        k,
        n,
        average_ranks,
        chi2,
        p_chi2,
        f,
        p_f,
    }
}

/// Nemenyi's critical values q₀.₀₅ for k = 2..=10 methods (Demšar 2006, Table 5a: the
/// Studentized range statistic divided by √2).
const NEMENYI_Q05: [f64; 9] = [
    1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164,
];

/// Nemenyi's critical difference of average ranks at α = 0.05 for `k` methods over `n`
/// blocks: two methods whose average ranks differ by at least this much differ
/// significantly. `None` outside 2..=10 methods.
pub fn nemenyi_cd(k: usize, n: usize) -> Option<f64> {
    let q = *NEMENYI_Q05.get(k.checked_sub(2)?)?;
    let (kf, nf) = (k as f64, n as f64);
    Some(q * (kf * (kf + 1.0) / (6.0 * nf)).sqrt())
}

/// One method's Dolan–Moré performance profile: for each τ of `taus`, the share of
/// problems on which its cost is within a factor τ of the best method's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// The factors.
    pub taus: Vec<f64>,
    /// ρ(τ) per method, in the input order.
    pub rho: Vec<Vec<f64>>,
}

/// Performance profiles of `costs[problem][method]` (lower is better; `None` or infinite:
/// the method failed on the problem and is never within any factor).
pub fn performance_profile(costs: &[Vec<Option<f64>>], taus: &[f64]) -> Profile {
    let k = costs.first().map_or(0, Vec::len);
    let ratios: Vec<Vec<f64>> = costs
        .iter()
        .map(|row| {
            let best = row
                .iter()
                .flatten()
                .copied()
                .filter(|c| c.is_finite())
                .fold(f64::INFINITY, f64::min);
            row.iter()
                .map(|c| match c {
                    Some(c) if c.is_finite() && best.is_finite() => {
                        if best > 0.0 {
                            c / best
                        } else if *c == best {
                            1.0
                        } else {
                            f64::INFINITY
                        }
                    }
                    _ => f64::INFINITY,
                })
                .collect()
        })
        .collect();
    let problems = costs.len().max(1) as f64;
    let rho = (0..k)
        .map(|m| {
            taus.iter()
                .map(|tau| ratios.iter().filter(|r| r[m] <= *tau).count() as f64 / problems)
                .collect()
        })
        .collect();
    Profile {
        taus: taus.to_vec(),
        rho,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Demšar (2006), Table 6, its first two columns: AUC of C4.5 and of C4.5 with the
    /// `m` parameter tuned, on 14 data sets (his worked Wilcoxon example).
    const C45: [f64; 14] = [
        0.763, 0.599, 0.954, 0.628, 0.882, 0.936, 0.661, 0.583, 0.775, 1.000, 0.940, 0.619, 0.972,
        0.957,
    ];
    const C45_M: [f64; 14] = [
        0.768, 0.591, 0.971, 0.661, 0.888, 0.931, 0.668, 0.583, 0.838, 1.000, 0.962, 0.666, 0.981,
        0.978,
    ];

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn demsar_friedman_and_nemenyi_numbers_are_reproduced() {
        // His published average ranks of the four C4.5 variants over N = 14 data sets give
        // chi2_F = 9.28 and F_F = 3.69, and CD = 2.569 * sqrt(4 * 5 / (6 * 14)) = 1.25.
        let f = friedman_of_ranks(&[3.143, 2.000, 2.893, 1.964], 14);
        assert!(close(f.chi2, 9.28, 0.01), "{}", f.chi2);
        assert!(close(f.f, 3.69, 0.01), "{}", f.f);
        // F(3, 39) at 0.05 is 2.85: the null hypothesis is rejected, not at 0.01.
        assert!(f.p_f < 0.05 && f.p_f > 0.01, "{}", f.p_f);
        assert!(close(nemenyi_cd(4, 14).unwrap(), 1.25, 0.005));
        assert!(nemenyi_cd(11, 14).is_none() && nemenyi_cd(1, 14).is_none());
        // Ranks from scores: the best of each block gets rank 1, ties share.
        let f = friedman(&[vec![0.9, 0.5, 0.5], vec![0.8, 0.7, 0.1]]).unwrap();
        assert_eq!(f.average_ranks, vec![1.0, 2.25, 2.75]);
    }

    #[test]
    fn demsar_wilcoxon_example_and_scipy_agree() {
        // Published: R+ = 93, R- = 12 (the two zero differences split), T = 12 < 21.
        let diffs: Vec<f64> = C45.iter().zip(C45_M).map(|(a, b)| b - a).collect();
        let w = wilcoxon(&diffs).unwrap();
        assert_eq!((w.r_plus, w.r_minus), (93.0, 12.0));
        // scipy 1.x: wilcoxon(d, zero_method="zsplit", correction=False, method="approx").
        assert!(!w.exact);
        assert!(close(w.p_value, 0.01096849656422473, 1e-9), "{w:?}");
        // With tied differences: scipy gives statistic 5, p = 0.06836413860052828.
        let w = wilcoxon(&[0.5, -0.25, 1.5, 2.0, -0.75, 3.0, 0.5, 1.25]).unwrap();
        assert_eq!(w.r_minus, 5.0);
        assert!(close(w.p_value, 0.06836413860052828, 1e-9), "{w:?}");
    }

    #[test]
    fn exact_wilcoxon_matches_the_enumerated_distribution() {
        // All ten differences positive: only the empty set has a rank sum <= 0.
        let w = wilcoxon(&(1..=10).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert!(w.exact);
        assert!(close(w.p_value, 2.0 / 1024.0, 1e-12));
        // n = 5, T = 3: subsets of {1..5} with sum <= 3 are {}, {1}, {2}, {3}, {1,2}: 5/32
        // (scipy's exact p-value: 0.3125).
        let w = wilcoxon(&[-1.0, -2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(w.r_minus, 3.0);
        assert!(close(w.p_value, 0.3125, 1e-12));
        assert!(wilcoxon(&[]).is_none());
    }

    #[test]
    fn holm_adjusts_step_down_and_keeps_order_monotone() {
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        // Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> max so far 0.06.
        assert_eq!(adjusted, vec![0.03, 0.06, 0.06, 0.02]);
    }

    #[test]
    fn performance_profiles_count_problems_within_each_factor() {
        // Dolan and Moré's definition on a hand-worked example: three problems, two methods.
        let costs = vec![
            vec![Some(10.0), Some(20.0)],
            vec![Some(30.0), Some(15.0)],
            vec![None, Some(5.0)],
        ];
        let p = performance_profile(&costs, &[1.0, 2.0, 4.0]);
        assert_eq!(p.rho[0], vec![1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(p.rho[1], vec![2.0 / 3.0, 1.0, 1.0]);
    }

    #[test]
    fn ranks_share_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
