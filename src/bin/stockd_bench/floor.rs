//! The floor: what this machine gives a server that does almost nothing, so
//! stockd's figures can be read against it. `floor-server` answers Reserve
//! through the same tonic stack stockd uses, either at once or after one
//! call of a bare hold script in Redis (`floor_hold.lua`: one EVALSHA per
//! request on one multiplexed connection); `floor` drives it with the flash
//! sale's buyers (the same client code, workers and connections).
//! `scripts/bench-floor.sh` runs both floors and stockd side by side.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use redis::Script;
use redis::aio::MultiplexedConnection;
use stockd::grpc::proto;
use stockd::grpc::proto::reservation_service_server::{ReservationService, ReservationServiceServer};
use tonic::{Request, Response, Status};

use crate::client::Clients;
use crate::load;
use crate::report::{self, Summary};
use crate::{CommonArgs, Outcome, flash_sale, progress, run_id};

/// `floor-server`'s settings.
#[derive(Debug, Args)]
pub struct FloorServerArgs {
    /// Where to serve gRPC.
    #[arg(long, default_value = "127.0.0.1:50061")]
    pub listen: SocketAddr,
    /// Run the bare hold script in this Redis for every Reserve; without
    /// it, Reserve answers at once.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Prefix of the keys the script writes there.
    #[arg(long, default_value = "stockd-floor")]
    pub redis_prefix: String,
}

/// `floor`'s settings (the database URL and baseline options are unused).
#[derive(Debug, Args)]
pub struct FloorArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// What the server under test is, for the report.
    #[arg(long, default_value = "floor")]
    pub label: String,
}

/// How long a floor hold lives (stockd's default).
const HOLD_TTL: Duration = Duration::from_secs(30 * 60);
/// The stock the script sells from: more than any run can reserve.
const FLOOR_STOCK: i64 = i64::MAX / 4;
/// The location a floor reservation names.
const LOCATION: &str = "FLOOR-L1";

/// The bare hold script (its KEYS/ARGV header is in the file).
static HOLD: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(include_str!("floor_hold.lua")));

/// The floor's ReservationService: Reserve only.
struct Floor {
    redis: Option<(MultiplexedConnection, String)>,
}

impl Floor {
    /// Holds `quantity` of `sku` for `order` in Redis (when there is one):
    /// false when the script finds too little stock.
    async fn hold(&self, sku: &str, order: &str, quantity: i64) -> Result<bool, Status> {
        let Some((conn, prefix)) = &self.redis else { return Ok(true) };
        let ttl_ms = HOLD_TTL.as_millis() as u64;
        let held: i64 = HOLD
            .key(format!("{prefix}:stock:{sku}"))
            .key(format!("{prefix}:hold:{order}"))
            .arg(quantity)
            .arg(ttl_ms)
            .arg(FLOOR_STOCK)
            .invoke_async(&mut conn.clone())
            .await
            .map_err(|e| Status::unavailable(format!("redis: {e}")))?;
        Ok(held == 1)
    }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn reserve_only() -> Status {
    Status::unimplemented("the floor server answers Reserve only")
}

#[tonic::async_trait]
impl ReservationService for Floor {
    async fn reserve(
        &self,
        request: Request<proto::ReserveRequest>,
    ) -> Result<Response<proto::ReserveResponse>, Status> {
        let req = request.into_inner();
        let [line] = req.lines.as_slice() else {
            return Err(Status::invalid_argument("lines: the floor server takes exactly one line"));
        };
        if line.quantity < 1 {
            return Err(Status::invalid_argument("lines[0].quantity: must be at least 1"));
        }
        if !self.hold(&line.sku, &req.order_id, line.quantity).await? {
            let outcome = proto::ReserveOutcome::InsufficientStock.into();
            return Ok(Response::new(proto::ReserveResponse { outcome, ..Default::default() }));
        }
        // An answer of the size stockd gives: the reservation with its line and times.
        let now = SystemTime::now();
        let reservation = proto::Reservation {
            status: proto::ReservationStatus::Active.into(),
            lines: vec![proto::ReservationLine {
                sku: line.sku.clone(),
                location_id: LOCATION.to_owned(),
                quantity: line.quantity,
            }],
            created_at: Some(timestamp(now)),
            expires_at: Some(timestamp(now + HOLD_TTL)),
            order_id: req.order_id,
            channel: req.channel,
            release_reason: String::new(),
        };
        Ok(Response::new(proto::ReserveResponse {
            outcome: proto::ReserveOutcome::Reserved.into(),
            reservation: Some(reservation),
            shortages: Vec::new(),
        }))
    }

    async fn extend(&self, _: Request<proto::ExtendRequest>) -> Result<Response<proto::ExtendResponse>, Status> {
        Err(reserve_only())
    }

    async fn commit(&self, _: Request<proto::CommitRequest>) -> Result<Response<proto::CommitResponse>, Status> {
        Err(reserve_only())
    }

    async fn fulfill(&self, _: Request<proto::FulfillRequest>) -> Result<Response<proto::FulfillResponse>, Status> {
        Err(reserve_only())
    }

    async fn release(&self, _: Request<proto::ReleaseRequest>) -> Result<Response<proto::ReleaseResponse>, Status> {
        Err(reserve_only())
    }

    async fn get_reservation(
        &self,
        _: Request<proto::GetReservationRequest>,
    ) -> Result<Response<proto::Reservation>, Status> {
        Err(reserve_only())
    }
}

/// Serves the floor until interrupted (SIGINT or SIGTERM).
pub async fn serve(args: &FloorServerArgs) -> anyhow::Result<()> {
    let redis = match &args.redis_url {
        Some(url) => {
            let client = redis::Client::open(url.as_str()).with_context(|| format!("--redis-url {url:?}"))?;
            let conn = client.get_multiplexed_async_connection().await.context("cannot connect to Redis")?;
            Some((conn, args.redis_prefix.clone()))
        }
        None => None,
    };
    let with = if redis.is_some() { "one hold script call per Reserve" } else { "answering at once" };
    progress!("floor-server on {}: {with}", args.listen);
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    // NODELAY as stockd sets it (see startup.rs).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tonic::transport::Server::builder()
        .add_service(ReservationServiceServer::new(Floor { redis }))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .context("floor-server")?;
    Ok(())
}

/// Drives a floor server (or anything serving Reserve) with the flash sale's
/// buyers. Nothing is set up first and no levels are read back: `oversold`
/// is null.
pub async fn run(args: &FloorArgs) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let (n, duration) = (c.concurrency(), c.duration());
    let run = run_id();
    let sku = format!("floor-{run}");
    let clients = Clients::connect(&c.grpc, c.connections(), c.token.as_deref()).await?;
    progress!(
        "floor {run} ({}): {n} workers on {} connections, {:.1} s",
        args.label,
        clients.len(),
        duration.as_secs_f64()
    );
    let measured = load::run(&args.label, n, duration, c.settle, |w, deadline| {
        flash_sale::buyer(clients.reservations(w), sku.clone(), format!("fl-{run}-{w}-"), deadline)
    })
    .await?;
    let notes = vec![report::describe(&args.label, &measured)];
    let mut summary = Summary::new("floor", n, &measured, 0, None);
    summary.oversold = None;
    Ok(Outcome { summary, notes })
}
