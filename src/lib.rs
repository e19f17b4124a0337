//! stockd: an inventory service whose reservations are Lua scripts run
//! atomically in Redis, with Postgres as the system of record.
//!
//! # Layout
//!
//! - `auth`: optional TLS and bearer tokens with roles (checkout, admin).
//! - `domain`: identifiers, quantities, levels and reservations, parsed once at
//!   the edge; no I/O, no protobuf.
//! - `reservation`: the engine. Every change to a stock number is one Lua
//!   script (`reservation/lua/*.lua`); `keys.rs` names every key; the sweeper
//!   expires holds on idle SKUs.
//! - `catalog`: SKUs, locations and suppliers in Postgres, the in-memory
//!   allocation order, and list paging (page sizes, opaque page tokens bound
//!   to their query).
//! - `cycle_count`: ABC classes, due counts, counts judged in the engine
//!   (`reservation/lua/count.lua`), investigations and the stop-sell they
//!   put on a SKU-location; the pure rules in `cycle_count/policy.rs`.
//! - `replenishment`: velocity and reorder points (pure `policy.rs`), the
//!   set-based suggestion query, reorder checks into draft POs, purchase
//!   orders moving in_transit and on_hand through the engine, the PO
//!   notification outbox, and the leader-only worker.
//! - `grpc`: the transport. Generated code, validation, one error mapping,
//!   thin handlers, health.
//! - `reconcile`: the reconciler (Redis event streams -> Postgres ledger and
//!   snapshot), led by one replica at a time; the quarantine of events
//!   Postgres refuses (the rest goes on), and the streams' backlog and lag.
//! - `recovery`: the generation marker, and rebuilding Redis from Postgres
//!   when it is lost.
//! - `ledger`: reading the system of record (movements) and the drift check.
//! - `spreadsheet`: CSV import and export (brands arrive from a spreadsheet).
//! - `db`: the Postgres pool, migrations and store-wide settings.
//! - `config`: settings from the environment (each documents its variable).
//! - `startup`: builds and runs the server; `local`: the zero-config demo mode.
//! - `telemetry`: logging; `metrics`: the Prometheus series; `http`: the
//!   HTTP side (/metrics, /healthz, /readyz).
//! - `limits`: connection limits on both ports (cap at accept, idle and send
//!   timeouts, bounded request bodies); HTTP/2 stream limits and pings are set
//!   in `startup`, request slots in `grpc`'s guard.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod cycle_count;
pub mod db;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod local;
pub mod metrics;
pub mod reconcile;
pub mod recovery;
pub mod replenishment;
pub mod reservation;
pub mod spreadsheet;
pub mod startup;
pub mod state;
pub mod telemetry;

// mimalloc instead of the system allocator: request handling allocates many
// small short-lived buffers (HTTP/2 frames, RESP values, key strings), and
// glibc malloc spent about a quarter of the server's CPU on them under load
// (perf, flash-sale benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
