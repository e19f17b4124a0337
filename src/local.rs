//! Zero-config local mode (`stockd local`): everything a first try needs.

use std::net::SocketAddr;

use anyhow::Context;

use crate::catalog::{LocationStore, Money, NewLocation, NewSku, SkuStore};
use crate::config::Config;
use crate::db;
use crate::domain::{LocationId, OperationId, Sku};
use crate::reservation::StockChange;
use crate::startup::{Application, connect_engine};

/// Demo locations: (id, name, priority).
const LOCATIONS: [(&str, &str, i32); 2] = [("WH-EAST", "East warehouse", 1), ("WH-WEST", "West warehouse", 2)];

/// Demo SKUs: (sku, name, price, stock at WH-EAST, stock at WH-WEST).
const SKUS: [(&str, &str, &str, i64, i64); 3] = [
    ("TEE-BLK-M", "Black tee, M (flash sale)", "19.99", 100, 0),
    ("MUG-WHT", "White mug", "12.50", 40, 25),
    ("HOODIE-GRY-L", "Grey hoodie, L", "49.00", 3, 2),
];

/// Creates the database if missing, migrates, loads the demo catalog and
/// stock (only for SKUs that are new, so a restart keeps what you did),
/// prints what to try, and serves on 127.0.0.1:50051 (HTTP on 127.0.0.1:8080)
/// unless told otherwise.
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    // Local mode listens on loopback only, unless told otherwise.
    if std::env::var_os("STOCKD_GRPC_ADDR").is_none() {
        config.grpc_addr = SocketAddr::from(([127, 0, 0, 1], 50051));
    }
    if std::env::var_os("STOCKD_HTTP_ADDR").is_none() {
        config.http_addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    }
    db::ensure_database(&config.database_url).await?;
    let pool = db::connect(&config).await?;
    db::migrate(&pool, &config).await?;
    let engine = connect_engine(&config, &pool, crate::metrics::Metrics::new()?).await?;

    let locations = LocationStore::new(pool.clone());
    for (id, name, priority) in LOCATIONS {
        let location_id = LocationId::parse(id)?;
        locations.upsert(&NewLocation { location_id, name: name.into(), priority }).await?;
    }
    let skus = SkuStore::new(pool.clone());
    for (sku, name, price, east, west) in SKUS {
        let sku = Sku::parse(sku)?;
        let new = NewSku {
            sku: sku.clone(),
            name: name.into(),
            unit_price: Money::parse(price).map_err(anyhow::Error::msg)?,
            unit_cost: Money::parse("").map_err(anyhow::Error::msg)?,
            supplier_id: None,
            reorder_point: None,
            case_pack: 1,
            fallback_velocity: None,
        };
        skus.upsert(&new).await?;
        if engine.register_sku(&sku).await? {
            for (loc, qty) in [("WH-EAST", east), ("WH-WEST", west)] {
                if qty > 0 {
                    let op = OperationId::parse(format!("demo:{sku}:{loc}"))?;
                    engine.adjust(&sku, &LocationId::parse(loc)?, StockChange::Set(qty), &op, "import").await?;
                }
            }
        }
    }
    pool.close().await;

    let app = Application::build(config).await.context("starting the server")?;
    print_try_this(app.addr());
    app.run_until_stopped(crate::cli::shutdown_signal()).await
}

fn print_try_this(addr: SocketAddr) {
    let a = addr.to_string();
    println!(
        r#"
stockd is serving on {a} (demo data: TEE-BLK-M has 100 at WH-EAST; MUG-WHT; HOODIE-GRY-L).
Try, in another terminal:

  grpcurl -plaintext {a} list
  grpcurl -plaintext -d '{{"skus":["TEE-BLK-M","MUG-WHT"]}}' {a} inventory.v1.StockService/GetAvailability
  grpcurl -plaintext -d '{{"order_id":"order-1","lines":[{{"sku":"TEE-BLK-M","quantity":2}}]}}' {a} inventory.v1.ReservationService/Reserve
  grpcurl -plaintext -d '{{"order_id":"order-1"}}' {a} inventory.v1.ReservationService/Commit
  grpcurl -plaintext -d '{{"order_id":"order-1"}}' {a} inventory.v1.ReservationService/Fulfill
  grpcurl -plaintext -d '{{"order_id":"order-2","lines":[{{"sku":"HOODIE-GRY-L","quantity":9}}]}}' {a} inventory.v1.ReservationService/Reserve
  grpcurl -plaintext -d '{{"service":"inventory.v1.ReservationService"}}' {a} grpc.health.v1.Health/Check

Stop with Ctrl-C.
"#
    );
}
