//! No request makes the server fail: every string field of every request of
//! every inventory.v1 RPC, fed arbitrary Unicode (NUL, control characters,
//! bidi marks, multi-byte and astral characters, noncharacters, strings up
//! to the message-size limit, empty), is answered OK or with a deliberate
//! client error that names the field, never INTERNAL, UNKNOWN or CANCELLED
//! (a panic), and the server keeps answering normal calls.
//!
//! The strings come from a fixed corpus and a seeded generator: the same
//! seed replays the same run. `STOCKD_FUZZ_SEED=<u64>` picks another seed;
//! a failure prints the seed, the RPC, the field and the value.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use common::{TestApp, violated_fields};
use futures::FutureExt;
use futures::future::BoxFuture;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stockd::grpc::proto::{
    self, catalog_service_client::CatalogServiceClient as Catalog,
    cycle_count_service_client::CycleCountServiceClient as Counts,
    replenishment_service_client::ReplenishmentServiceClient as Replenishment,
    reservation_service_client::ReservationServiceClient as Reservations,
    stock_service_client::StockServiceClient as Stock,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The server's request size limit (tonic's default decoding limit).
const MESSAGE_LIMIT: usize = 4 * 1024 * 1024;
/// The seed used unless STOCKD_FUZZ_SEED says otherwise.
const DEFAULT_SEED: u64 = 0x5700_cd17;
/// Randomly generated strings per field, on top of the fixed corpus.
const RANDOM_PER_FIELD: usize = 4;

/// Answers that are a deliberate refusal of the input (or success).
const CLIENT_CODES: [Code; 6] =
    [Code::Ok, Code::InvalidArgument, Code::NotFound, Code::FailedPrecondition, Code::AlreadyExists, Code::OutOfRange];

type Call = Box<dyn Fn(Channel, String) -> BoxFuture<'static, Result<(), Status>> + Send + Sync>;

/// One string field of one RPC, and how to call the RPC with a value in it
/// (every other field valid, so the value is what is tested).
struct Target {
    /// `Service/Method`, as the descriptors name it.
    rpc: &'static str,
    /// The field path, as the BadRequest details name it.
    field: &'static str,
    call: Call,
}

fn target<F, Fut>(rpc: &'static str, field: &'static str, call: F) -> Target
where
    F: Fn(Channel, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    Target { rpc, field, call: Box::new(move |ch, s| call(ch, s).boxed()) }
}

fn fresh_order() -> String {
    format!("fz-{}", uuid::Uuid::new_v4().simple())
}

fn reserve(order_id: &str, sku: &str, location_id: &str, channel: &str) -> proto::ReserveRequest {
    proto::ReserveRequest {
        order_id: order_id.into(),
        lines: vec![proto::ReserveLine { sku: sku.into(), quantity: 1, location_id: location_id.into() }],
        ttl: None,
        channel: channel.into(),
    }
}

fn minute() -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: 60, nanos: 0 })
}

fn adjust(sku: &str, location_id: &str, operation_id: &str) -> proto::AdjustStockRequest {
    proto::AdjustStockRequest {
        sku: sku.into(),
        location_id: location_id.into(),
        delta: 1,
        reason: proto::AdjustmentReason::Received.into(),
        operation_id: operation_id.into(),
    }
}

fn set_on_hand(sku: &str, location_id: &str, operation_id: &str) -> proto::SetOnHandRequest {
    proto::SetOnHandRequest {
        sku: sku.into(),
        location_id: location_id.into(),
        on_hand: 1_000_000,
        reason: proto::AdjustmentReason::Count.into(),
        operation_id: operation_id.into(),
    }
}

fn movements(sku: &str, location_id: &str, page_token: &str) -> proto::ListMovementsRequest {
    proto::ListMovementsRequest {
        sku: sku.into(),
        location_id: location_id.into(),
        page_size: 2,
        page_token: page_token.into(),
    }
}

