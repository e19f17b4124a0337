//! The command line: `serve`, `migrate`, `local`, `check`, `quarantine`,
//! `import`, `export`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::startup::Application;
use crate::{db, local, telemetry};

/// stockd: atomic reservations in Redis, Postgres as the system of record.
/// Settings come from the environment (see README: Configuration).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (the database must be migrated).
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Zero-config local mode: create the database if missing, migrate, load
    /// demo data, print grpcurl examples, and serve on 127.0.0.1:50051.
    Local,
    /// Compare Redis levels with the Postgres snapshot, and the snapshot with
    /// the ledger replayed from zero (and with the ledger's sums the
    /// reconciler keeps); print every difference, and every event in the
    /// reconciler's quarantine. Exits 1 when any difference or unresolved
    /// quarantined event remains.
    Check {
        /// Fix the snapshot and the kept sums from the ledger where the ledger
        /// agrees with Redis (refuses where it does not).
        #[arg(long)]
        repair: bool,
    },
    /// The reconciler's quarantine: events Postgres refused (or that could
    /// not be read), set apart so that the rest goes on. Needs Postgres only.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// Import SKUs and on-hand stock from a CSV file (sku, name, location,
    /// on_hand, and optional unit_price, unit_cost, supplier_id). Every row is
    /// checked before anything changes; importing the same file again changes
    /// nothing.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Export current levels (all five numbers) and catalog columns as CSV.
    Export {
        /// Where to write; standard output when absent.
        file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// List the unresolved events (with --all, the resolved ones too).
    List {
        /// Resolved ones too, with who resolved them, when and how.
        #[arg(long)]
        all: bool,
    },
    /// Write events again, as the reconciler would, once what made Postgres
    /// refuse them is fixed; each that goes in is resolved as retried.
    /// Exits 1 if any is still refused.
    Retry {
        /// The events' ids (see `list`).
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every unresolved event, oldest first.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Who resolves them (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Kept with the resolution (default: what was written).
        #[arg(long)]
        note: Option<String>,
    },
    /// Resolve events without writing them (the rows stay, marked discarded).
    Discard {
        /// The events' ids (see `list`).
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Why they are not to be written.
        #[arg(long)]
        note: String,
        /// Who resolves them (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

/// Parses arguments and runs the command; errors are printed with their causes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stockd: bad setting: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_filter, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stockd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Local => local::run(config).await,
            Command::Check { repair } => check(config, repair).await,
            Command::Quarantine { action } => quarantine(config, action).await,
            Command::Import { file, quiet } => import(config, &file, quiet).await,
            Command::Export { file } => export(config, file.as_deref()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stockd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown_signal()).await
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let pool = db::connect(&config).await?;
    db::migrate(&pool, &config).await?;
    println!("migrations applied");
    Ok(())
}

/// Postgres (migrated) and the engine, for the one-shot commands.
async fn backends(config: &Config) -> anyhow::Result<(sqlx::PgPool, std::sync::Arc<crate::reservation::Engine>)> {
    let db = db::connect(config).await?;
    db::check_migrated(&db).await?;
    let engine = crate::startup::connect_engine(config, &db, crate::metrics::Metrics::new()?).await?;
    Ok((db, engine))
}

async fn check(config: Config, repair: bool) -> anyhow::Result<()> {
    let (db, engine) = backends(&config).await?;
    // The whole ledger replayed, and the sums the reconciler keeps checked
    // against it (the periodic check compares with those sums only).
    let report = crate::ledger::check_drift(&engine, &db, crate::ledger::LedgerSide::Replayed).await?;
    println!("checked {} SKU-locations: {} differ", report.checked, report.mismatches.len());
    if !report.in_flight_partitions.is_empty() {
        println!(
            "note: {} partitions had events on their way to Postgres; their Redis levels were not compared",
            report.in_flight_partitions.len()
        );
    }
    for m in &report.mismatches {
        println!(
            "{} @ {}: redis {} snapshot {} ledger {} kept sums {}{}",
            m.sku,
            m.location_id,
            m.redis.map_or("(in flight)".to_owned(), show),
            show(m.snapshot),
            show(m.ledger),
            show(m.totals),
            held_here(&m.quarantined)
        );
    }
    let quarantined = crate::reconcile::quarantine::list(&db, false).await?;
    println!("{} events in the reconciler's quarantine", quarantined.len());
    for q in &quarantined {
        print_quarantined(q);
    }
    let unresolved = || {
        anyhow::ensure!(
            quarantined.is_empty(),
            "{} events in quarantine (retry or discard them: stockd quarantine --help)",
            quarantined.len()
        );
        Ok(())
    };
    if report.mismatches.is_empty() {
        return unresolved();
    }
    if !repair {
        anyhow::bail!(
            "{} differences (run with --repair to fix the snapshot and sums from the ledger)",
            report.mismatches.len()
        );
    }
    let (repaired, refused) = crate::ledger::repair_snapshot(&db, &report).await?;
    println!("repaired {} snapshot rows from the ledger", repaired.len());
    for m in &refused {
        println!(
            "refused {} @ {}: the ledger does not agree with redis; not guessing{}",
            m.sku,
            m.location_id,
            held_here(&m.quarantined)
        );
    }
    anyhow::ensure!(refused.is_empty(), "{} differences left: the ledger itself disagrees", refused.len());
    unresolved()
}

fn show(l: crate::domain::Levels) -> String {
    format!("[on_hand {} reserved {} committed {} in_transit {}]", l.on_hand, l.reserved, l.committed, l.in_transit)
}

/// A difference's quarantined events, if it has any.
fn held_here(h: &crate::reconcile::quarantine::Held) -> String {
    if h.events == 0 {
        return String::new();
    }
    format!("; {} events in quarantine here would change it by {}", h.events, show(h.deltas))
}

fn print_quarantined(q: &crate::reconcile::quarantine::QuarantinedEvent) {
    println!(
        "#{} at {} (position {}; {} attempts{})",
        q.id,
        q.quarantined_at.to_rfc3339(),
        q.position(),
        q.attempts,
        q.sqlstate.as_deref().map(|c| format!("; SQLSTATE {c}")).unwrap_or_default()
    );
    println!("    event: {}", q.summary);
    println!("    error: {}", q.error);
    if let (Some(resolution), Some(at)) = (&q.resolution, &q.resolved_at) {
        println!(
            "    {resolution} by {} at {}: {}",
            q.resolved_by.as_deref().unwrap_or("?"),
            at.to_rfc3339(),
            q.note.as_deref().unwrap_or("")
        );
    }
}

/// Who resolves: `--by`, else the login name, else "unknown".
fn operator(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn quarantine(config: Config, action: QuarantineAction) -> anyhow::Result<()> {
    use crate::reconcile::quarantine::{self, RetryOutcome};
    let db = db::connect(&config).await?;
    db::check_migrated(&db).await?;
    match action {
        QuarantineAction::List { all } => {
            let rows = quarantine::list(&db, all).await?;
            let open = rows.iter().filter(|q| q.resolution.is_none()).count();
            println!(
                "{open} unresolved{}",
                if all { format!(", {} resolved", rows.len() - open) } else { String::new() }
            );
            for q in &rows {
                print_quarantined(q);
            }
            Ok(())
        }
        QuarantineAction::Retry { ids, all, by, note } => {
            let by = operator(by);
            let ids = if all { quarantine::list(&db, false).await?.into_iter().map(|q| q.id).collect() } else { ids };
            let mut left = 0;
            for id in ids {
                match quarantine::retry(&db, id, &by, note.as_deref()).await {
                    Ok(RetryOutcome::Applied(a)) => {
                        println!(
                            "#{id} retried: written ({} ledger rows{})",
                            a.ledger_rows,
                            if a.replayed { ", some were there already" } else { "" }
                        );
                    }
                    Ok(RetryOutcome::StillRefused(e)) => {
                        left += 1;
                        println!("#{id} still refused: {e}");
                    }
                    Ok(RetryOutcome::Stale { read_under, now }) => {
                        left += 1;
                        println!(
                            "#{id} not retried: read under store generation {read_under}, which is now {}; Redis was rebuilt from Postgres without this event, so it is not to be written now (discard it)",
                            now.as_deref().unwrap_or("unset")
                        );
                    }
                    Err(e) => {
                        left += 1;
                        println!("#{id} not retried: {e}");
                    }
                }
            }
            anyhow::ensure!(left == 0, "{left} events not retried");
            Ok(())
        }
        QuarantineAction::Discard { ids, note, by } => {
            anyhow::ensure!(!note.trim().is_empty(), "--note must say why the events are not to be written");
            let by = operator(by);
            let mut left = 0;
            for id in ids {
                match quarantine::discard(&db, id, &by, &note).await {
                    Ok(()) => println!("#{id} discarded by {by}"),
                    Err(e) => {
                        left += 1;
                        println!("#{id} not discarded: {e}");
                    }
                }
            }
            anyhow::ensure!(left == 0, "{left} events not discarded");
            Ok(())
        }
    }
}

async fn import(config: Config, file: &std::path::Path, quiet: bool) -> anyhow::Result<()> {
    use crate::spreadsheet::{Progress, apply_import, file_id, parse_import};
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let rows = match parse_import(&data) {
        Ok(rows) => rows,
        Err(errors) => {
            for e in errors.iter().take(100) {
                eprintln!("{}: {e}", file.display());
            }
            if errors.len() > 100 {
                eprintln!("... and {} more", errors.len() - 100);
            }
            anyhow::bail!("{} bad rows; nothing was changed", errors.len());
        }
    };
    let (db, engine) = backends(&config).await?;
    let progress = Progress::new("import", rows.len() as u64, quiet);
    let report = apply_import(&engine, &db, &rows, &file_id(&data), &progress).await?;
    println!(
        "imported {} rows ({} SKUs) in {:.1?}: {} set, {} already applied by an earlier run{}",
        report.rows,
        report.skus,
        report.elapsed,
        report.changed,
        report.replayed,
        if report.locations_created.is_empty() {
            String::new()
        } else {
            format!("; created locations {}", report.locations_created.join(", "))
        }
    );
    Ok(())
}

async fn export(config: Config, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let (db, engine) = backends(&config).await?;
    let rows = match file {
        Some(path) => {
            let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            crate::spreadsheet::export(&engine, &db, std::io::BufWriter::new(f)).await?
        }
        None => crate::spreadsheet::export(&engine, &db, std::io::stdout().lock()).await?,
    };
    eprintln!("exported {rows} rows");
    Ok(())
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler");
            match term {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SIGTERM not handled");
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        t.cancel();
    });
    token
}
