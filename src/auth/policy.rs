//! Who may call what: the role → method table, and the decision for one call.
//!
//! | path | no token | checkout | admin |
//! |---|---|---|---|
//! | `/grpc.health.v1.Health/*` | open | open | open |
//! | `/grpc.reflection.*/*` (v1 and v1alpha) | open | open | open |
//! | `/inventory.v1.ReservationService/*` | - | yes | yes |
//! | `/inventory.v1.<any>/Get*`, `List*`, `Watch*` | - | yes | yes |
//! | anything else (`AdjustStock`, `SetOnHand`, `Upsert*`, ...) | - | - | yes |
//!
//! Health and reflection are open so Kubernetes probes and `grpcurl
//! list`/`describe` work without a token; they reveal only whether the
//! service is up and its schema (the proto files), never data.

use super::tokens::{Role, Tokens};

/// The package whose reads checkout may call.
const INVENTORY_PACKAGE: &str = "inventory.v1.";
/// Checkout may call every method of this service.
const RESERVATIONS: &str = "inventory.v1.ReservationService";
/// Method-name prefixes that only read.
const READ_PREFIXES: [&str; 3] = ["Get", "List", "Watch"];

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Health or reflection: no token needed.
    Open,
    /// A valid token whose role may call the method.
    Allowed(Role),
    /// No token, a malformed header or an unknown token.
    Unauthenticated(&'static str),
    /// A valid token whose role may not call the method.
    Denied(Role),
}

/// Splits `/package.Service/Method` into service and method ("" when the
/// path has another shape, which then needs admin).
pub fn split_path(path: &str) -> (&str, &str) {
    path.strip_prefix('/').and_then(|p| p.split_once('/')).unwrap_or(("", ""))
}

/// Whether the path is open without a token (health, reflection).
pub fn is_open(path: &str) -> bool {
    let (service, _) = split_path(path);
    service == "grpc.health.v1.Health" || service.starts_with("grpc.reflection.")
}

/// Whether `role` may call the method at `path`.
pub fn role_allows(role: Role, path: &str) -> bool {
    match role {
        Role::Admin => true,
        Role::Checkout => {
            let (service, method) = split_path(path);
            service == RESERVATIONS || (service.starts_with(INVENTORY_PACKAGE) && is_read(method))
        }
    }
}

/// `GetX`, `ListX`, `WatchX`: the prefix, then a capital (so `Getaway` is not a read).
fn is_read(method: &str) -> bool {
    READ_PREFIXES
        .iter()
        .any(|p| method.strip_prefix(p).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase())))
}