fn upsert_sku(f: impl FnOnce(&mut proto::UpsertSkuRequest)) -> proto::UpsertSkuRequest {
    let mut r = proto::UpsertSkuRequest {
        sku: "FZ".into(),
        name: "Fuzz".into(),
        unit_price: "1.50".into(),
        unit_cost: "0.75".into(),
        supplier_id: "acme".into(),
        reorder_point: None,
        case_pack: Some(1),
        fallback_velocity: None,
    };
    f(&mut r);
    r
}

fn supplier(f: impl FnOnce(&mut proto::UpsertSupplierRequest)) -> proto::UpsertSupplierRequest {
    let mut r = proto::UpsertSupplierRequest {
        supplier_id: "acme".into(),
        name: "Acme".into(),
        lead_time_days: 7,
        min_order_quantity: 0,
        notify_url: String::new(),
        auto_submit: false,
        service_level: None,
    };
    f(&mut r);
    r
}

fn suggestions(f: impl FnOnce(&mut proto::GetReorderSuggestionsRequest)) -> proto::GetReorderSuggestionsRequest {
    let mut r = proto::GetReorderSuggestionsRequest { page_size: 2, ..Default::default() };
    f(&mut r);
    r
}

/// A receipt on a purchase order (none exists: NOT_FOUND once the fields pass).
fn receipt(po_id: &str, sku: &str, operation_id: &str) -> proto::ReceivePurchaseOrderRequest {
    proto::ReceivePurchaseOrderRequest {
        po_id: po_id.into(),
        lines: vec![proto::ReceiptLine { sku: sku.into(), quantity: 1 }],
        operation_id: operation_id.into(),
    }
}

/// A count of A's on_hand as it stands (1,000,000 in `arrange`): matched,
/// so the fuzz changes no number.
fn count(sku: &str, location_id: &str, counted_by: &str, operation_id: &str) -> proto::SubmitCountRequest {
    proto::SubmitCountRequest {
        sku: sku.into(),
        location_id: location_id.into(),
        counted: 1_000_000,
        counted_by: counted_by.into(),
        operation_id: operation_id.into(),
    }
}

fn resolve(investigation_id: &str, resolved_by: &str, note: &str) -> proto::ResolveInvestigationRequest {
    proto::ResolveInvestigationRequest {
        investigation_id: investigation_id.into(),
        accepted_on_hand: 1_000_000,
        resolved_by: resolved_by.into(),
        note: note.into(),
    }
}

