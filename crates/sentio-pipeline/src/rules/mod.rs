//! The rules engine's parts that know no watch: compiling a user's [`Rule`] (CEL through the
//! `cel` crate, checked at creation: [`compile`]), the sliding windows of its aggregates
//! ([`window`]), the time of day it reads ([`clock`]) and the state machine of one rule on one
//! device ([`judge`]). The detect stage's `RulesWatch` (`detect/rules.rs`) runs them on every
//! committed point.
//!
//! [`Rule`]: sentio_core::Rule

pub(crate) mod actions;
pub mod ai_inputs;
pub mod clock;
pub(crate) mod compile;
mod fast;
pub mod group;
pub(crate) mod index;
pub mod judge;
pub mod replay;
pub mod report;
mod scope;
pub(crate) mod window;

pub use actions::ActionDesks;
pub use clock::RuleClock;
pub use compile::{
    Aggregate, CompiledRule, MAX_EXPRESSION_LEN, MAX_FOR_MS, MAX_WINDOW_MS, RuleError, compile,
};
pub use judge::{Eval, RuleState, RuleVars, Step, device_value, twin_value};