/// The token in an `authorization` header value (`Bearer <token>`, scheme
/// case-insensitive).
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The decision for a call to `path` carrying `authorization` (the raw
/// header value, if any).
pub fn decide(tokens: &Tokens, path: &str, authorization: Option<&[u8]>) -> Decision {
    if is_open(path) {
        return Decision::Open;
    }
    let Some(value) = authorization else {
        return Decision::Unauthenticated("missing bearer token (authorization: Bearer <token>)");
    };
    let Some(token) = bearer(value) else {
        return Decision::Unauthenticated("authorization header is not `Bearer <token>`");
    };
    match tokens.role_of(token) {
        None => Decision::Unauthenticated("invalid bearer token"),
        Some(role) if role_allows(role, path) => Decision::Allowed(role),
        Some(role) => Decision::Denied(role),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKOUT: &str = "ck_0123456789abcdef";
    const ADMIN: &str = "ad_0123456789abcdef";

    fn tokens() -> Tokens {
        Tokens::parse(&format!("checkout {CHECKOUT}\nadmin {ADMIN}\n")).expect("parses")
    }

    /// Every method of the contract (API.md), with whether checkout may call it.
    const TABLE: &[(&str, bool)] = &[
        ("/inventory.v1.ReservationService/Reserve", true),
        ("/inventory.v1.ReservationService/Extend", true),
        ("/inventory.v1.ReservationService/Commit", true),
        ("/inventory.v1.ReservationService/Fulfill", true),
        ("/inventory.v1.ReservationService/Release", true),
        ("/inventory.v1.ReservationService/GetReservation", true),
        ("/inventory.v1.StockService/GetAvailability", true),
        ("/inventory.v1.StockService/WatchAvailability", true),
        ("/inventory.v1.StockService/ListMovements", true),
        ("/inventory.v1.StockService/AdjustStock", false),
        ("/inventory.v1.StockService/SetOnHand", false),
        ("/inventory.v1.CatalogService/GetSku", true),
        ("/inventory.v1.CatalogService/ListSkus", true),
        ("/inventory.v1.CatalogService/ListLocations", true),
        ("/inventory.v1.CatalogService/ListSuppliers", true),
        ("/inventory.v1.CatalogService/UpsertSku", false),
        ("/inventory.v1.CatalogService/UpsertLocation", false),
        ("/inventory.v1.CatalogService/UpsertSupplier", false),
        ("/inventory.v1.ChannelService/ListChannels", true),
        ("/inventory.v1.ChannelService/GetChannelLevels", true),
        ("/inventory.v1.ChannelService/UpsertChannel", false),
        ("/inventory.v1.ChannelService/Resync", false),
        ("/inventory.v1.ReplenishmentService/GetReorderSuggestions", true),
        ("/inventory.v1.ReplenishmentService/RunReorderCheck", false),
        ("/inventory.v1.ReplenishmentService/SubmitPurchaseOrder", false),
        ("/inventory.v1.ReplenishmentService/ReceivePurchaseOrder", false),
        ("/inventory.v1.ReplenishmentService/CancelPurchaseOrder", false),
        ("/inventory.v1.CycleCountService/ListDueCounts", true),
        ("/inventory.v1.CycleCountService/SubmitCount", false),
        ("/inventory.v1.CycleCountService/ResolveInvestigation", false),
    ];

    #[test]
    fn checkout_may_reserve_and_read_but_not_write_stock_or_catalog() {
        for (path, checkout) in TABLE {
            assert_eq!(role_allows(Role::Checkout, path), *checkout, "checkout on {path}");
        }
    }

    #[test]
    fn admin_may_call_everything() {
        for (path, _) in TABLE {
            assert!(role_allows(Role::Admin, path), "admin on {path}");
        }
        assert!(role_allows(Role::Admin, "/other.v1.Thing/Delete"));
    }

    #[test]
    fn checkout_reads_are_limited_to_the_inventory_package_and_real_read_names() {
        assert!(!role_allows(Role::Checkout, "/other.v1.Thing/GetSecret"), "another package");
        assert!(!role_allows(Role::Checkout, "/inventory.v1.StockService/Getaway"), "Get not followed by a word");
        assert!(!role_allows(Role::Checkout, "/inventory.v1.StockService/Get"));
        assert!(!role_allows(Role::Checkout, "/inventory.v1.StockService/getAvailability"));
        assert!(!role_allows(Role::Checkout, "/inventory.v1.ReservationServiceAdmin/Purge"), "a longer service name");
        assert!(!role_allows(Role::Checkout, "/inventory.v1.StockService"), "no method");
        assert!(!role_allows(Role::Checkout, "inventory.v1.StockService/GetAvailability"), "no leading slash");
        assert!(!role_allows(Role::Checkout, "/"));
    }

    #[test]
    fn health_and_reflection_are_open_without_a_token() {
        let t = tokens();
        for path in [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(decide(&t, path, None), Decision::Open, "{path}");
            assert_eq!(decide(&t, path, Some(b"Bearer nonsense")), Decision::Open, "{path}");
        }
        assert!(!is_open("/grpc.health.v1.HealthAdmin/Check"));
        assert!(!is_open("/inventory.v1.StockService/GetAvailability"));
    }

    #[test]
    fn a_missing_malformed_or_unknown_token_is_unauthenticated() {
        let t = tokens();
        let path = "/inventory.v1.ReservationService/Reserve";
        for header in [None, Some(&b""[..]), Some(b"Bearer"), Some(b"Bearer   "), Some(b"Basic YWxhZGRpbjpvcGVu")] {
            assert!(matches!(decide(&t, path, header), Decision::Unauthenticated(_)), "{header:?}");
        }
        assert!(matches!(decide(&t, path, Some(CHECKOUT.as_bytes())), Decision::Unauthenticated(_)), "no scheme");
        let wrong = format!("Bearer {CHECKOUT}x");
        assert!(matches!(decide(&t, path, Some(wrong.as_bytes())), Decision::Unauthenticated(_)));
    }

    #[test]
    fn a_valid_token_is_allowed_or_denied_by_its_role() {
        let t = tokens();
        let checkout = format!("Bearer {CHECKOUT}");
        let admin = format!("bearer  {ADMIN} ");
        let reserve = "/inventory.v1.ReservationService/Reserve";
        let adjust = "/inventory.v1.StockService/AdjustStock";
        assert_eq!(decide(&t, reserve, Some(checkout.as_bytes())), Decision::Allowed(Role::Checkout));
        assert_eq!(decide(&t, adjust, Some(checkout.as_bytes())), Decision::Denied(Role::Checkout));
        assert_eq!(decide(&t, adjust, Some(admin.as_bytes())), Decision::Allowed(Role::Admin));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Token abc"), None);
    }
}