/// Every (RPC, string field) the test sends arbitrary text to.
fn targets() -> Vec<Target> {
    vec![
        // ReservationService
        target("ReservationService/Reserve", "order_id", |ch, s| async move {
            Reservations::new(ch).reserve(reserve(&s, "A", "", "")).await.map(drop)
        }),
        target("ReservationService/Reserve", "lines[0].sku", |ch, s| async move {
            Reservations::new(ch).reserve(reserve(&fresh_order(), &s, "", "")).await.map(drop)
        }),
        target("ReservationService/Reserve", "lines[0].location_id", |ch, s| async move {
            Reservations::new(ch).reserve(reserve(&fresh_order(), "A", &s, "")).await.map(drop)
        }),
        target("ReservationService/Reserve", "channel", |ch, s| async move {
            Reservations::new(ch).reserve(reserve(&fresh_order(), "A", "", &s)).await.map(drop)
        }),
        target("ReservationService/Extend", "order_id", |ch, s| async move {
            Reservations::new(ch).extend(proto::ExtendRequest { order_id: s, ttl: minute() }).await.map(drop)
        }),
        target("ReservationService/Commit", "order_id", |ch, s| async move {
            Reservations::new(ch).commit(proto::CommitRequest { order_id: s }).await.map(drop)
        }),
        target("ReservationService/Fulfill", "order_id", |ch, s| async move {
            Reservations::new(ch).fulfill(proto::FulfillRequest { order_id: s }).await.map(drop)
        }),
        target("ReservationService/Release", "order_id", |ch, s| async move {
            let r = proto::ReleaseRequest { order_id: s, reason: "cancelled".into() };
            Reservations::new(ch).release(r).await.map(drop)
        }),
        target("ReservationService/Release", "reason", |ch, s| async move {
            // A reservation of its own, so that an accepted reason is stored.
            let order = fresh_order();
            let mut client = Reservations::new(ch);
            client.reserve(reserve(&order, "A", "", "")).await?;
            let released = client.release(proto::ReleaseRequest { order_id: order, reason: s.clone() }).await?;
            let stored = released.into_inner().reservation.map(|r| r.release_reason);
            assert_eq!(stored.as_deref(), Some(s.as_str()), "an accepted reason is kept as given");
            Ok(())
        }),
        target("ReservationService/GetReservation", "order_id", |ch, s| async move {
            Reservations::new(ch).get_reservation(proto::GetReservationRequest { order_id: s }).await.map(drop)
        }),
        // StockService
        target("StockService/GetAvailability", "skus[0]", |ch, s| async move {
            let r = proto::GetAvailabilityRequest { skus: vec![s], location_id: String::new() };
            Stock::new(ch).get_availability(r).await.map(drop)
        }),
        target("StockService/GetAvailability", "location_id", |ch, s| async move {
            let r = proto::GetAvailabilityRequest { skus: vec!["A".into()], location_id: s };
            Stock::new(ch).get_availability(r).await.map(drop)
        }),
        target("StockService/AdjustStock", "sku", |ch, s| async move {
            Stock::new(ch).adjust_stock(adjust(&s, "WH1", "")).await.map(drop)
        }),
        target("StockService/AdjustStock", "location_id", |ch, s| async move {
            Stock::new(ch).adjust_stock(adjust("A", &s, "")).await.map(drop)
        }),
        target("StockService/AdjustStock", "operation_id", |ch, s| async move {
            Stock::new(ch).adjust_stock(adjust("A", "WH1", &s)).await.map(drop)
        }),
        target("StockService/SetOnHand", "sku", |ch, s| async move {
            Stock::new(ch).set_on_hand(set_on_hand(&s, "WH1", "")).await.map(drop)
        }),
        target("StockService/SetOnHand", "location_id", |ch, s| async move {
            Stock::new(ch).set_on_hand(set_on_hand("A", &s, "")).await.map(drop)
        }),
        target("StockService/SetOnHand", "operation_id", |ch, s| async move {
            Stock::new(ch).set_on_hand(set_on_hand("A", "WH1", &s)).await.map(drop)
        }),
        target("StockService/ListMovements", "sku", |ch, s| async move {
            Stock::new(ch).list_movements(movements(&s, "", "")).await.map(drop)
        }),
        target("StockService/ListMovements", "location_id", |ch, s| async move {
            Stock::new(ch).list_movements(movements("A", &s, "")).await.map(drop)
        }),
        target("StockService/ListMovements", "page_token", |ch, s| async move {
            Stock::new(ch).list_movements(movements("A", "", &s)).await.map(drop)
        }),
        // CatalogService
        target("CatalogService/UpsertSku", "sku", |ch, s| async move {
            Catalog::new(ch).upsert_sku(upsert_sku(|r| r.sku = s)).await.map(drop)
        }),
        target("CatalogService/UpsertSku", "name", |ch, s| async move {
            let stored = Catalog::new(ch).upsert_sku(upsert_sku(|r| r.name = s.clone())).await?.into_inner();
            assert_eq!(stored.name, s, "an accepted name is stored as given");
            Ok(())
        }),
        target("CatalogService/UpsertSku", "unit_price", |ch, s| async move {
            Catalog::new(ch).upsert_sku(upsert_sku(|r| r.unit_price = s)).await.map(drop)
        }),
        target("CatalogService/UpsertSku", "unit_cost", |ch, s| async move {
            Catalog::new(ch).upsert_sku(upsert_sku(|r| r.unit_cost = s)).await.map(drop)
        }),
        target("CatalogService/UpsertSku", "supplier_id", |ch, s| async move {
            Catalog::new(ch).upsert_sku(upsert_sku(|r| r.supplier_id = s)).await.map(drop)
        }),
        target("CatalogService/GetSku", "sku", |ch, s| async move {
            Catalog::new(ch).get_sku(proto::GetSkuRequest { sku: s }).await.map(drop)
        }),
        target("CatalogService/ListSkus", "page_token", |ch, s| async move {
            Catalog::new(ch).list_skus(proto::ListSkusRequest { page_size: 2, page_token: s }).await.map(drop)
        }),
        target("CatalogService/UpsertLocation", "location_id", |ch, s| async move {
            let r = proto::UpsertLocationRequest { location_id: s, name: "Fuzz".into(), priority: 50 };
            Catalog::new(ch).upsert_location(r).await.map(drop)
        }),
        target("CatalogService/UpsertLocation", "name", |ch, s| async move {
            let r = proto::UpsertLocationRequest { location_id: "WH1".into(), name: s.clone(), priority: 1 };
            let stored = Catalog::new(ch).upsert_location(r).await?.into_inner();
            assert_eq!(stored.name, s, "an accepted name is stored as given");
            Ok(())
        }),
        target("CatalogService/ListLocations", "page_token", |ch, s| async move {
            let r = proto::ListLocationsRequest { page_size: 2, page_token: s };
            Catalog::new(ch).list_locations(r).await.map(drop)
        }),
        target("CatalogService/UpsertSupplier", "supplier_id", |ch, s| async move {
            Catalog::new(ch).upsert_supplier(supplier(|r| r.supplier_id = s)).await.map(drop)
        }),
        target("CatalogService/UpsertSupplier", "name", |ch, s| async move {
            let stored = Catalog::new(ch).upsert_supplier(supplier(|r| r.name = s.clone())).await?.into_inner();
            assert_eq!(stored.name, s, "an accepted name is stored as given");
            Ok(())
        }),
        target("CatalogService/UpsertSupplier", "notify_url", |ch, s| async move {
            Catalog::new(ch).upsert_supplier(supplier(|r| r.notify_url = s)).await.map(drop)
        }),
        target("CatalogService/GetSupplier", "supplier_id", |ch, s| async move {
            Catalog::new(ch).get_supplier(proto::GetSupplierRequest { supplier_id: s }).await.map(drop)
        }),
        target("CatalogService/ListSuppliers", "page_token", |ch, s| async move {
            Catalog::new(ch).list_suppliers(proto::ListSuppliersRequest { page_size: 2, page_token: s }).await.map(drop)
        }),
        // ReplenishmentService
        target("ReplenishmentService/GetReorderSuggestions", "location_id", |ch, s| async move {
            Replenishment::new(ch).get_reorder_suggestions(suggestions(|r| r.location_id = s)).await.map(drop)
        }),
        target("ReplenishmentService/GetReorderSuggestions", "supplier_id", |ch, s| async move {
            Replenishment::new(ch).get_reorder_suggestions(suggestions(|r| r.supplier_id = s)).await.map(drop)
        }),
        target("ReplenishmentService/GetReorderSuggestions", "page_token", |ch, s| async move {
            Replenishment::new(ch).get_reorder_suggestions(suggestions(|r| r.page_token = s)).await.map(drop)
        }),
        target("ReplenishmentService/ListPurchaseOrders", "supplier_id", |ch, s| async move {
            let r = proto::ListPurchaseOrdersRequest { supplier_id: s, page_size: 2, ..Default::default() };
            Replenishment::new(ch).list_purchase_orders(r).await.map(drop)
        }),
        target("ReplenishmentService/ListPurchaseOrders", "page_token", |ch, s| async move {
            let r = proto::ListPurchaseOrdersRequest { page_token: s, page_size: 2, ..Default::default() };
            Replenishment::new(ch).list_purchase_orders(r).await.map(drop)
        }),
        target("ReplenishmentService/GetPurchaseOrder", "po_id", |ch, s| async move {
            Replenishment::new(ch).get_purchase_order(proto::GetPurchaseOrderRequest { po_id: s }).await.map(drop)
        }),
        target("ReplenishmentService/SubmitPurchaseOrder", "po_id", |ch, s| async move {
            Replenishment::new(ch).submit_purchase_order(proto::SubmitPurchaseOrderRequest { po_id: s }).await.map(drop)
        }),
        target("ReplenishmentService/CancelPurchaseOrder", "po_id", |ch, s| async move {
            Replenishment::new(ch).cancel_purchase_order(proto::CancelPurchaseOrderRequest { po_id: s }).await.map(drop)
        }),
        target("ReplenishmentService/ReceivePurchaseOrder", "po_id", |ch, s| async move {
            Replenishment::new(ch).receive_purchase_order(receipt(&s, "A", "rcv-1")).await.map(drop)
        }),
        target("ReplenishmentService/ReceivePurchaseOrder", "lines[0].sku", |ch, s| async move {
            Replenishment::new(ch).receive_purchase_order(receipt("PO-none", &s, "rcv-1")).await.map(drop)
        }),
        target("ReplenishmentService/ReceivePurchaseOrder", "operation_id", |ch, s| async move {
            Replenishment::new(ch).receive_purchase_order(receipt("PO-none", "A", &s)).await.map(drop)
        }),
        // CycleCountService
        target("CycleCountService/ListAbcClasses", "page_token", |ch, s| async move {
            Counts::new(ch)
                .list_abc_classes(proto::ListAbcClassesRequest { page_size: 2, page_token: s })
                .await
                .map(drop)
        }),
        target("CycleCountService/SetAbcClass", "sku", |ch, s| async move {
            let r = proto::SetAbcClassRequest { sku: s, abc_class: proto::AbcClass::B.into() };
            Counts::new(ch).set_abc_class(r).await.map(drop)
        }),
        target("CycleCountService/ListDueCounts", "location_id", |ch, s| async move {
            let r = proto::ListDueCountsRequest { location_id: s, page_size: 2, page_token: String::new() };
            Counts::new(ch).list_due_counts(r).await.map(drop)
        }),
        target("CycleCountService/ListDueCounts", "page_token", |ch, s| async move {
            let r = proto::ListDueCountsRequest { location_id: String::new(), page_size: 2, page_token: s };
            Counts::new(ch).list_due_counts(r).await.map(drop)
        }),
        target("CycleCountService/SubmitCount", "sku", |ch, s| async move {
            Counts::new(ch).submit_count(count(&s, "WH1", "fuzzer", "")).await.map(drop)
        }),
        target("CycleCountService/SubmitCount", "location_id", |ch, s| async move {
            Counts::new(ch).submit_count(count("A", &s, "fuzzer", "")).await.map(drop)
        }),
        target("CycleCountService/SubmitCount", "counted_by", |ch, s| async move {
            Counts::new(ch).submit_count(count("A", "WH1", &s, "")).await.map(drop)
        }),
        target("CycleCountService/SubmitCount", "operation_id", |ch, s| async move {
            Counts::new(ch).submit_count(count("A", "WH1", "fuzzer", &s)).await.map(drop)
        }),
        target("CycleCountService/ListInvestigations", "page_token", |ch, s| async move {
            let r = proto::ListInvestigationsRequest { status: 0, page_size: 2, page_token: s };
            Counts::new(ch).list_investigations(r).await.map(drop)
        }),
        target("CycleCountService/ResolveInvestigation", "investigation_id", |ch, s| async move {
            Counts::new(ch).resolve_investigation(resolve(&s, "lead", "")).await.map(drop)
        }),
        target("CycleCountService/ResolveInvestigation", "resolved_by", |ch, s| async move {
            Counts::new(ch).resolve_investigation(resolve("no-such-investigation", &s, "")).await.map(drop)
        }),
        target("CycleCountService/ResolveInvestigation", "note", |ch, s| async move {
            Counts::new(ch).resolve_investigation(resolve("no-such-investigation", "lead", &s)).await.map(drop)
        }),
    ]
}

