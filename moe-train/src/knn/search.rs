//! Exact nearest-neighbour search over a datastore by chunked matrix products on the model's
//! backend, with the k smallest squared L2 distances picked on the host (CPU backends) or on
//! the device (wgpu), and a brute-force f64 reference for tests and recall.

use std::collections::BinaryHeap;
use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::datastore::Datastore;

/// The `k` nearest stored keys of each query, nearest first; ties by smaller row.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query.
    pub k: usize,
    /// Squared L2 distances, `[num_queries, k]` (`+∞` pads a row an approximate index could
    /// not fill).
    pub distances: Vec<f32>,
    /// Datastore rows, `[num_queries, k]`.
    pub indices: Vec<u32>,
}

impl Neighbours {
    /// Queries answered.
    pub fn num_queries(&self) -> usize {
        self.indices.len() / self.k.max(1)
    }

    /// Distances and rows of query `q`.
    pub fn row(&self, q: usize) -> (&[f32], &[u32]) {
        let r = q * self.k..(q + 1) * self.k;
        (&self.distances[r.clone()], &self.indices[r])
    }

    /// Mean over queries of |approximate ∩ exact| / k: recall@k of `self` against `exact`.
    pub fn recall_against(&self, exact: &Neighbours) -> f64 {
        assert_eq!(self.k, exact.k, "recall compares the same k");
        let queries = self.num_queries();
        let mut found = 0usize;
        for q in 0..queries {
            let mut truth = exact.row(q).1.to_vec();
            truth.sort_unstable();
            found += self
                .row(q)
                .1
                .iter()
                .filter(|i| truth.binary_search(i).is_ok())
                .count();
        }
        found as f64 / (queries * self.k).max(1) as f64
    }
}

/// A nearest-neighbour search over one datastore.
pub trait NeighbourSearch {
    /// The `k` nearest keys of each row of `queries` `[num_queries, key_dim]` (at most the
    /// datastore's size).
    fn search(&mut self, queries: Tensor<2>, k: usize) -> Neighbours;
    /// `exact` or `hnsw`.
    fn name(&self) -> &'static str;
    /// Seconds spent building an index before the first search (`None`: no index).
    fn build_s(&self) -> Option<f64> {
        None
    }
}

/// Where the k smallest distances of a chunk are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Read each `[num_queries, chunk]` score block back and keep a bounded heap per query
    /// (a compare per score): fastest on CPU backends, whose top-k sorts whole rows.
    Host,
    /// `topk_with_indices` on the device per chunk, reading back `[num_queries, k]` only: for
    /// GPUs, where reading back the score blocks would dominate.
    Device,
}

impl Selection {
    /// The better choice for `backend`.
    pub fn for_backend(backend: crate::Backend) -> Self {
        match backend {
            crate::Backend::Wgpu => Selection::Device,
            _ => Selection::Host,
        }
    }
}

/// Exact search: for each chunk `K` `[chunk_rows, key_dim]` of the datastore, scores
/// `‖k‖² − 2·q·k` `[num_queries, chunk_rows]` by one matmul on the device; the distance is the
/// score plus `‖q‖²` (squared L2, Khandelwal et al. 2020 §3), clamped at 0 against rounding.
pub struct ExactSearch<'a> {
    store: &'a Datastore,
    device: Device,
    chunk_rows: usize,
    selection: Selection,
}

impl<'a> ExactSearch<'a> {
    /// Searches `store` on `device`, `chunk_rows` keys per matmul.
    pub fn new(
        store: &'a Datastore,
        device: Device,
        chunk_rows: usize,
        selection: Selection,
    ) -> Self {
        Self {
            store,
            device,
            chunk_rows: chunk_rows.max(1),
            selection,
        }
    }

    /// `−2·q·k` for one chunk, `[num_queries, rows.len()]`, and the chunk's `‖k‖²`
    /// `[rows.len()]` (computed on the host while the keys are converted anyway).
    fn chunk_products(
        &self,
        minus_two_q: &Tensor<2>,
        rows: Range<usize>,
        buf: &mut Vec<f32>,
    ) -> (Tensor<2>, Vec<f32>) {
        let (c, d) = (rows.len(), self.store.key_dim());
        self.store.keys_f32(rows, buf);
        let norms = buf.chunks(d).map(squared_norm).collect();
        let data = TensorData::new(std::mem::take(buf), [c, d]);
        let keys = Tensor::<2>::from_data(data, &self.device); // [c, key_dim]
        (minus_two_q.clone().matmul(keys.transpose()), norms) // [num_queries, c]
    }
}

