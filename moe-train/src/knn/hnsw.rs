//! Approximate search with an HNSW graph (Malkov & Yashunin 2018) from the `instant-distance`
//! crate — chosen because it is pure Rust and, unlike `hnsw_rs`, adds no feature to a crate
//! burn already uses (docs/knn-lm.md "Approximate search"). The index is built in memory from
//! the datastore's keys (f32 copies: `count · key_dim · 4` bytes plus the graph) each time it
//! is used; it is not saved.

use std::time::Instant;

use burn::tensor::Tensor;
use instant_distance::{Builder, HnswMap, Point, Search};

use super::datastore::Datastore;
use super::search::{squared_l2, NeighbourSearch, Neighbours};

/// HNSW build and search settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Candidate list size while inserting (`efConstruction`; the crate's default 100).
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`); at least the `k` asked for, which is the
    /// most neighbours a search returns.
    pub ef_search: usize,
    /// Seed of the level draw, for a reproducible graph.
    pub seed: u64,
}

/// One stored key as an HNSW point; its distance is the squared L2 of the exact search.
#[derive(Debug, Clone)]
struct Key(Box<[f32]>);

impl Point for Key {
    fn distance(&self, other: &Self) -> f32 {
        squared_l2(&self.0, &other.0)
    }
}

/// An HNSW index over a datastore's keys; values are the datastore rows.
pub struct HnswIndex {
    map: HnswMap<Key, u32>,
    key_dim: usize,
    ef_search: usize,
    /// Seconds the build took.
    pub build_s: f64,
}

impl HnswIndex {
    /// Builds the graph over every key of `store` (in parallel on the rayon pool).
    pub fn build(store: &Datastore, params: HnswParams) -> Self {
        let start = Instant::now();
        let d = store.key_dim();
        let mut points = Vec::with_capacity(store.len());
        let mut buf = Vec::new();
        let step = 65_536;
        for first in (0..store.len()).step_by(step) {
            store.keys_f32(first..(first + step).min(store.len()), &mut buf);
            points.extend(buf.chunks(d).map(|k| Key(k.into())));
        }
        let rows = (0..store.len() as u32).collect();
        let map = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed)
            .build(points, rows);
        Self {
            map,
            key_dim: d,
            ef_search: params.ef_search,
            build_s: start.elapsed().as_secs_f64(),
        }
    }

    /// The `k` nearest of each row of `queries` `[num_queries, key_dim]` (host data), the
    /// queries split over the available threads. Rows the graph walk could not fill to `k`
    /// are padded with distance `+∞` (weight 0 in p_kNN).
    pub fn search_host(&self, queries: &[f32], k: usize) -> Neighbours {
        let d = self.key_dim;
        let num_queries = queries.len() / d;
        let mut distances = vec![f32::INFINITY; num_queries * k];
        let mut indices = vec![0u32; num_queries * k];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = num_queries.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let parts = distances
                .chunks_mut(per * k)
                .zip(indices.chunks_mut(per * k));
            for (part, (dist, idx)) in parts.enumerate() {
                let queries = &queries[part * per * d..];
                s.spawn(move || {
                    let mut search = Search::default();
                    for (q, (dist, idx)) in dist.chunks_mut(k).zip(idx.chunks_mut(k)).enumerate() {
                        let point = Key(queries[q * d..(q + 1) * d].into());
                        for (j, item) in self.map.search(&point, &mut search).take(k).enumerate() {
                            dist[j] = item.distance;
                            idx[j] = *item.value;
                        }
                    }
                });
            }
        });
        Neighbours {
            k,
            distances,
            indices,
        }
    }
}

impl NeighbourSearch for HnswIndex {
    fn search(&mut self, queries: Tensor<2>, k: usize) -> Neighbours {
        let k = k.min(self.ef_search).min(self.map.values.len()).max(1);
        let host = queries
            .into_data()
            .try_into_vec_as::<f32>()
            .expect("f32 queries");
        self.search_host(&host, k)
    }

    fn name(&self) -> &'static str {
        "hnsw"
    }

    fn build_s(&self) -> Option<f64> {
        Some(self.build_s)
    }
}