/// Every (RPC, string field path) of the inventory.v1 services, read from the
/// descriptors the server itself serves: a new RPC or string field that the
/// table above does not fuzz fails the completeness test.
fn string_fields_of_every_rpc() -> BTreeSet<(String, String)> {
    use prost_types::DescriptorProto;
    use prost_types::field_descriptor_proto::{Label, Type};
    type Messages<'a> = HashMap<String, &'a DescriptorProto>;

    fn walk(m: &DescriptorProto, prefix: &str, messages: &Messages<'_>, out: &mut Vec<String>) {
        for f in &m.field {
            let path = match f.label() {
                Label::Repeated => format!("{prefix}{}[0]", f.name()),
                _ => format!("{prefix}{}", f.name()),
            };
            match f.r#type() {
                Type::String => out.push(path),
                // Only our own messages: google.protobuf's (Duration,
                // Timestamp) hold no strings.
                Type::Message => {
                    if let Some(inner) = messages.get(f.type_name()) {
                        walk(inner, &format!("{path}."), messages, out);
                    }
                }
                _ => {}
            }
        }
    }

    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).expect("descriptors decode");
    let files: Vec<_> = set.file.iter().filter(|f| f.package() == "inventory.v1").collect();
    let messages: Messages<'_> =
        files.iter().flat_map(|f| &f.message_type).map(|m| (format!(".inventory.v1.{}", m.name()), m)).collect();
    let mut all = BTreeSet::new();
    for file in &files {
        for service in &file.service {
            for method in &service.method {
                let input = messages.get(method.input_type()).expect("request message is in inventory.v1");
                let mut fields = Vec::new();
                walk(input, "", &messages, &mut fields);
                for field in fields {
                    all.insert((format!("{}/{}", service.name(), method.name()), field));
                }
            }
        }
    }
    all
}

