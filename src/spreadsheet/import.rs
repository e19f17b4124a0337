//! `stockd import FILE.csv`: columns sku, name, location, on_hand, and
//! optionally unit_price (or price), unit_cost (or cost), supplier_id (or
//! supplier). Other columns (an export's reserved, available, ...) are ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;

use super::Progress;
use crate::catalog::Money;
use crate::domain::{LocationId, MAX_ON_HAND, OperationId, Sku, SupplierId};
use crate::reservation::{Engine, StockChange};

/// Engine calls in flight at once.
const PARALLEL: usize = 32;
/// Rows per catalog upsert statement.
const CHUNK: usize = 1000;

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Line in the file (1 is the header).
    pub line: u64,
    /// What.
    pub sku: Sku,
    /// Display name.
    pub name: String,
    /// Where.
    pub location: LocationId,
    /// Units on the shelf.
    pub on_hand: i64,
    /// Price, when the file has the column and the cell is filled.
    pub unit_price: Option<Money>,
    /// Cost, likewise.
    pub unit_cost: Option<Money>,
    /// Supplier, likewise.
    pub supplier_id: Option<SupplierId>,
}

/// A bad row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Line in the file.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows applied.
    pub rows: usize,
    /// Distinct SKUs written to the catalog.
    pub skus: usize,
    /// Locations the file named that did not exist and were created.
    pub locations_created: Vec<String>,
    /// Rows whose on_hand changed.
    pub changed: usize,
    /// Rows already applied by an earlier run of the same file.
    pub replayed: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Identifies a file's content: re-running the same file derives the same
/// operation ids, so it changes nothing the second time.
pub fn file_id(bytes: &[u8]) -> String {
    format!("{:08x}{:08x}", crc32fast::hash(bytes), bytes.len())
}

fn column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers.iter().position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
}

