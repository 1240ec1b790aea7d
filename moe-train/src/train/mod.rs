//! `moe-train train`: resolve the run (setup), the step and its bookkeeping (trainer), the
//! session that drives it (session), the printed summary (report), clean stops (stop) and
//! `--devices` (data_parallel, world).

mod args;
pub mod data_parallel;
mod report;
mod session;
mod setup;
pub mod stop;
mod trainer;
mod world;

pub use args::{TrainArgs, TrainSummary};
pub use session::{execute, measure_peak_flops, run};
pub use setup::{check_fresh_run_dir, plan, Plan};
pub use stop::{install_signal_handlers, StopSignal};
pub use trainer::{step_seed, train_step, StepOutput, Trainer, TrainerParts};
