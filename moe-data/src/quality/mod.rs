//! Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models: Methods,
//! Analysis & Insights from Training Gopher", appendix A1.1, Table A1), each configurable and
//! individually switchable.

mod config;
mod repetition;
mod rules;

pub use config::{QualityConfig, Rule};
pub use rules::{check, Failure, Scratch};