/// Validates every row; returns all of them, or every bad row with its line.
pub fn parse_import(data: &[u8]) -> Result<Vec<ImportRow>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let header_error = |m: String| vec![RowError { line: 1, message: m }];
    let headers = reader.headers().map_err(|e| header_error(format!("cannot read the header: {e}")))?.clone();
    let required = |names: &[&str]| {
        column(&headers, names).ok_or_else(|| header_error(format!("the header has no {} column", names[0])))
    };
    let (c_sku, c_name, c_loc, c_on_hand) =
        (required(&["sku"])?, required(&["name"])?, required(&["location", "location_id"])?, required(&["on_hand"])?);
    let c_price = column(&headers, &["unit_price", "price"]);
    let c_cost = column(&headers, &["unit_cost", "cost"]);
    let c_supplier = column(&headers, &["supplier_id", "supplier"]);

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let mut names: HashMap<String, (u64, String)> = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError { line, message: format!("unreadable: {e}") });
                continue;
            }
        };
        let cell = |c: usize| record.get(c).unwrap_or("").trim();
        let opt = |c: Option<usize>| c.map(cell).filter(|v| !v.is_empty());
        let mut bad = Vec::new();
        let sku = Sku::parse(cell(c_sku)).map_err(|e| bad.push(format!("sku {e}"))).ok();
        let location = LocationId::parse(cell(c_loc)).map_err(|e| bad.push(format!("location {e}"))).ok();
        let name = cell(c_name).to_owned();
        if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
            bad.push("name must be 1 to 256 printable characters".to_owned());
        }
        let on_hand = match cell(c_on_hand).parse::<i64>() {
            Ok(n) if (0..=MAX_ON_HAND).contains(&n) => Some(n),
            _ => {
                bad.push(format!("on_hand must be a whole number from 0 to {MAX_ON_HAND}, got {:?}", cell(c_on_hand)));
                None
            }
        };
        let unit_price = opt(c_price).map(Money::parse).transpose().map_err(|e| bad.push(format!("unit_price {e}")));
        let unit_cost = opt(c_cost).map(Money::parse).transpose().map_err(|e| bad.push(format!("unit_cost {e}")));
        let supplier_id =
            opt(c_supplier).map(SupplierId::parse).transpose().map_err(|e| bad.push(format!("supplier_id {e}")));
        if let (Some(s), Some(l)) = (&sku, &location) {
            if let Some(first) = seen.insert((s.to_string(), l.to_string()), line) {
                bad.push(format!("sku {s} at {l} is already on line {first}"));
            }
            match names.get(s.as_str()) {
                Some((first, n)) if *n != name => bad.push(format!("name differs from line {first} for sku {s}")),
                Some(_) => {}
                None => {
                    names.insert(s.to_string(), (line, name.clone()));
                }
            }
        }
        if !bad.is_empty() {
            errors.push(RowError { line, message: bad.join("; ") });
            continue;
        }
        if let (Some(sku), Some(location), Some(on_hand), Ok(unit_price), Ok(unit_cost), Ok(supplier_id)) =
            (sku, location, on_hand, unit_price, unit_cost, supplier_id)
        {
            rows.push(ImportRow { line, sku, name, location, on_hand, unit_price, unit_cost, supplier_id });
        }
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push(RowError { line: 1, message: "the file has no rows".into() });
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// Applies validated rows: missing locations, the catalog (in batches), then
/// each row's on_hand through the engine with the operation id
/// `import:<file id>:<line>`.
pub async fn apply_import(
    engine: &Arc<Engine>,
    db: &PgPool,
    rows: &[ImportRow],
    file: &str,
    progress: &Progress,
) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    let mut report = ImportReport { rows: rows.len(), ..ImportReport::default() };

    // Locations named by the file that the catalog lacks.
    let wanted: Vec<String> =
        rows.iter().map(|r| r.location.to_string()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    report.locations_created = sqlx::query_scalar(
        "INSERT INTO locations (location_id, name, priority) SELECT l, l, 1000 FROM UNNEST($1::text[]) AS u(l)
         ON CONFLICT (location_id) DO NOTHING RETURNING location_id",
    )
    .bind(&wanted)
    .fetch_all(db)
    .await?;

    // The catalog: one upsert per SKU; absent prices keep what is stored.
    let mut firsts: BTreeMap<&str, &ImportRow> = BTreeMap::new();
    for r in rows {
        firsts.entry(r.sku.as_str()).or_insert(r);
    }
    let skus: Vec<&ImportRow> = firsts.into_values().collect();
    for chunk in skus.chunks(CHUNK) {
        sqlx::query(
            "INSERT INTO skus (sku, name, unit_price, unit_cost, supplier_id)
             SELECT s, n, COALESCE(p::numeric, 0), COALESCE(c::numeric, 0), sup
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(s, n, p, c, sup)
             ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name,
                 unit_price = COALESCE($3[array_position($1, skus.sku)]::numeric, skus.unit_price),
                 unit_cost = COALESCE($4[array_position($1, skus.sku)]::numeric, skus.unit_cost),
                 supplier_id = COALESCE(EXCLUDED.supplier_id, skus.supplier_id), update_time = now()",
        )
        .bind(chunk.iter().map(|r| r.sku.to_string()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.unit_price.as_ref().map(|m| m.as_str().to_owned())).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.unit_cost.as_ref().map(|m| m.as_str().to_owned())).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.supplier_id.as_ref().map(|s| s.to_string())).collect::<Vec<_>>())
        .execute(db)
        .await?;
    }
    report.skus = skus.len();
    futures::stream::iter(skus.iter().map(|r| engine.register_sku(&r.sku)))
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<bool>>()
        .await?;

    // Levels, once per file and line.
    let results: Vec<bool> = futures::stream::iter(rows.iter().map(|r| async move {
        let op = OperationId::parse(format!("import:{file}:{}", r.line))?;
        let a = engine.adjust(&r.sku, &r.location, StockChange::Set(r.on_hand), &op, "import").await?;
        progress.inc(1);
        anyhow::Ok(a.replayed)
    }))
    .buffer_unordered(PARALLEL)
    .try_collect()
    .await?;
    report.replayed = results.iter().filter(|r| **r).count();
    report.changed = results.len() - report.replayed;
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_file_parses_with_optional_columns() {
        let csv =
            "sku,name,location,on_hand,price,supplier\nA,Tee,WH1,5,19.99,acme\nB,Mug,WH1,0,,\nA,Tee,WH2,3,19.99,acme\n";
        let rows = parse_import(csv.as_bytes()).expect("valid");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].unit_price.as_ref().map(Money::as_str), Some("19.99"));
        assert_eq!(rows[1].unit_price, None);
        assert_eq!(rows[2].on_hand, 3);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let csv = "sku,name,location,on_hand\nA,Tee,WH1,5\nB B,Mug,WH1,1\nC,,WH1,1\nD,Cup,WH1,-4\nA,Tee,WH1,2\nE,Hat,WH 1,1\n";
        let errors = parse_import(csv.as_bytes()).expect_err("invalid");
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
        assert!(errors[3].message.contains("already on line 2"), "{}", errors[3]);
    }

    #[test]
    fn a_missing_column_or_an_empty_file_is_an_error() {
        assert!(parse_import(b"sku,name,on_hand\nA,B,1\n").is_err());
        assert!(parse_import(b"sku,name,location,on_hand\n").is_err());
    }

    #[test]
    fn conflicting_names_for_one_sku_are_refused() {
        let errors = parse_import(b"sku,name,location,on_hand\nA,Tee,WH1,1\nA,Shirt,WH2,1\n").expect_err("conflict");
        assert_eq!(errors[0].line, 3);
    }

    #[test]
    fn the_file_id_follows_the_content() {
        assert_eq!(file_id(b"abc"), file_id(b"abc"));
        assert_ne!(file_id(b"abc"), file_id(b"abd"));
    }
}
