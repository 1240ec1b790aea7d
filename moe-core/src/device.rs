//! Which backend a burn device belongs to, for the choices that depend on it: row indexing
//! (`dispatch::RowIndexing`), the flex-only fused expert op (`fused::expert_ffn_top1`) and the
//! host-side optimizer update (`moe-train`'s `optim.rs`). One place, matching on burn's
//! `DispatchDevice` with autodiff stripped.

use burn::backend::DispatchDevice;
use burn::tensor::Device;

/// Whether `device` (with or without autodiff) is burn-flex.
pub fn is_flex(device: &Device) -> bool {
    #[allow(unreachable_patterns)]
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        _ => false,
    }
}

/// Whether tensors on `device` (with or without autodiff) live in host memory: burn-flex or
/// burn-ndarray.
pub fn is_host(device: &Device) -> bool {
    #[allow(unreachable_patterns, deprecated)]
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_device_is_a_host_device_and_flex_when_built_in() {
        let device = crate::test_device();
        for d in [device.clone(), device.autodiff()] {
            assert!(is_host(&d), "{d:?}");
            assert_eq!(is_flex(&d), cfg!(feature = "flex"), "{d:?}");
        }
    }
}
