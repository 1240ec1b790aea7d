//! Times causal attention variants (forward + backward) at the tiny preset's shapes, to see
//! where the attention time goes. `cargo run --release -p moe-train --example attn_probe`.
use std::time::Instant;

use burn::module::Param;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Distribution, Tensor};
use moe_core::model::attention::AttentionConfig;
use moe_core::Init;

fn time(name: &str, dev: &Device, mut f: impl FnMut() -> Tensor<1>) {
    for _ in 0..3 {
        f().into_data();
    }
    let mut s = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        f().into_data();
        s.push(t.elapsed().as_secs_f64());
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let _ = dev;
    println!("{name:50} {:8.2} ms", s[5] * 1e3);
}

fn inner_pieces() {
    let dev = Device::flex();
    let (b, h, t, dh) = (16usize, 4usize, 128usize, 32usize);
    let q = Tensor::<4>::random([b, h, t, dh], Distribution::Normal(0.0, 1.0), &dev);
    let s = Tensor::<4>::random([b, h, t, t], Distribution::Normal(0.0, 1.0), &dev);
    let (cos, sin) = moe_core::fused::rope_tables(t, dh, &dev);
    let cos4 = cos.clone().reshape([1, 1, t, dh]);
    let sin4 = sin.clone().reshape([1, 1, t, dh]);
    time("inner: flip pairs", &dev, || {
        q.clone()
            .reshape([b, h, t, dh / 2, 2])
            .flip([4])
            .reshape([b, h, t, dh])
            .sum()
    });
    time("inner: rotate (flip, 2 mul, add)", &dev, || {
        let sw = q
            .clone()
            .reshape([b, h, t, dh / 2, 2])
            .flip([4])
            .reshape([b, h, t, dh]);
        (q.clone() * cos4.clone() + sw * sin4.clone()).sum()
    });
    time("inner: q * cos only", &dev, || {
        (q.clone() * cos4.clone()).sum()
    });
    time("inner: sum of q", &dev, || q.clone().sum());
    time("inner: softmax [b,h,t,t]", &dev, || {
        softmax(s.clone(), 3).sum()
    });
    time("inner: sum of s", &dev, || s.clone().sum());
    time("inner: s + bias", &dev, || {
        (s.clone() + Tensor::<2>::zeros([t, t], &dev).reshape([1, 1, t, t])).sum()
    });
    time("inner: q kT", &dev, || {
        q.clone().matmul(q.clone().swap_dims(2, 3)).sum()
    });
    time("inner: P v", &dev, || s.clone().matmul(q.clone()).sum());
    time("inner: Pt dO", &dev, || {
        s.clone().swap_dims(2, 3).matmul(q.clone()).sum()
    });
}

