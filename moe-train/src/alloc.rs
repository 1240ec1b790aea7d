//! Allocator tuning for tensor workloads.
//!
//! burn's CPU backends allocate a fresh buffer for most op outputs. glibc serves every
//! allocation above 32 MiB with its own `mmap` and unmaps it on free, so each large tensor
//! pays page faults on first touch: measured here, a dispatch of 16384 × 512 floats took
//! 31.6 ms with glibc's defaults and 7.9 ms with mmap disabled (README "Allocator").
//! [`tune_allocator`] makes glibc serve large blocks from its heap and keep freed memory for
//! reuse. Peak memory is unchanged; freed memory is not returned to the OS until exit.

/// Tunes glibc's malloc for large, short-lived tensors (no-op on other platforms).
/// Call once at start-up, before worker threads allocate. Set `SWITCHYARD_DEFAULT_MALLOC=1`
/// to keep glibc's defaults (for measuring the difference).
pub fn tune_allocator() {
    if std::env::var_os("SWITCHYARD_DEFAULT_MALLOC").is_some_and(|v| v == "1") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        // Never serve allocations with a private mmap (they are unmapped on free).
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // Never give freed heap memory back to the OS (it would fault in again next step).
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // Grow the heap in 256 MiB steps instead of many small brk calls.
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