/// `Σ (a − b)²` over 16 independent partial sums: a plain `.sum()` is one dependent chain of
/// float adds that the compiler may not reorder, about 10× slower at 128 dimensions.
pub fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (xs, ys) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in xs.zip(ys) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ x²`, with the partial sums of [`squared_l2`].
pub fn squared_norm(x: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let xs = x.chunks_exact(LANES);
    let tail: f32 = xs.remainder().iter().map(|v| v * v).sum();
    for x in xs {
        for i in 0..LANES {
            acc[i] += x[i] * x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl NeighbourSearch for ExactSearch<'_> {
    fn search(&mut self, queries: Tensor<2>, k: usize) -> Neighbours {
        let [num_queries, _] = queries.dims();
        let n = self.store.len();
        let k = k.min(n).max(1);
        let q_norms = floats(queries.clone().powi_scalar(2).sum_dim(1)); // [num_queries]
        let minus_two_q = queries.mul_scalar(-2.0); // [num_queries, key_dim]
        let mut tops: Vec<TopK> = (0..num_queries).map(|_| TopK::new(k)).collect();
        let mut buf = Vec::new();
        for start in (0..n).step_by(self.chunk_rows) {
            let rows = start..(start + self.chunk_rows).min(n);
            let c = rows.len();
            let (products, norms) = self.chunk_products(&minus_two_q, rows, &mut buf);
            match self.selection {
                Selection::Host => select_host(&floats(products), &norms, start as u32, &mut tops),
                Selection::Device => {
                    let norms = Tensor::<1>::from_data(TensorData::new(norms, [c]), &self.device);
                    let scores = products + norms.reshape([1, c]); // [num_queries, c]
                    let (values, idx) = scores.neg().topk_with_indices(k.min(c), 1); // [q, k]
                    let values = floats(values);
                    let idx = idx
                        .into_data()
                        .try_into_vec_as::<i64>()
                        .expect("int indices");
                    let kc = k.min(c);
                    for (q, top) in tops.iter_mut().enumerate() {
                        for j in q * kc..(q + 1) * kc {
                            top.offer(-values[j], start as u32 + idx[j] as u32);
                        }
                    }
                }
            }
        }
        let mut out = Neighbours {
            k,
            distances: Vec::with_capacity(num_queries * k),
            indices: Vec::with_capacity(num_queries * k),
        };
        for (top, q_norm) in tops.into_iter().zip(q_norms) {
            for (score, i) in top.into_sorted() {
                out.distances.push((score + q_norm).max(0.0));
                out.indices.push(i);
            }
        }
        out
    }

    fn name(&self) -> &'static str {
        "exact"
    }
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().expect("f32 data")
}

/// Offers the score `‖k‖² − 2·q·k` of every pair of a `[num_queries, c]` block of products
/// `−2·q·k` (rows `first..first + c` of the store, whose `‖k‖²` are `norms`) to its query's
/// heap, the queries split over the available threads.
fn select_host(products: &[f32], norms: &[f32], first: u32, tops: &mut [TopK]) {
    let c = norms.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = tops.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (part, tops) in tops.chunks_mut(per).enumerate() {
            let block = &products[part * per * c..];
            s.spawn(move || {
                for (q, top) in tops.iter_mut().enumerate() {
                    let row = &block[q * c..(q + 1) * c];
                    let mut threshold = top.threshold();
                    for (j, (&product, &norm)) in row.iter().zip(norms).enumerate() {
                        let score = product + norm;
                        // Strict: rows come in increasing order, so a tie keeps the smaller row.
                        if score < threshold {
                            top.offer(score, first + j as u32);
                            threshold = top.threshold();
                        }
                    }
                }
            });
        }
    });
}

/// The `k` smallest `(score, row)` pairs seen, as a max-heap.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry(f32, u32);

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TopK {
    /// Keeps the `k` smallest.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Scores at or above this cannot enter.
    pub fn threshold(&self) -> f32 {
        match self.heap.peek() {
            Some(top) if self.heap.len() == self.k => top.0,
            _ => f32::INFINITY,
        }
    }

    /// Offers `(score, row)`; NaN scores never enter.
    pub fn offer(&mut self, score: f32, row: u32) {
        if score.is_nan() {
            return;
        }
        let entry = Entry(score, row);
        if self.heap.len() < self.k {
            self.heap.push(entry);
        } else if let Some(mut top) = self.heap.peek_mut() {
            if entry < *top {
                *top = entry;
            }
        }
    }

    /// The kept pairs, smallest first.
    pub fn into_sorted(self) -> Vec<(f32, u32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| (e.0, e.1))
            .collect()
    }
}

/// Reference: every distance in f64 on the host, sorted by (distance, row).
///
/// # Shapes
/// - `keys`: `[num_keys, key_dim]`, `queries`: `[num_queries, key_dim]`, row-major
pub fn brute_force(keys: &[f32], queries: &[f32], key_dim: usize, k: usize) -> Neighbours {
    let num_keys = keys.len() / key_dim;
    let k = k.min(num_keys).max(1);
    let mut out = Neighbours {
        k,
        distances: Vec::new(),
        indices: Vec::new(),
    };
    for q in queries.chunks(key_dim) {
        let mut all: Vec<(f64, u32)> = keys
            .chunks(key_dim)
            .enumerate()
            .map(|(i, key)| {
                let d = q
                    .iter()
                    .zip(key)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum();
                (d, i as u32)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (d, i) in all.into_iter().take(k) {
            out.distances.push(d as f32);
            out.indices.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_smallest_with_ties_to_the_smaller_row() {
        let mut top = TopK::new(3);
        for (s, i) in [
            (5.0, 0),
            (1.0, 1),
            (f32::NAN, 2),
            (3.0, 3),
            (1.0, 4),
            (0.5, 5),
            (3.0, 6),
        ] {
            top.offer(s, i);
        }
        assert_eq!(top.into_sorted(), vec![(0.5, 5), (1.0, 1), (1.0, 4)]);
    }

    #[test]
    fn partial_sums_match_a_plain_loop() {
        for n in [0, 5, 16, 37, 128] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum();
            let norm: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
            assert!((squared_l2(&a, &b) as f64 - plain).abs() < 1e-4, "n = {n}");
            assert!((squared_norm(&a) as f64 - norm).abs() < 1e-4, "n = {n}");
        }
    }

    #[test]
    fn recall_counts_shared_rows() {
        let exact = Neighbours {
            k: 2,
            distances: vec![0.0; 4],
            indices: vec![1, 2, 3, 4],
        };
        let approx = Neighbours {
            k: 2,
            distances: vec![0.0; 4],
            indices: vec![2, 9, 3, 4],
        };
        assert_eq!(approx.recall_against(&exact), 0.75);
    }
}
