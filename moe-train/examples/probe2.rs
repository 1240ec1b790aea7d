use burn::tensor::{Distribution, Tensor};
use moe_core::*;
use std::time::Instant;
fn t<F: FnMut() -> R, R>(name: &str, dev: &burn::tensor::Device, mut f: F) {
    for _ in 0..1 {
        f();
        dev.sync().unwrap();
    }
    let s = Instant::now();
    for _ in 0..3 {
        f();
        dev.sync().unwrap();
    }
    println!("{name:50} {:8.2} ms", s.elapsed().as_secs_f64() * 1e3 / 3.0);
}
fn main() {
    moe_train::alloc::tune_allocator();
    let dev = burn::tensor::Device::flex().autodiff();
    let (n, d, f, e) = (16384usize, 512usize, 2048usize, 64usize);
    let dense = DenseFfn::init(d, f, Activation::Relu, 0.1, &dev);
    let experts = Experts::init(e, d, f, Activation::Relu, 0.1, &dev);
    let x = Tensor::<3>::random([1, n, d], Distribution::Normal(0.0, 1.0), &dev);
    let xb = Tensor::<3>::random([e, n / e, d], Distribution::Normal(0.0, 1.0), &dev);
    t("dense fwd", &dev, || dense.forward(x.clone(), Mode::Train));
    t("dense fwd+bwd", &dev, || {
        dense.forward(x.clone(), Mode::Train).sum().backward()
    });
    t("experts fwd [64,256,512]", &dev, || {
        experts.forward(xb.clone())
    });
    t("experts fwd+bwd", &dev, || {
        experts.forward(xb.clone()).sum().backward()
    });
    let a = Tensor::<3>::random([e, n / e, d], Distribution::Normal(0.0, 1.0), &dev).inner();
    let w = Tensor::<3>::random([e, d, f], Distribution::Normal(0.0, 1.0), &dev).inner();
    let a2 = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &dev).inner();
    let w2 = Tensor::<2>::random([d, f], Distribution::Normal(0.0, 1.0), &dev).inner();
    t("bmm [64,256,512]x[64,512,2048]", &dev, || {
        a.clone().matmul(w.clone())
    });
    t("mm [16384,512]x[512,2048]", &dev, || {
        a2.clone().matmul(w2.clone())
    });
    let h = Tensor::<3>::random([e, n / e, f], Distribution::Normal(0.0, 1.0), &dev).inner();
    t(
        "bmm grad_w: a^T [64,512,256] x h [64,256,2048]",
        &dev,
        || a.clone().swap_dims(1, 2).matmul(h.clone()),
    );
    let h2 = Tensor::<2>::random([n, f], Distribution::Normal(0.0, 1.0), &dev).inner();
    t("mm grad_w: a^T [512,16384] x h [16384,2048]", &dev, || {
        a2.clone().transpose().matmul(h2.clone())
    });
    let cfg = SwitchConfig::new(d, f, e).with_capacity_factor_train(1.0);
    let layer = cfg.init(&dev);
    let tokens = x.clone().reshape([n, d]);
    t("router fwd", &dev, || {
        layer.router.forward(tokens.clone(), Mode::Train)
    });
    t("switch fwd (uniform)", &dev, || {
        let r = layer
            .router
            .forward(tokens.clone(), Mode::Train)
            .round_robin();
        layer
            .forward_routed(tokens.clone(), r, Mode::Train, |h| layer.experts.forward(h))
            .hidden
    });
    t("switch fwd+bwd (uniform)", &dev, || {
        let r = layer
            .router
            .forward(tokens.clone(), Mode::Train)
            .round_robin();
        let o = layer.forward_routed(tokens.clone(), r, Mode::Train, |h| layer.experts.forward(h));
        (o.hidden.sum() + o.balance_loss * 0.01).backward()
    });
    t("switch identity fwd+bwd (uniform)", &dev, || {
        let r = layer
            .router
            .forward(tokens.clone(), Mode::Train)
            .round_robin();
        let o = layer.forward_routed(tokens.clone(), r, Mode::Train, |h| h);
        (o.hidden.sum() + o.balance_loss * 0.01).backward()
    });
}
