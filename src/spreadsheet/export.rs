//! `stockd export`: current levels (all five numbers) with the catalog
//! columns, one row per SKU-location, in a form `stockd import` takes back.

use std::io::Write;

use sqlx::PgPool;

use crate::domain::Sku;
use crate::reservation::Engine;

/// The columns written.
pub const EXPORT_HEADER: [&str; 11] = [
    "sku",
    "name",
    "location",
    "on_hand",
    "reserved",
    "committed",
    "in_transit",
    "available",
    "unit_price",
    "unit_cost",
    "supplier_id",
];

/// Writes every catalog SKU's levels at every location it has; returns the
/// number of rows written.
pub async fn export(engine: &Engine, db: &PgPool, out: impl Write) -> anyhow::Result<usize> {
    let skus: Vec<(String, String, String, String, Option<String>)> =
        sqlx::query_as("SELECT sku, name, unit_price::text, unit_cost::text, supplier_id FROM skus ORDER BY sku")
            .fetch_all(db)
            .await?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(EXPORT_HEADER)?;
    let mut rows = 0;
    for chunk in skus.chunks(1000) {
        let known: Vec<_> = chunk.iter().filter_map(|s| Sku::parse(s.0.as_str()).ok().map(|id| (s, id))).collect();
        let ids: Vec<Sku> = known.iter().map(|(_, id)| id.clone()).collect();
        let levels = engine.levels(&ids, None).await?;
        for (((sku, name, price, cost, supplier), _), item) in known.into_iter().zip(levels) {
            for l in item.locations {
                let n = l.levels;
                w.write_record([
                    sku.as_str(),
                    name.as_str(),
                    l.location_id.as_str(),
                    &n.on_hand.to_string(),
                    &n.reserved.to_string(),
                    &n.committed.to_string(),
                    &n.in_transit.to_string(),
                    &n.available().to_string(),
                    price.as_str(),
                    cost.as_str(),
                    supplier.as_deref().unwrap_or(""),
                ])?;
                rows += 1;
            }
        }
    }
    w.flush()?;
    Ok(rows)
}
