//! stockd-bench: a load generator for stockd, compared with the seed's
//! Postgres `SELECT ... FOR UPDATE` reservation.
//!
//! # Layout
//!
//! - `flash_sale`: one hot SKU, N buyers reserving one unit each.
//! - `catalog`: many SKUs, Zipf popularity, multi-line orders through their
//!   whole lifecycle, and Redis memory per SKU-location and per hold.
//! - `baseline`: the seed's transaction on its own tables, same workers.
//! - `floor`: a server that answers Reserve at once or after one bare Redis
//!   script call, and the flash sale's buyers against it.
//! - `reorder`: a reorder check over a seeded schema of many SKU-locations
//!   with months of ledger history (Postgres only).
//! - `client`: gRPC connections and the setup calls; `load`: closed-loop
//!   workers and HdrHistogram latencies; `redis_probe`: read-only Redis
//!   figures (INFO, MEMORY USAGE); `zipf`: the popularity sampler;
//!   `report`: the JSON summary, always the last line of standard output.

mod baseline;
mod catalog;
mod client;
mod cpu;
mod flash_sale;
mod floor;
mod lag;
mod load;
mod redis_probe;
mod reorder;
mod report;
mod zipf;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator for stockd: a flash sale on one hot SKU and a catalog with Zipf
/// popularity, each compared with the Postgres SELECT ... FOR UPDATE baseline.
/// The last line of standard output is a JSON summary.
#[derive(Debug, Parser)]
#[command(name = "stockd-bench", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// One hot SKU: N buyers reserve 1 unit each with distinct order ids.
    FlashSale(flash_sale::FlashSaleArgs),
    /// S SKUs at L locations, Zipf popularity, 1-5 lines per order, each
    /// order fulfilled, released or left to expire.
    Catalog(catalog::CatalogArgs),
    /// The flash sale's buyers against a floor server (no setup, nothing
    /// read back): what the machine gives a server that does almost nothing.
    Floor(floor::FloorArgs),
    /// Serves Reserve only, answering at once or after one bare hold
    /// script call in Redis, until interrupted (the target of `floor`).
    FloorServer(floor::FloorServerArgs),
    /// Seeds S SKUs x L locations with D days of ledger history in a schema
    /// of its own and times the reorder check over all of them.
    Reorder(reorder::ReorderArgs),
}

/// Settings both scenarios take.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The stockd gRPC address (host:port or http://host:port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub grpc: String,
    /// Postgres for the baseline (its tables go in --baseline-schema there).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Workers, each with one request in flight [default: 64; --smoke: 8].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// How long each measured phase runs: 10s, 500ms, 1m [default: 10s; --smoke: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// HTTP/2 connections to stockd [default: one per 8 workers].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Print only the JSON line on standard output (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Small, quick defaults for CI (2 s phases, few workers, few SKUs).
    #[arg(long)]
    pub smoke: bool,
    /// Exit with status 1 when any request failed or anything was oversold.
    #[arg(long)]
    pub strict: bool,
    /// Bearer token sent with every call, for a server with
    /// STOCKD_AUTH_TOKENS_FILE (an admin token: setup writes the catalog and stock).
    #[arg(long, env = "STOCKD_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Do not run the Postgres baseline (baseline and ratio are then null).
    #[arg(long)]
    pub skip_baseline: bool,
    /// Schema the baseline's tables live in; dropped and created per run.
    #[arg(long, default_value = "bench_baseline")]
    pub baseline_schema: String,
    /// The server's STOCKD_DATABASE_SCHEMA, where the reconcile lag is read
    /// from its ledger [default: the database's search path].
    #[arg(long)]
    pub stockd_schema: Option<String>,
    /// The Redis behind the server, for read-only figures (INFO memory, cpu,
    /// commandstats; MEMORY USAGE with --redis-prefix). Nothing is written.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The server's STOCKD_REDIS_PREFIX, for the per-key memory breakdown.
    #[arg(long)]
    pub redis_prefix: Option<String>,
    /// Before each measured phase, wait up to this long (e.g. 120s) for the
    /// machine to be 85% idle: for shared machines where builds come and go.
    #[arg(long, value_parser = stockd::config::parse_duration, default_value = "0s")]
    pub settle: Duration,
}

impl CommonArgs {
    /// Workers.
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(if self.smoke { 8 } else { 64 }).max(1)
    }

    /// Length of each measured phase.
    pub fn duration(&self) -> Duration {
        self.duration.unwrap_or(if self.smoke { Duration::from_secs(2) } else { Duration::from_secs(10) })
    }

    /// gRPC connections.
    pub fn connections(&self) -> usize {
        self.connections.unwrap_or_else(|| self.concurrency().div_ceil(8)).max(1)
    }
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    match stockd::config::parse_duration(v)? {
        d if d.is_zero() => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

/// A short id that keeps this run's SKUs, orders and operations apart from
/// any other run against the same server.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// What a scenario hands back: the summary and lines for humans.
pub struct Outcome {
    pub summary: report::Summary,
    pub notes: Vec<String>,
}

/// Progress on standard error, so standard output stays parseable.
#[macro_export]
macro_rules! progress {
    ($($t:tt)*) => { eprintln!("[stockd-bench] {}", format_args!($($t)*)) };
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings of the libraries underneath (h2, hyper, sqlx) on stderr. A
    // subscriber also keeps their per-frame trace spans cheap: with none
    // installed, each one goes through tracing's `log` fallback, which took
    // about a tenth of this load generator's instructions. sqlx's "slow
    // statement" warnings are left out: the baseline's lock waits are what
    // it measures.
    stockd::telemetry::init(
        &std::env::var("STOCKD_BENCH_LOG").unwrap_or_else(|_| "warn,sqlx::query=error".into()),
        stockd::config::LogFormat::Text,
    );
    let (common, result) = match cli.scenario {
        Scenario::FlashSale(a) => (a.common.clone(), flash_sale::run(&a).await),
        Scenario::Catalog(a) => (a.common.clone(), catalog::run(&a).await),
        Scenario::Floor(a) => (a.common.clone(), floor::run(&a).await),
        Scenario::Reorder(a) => {
            return match reorder::run(&a).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("stockd-bench: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        Scenario::FloorServer(a) => {
            return match floor::serve(&a).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("stockd-bench: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("stockd-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let json = match serde_json::to_string(&outcome.summary) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("stockd-bench: cannot write the summary: {e}");
            return ExitCode::from(2);
        }
    };
    if !common.json {
        for n in &outcome.notes {
            println!("{n}");
        }
    }
    println!("{json}");
    let s = &outcome.summary;
    let oversold = s.oversold.unwrap_or(0);
    if common.strict && (s.errors > 0 || oversold > 0) {
        eprintln!("stockd-bench: --strict: {} errors, {oversold} oversold", s.errors);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
