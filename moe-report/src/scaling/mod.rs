//! The scaling-law analysis of a sweep ([`Report::scaling`](crate::Report::scaling)): which
//! runs feed which fit (`select`), the fits (`analyze`), and the results as stored in
//! `results.json` (`outcome`).

mod analyze;
mod outcome;
mod select;

pub(crate) use analyze::analyze;
pub use outcome::{
    ChinchillaSection, ClarkSection, FrontierRow, KaplanFit, Outcome, ScalingAnalysis, ScalingRun,
};
pub(crate) use select::moe_runs;
