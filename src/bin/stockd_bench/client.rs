//! gRPC connections to the stockd under test, and the setup calls both
//! scenarios share. Several HTTP/2 connections are opened because one
//! connection (one socket, one server task reading it) becomes the
//! bottleneck long before the server does; worker i uses connection i mod C.

use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use stockd::grpc::proto;
use stockd::grpc::proto::catalog_service_client::CatalogServiceClient;
use stockd::grpc::proto::reservation_service_client::ReservationServiceClient;
use stockd::grpc::proto::stock_service_client::StockServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Per-request deadline: a hung server shows up as errors, not a hung bench.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Most SKUs one GetAvailability may ask for.
pub const AVAILABILITY_BATCH: usize = 1000;

/// A fixed set of HTTP/2 connections to one server, and the bearer token
/// every call carries (when the server wants one).
#[derive(Clone)]
pub struct Clients {
    channels: Vec<Channel>,
    auth: Bearer,
}

/// The transport every generated client runs on: a channel whose requests
/// get the `authorization` header.
pub type Svc = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to each request; nothing without a token.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// The header for `token` (None: no header).
    pub fn new(token: Option<&str>) -> anyhow::Result<Self> {
        let value = token
            .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
            .transpose()
            .map_err(|_| anyhow::anyhow!("--token must be printable ASCII"))?;
        Ok(Self(value))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl Clients {
    /// Opens `connections` connections to `addr` (`host:port` or a URI);
    /// every call carries `token` as a bearer token when given.
    pub async fn connect(addr: &str, connections: usize, token: Option<&str>) -> anyhow::Result<Self> {
        let auth = Bearer::new(token)?;
        let uri = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        let endpoint = Endpoint::from_shared(uri.clone())
            .with_context(|| format!("--grpc {addr:?} is not a valid address"))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT);
        let mut channels = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            channels.push(endpoint.connect().await.with_context(|| format!("cannot connect to stockd at {uri}"))?);
        }
        Ok(Self { channels, auth })
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    fn channel(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }

    /// A ReservationService client on connection i mod C.
    pub fn reservations(&self, i: usize) -> ReservationServiceClient<Svc> {
        ReservationServiceClient::with_interceptor(self.channel(i), self.auth.clone())
    }

    /// A StockService client on connection i mod C.
    pub fn stock(&self, i: usize) -> StockServiceClient<Svc> {
        StockServiceClient::with_interceptor(self.channel(i), self.auth.clone())
    }

    /// A CatalogService client on connection i mod C.
    pub fn catalog(&self, i: usize) -> CatalogServiceClient<Svc> {
        CatalogServiceClient::with_interceptor(self.channel(i), self.auth.clone())
    }

    /// Creates (or updates) locations `ids`, priority by position (1 first).
    pub async fn upsert_locations(&self, ids: &[String]) -> anyhow::Result<()> {
        for (i, id) in ids.iter().enumerate() {
            let priority = i32::try_from(i + 1).unwrap_or(i32::MAX);
            self.catalog(0)
                .upsert_location(proto::UpsertLocationRequest { location_id: id.clone(), name: id.clone(), priority })
                .await
                .with_context(|| format!("UpsertLocation {id}"))?;
        }
        Ok(())
    }

    /// Creates SKUs `sku(0..n)` with `concurrency` calls in flight.
    pub async fn upsert_skus(&self, n: usize, concurrency: usize, sku: impl Fn(usize) -> String) -> anyhow::Result<()> {
        futures::stream::iter(0..n)
            .map(|i| {
                let mut client = self.catalog(i);
                let sku = sku(i);
                async move {
                    let req = proto::UpsertSkuRequest {
                        name: sku.clone(),
                        sku: sku.clone(),
                        unit_price: "9.99".into(),
                        ..Default::default()
                    };
                    client.upsert_sku(req).await.with_context(|| format!("UpsertSku {sku}")).map(drop)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// Sets on_hand of each (sku, location) to `on_hand`, `concurrency` calls
    /// in flight. `op(sku, location)` names each operation so that a replay
    /// changes nothing.
    pub async fn set_on_hand_all(
        &self,
        targets: impl Iterator<Item = (String, String)>,
        on_hand: i64,
        concurrency: usize,
        op: impl Fn(&str, &str) -> String,
    ) -> anyhow::Result<()> {
        futures::stream::iter(targets.enumerate())
            .map(|(i, (sku, location_id))| {
                let mut client = self.stock(i);
                let operation_id = op(&sku, &location_id);
                async move {
                    let req = proto::SetOnHandRequest {
                        sku: sku.clone(),
                        location_id: location_id.clone(),
                        on_hand,
                        reason: proto::AdjustmentReason::Import.into(),
                        operation_id,
                    };
                    client.set_on_hand(req).await.with_context(|| format!("SetOnHand {sku}@{location_id}")).map(drop)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<()>()
            .await
    }

    /// The availability of `skus` (any number; asked in batches).
    pub async fn availability(&self, skus: &[String]) -> anyhow::Result<Vec<proto::SkuAvailability>> {
        let batches: Vec<Vec<String>> = skus.chunks(AVAILABILITY_BATCH).map(<[String]>::to_vec).collect();
        let answers: Vec<Vec<proto::SkuAvailability>> = futures::stream::iter(batches.into_iter().enumerate())
            .map(|(i, skus)| {
                let mut client = self.stock(i);
                async move {
                    let req = proto::GetAvailabilityRequest { skus, location_id: String::new() };
                    client.get_availability(req).await.context("GetAvailability").map(|r| r.into_inner().items)
                }
            })
            .buffered(self.len().max(4))
            .try_collect()
            .await?;
        Ok(answers.into_iter().flatten().collect())
    }
}

/// Units promised beyond the stock: for every SKU-location, how far
/// reserved + committed exceed on_hand (available below zero), summed.
pub fn oversold_units(items: &[proto::SkuAvailability]) -> i64 {
    items.iter().flat_map(|i| &i.levels).map(|l| (l.reserved + l.committed - l.on_hand).max(0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(on_hand: i64, reserved: i64, committed: i64) -> proto::LocationLevel {
        proto::LocationLevel {
            location_id: "L".into(),
            on_hand,
            reserved,
            committed,
            in_transit: 0,
            available: on_hand - reserved - committed,
            stop_sell: false,
        }
    }

    #[test]
    fn oversold_counts_only_what_exceeds_on_hand() {
        let items = vec![
            proto::SkuAvailability { levels: vec![level(10, 4, 6), level(5, 1, 0)], ..Default::default() },
            proto::SkuAvailability { levels: vec![level(3, 4, 1)], ..Default::default() },
        ];
        assert_eq!(oversold_units(&items), 2);
    }

    #[test]
    fn the_bearer_interceptor_adds_the_header_only_with_a_token() {
        let mut with = Bearer::new(Some("0123456789abcdef")).expect("ascii");
        let req = with.call(tonic::Request::new(())).expect("passes");
        assert_eq!(req.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer 0123456789abcdef"));
        let mut without = Bearer::new(None).expect("none");
        assert!(without.call(tonic::Request::new(())).expect("passes").metadata().get("authorization").is_none());
        assert!(Bearer::new(Some("bad\ntoken")).is_err());
    }
}
