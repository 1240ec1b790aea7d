//! `moe-train knn bench`: exact against approximate (HNSW) search on a datastore, with real
//! queries (the checkpoint's hidden states on the first validation windows): build time,
//! queries per second and recall@k against exact search.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use moe_core::Mode;
use serde::Serialize;

use super::datastore::Datastore;
use super::fingerprint::ModelFingerprint;
use super::hnsw::{HnswIndex, HnswParams};
use super::search::{ExactSearch, NeighbourSearch, Neighbours, Selection};
use crate::backend::Backend;
use crate::checkpoint;
use crate::data::batches::make_batch;
use crate::data::Dataset;

/// `moe-train knn bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct KnnBenchArgs {
    /// Run directory (its latest checkpoint) or a checkpoint folder.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The datastore (built from this checkpoint).
    #[arg(long, value_name = "DATASTORE")]
    pub knn: PathBuf,
    /// Queries: the hidden states of the first this many validation tokens.
    #[arg(long, default_value_t = 1024)]
    pub queries: usize,
    /// Neighbours per query.
    #[arg(long, default_value_t = 64)]
    pub k: usize,
    /// HNSW search candidate list sizes to try (one index build each; each ≥ k; give the
    /// flag with no value for exact search alone).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "64,128,256")]
    pub ef_search: Vec<usize>,
    /// HNSW build candidate list size.
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// Exact search: keys per matrix product.
    #[arg(long, default_value_t = 16_384)]
    pub knn_chunk: usize,
    /// Compute backend of the model and of exact search.
    #[arg(long, value_enum, default_value_t = Backend::DEFAULT)]
    pub backend: Backend,
    /// Print one JSON object per row.
    #[arg(long)]
    pub json: bool,
}

/// One measured search method.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// `exact` or `hnsw`.
    pub method: String,
    /// HNSW build candidate list (absent for exact).
    pub ef_construction: Option<usize>,
    /// HNSW search candidate list (absent for exact).
    pub ef_search: Option<usize>,
    /// Datastore entries.
    pub entries: usize,
    /// Queries searched.
    pub queries: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Index build seconds (0 for exact).
    pub build_s: f64,
    /// Search seconds for all queries.
    pub search_s: f64,
    /// Queries per second.
    pub queries_per_s: f64,
    /// recall@k against exact search.
    pub recall: f64,
}

/// Runs the comparison and prints a table (or JSON lines).
pub fn run(args: &KnnBenchArgs, out: &mut impl Write) -> anyhow::Result<Vec<BenchRow>> {
    anyhow::ensure!(
        args.k > 0 && args.queries > 0,
        "--k and --queries must be at least 1"
    );
    if let Some(ef) = args.ef_search.iter().find(|&&ef| ef < args.k) {
        anyhow::bail!(
            "--ef-search {ef}: HNSW returns at most ef neighbours; use at least --k {}",
            args.k
        );
    }
    let loaded = checkpoint::load(&checkpoint::resolve(&args.run, false)?)?;
    let store = Datastore::open(&args.knn)?;
    store.check_model(&ModelFingerprint::of(&loaded)?, loaded.config.model.d_model)?;
    let device = args.backend.device()?;
    let queries = validation_queries(&loaded, args.queries, &device)?; // [queries, d_model]
    let num_queries = queries.len() / store.key_dim();
    let tensor = || {
        Tensor::<2>::from_data(
            TensorData::new(queries.clone(), [num_queries, store.key_dim()]),
            &device,
        )
    };
    let mut exact = ExactSearch::new(
        &store,
        device.clone(),
        args.knn_chunk,
        Selection::for_backend(args.backend),
    );
    exact.search(tensor(), args.k); // warm-up: page cache, kernels
    let start = Instant::now();
    let truth = exact.search(tensor(), args.k);
    let exact_s = start.elapsed().as_secs_f64();
    let row =
        |method: &str, ef: Option<(usize, usize)>, build_s, search_s: f64, found: &Neighbours| {
            BenchRow {
                method: method.into(),
                ef_construction: ef.map(|e| e.0),
                ef_search: ef.map(|e| e.1),
                entries: store.len(),
                queries: num_queries,
                k: truth.k,
                build_s,
                search_s,
                queries_per_s: num_queries as f64 / search_s.max(1e-9),
                recall: found.recall_against(&truth),
            }
        };
    let mut rows = vec![row("exact", None, 0.0, exact_s, &truth)];
    for &ef_search in &args.ef_search {
        let params = HnswParams {
            ef_construction: args.ef_construction,
            ef_search,
            seed: 0,
        };
        let index = HnswIndex::build(&store, params);
        let start = Instant::now();
        let found = index.search_host(&queries, truth.k);
        let search_s = start.elapsed().as_secs_f64();
        rows.push(row(
            "hnsw",
            Some((args.ef_construction, ef_search)),
            index.build_s,
            search_s,
            &found,
        ));
    }
    print(&rows, args.json, out)?;
    Ok(rows)
}

/// The last-FFN inputs of the first `count` validation tokens, row-major `[count, d_model]`.
fn validation_queries(
    loaded: &checkpoint::Loaded,
    count: usize,
    device: &burn::tensor::Device,
) -> anyhow::Result<Vec<f32>> {
    let config = &loaded.config;
    let (seq_len, batch_size) = (config.train.seq_len, config.train.batch_size);
    let tokenizer = Some(loaded.tokenizer.clone());
    let val = Dataset::load(&config.data, config.model.vocab_size, tokenizer)?.val;
    let windows = val.num_windows(seq_len).min(count.div_ceil(seq_len));
    anyhow::ensure!(
        windows > 0,
        "the validation split is shorter than one window"
    );
    let model = checkpoint::load_model(loaded, device)?;
    let mut out = Vec::new();
    for first in (0..windows).step_by(batch_size) {
        let starts = (first..windows.min(first + batch_size))
            .map(|w| w * seq_len)
            .collect();
        let batch = make_batch(&val, starts, seq_len, device);
        let keys = model
            .forward_with_last_ffn_input(batch.inputs, Mode::Eval)
            .last_ffn_input
            .expect("asked for"); // [rows, seq_len, d_model]
        out.extend(keys.into_data().try_into_vec_as::<f32>().expect("f32"));
    }
    out.truncate(count * config.model.d_model);
    Ok(out)
}

fn print(rows: &[BenchRow], json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        for r in rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<6} {:>8} {:>8} {:>10} {:>8} {:>5} {:>9} {:>10} {:>11} {:>9}",
        "method",
        "ef_c",
        "ef_s",
        "entries",
        "queries",
        "k",
        "build s",
        "search s",
        "queries/s",
        "recall@k"
    )?;
    for r in rows {
        let ef = |e: Option<usize>| e.map_or("—".to_string(), |e| e.to_string());
        writeln!(
            out,
            "{:<6} {:>8} {:>8} {:>10} {:>8} {:>5} {:>9.2} {:>10.3} {:>11.0} {:>9.4}",
            r.method,
            ef(r.ef_construction),
            ef(r.ef_search),
            r.entries,
            r.queries,
            r.k,
            r.build_s,
            r.search_s,
            r.queries_per_s,
            r.recall
        )?;
    }
    Ok(())
}
