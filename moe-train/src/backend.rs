//! Backend selection: which burn device the CLI, tests and benchmarks run on.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// A compute backend switchyard can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn-flex: pure-Rust CPU backend on the `gemm` crate (the CLI default: faster than
    /// ndarray here, see README "Backends").
    Flex,
    /// burn-ndarray: CPU backend (deprecated upstream in burn 0.22).
    Ndarray,
    /// burn-wgpu: GPU through Vulkan, Metal, DX12 or WebGPU.
    Wgpu,
    /// burn-cuda: NVIDIA GPU 0 (cargo feature `cuda`, off by default; `train --devices N`
    /// uses GPUs 0..N).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl Backend {
    /// The CLI's default backend.
    pub const DEFAULT: Backend = Backend::Flex;

    /// Every backend, in display order.
    pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Ndarray, Backend::Wgpu];

    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this build includes the backend (cargo features `flex`, `ndarray`, `wgpu`).
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Flex => cfg!(feature = "flex"),
            Backend::Ndarray => cfg!(feature = "ndarray"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            #[cfg(feature = "cuda")]
            Backend::Cuda => true,
        }
    }

    /// The burn device of this backend (inference; call `.autodiff()` for training).
    ///
    /// # Errors
    /// When the backend was not compiled in; the message names the cargo feature to enable.
    pub fn device(self) -> Result<Device, BackendError> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // burn 0.22 deprecates ndarray in favour of flex; we offer both.
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            other => Err(BackendError::NotCompiled(other)),
        }
    }
}

impl Default for Backend {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        #[cfg(feature = "cuda")]
        if s.eq_ignore_ascii_case("cuda") {
            return Ok(Backend::Cuda);
        }
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s.to_ascii_lowercase())
            .ok_or_else(|| BackendError::Unknown(s.to_string()))
    }
}

/// Backend selection errors.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend.
    #[error("unknown backend `{0}`: choose one of flex, ndarray, wgpu")]
    Unknown(String),
    /// The backend's cargo feature was off at build time.
    #[error("backend `{0}` is not compiled into this binary: rebuild with `--features {0}`")]
    NotCompiled(Backend),
}

/// Blocks until all queued work on `device` has finished, and surfaces any deferred device
/// error (wgpu reports failed kernels only at the next read-back, so `tensor` — any output of
/// the timed work — is read back too).
pub fn sync_and_check<const D: usize>(
    device: &Device,
    tensor: &burn::tensor::Tensor<D>,
) -> anyhow::Result<()> {
    device
        .sync()
        .map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
    let first = tensor.clone().flatten::<1>(0, D - 1).narrow(0, 0, 1);
    let value = first
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    anyhow::ensure!(
        !value.is_empty(),
        "read-back of a timed result returned no data"
    );
    Ok(())
}
