//! The kNN-LM options of `moe-train eval` (`--knn DATASTORE --k --lambda --temperature
//! --knn-index`), their checks, and the printed table.

use std::io::Write;
use std::path::PathBuf;

use burn::tensor::Device;

use super::datastore::Datastore;
use super::fingerprint::ModelFingerprint;
use super::hnsw::{HnswIndex, HnswParams};
use super::score::{KnnRecord, KnnScorer, Sweep};
use super::search::{ExactSearch, NeighbourSearch, Selection};
use crate::Backend;

/// Exact or approximate neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexKind {
    /// Chunked matrix products over every key on the backend.
    Exact,
    /// An HNSW graph built in memory at start (instant-distance).
    Hnsw,
}

/// `moe-train eval` kNN-LM flags.
#[derive(Debug, Clone, clap::Args)]
pub struct KnnEvalArgs {
    /// Interpolate with kNN-LM over this datastore (`moe-train knn build`); it must come from
    /// the evaluated checkpoint.
    #[arg(long, value_name = "DATASTORE")]
    pub knn: Option<PathBuf>,
    /// Neighbours per token; a list (`8,64,1024`) is swept in the same pass.
    #[arg(long, value_delimiter = ',', default_value = "1024")]
    pub k: Vec<usize>,
    /// Weight λ of p_kNN in `λ·p_kNN + (1 − λ)·p_LM`; a list (`0,0.1,0.25,0.5`) is swept in the
    /// same pass.
    #[arg(long, value_delimiter = ',', default_value = "0.25")]
    pub lambda: Vec<f64>,
    /// Temperature T of p_kNN = softmax(−distance / T); a list (`1,10`) is swept in the same
    /// pass.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub temperature: Vec<f64>,
    /// Neighbour search: exact, or an approximate HNSW graph for large datastores.
    #[arg(long, value_enum, default_value_t = IndexKind::Exact)]
    pub knn_index: IndexKind,
    /// Exact search: keys per matrix product.
    #[arg(long, default_value_t = 16_384)]
    pub knn_chunk: usize,
    /// Exact search: pick the k smallest distances on the host or on the device (default:
    /// host on CPU backends, device on wgpu).
    #[arg(long, value_enum)]
    pub knn_selection: Option<Selection>,
    /// HNSW: candidate list size while building.
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// HNSW: candidate list size while searching (default: the largest k); at least the
    /// largest k.
    #[arg(long)]
    pub ef_search: Option<usize>,
}

impl KnnEvalArgs {
    /// Checks every value, listing all problems.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.k.contains(&0) {
            problems.push("--k: every k must be at least 1".to_string());
        }
        if let Some(l) = self.lambda.iter().find(|l| !(0.0..=1.0).contains(*l)) {
            problems.push(format!("--lambda {l}: λ must be in [0, 1]"));
        }
        if let Some(t) = self
            .temperature
            .iter()
            .find(|t| !(**t > 0.0 && t.is_finite()))
        {
            problems.push(format!("--temperature {t}: must be a positive number"));
        }
        if self.knn_chunk == 0 {
            problems.push("--knn-chunk 0: use at least 1 key per product".into());
        }
        let k_max = self.k.iter().copied().max().unwrap_or(1);
        if let Some(ef) = self.ef_search.filter(|&ef| ef < k_max) {
            problems.push(format!(
                "--ef-search {ef}: HNSW returns at most ef neighbours; use at least the largest --k ({k_max})"
            ));
        }
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// Opens the datastore and checks it belongs to the checkpoint `model` of width `d_model`.
    pub fn open(
        &self,
        model: &ModelFingerprint,
        d_model: usize,
    ) -> anyhow::Result<Option<Datastore>> {
        let Some(path) = &self.knn else {
            return Ok(None);
        };
        let store = Datastore::open(path)?;
        store.check_model(model, d_model)?;
        anyhow::ensure!(
            !store.is_empty(),
            "{}: the datastore is empty",
            path.display()
        );
        Ok(Some(store))
    }

    /// The scorer over `store`; an HNSW index is built here.
    pub fn scorer<'a>(
        &self,
        store: &'a Datastore,
        backend: Backend,
        device: &Device,
    ) -> KnnScorer<'a> {
        let k_max = self.k.iter().copied().max().unwrap_or(1);
        let search: Box<dyn NeighbourSearch + 'a> = match self.knn_index {
            IndexKind::Exact => {
                let selection = self
                    .knn_selection
                    .unwrap_or_else(|| Selection::for_backend(backend));
                let exact = ExactSearch::new(store, device.clone(), self.knn_chunk, selection);
                Box::new(exact)
            }
            IndexKind::Hnsw => Box::new(HnswIndex::build(
                store,
                HnswParams {
                    ef_construction: self.ef_construction,
                    ef_search: self.ef_search.unwrap_or(k_max),
                    seed: 0,
                },
            )),
        };
        let sweep = Sweep {
            ks: self.k.clone(),
            temperatures: self.temperature.clone(),
            lambdas: self.lambda.clone(),
        };
        KnnScorer::new(search, store.values(), sweep)
    }
}

/// Prints the sweep: the model alone, then every `(k, λ)`.
pub fn print(r: &KnnRecord, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "kNN-LM: datastore {} ({} entries), {} search, {:.0} queries/s ({:.1} s searching)",
        r.datastore, r.entries, r.index, r.queries_per_s, r.search_s
    )?;
    if let Some(s) = r.index_build_s {
        writeln!(out, "  HNSW index built in {s:.1} s")?;
    }
    writeln!(
        out,
        "  without kNN: ce {:.4}, perplexity {:.3}; target among the neighbours for {:.1}% of tokens",
        r.lm_ce,
        r.lm_perplexity,
        100.0 * r.target_in_neighbours
    )?;
    writeln!(
        out,
        "  {:>6} {:>6} {:>6} {:>9} {:>11}",
        "k", "T", "λ", "ce", "perplexity"
    )?;
    for p in &r.results {
        let mark = if p == &r.best { "  ← best" } else { "" };
        writeln!(
            out,
            "  {:>6} {:>6} {:>6} {:>9.4} {:>11.3}{mark}",
            p.k, p.temperature, p.lambda, p.ce, p.perplexity
        )?;
    }
    Ok(())
}
