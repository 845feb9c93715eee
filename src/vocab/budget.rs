//! Budgets: what one job may spend (`budget:` at run level, overridable per trainer entry;
//! docs/analysis.md, "Fair comparisons"). The same limits hold for every trainer — native
//! ones through their context, external ones at their loopback endpoints — and are never
//! exceeded: an evaluation or a call that cannot fit does not start. Tokens and cost are the
//! ones the algorithm consumed (its own calls and its agent's, cache hits included), so a
//! replay or a warm cache stops a job at the same point as the first run.

use serde::{Deserialize, Serialize};

/// The limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Evaluator calls (one per example scored) the trainer may make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_metric_calls: Option<u64>,
    /// LLM calls (the optimizer's, an external trainer's, and the agent's for the trainer's
    /// evaluations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_llm_calls: Option<u64>,
    /// Prompt plus completion tokens of those calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Those tokens at the configured prices (`llm.price_*`), in USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Wall-clock seconds of the trainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
}

/// The keys of a `budget:` block.
pub const BUDGET_KEYS: &[&str] = &[
    "max_metric_calls",
    "max_llm_calls",
    "max_tokens",
    "max_cost_usd",
    "max_seconds",
];

/// Which limit stopped a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLimit {
    /// `max_metric_calls`
    MetricCalls,
    /// `max_llm_calls`
    LlmCalls,
    /// `max_tokens`
    Tokens,
    /// `max_cost_usd`
    CostUsd,
    /// `max_seconds`
    Seconds,
}

impl BudgetLimit {
    /// The key spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MetricCalls => "max_metric_calls",
            Self::LlmCalls => "max_llm_calls",
            Self::Tokens => "max_tokens",
            Self::CostUsd => "max_cost_usd",
            Self::Seconds => "max_seconds",
        }
    }
}

/// What a job has spent, on the budget's axes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Evaluator calls.
    pub metric_calls: u64,
    /// LLM calls.
    pub llm_calls: u64,
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// USD at the configured prices (0 without prices).
    pub cost_usd: f64,
    /// Seconds.
    pub seconds: f64,
}

/// What one caller of a job's LLM spent (the optimizer, an external trainer's roles, the
/// agent for the trainer's evaluations): answered calls and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSpend {
    /// Answered calls.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl Budget {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `self` with every limit `over` sets replacing its own (a trainer entry's block over
    /// the run's).
    pub fn overridden_by(self, over: Budget) -> Budget {
        Budget {
            max_metric_calls: over.max_metric_calls.or(self.max_metric_calls),
            max_llm_calls: over.max_llm_calls.or(self.max_llm_calls),
            max_tokens: over.max_tokens.or(self.max_tokens),
            max_cost_usd: over.max_cost_usd.or(self.max_cost_usd),
            max_seconds: over.max_seconds.or(self.max_seconds),
        }
    }

    /// The first limit `spent` plus `more_metric` evaluator calls and `more_llm` LLM calls
    /// would pass; tokens, cost and time stop a job once they are reached (a call's size is
    /// known only after it).
    pub fn exceeded(&self, spent: &Spend, more_metric: u64, more_llm: u64) -> Option<BudgetLimit> {
        if self
            .max_metric_calls
            .is_some_and(|m| spent.metric_calls + more_metric > m)
        {
            return Some(BudgetLimit::MetricCalls);
        }
        if self
            .max_llm_calls
            .is_some_and(|m| spent.llm_calls + more_llm > m)
        {
            return Some(BudgetLimit::LlmCalls);
        }
        if self.max_tokens.is_some_and(|m| spent.tokens >= m) {
            return Some(BudgetLimit::Tokens);
        }
        if self.max_cost_usd.is_some_and(|m| spent.cost_usd >= m) {
            return Some(BudgetLimit::CostUsd);
        }
        if self.max_seconds.is_some_and(|m| spent.seconds >= m) {
            return Some(BudgetLimit::Seconds);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_overrides_the_run_per_limit_and_nothing_fits_past_a_limit() {
        let run = Budget {
            max_metric_calls: Some(40),
            max_tokens: Some(1000),
            ..Budget::default()
        };
        let entry = Budget {
            max_metric_calls: Some(10),
            ..Budget::default()
        };
        let b = run.overridden_by(entry);
        assert_eq!((b.max_metric_calls, b.max_tokens), (Some(10), Some(1000)));
        let spent = Spend {
            metric_calls: 8,
            tokens: 999,
            ..Spend::default()
        };
        assert_eq!(b.exceeded(&spent, 2, 0), None);
        assert_eq!(b.exceeded(&spent, 3, 0), Some(BudgetLimit::MetricCalls));
        let at = Spend {
            tokens: 1000,
            ..spent
        };
        assert_eq!(b.exceeded(&at, 0, 1), Some(BudgetLimit::Tokens));
        assert!(Budget::default().is_empty() && !b.is_empty());
        assert_eq!(Budget::default().exceeded(&at, 1_000_000, 1_000_000), None);
    }
}
