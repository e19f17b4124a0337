//! Generates the gRPC code for `proto/inventory/v1` and the descriptor set that
//! server reflection serves. protoc comes from `protoc-bin-vendored`, so a fresh
//! machine needs no system package.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos = [
        "proto/inventory/v1/common.proto",
        "proto/inventory/v1/reservation.proto",
        "proto/inventory/v1/stock.proto",
        "proto/inventory/v1/catalog.proto",
        "proto/inventory/v1/cycle_count.proto",
        "proto/inventory/v1/replenishment.proto",
    ];
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("inventory_descriptor.bin"))
        .compile_with_config(config, &protos.map(PathBuf::from), &[PathBuf::from("proto"), well_known])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    // sqlx::migrate! embeds migrations/ at compile time; a new file there must
    // rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
