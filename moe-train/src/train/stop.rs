//! Stopping a run cleanly: a [`StopSignal`] the loop polls between steps, set by SIGINT
//! (Ctrl-C) or SIGTERM (what `timeout`, `kill` and job schedulers send) through
//! [`install_signal_handlers`], or by code (tests, a sweep).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// SIGINT's number (Ctrl-C).
pub const SIGINT: usize = 2;
/// SIGTERM's number.
pub const SIGTERM: usize = 15;

/// Asks a run to checkpoint and stop after its current step. Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    /// 0 = keep going; otherwise the number of the signal that asked to stop (or [`SIGINT`]
    /// for [`StopSignal::stop`]).
    reason: Arc<AtomicUsize>,
}

impl StopSignal {
    /// A signal nothing has set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop as Ctrl-C does.
    pub fn stop(&self) {
        self.reason.store(SIGINT, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.reason.load(Ordering::SeqCst) != 0
    }

    /// The signal that asked to stop, if any.
    pub fn signal(&self) -> Option<usize> {
        match self.reason.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Exit status for a run this signal stopped: `128 + signal` (130 for Ctrl-C, 143 for
    /// SIGTERM), the shell convention.
    pub fn exit_code(&self) -> Option<i32> {
        self.signal().map(|s| 128 + s as i32)
    }
}

/// The process's stop signal, wired to SIGINT and SIGTERM on the first call: the first
/// signal sets it (the loop then checkpoints and exits with `128 + signal`); a second one of
/// either kind exits at once with that status, without a checkpoint.
pub fn install_signal_handlers() -> StopSignal {
    static PROCESS: OnceLock<StopSignal> = OnceLock::new();
    PROCESS
        .get_or_init(|| {
            let stop = StopSignal::new();
            #[cfg(unix)]
            {
                use signal_hook::consts::{SIGINT as INT, SIGTERM as TERM};
                let pending = Arc::new(AtomicBool::new(false));
                for (signal, number) in [(INT, SIGINT), (TERM, SIGTERM)] {
                    // Order matters: the shutdown check runs before the flag is set, so only
                    // a second signal exits.
                    let _ = signal_hook::flag::register_conditional_shutdown(
                        signal,
                        128 + number as i32,
                        Arc::clone(&pending),
                    );
                    let _ = signal_hook::flag::register(signal, Arc::clone(&pending));
                    let _ =
                        signal_hook::flag::register_usize(signal, Arc::clone(&stop.reason), number);
                }
            }
            stop
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_exit_codes_follow_the_signal() {
        let stop = StopSignal::new();
        let other = stop.clone();
        assert!(!other.is_stopped() && other.exit_code().is_none());
        stop.stop();
        assert!(other.is_stopped());
        assert_eq!(other.exit_code(), Some(130));
        other.reason.store(SIGTERM, Ordering::SeqCst);
        assert_eq!(stop.exit_code(), Some(143));
    }
}
