//! Typed access to a job's trainer knobs: the resolved kwargs, falling back to the
//! preset's documented defaults. A knob of the wrong type is an error naming the trainer
//! and the knob, so `validate` can report it before anything runs.

use serde_json::Value as Json;

use crate::registry::TrainerPreset;
use crate::vocab::Kwargs;

/// A knob a trainer cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnobError {
    /// The preset has no such knob.
    #[error("trainer `{trainer}` has no knob `{knob}`")]
    Unknown {
        /// Trainer id.
        trainer: String,
        /// Knob name.
        knob: String,
    },
    /// A value of the wrong type or range.
    #[error("trainer `{trainer}`: knob `{knob}` must be {wanted}, found {found}")]
    Wrong {
        /// Trainer id.
        trainer: String,
        /// Knob name.
        knob: String,
        /// What it must be.
        wanted: String,
        /// What it is (as JSON).
        found: String,
    },
    /// The preset names an algorithm this build does not implement.
    #[error("trainer `{trainer}` names an unknown algorithm `{algorithm}`")]
    UnknownAlgorithm {
        /// Trainer id.
        trainer: String,
        /// The preset's `algorithm`.
        algorithm: String,
    },
}

/// The knobs of one job.
#[derive(Debug, Clone, Copy)]
pub struct Knobs<'a> {
    preset: &'a TrainerPreset,
    resolved: &'a Kwargs,
}

impl<'a> Knobs<'a> {
    /// Knobs of `preset` as resolved for a job.
    pub fn new(preset: &'a TrainerPreset, resolved: &'a Kwargs) -> Self {
        Self { preset, resolved }
    }

    /// The trainer's id (for messages).
    pub fn trainer(&self) -> &str {
        &self.preset.id
    }

    /// A knob's value as configured, else its documented default; `None` for a knob the
    /// preset does not have.
    pub fn raw(&self, name: &str) -> Option<Json> {
        self.preset.knob_value(self.resolved, name)
    }

    fn value(&self, name: &str) -> Result<Json, KnobError> {
        self.preset
            .knob_value(self.resolved, name)
            .ok_or_else(|| KnobError::Unknown {
                trainer: self.preset.id.clone(),
                knob: name.to_string(),
            })
    }

    fn wrong(&self, name: &str, wanted: &str, found: &Json) -> KnobError {
        KnobError::Wrong {
            trainer: self.preset.id.clone(),
            knob: name.to_string(),
            wanted: wanted.to_string(),
            found: found.to_string(),
        }
    }

    /// A non-negative integer (integral floats such as `2.0` are accepted).
    pub fn count(&self, name: &str) -> Result<u64, KnobError> {
        let v = self.value(name)?;
        as_count(&v).ok_or_else(|| self.wrong(name, "a non-negative integer", &v))
    }

    /// A positive integer.
    pub fn positive(&self, name: &str) -> Result<u64, KnobError> {
        match self.count(name)? {
            0 => Err(self.wrong(name, "a positive integer", &Json::from(0))),
            n => Ok(n),
        }
    }

    /// A non-negative integer, or `None` when the knob is null (unbounded).
    pub fn optional_count(&self, name: &str) -> Result<Option<u64>, KnobError> {
        match self.value(name)? {
            Json::Null => Ok(None),
            v => as_count(&v)
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a non-negative integer or null", &v)),
        }
    }

    /// A finite number.
    pub fn number(&self, name: &str) -> Result<f64, KnobError> {
        let v = self.value(name)?;
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.wrong(name, "a number", &v))
    }

    /// A boolean.
    pub fn flag(&self, name: &str) -> Result<bool, KnobError> {
        let v = self.value(name)?;
        v.as_bool()
            .ok_or_else(|| self.wrong(name, "true or false", &v))
    }

    /// A string, or `None` when null or empty.
    pub fn optional_text(&self, name: &str) -> Result<Option<String>, KnobError> {
        match self.value(name)? {
            Json::Null => Ok(None),
            Json::String(s) if s.trim().is_empty() => Ok(None),
            Json::String(s) => Ok(Some(s)),
            v => Err(self.wrong(name, "a string or null", &v)),
        }
    }

    /// One of `allowed`.
    pub fn choice(&self, name: &str, allowed: &[&str]) -> Result<String, KnobError> {
        let v = self.value(name)?;
        match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(s.to_string()),
            _ => Err(self.wrong(name, &format!("one of {}", allowed.join(", ")), &v)),
        }
    }

    /// A `[low, high]` pair with `low < high`, or `None` when null.
    pub fn optional_range(&self, name: &str) -> Result<Option<(f64, f64)>, KnobError> {
        let v = self.value(name)?;
        if v.is_null() {
            return Ok(None);
        }
        let pair = v.as_array().and_then(|a| match a.as_slice() {
            [lo, hi] => Some((lo.as_f64()?, hi.as_f64()?)),
            _ => None,
        });
        match pair {
            Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => Ok(Some((lo, hi))),
            _ => Err(self.wrong(name, "null or [low, high] with low < high", &v)),
        }
    }
}

/// A JSON value as a count (integers, or integral floats as YAML may give them).
fn as_count(v: &Json) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}