fn head_pieces() {
    let dev = Device::flex().autodiff();
    let (n, d, v) = (2048usize, 128usize, 512usize);
    let emb = Tensor::<2>::random([v, d], Distribution::Normal(0.0, 0.1), &dev).require_grad();
    let h = Tensor::<2>::random([n, d], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let ids = Tensor::<1, burn::tensor::Int>::arange(0..n as i64, &dev).remainder_scalar(v as i64);
    let bw2 = |y: Tensor<2>| {
        let _ = y.sum().backward();
        Tensor::<1>::zeros([1], &dev)
    };
    time("head: embedding select fwd+bwd", &dev, || {
        bw2(emb.clone().select(0, ids.clone()))
    });
    time("head: h @ E^T fwd+bwd", &dev, || {
        bw2(h.clone().matmul(emb.clone().transpose()))
    });
    time("head: h @ W (untransposed) fwd+bwd", &dev, || {
        bw2(h
            .clone()
            .matmul(emb.clone().transpose().detach().require_grad()))
    });
    let logits = Tensor::<2>::random([n, v], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    time("head: fused CE fwd+bwd", &dev, || {
        let _ = moe_core::fused::cross_entropy_mean(logits.clone(), ids.clone()).backward();
        Tensor::<1>::zeros([1], &dev)
    });
    time("head: fused CE fwd", &dev, || {
        moe_core::fused::cross_entropy_mean(logits.clone(), ids.clone())
    });
}

fn main() {
    moe_train::alloc::tune_allocator();
    head_pieces();
    inner_pieces();
    let dev = Device::flex().autodiff();
    let (b, t, d, h) = (16usize, 128usize, 128usize, 4usize);
    let dh = d / h;
    let attn = AttentionConfig::new(d, h, t).init(&Init::new(1), &dev);
    let x = Tensor::<3>::random([b, t, d], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let bw = |y: Tensor<4>| {
        let l = y.sum();
        let _ = l.backward();
        Tensor::<1>::zeros([1], &dev)
    };
    let bw3 = |y: Tensor<3>| {
        let l = y.sum();
        let _ = l.backward();
        Tensor::<1>::zeros([1], &dev)
    };
    time("current module fwd+bwd", &dev, || {
        bw3(attn.forward(x.clone()))
    });
    time("current module fwd", &dev, || attn.forward(x.clone()).sum());
    let w = |p: &Param<Tensor<2>>| p.val();
    let heads = |y: Tensor<2>| y.reshape([b, t, h, dh]).swap_dims(1, 2);
    time("3 projections fwd+bwd", &dev, || {
        let x2 = x.clone().reshape([b * t, d]);
        let q = heads(x2.clone().matmul(w(&attn.wq)));
        let k = heads(x2.clone().matmul(w(&attn.wk)));
        let v = heads(x2.matmul(w(&attn.wv)));
        bw(q + k + v)
    });
    time("fused qkv projection fwd+bwd", &dev, || {
        let x2 = x.clone().reshape([b * t, d]);
        let wqkv = Tensor::cat(vec![w(&attn.wq), w(&attn.wk), w(&attn.wv)], 1);
        let qkv = x2.matmul(wqkv);
        let q = heads(qkv.clone().narrow(1, 0, d));
        let k = heads(qkv.clone().narrow(1, d, d));
        let v = heads(qkv.narrow(1, 2 * d, d));
        bw(q + k + v)
    });
    let q = Tensor::<4>::random([b, h, t, dh], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let k = Tensor::<4>::random([b, h, t, dh], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let v = Tensor::<4>::random([b, h, t, dh], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    time("scores q kT fwd+bwd", &dev, || {
        bw(q.clone().matmul(k.clone().swap_dims(2, 3)))
    });
    time("3 heads swap+reshape fwd+bwd", &dev, || {
        bw3(
            (q.clone().swap_dims(1, 2) + k.clone().swap_dims(1, 2) + v.clone().swap_dims(1, 2))
                .reshape([b, t, d]),
        )
    });
    let s = Tensor::<4>::random([b, h, t, t], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let mask = Tensor::<2, Bool>::tril_mask([t, t], 0, &dev).unsqueeze::<4>();
    time("div_scalar scores fwd+bwd", &dev, || {
        bw(s.clone().div_scalar(5.6))
    });
    time("mask_fill scores fwd+bwd", &dev, || {
        bw(s.clone().mask_fill(mask.clone(), f32::NEG_INFINITY))
    });
    time("softmax scores fwd+bwd", &dev, || bw(softmax(s.clone(), 3)));
    time("softmax scores fwd", &dev, || softmax(s.clone(), 3).sum());
    let (cos, sin) = moe_core::fused::rope_tables(t, dh, &dev);
    let scale = 1.0 / (dh as f64).sqrt();
    time("fused rope+attention core fwd+bwd", &dev, || {
        bw(moe_core::fused::rope_causal_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            cos.clone(),
            sin.clone(),
            scale,
        ))
    });
    time("fused rope+attention core fwd", &dev, || {
        moe_core::fused::rope_causal_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            cos.clone(),
            sin.clone(),
            scale,
        )
        .sum()
    });
    let vv = v.clone();
    time("merge heads + out proj fwd+bwd", &dev, || {
        bw3(vv
            .clone()
            .swap_dims(1, 2)
            .reshape([b, t, d])
            .matmul(w(&attn.wo).unsqueeze_dim(0)))
    });
}