fn seed() -> u64 {
    std::env::var("STOCKD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED)
}

/// A random Unicode scalar (never a surrogate), weighted towards ASCII and
/// the BMP where the interesting characters are.
fn random_char(rng: &mut StdRng) -> char {
    loop {
        let cp = match rng.random_range(0..10) {
            0..=3 => rng.random_range(0..0x80),
            4..=6 => rng.random_range(0x80..0x1_0000),
            _ => rng.random_range(0x1_0000..=0x10_FFFF),
        };
        if let Some(c) = char::from_u32(cp) {
            return c;
        }
    }
}

/// An identifier with one random character somewhere: near-valid input
/// that passes a quick look.
fn almost_identifier(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCXYZabcxyz0189._:/-";
    let len = rng.random_range(1..=20);
    let mut s: Vec<char> = (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    let at = rng.random_range(0..=s.len());
    s.insert(at, random_char(rng));
    s.into_iter().collect()
}

/// A string of about `bytes` bytes mixing ASCII, multi-byte, bidi, NUL and
/// control characters, cut on a character boundary.
fn long_mixed(bytes: usize) -> String {
    let chunk = "SKU-1 é 日本 🦀 \u{200F}\u{202E} \0\u{1}\u{7f} \u{FEFF}\u{FFFF}";
    let mut s = chunk.repeat(bytes / chunk.len() + 1);
    let mut cut = bytes.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

/// The values every field gets: a fixed corpus, then seeded random ones.
fn values(rng: &mut StdRng, huge: &str) -> Vec<String> {
    let fixed = [
        "",
        "\0",
        "A\0B",
        "WH1\0",
        "\u{1}\u{1f}\u{7f}\u{9f}\t\n\r",
        "é日本語🦀",
        "e\u{301}\u{200D}",
        "\u{200F}A\u{202E}B\u{2066}",
        "\u{FEFF}\u{200B}\u{2028}",
        "\u{FFFE}\u{FFFF}\u{10FFFF}",
        " A ",
        "١٢.٣",
        "'; DROP TABLE skus; --",
        "00",
    ];
    let mut v: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
    for _ in 0..RANDOM_PER_FIELD {
        let len = rng.random_range(1..=40);
        v.push((0..len).map(|_| random_char(rng)).collect());
    }
    v.push(almost_identifier(rng));
    v.push("é".repeat(129));
    v.push(huge.to_owned());
    v
}

/// `s` for a failure message: escaped, cut, with its size.
fn show(s: &str) -> String {
    let head: String = s.chars().take(60).collect();
    format!("{:?} ({} bytes)", head, s.len())
}

async fn arrange() -> TestApp {
    let app = TestApp::spawn().await;
    app.stocked("A", 1_000_000).await;
    app.reserve("good", &[("A", 1)], 0).await.expect("a normal reserve");
    app
}

/// Sends every value to every field of the RPCs whose name starts with
/// `service`, and returns what went wrong.
async fn fuzz(app: &TestApp, service: &str, seed: u64) -> Vec<String> {
    // A little under the limit, to leave room for the other fields.
    let huge = long_mixed(MESSAGE_LIMIT - 1024);
    let mut failures = Vec::new();
    let mut cases = 0;
    for (i, t) in targets().into_iter().enumerate().filter(|(_, t)| t.rpc.starts_with(service)) {
        let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for value in values(&mut rng, &huge) {
            cases += 1;
            let shown = show(&value);
            let result = (t.call)(app.channel.clone(), value).await;
            let Err(status) = result else { continue };
            let code = status.code();
            if !CLIENT_CODES.contains(&code) {
                failures.push(format!("{} {} = {shown}: {code:?} {}", t.rpc, t.field, status.message()));
            } else if code == Code::InvalidArgument && violated_fields(&status) != [t.field] {
                failures.push(format!(
                    "{} {} = {shown}: INVALID_ARGUMENT names {:?}, not the field",
                    t.rpc,
                    t.field,
                    violated_fields(&status)
                ));
            }
        }
        // The server still answers a normal call.
        let normal = proto::GetAvailabilityRequest { skus: vec!["A".into()], location_id: String::new() };
        if let Err(e) = app.stock().get_availability(normal).await {
            failures.push(format!("after {} {}: a normal call failed: {e:?}", t.rpc, t.field));
        }
    }
    assert!(cases > 100, "{service}: only {cases} cases ran");
    failures
}

fn assert_none(service: &str, seed: u64, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{service}, seed {seed} (STOCKD_FUZZ_SEED), {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_fuzz_table_covers_every_string_field_of_every_rpc() {
    let fuzzed: BTreeSet<(String, String)> = targets().iter().map(|t| (t.rpc.to_owned(), t.field.to_owned())).collect();

    let declared = string_fields_of_every_rpc();

    // A new RPC or string field shows up here: add it to `targets()`.
    assert_eq!(fuzzed, declared);
}

#[tokio::test]
async fn arbitrary_text_in_any_reservation_field_is_answered_with_ok_or_a_client_error() {
    let app = arrange().await;
    let seed = seed();

    let failures = fuzz(&app, "ReservationService/", seed).await;

    assert_none("ReservationService", seed, failures);
    let good = app.reservations().get_reservation(proto::GetReservationRequest { order_id: "good".into() }).await;
    assert_eq!(good.expect("still there").into_inner().status(), proto::ReservationStatus::Active);
    app.wait_reconciled().await;
}

#[tokio::test]
async fn arbitrary_text_in_any_stock_field_is_answered_with_ok_or_a_client_error() {
    let app = arrange().await;
    let seed = seed();

    let failures = fuzz(&app, "StockService/", seed).await;

    assert_none("StockService", seed, failures);
    app.wait_reconciled().await;
}

#[tokio::test]
async fn arbitrary_text_in_any_catalog_field_is_answered_with_ok_or_a_client_error() {
    let app = arrange().await;
    let seed = seed();

    let failures = fuzz(&app, "CatalogService/", seed).await;

    assert_none("CatalogService", seed, failures);
    let a = app.catalog().get_sku(proto::GetSkuRequest { sku: "A".into() }).await.expect("A is still there");
    assert_eq!(a.into_inner().name, "A");
}

#[tokio::test]
async fn arbitrary_text_in_any_cycle_count_field_is_answered_with_ok_or_a_client_error() {
    let app = arrange().await;
    let seed = seed();

    let failures = fuzz(&app, "CycleCountService/", seed).await;

    assert_none("CycleCountService", seed, failures);
    assert_eq!(app.total("A").await.on_hand, 1_000_000, "matched counts changed nothing");
}

#[tokio::test]
async fn arbitrary_text_in_any_replenishment_field_is_answered_with_ok_or_a_client_error() {
    let app = arrange().await;
    let seed = seed();

    let failures = fuzz(&app, "ReplenishmentService/", seed).await;

    assert_none("ReplenishmentService", seed, failures);
    assert_eq!(app.total("A").await.in_transit, 0, "no purchase order moved a number");
}

#[tokio::test]
async fn a_request_over_the_message_size_limit_is_refused_and_the_server_keeps_serving() {
    let app = arrange().await;
    let name = long_mixed(MESSAGE_LIMIT + 1);

    let refused = app.catalog().upsert_sku(upsert_sku(|r| r.name = name)).await.expect_err("too large");
    let normal = app.catalog().get_sku(proto::GetSkuRequest { sku: "A".into() }).await;

    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(normal.is_ok(), "{normal:?}");
    let fz = app.catalog().get_sku(proto::GetSkuRequest { sku: "FZ".into() }).await.expect_err("not written");
    assert_eq!(fz.code(), Code::NotFound);
}

#[tokio::test]
async fn a_page_token_is_refused_by_every_other_query_and_names_page_token() {
    // Arrange: enough of everything for a second page of each list.
    let app = arrange().await;
    for sku in ["B", "C"] {
        app.sku(sku).await;
        app.set_on_hand(sku, "WH1", 5).await;
    }
    app.location("WH2", 2).await;
    app.location("WH3", 3).await;
    app.set_on_hand("A", "WH2", 5).await;
    app.wait_reconciled().await;
    let first_skus = proto::ListSkusRequest { page_size: 1, page_token: String::new() };
    let skus = app.catalog().list_skus(first_skus).await.expect("skus").into_inner().next_page_token;
    let first_locations = proto::ListLocationsRequest { page_size: 1, page_token: String::new() };
    let locations = app.catalog().list_locations(first_locations).await.expect("locations");
    let locations = locations.into_inner().next_page_token;
    let moves_of_a = app.stock().list_movements(movements("A", "", "")).await.expect("moves").into_inner();
    let moves_of_a = moves_of_a.next_page_token;
    assert!(![&skus, &locations, &moves_of_a].iter().any(|t| t.is_empty()), "every list has a second page");

    // Act + Assert: each token works for its own query only.
    let wrong: Vec<(&str, Result<(), Status>)> = vec![
        ("skus token on locations", {
            let r = proto::ListLocationsRequest { page_size: 1, page_token: skus.clone() };
            app.catalog().list_locations(r).await.map(drop)
        }),
        ("locations token on skus", {
            let r = proto::ListSkusRequest { page_size: 1, page_token: locations.clone() };
            app.catalog().list_skus(r).await.map(drop)
        }),
        ("skus token on movements", app.stock().list_movements(movements("A", "", &skus)).await.map(drop)),
        ("movements of A on skus", {
            let r = proto::ListSkusRequest { page_size: 1, page_token: moves_of_a.clone() };
            app.catalog().list_skus(r).await.map(drop)
        }),
        ("movements of A on B", app.stock().list_movements(movements("B", "", &moves_of_a)).await.map(drop)),
        ("movements of A on A at WH1", app.stock().list_movements(movements("A", "WH1", &moves_of_a)).await.map(drop)),
    ];
    for (case, result) in wrong {
        let e = result.expect_err(case);
        assert_eq!(e.code(), Code::InvalidArgument, "{case}: {e:?}");
        assert_eq!(violated_fields(&e), ["page_token"], "{case}");
        assert!(e.message().contains("is not a token this server issued for this query"), "{case}: {}", e.message());
    }
    let bigger_page = movements("A", "", &moves_of_a);
    let own = app.stock().list_movements(proto::ListMovementsRequest { page_size: 50, ..bigger_page }).await;
    assert!(own.is_ok_and(|r| r.into_inner().next_page_token.is_empty()), "the page size may change between pages");
}
