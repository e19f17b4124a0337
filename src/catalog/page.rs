//! List paging (AIP-158): page sizes and opaque page tokens.
//!
//! A page token is the base64url text (no padding) of a small record:
//!
//! | bytes | what |
//! |-------|------|
//! | 1     | format version ([`TOKEN_VERSION`]) |
//! | 1     | the list: 1 ListSkus, 2 ListLocations, 3 ListMovements, 4 ListAbcClasses, 5 ListDueCounts, 6 ListInvestigations, 7 ListSuppliers, 8 GetReorderSuggestions, 9 ListPurchaseOrders |
//! | 8     | digest of the query's filter fields (ListMovements: `sku`, `location_id`; ListDueCounts: `location_id`; ListInvestigations: `status`; GetReorderSuggestions: `location_id`, `supplier_id`, `below_only`; ListPurchaseOrders: `status`, `supplier_id`) |
//! | n     | where the next page starts: the last key served (an identifier, text) or the last ledger id (8 bytes, big-endian) |
//! | 8     | checksum over everything before it |
//!
//! A token is only accepted by the query it was issued for: the same list and
//! the same filter fields (`page_size` may change between pages, AIP-158).
//! Anything else is refused with one message, so the caller learns nothing
//! about which check failed.
//!
//! Why a checksum (the first 8 bytes of SHA-256) and not an HMAC with a key
//! per store: a token only says where to resume a listing that the caller may
//! read in full anyway, and the resume key is checked again after decoding
//! (an identifier, or a ledger id >= 1), so a forged token can at worst start
//! a page somewhere else. What the checksum is for is refusing damaged or
//! hand-made tokens loudly instead of serving a wrong page; an HMAC would add
//! a secret that every replica must share and that invalidates live tokens
//! when rotated, for no gain in what a caller can read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::domain::{LocationId, PoId, Sku, SupplierId};

/// Page size when the request gives 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page served.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page token format this server writes and reads.
pub const TOKEN_VERSION: u8 = 1;
/// Longest token text looked at; longer is refused before decoding. The
/// longest token this server issues (a 128-character key) is 195 characters.
pub const MAX_TOKEN_LEN: usize = 256;
/// Bytes of the query digest.
const DIGEST_LEN: usize = 8;
/// Bytes of the checksum.
const CHECKSUM_LEN: usize = 8;
/// Version, list and query digest.
const HEADER_LEN: usize = 2 + DIGEST_LEN;

/// A page size within 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// 0 means the default (100); negative is an error; above 1000 is capped.
    pub fn parse(n: i32) -> Result<Self, String> {
        match n {
            n if n < 0 => Err("must not be negative".into()),
            0 => Ok(Self(DEFAULT_PAGE_SIZE)),
            n => Ok(Self(u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE))),
        }
    }

    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The query a page token belongs to: the list, and the request fields that
/// choose what it lists (not the page size). Each list has its own tag, so a
/// token of one list is refused by every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageQuery<'a> {
    /// CatalogService.ListSkus.
    Skus,
    /// CatalogService.ListLocations.
    Locations,
    /// StockService.ListMovements of one SKU, at one location or all.
    Movements {
        /// The SKU asked.
        sku: &'a str,
        /// The location asked; None: all.
        location_id: Option<&'a str>,
    },
    /// CycleCountService.ListAbcClasses.
    AbcClasses,
    /// CycleCountService.ListDueCounts at one location or all.
    DueCounts {
        /// The location asked; None: all.
        location_id: Option<&'a str>,
    },
    /// CycleCountService.ListInvestigations with one status or all.
    Investigations {
        /// The status asked (as stored: OPEN, RESOLVED); None: all.
        status: Option<&'a str>,
    },
    /// CatalogService.ListSuppliers.
    Suppliers,
    /// ReplenishmentService.GetReorderSuggestions.
    ReorderSuggestions {
        /// The location asked; None: all.
        location_id: Option<&'a str>,
        /// The supplier asked; None: all.
        supplier_id: Option<&'a str>,
        /// Only SKU-locations below their reorder point.
        below_only: bool,
    },
    /// ReplenishmentService.ListPurchaseOrders.
    PurchaseOrders {
        /// The status asked (as stored); None: all.
        status: Option<&'a str>,
        /// The supplier asked; None: all.
        supplier_id: Option<&'a str>,
    },
}

/// What a list resumes after: an identifier (validated again on decoding),
/// a pair of identifiers (location, SKU), or a positive number (a row id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Sku,
    Location,
    Supplier,
    PurchaseOrder,
    LocationSku,
    SkuLocation,
    Number,
}

impl PageQuery<'_> {
    fn tag(self) -> u8 {
        match self {
            Self::Skus => 1,
            Self::Locations => 2,
            Self::Movements { .. } => 3,
            Self::AbcClasses => 4,
            Self::DueCounts { .. } => 5,
            Self::Investigations { .. } => 6,
            Self::Suppliers => 7,
            Self::ReorderSuggestions { .. } => 8,
            Self::PurchaseOrders { .. } => 9,
        }
    }

    fn key_kind(self) -> KeyKind {
        match self {
            Self::Skus | Self::AbcClasses => KeyKind::Sku,
            Self::Locations => KeyKind::Location,
            Self::Suppliers => KeyKind::Supplier,
            Self::PurchaseOrders { .. } => KeyKind::PurchaseOrder,
            Self::DueCounts { .. } => KeyKind::LocationSku,
            Self::ReorderSuggestions { .. } => KeyKind::SkuLocation,
            Self::Movements { .. } | Self::Investigations { .. } => KeyKind::Number,
        }
    }

    /// The filter fields, in a fixed order per list.
    fn filters(self) -> Vec<Option<String>> {
        match self {
            Self::Skus | Self::Locations | Self::AbcClasses | Self::Suppliers => vec![],
            Self::Movements { sku, location_id } => vec![Some(sku.to_owned()), location_id.map(str::to_owned)],
            Self::DueCounts { location_id } => vec![location_id.map(str::to_owned)],
            Self::Investigations { status } => vec![status.map(str::to_owned)],
            Self::ReorderSuggestions { location_id, supplier_id, below_only } => {
                vec![location_id.map(str::to_owned), supplier_id.map(str::to_owned), Some(below_only.to_string())]
            }
            Self::PurchaseOrders { status, supplier_id } => {
                vec![status.map(str::to_owned), supplier_id.map(str::to_owned)]
            }
        }
    }

    /// A digest of the list and its filter fields; each field is written with
    /// its presence and length so that no two queries share an input.
    fn digest(self) -> [u8; DIGEST_LEN] {
        let mut h = Sha256::new();
        h.update(b"stockd page query\0");
        h.update([self.tag()]);
        for field in self.filters() {
            match field {
                None => h.update([0]),
                Some(s) => {
                    h.update([1]);
                    h.update((s.len() as u64).to_be_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        first_bytes(&h.finalize())
    }
}

fn first_bytes<const N: usize>(digest: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.iter_mut().zip(digest).for_each(|(o, d)| *o = *d);
    out
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = Sha256::new();
    h.update(b"stockd page token\0");
    h.update(body);
    first_bytes(&h.finalize())
}

/// Why a page token was refused. Every variant shows the caller the same
/// message; the variants are for tests and debug logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageTokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not canonical unpadded base64url.
    NotBase64,
    /// Too short to hold a header and a checksum.
    Truncated,
    /// A format version this server does not read.
    UnknownVersion,
    /// The checksum does not match: damaged or hand-made.
    Damaged,
    /// Issued for another list or other filter fields.
    OtherQuery,
    /// The resume key is not one this list could have issued.
    BadKey,
}

impl fmt::Display for PageTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("is not a token this server issued for this query")
    }
}

impl std::error::Error for PageTokenError {}

/// An opaque token naming where the next page of one query starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    /// The token that resumes `query` after the row with key `key` (the
    /// lists keyed by identifiers; ListDueCounts: the location and the SKU
    /// joined by a tab, which no identifier holds).
    pub fn after_key(query: PageQuery<'_>, key: &str) -> Self {
        Self::seal(query, key.as_bytes())
    }

    /// The token that resumes `query` after row number `n` (ListMovements,
    /// newest first: the next page holds smaller ids; ListInvestigations).
    pub fn after_number(query: PageQuery<'_>, n: i64) -> Self {
        Self::seal(query, &n.to_be_bytes())
    }

    /// The key to resume after, from a token given back by a caller for
    /// `query` (a list keyed by identifiers); empty means the first page.
    /// The key is checked as the list's identifiers are, so it holds no NUL
    /// and nothing Postgres would refuse.
    pub fn decode_key(query: PageQuery<'_>, token: &str) -> Result<Option<String>, PageTokenError> {
        let Some(key) = Self::open(query, token)? else { return Ok(None) };
        let key = String::from_utf8(key).map_err(|_| PageTokenError::BadKey)?;
        let valid = match query.key_kind() {
            KeyKind::Sku => Sku::parse(key.as_str()).is_ok(),
            KeyKind::Location => LocationId::parse(key.as_str()).is_ok(),
            KeyKind::Supplier => SupplierId::parse(key.as_str()).is_ok(),
            KeyKind::PurchaseOrder => PoId::parse(key.as_str()).is_ok(),
            KeyKind::LocationSku => {
                key.split_once('\t').is_some_and(|(l, s)| LocationId::parse(l).is_ok() && Sku::parse(s).is_ok())
            }
            KeyKind::SkuLocation => {
                key.split_once('\t').is_some_and(|(s, l)| Sku::parse(s).is_ok() && LocationId::parse(l).is_ok())
            }
            KeyKind::Number => false,
        };
        if valid { Ok(Some(key)) } else { Err(PageTokenError::BadKey) }
    }

    /// The row number to resume after, from a token given back by a caller
    /// for `query` (a list keyed by numbers); empty means the first page.
    pub fn decode_number(query: PageQuery<'_>, token: &str) -> Result<Option<i64>, PageTokenError> {
        let Some(key) = Self::open(query, token)? else { return Ok(None) };
        if query.key_kind() != KeyKind::Number {
            return Err(PageTokenError::BadKey);
        }
        let bytes: [u8; 8] = key.as_slice().try_into().map_err(|_| PageTokenError::BadKey)?;
        match i64::from_be_bytes(bytes) {
            id if id >= 1 => Ok(Some(id)),
            _ => Err(PageTokenError::BadKey),
        }
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn seal(query: PageQuery<'_>, key: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_LEN + key.len() + CHECKSUM_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.push(query.tag());
        bytes.extend_from_slice(&query.digest());
        bytes.extend_from_slice(key);
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The resume key bytes of a token issued for `query`; None for empty.
    /// Every step is checked, never indexed blindly: this is caller input.
    fn open(query: PageQuery<'_>, token: &str) -> Result<Option<Vec<u8>>, PageTokenError> {
        if token.is_empty() {
            return Ok(None);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(PageTokenError::TooLong);
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| PageTokenError::NotBase64)?;
        let split = bytes.len().checked_sub(CHECKSUM_LEN).filter(|&n| n >= HEADER_LEN);
        let (body, sum) = split.and_then(|n| bytes.split_at_checked(n)).ok_or(PageTokenError::Truncated)?;
        let (header, key) = body.split_at_checked(HEADER_LEN).ok_or(PageTokenError::Truncated)?;
        let (version, list, digest) = match header {
            [version, list, digest @ ..] => (*version, *list, digest),
            _ => return Err(PageTokenError::Truncated),
        };
        if version != TOKEN_VERSION {
            return Err(PageTokenError::UnknownVersion);
        }
        if checksum(body) != sum {
            return Err(PageTokenError::Damaged);
        }
        if list != query.tag() || digest != query.digest() {
            return Err(PageTokenError::OtherQuery);
        }
        Ok(Some(key.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type PageError = PageTokenError;

    const A_AT_WH1: PageQuery<'static> = PageQuery::Movements { sku: "A", location_id: Some("WH1") };

    /// A token text from raw record bytes, with a correct checksum.
    fn sealed_raw(body: &[u8]) -> String {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(&checksum(body));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn header(version: u8, query: PageQuery<'_>) -> Vec<u8> {
        let mut b = vec![version, query.tag()];
        b.extend_from_slice(&query.digest());
        b
    }

    #[test]
    fn tokens_round_trip_for_every_list() {
        let sku = PageToken::after_key(PageQuery::Skus, "SKU-1/a");
        let loc = PageToken::after_key(PageQuery::Locations, "WH:1");
        let mov = PageToken::after_number(A_AT_WH1, 42);
        let all = PageQuery::Movements { sku: "A", location_id: None };

        assert_eq!(PageToken::decode_key(PageQuery::Skus, sku.as_str()), Ok(Some("SKU-1/a".into())));
        assert_eq!(PageToken::decode_key(PageQuery::Locations, loc.as_str()), Ok(Some("WH:1".into())));
        assert_eq!(PageToken::decode_number(A_AT_WH1, mov.as_str()), Ok(Some(42)));
        let big = PageToken::after_number(all, i64::MAX);
        assert_eq!(PageToken::decode_number(all, big.as_str()), Ok(Some(i64::MAX)));
    }

    #[test]
    fn an_empty_token_means_the_first_page() {
        assert_eq!(PageToken::decode_key(PageQuery::Skus, ""), Ok(None));
        assert_eq!(PageToken::decode_number(A_AT_WH1, ""), Ok(None));
    }

    #[test]
    fn tokens_are_url_safe_and_within_the_cap() {
        // Identifiers are at most 128 characters.
        let longest = PageToken::after_key(PageQuery::Skus, &"Z".repeat(128));
        assert!(longest.as_str().len() <= MAX_TOKEN_LEN, "{}", longest.as_str().len());
        assert!(longest.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn a_token_is_refused_by_any_other_query() {
        let skus = PageToken::after_key(PageQuery::Skus, "WH1");
        let locations = PageToken::after_key(PageQuery::Locations, "WH1");
        let movements = PageToken::after_number(A_AT_WH1, 7);
        let other = PageError::OtherQuery;

        assert_eq!(PageToken::decode_key(PageQuery::Locations, skus.as_str()), Err(other));
        assert_eq!(PageToken::decode_key(PageQuery::Skus, locations.as_str()), Err(other));
        assert_eq!(PageToken::decode_number(A_AT_WH1, skus.as_str()), Err(other));
        assert_eq!(PageToken::decode_key(PageQuery::Skus, movements.as_str()), Err(other));
        for q in [
            PageQuery::Movements { sku: "B", location_id: Some("WH1") },
            PageQuery::Movements { sku: "A", location_id: Some("WH2") },
            PageQuery::Movements { sku: "A", location_id: None },
            PageQuery::Movements { sku: "AW", location_id: Some("H1") },
        ] {
            assert_eq!(PageToken::decode_number(q, movements.as_str()), Err(other), "{q:?}");
        }
    }

    #[test]
    fn the_cycle_count_lists_round_trip_and_refuse_each_others_tokens() {
        let classes = PageToken::after_key(PageQuery::AbcClasses, "SKU-1");
        let at_wh1 = PageQuery::DueCounts { location_id: Some("WH1") };
        let due = PageToken::after_key(at_wh1, "WH1\tSKU-1");
        let open = PageQuery::Investigations { status: Some("OPEN") };
        let investigations = PageToken::after_number(open, 12);

        assert_eq!(PageToken::decode_key(PageQuery::AbcClasses, classes.as_str()), Ok(Some("SKU-1".into())));
        assert_eq!(PageToken::decode_key(at_wh1, due.as_str()), Ok(Some("WH1\tSKU-1".into())));
        assert_eq!(PageToken::decode_number(open, investigations.as_str()), Ok(Some(12)));
        let other = PageError::OtherQuery;
        assert_eq!(PageToken::decode_key(PageQuery::Skus, classes.as_str()), Err(other), "same key, other list");
        assert_eq!(PageToken::decode_key(PageQuery::DueCounts { location_id: None }, due.as_str()), Err(other));
        let all = PageQuery::Investigations { status: None };
        assert_eq!(PageToken::decode_number(all, investigations.as_str()), Err(other));
        // A due-count key must be a location and a SKU.
        let bad = PageToken::after_key(at_wh1, "WH1");
        assert_eq!(PageToken::decode_key(at_wh1, bad.as_str()), Err(PageError::BadKey));
        let bad = PageToken::after_key(at_wh1, "WH 1\tSKU");
        assert_eq!(PageToken::decode_key(at_wh1, bad.as_str()), Err(PageError::BadKey));
    }

    #[test]
    fn another_format_version_is_refused() {
        for version in [0, 2, 255] {
            let mut body = header(version, PageQuery::Skus);
            body.extend_from_slice(b"SKU-1");
            let token = sealed_raw(&body);
            assert_eq!(PageToken::decode_key(PageQuery::Skus, &token), Err(PageError::UnknownVersion), "{version}");
        }
    }

    #[test]
    fn a_token_with_any_byte_changed_is_refused() {
        let token = PageToken::after_number(A_AT_WH1, 1234);
        let bytes = URL_SAFE_NO_PAD.decode(token.as_str()).expect("own token decodes");
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= flip;
                let text = URL_SAFE_NO_PAD.encode(&damaged);
                assert!(PageToken::decode_number(A_AT_WH1, &text).is_err(), "byte {i} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn a_token_with_any_character_changed_is_refused() {
        let token = PageToken::after_key(PageQuery::Skus, "SKU-1").as_str().to_owned();
        for i in 0..token.len() {
            for c in ['A', 'z', '0', '-', '_'] {
                let mut t = token.clone().into_bytes();
                if t[i] == c as u8 {
                    continue;
                }
                t[i] = c as u8;
                let t = String::from_utf8(t).expect("ascii");
                assert!(PageToken::decode_key(PageQuery::Skus, &t).is_err(), "char {i} -> {c}");
            }
        }
    }

    #[test]
    fn a_truncated_or_extended_token_is_refused() {
        let token = PageToken::after_key(PageQuery::Locations, "WH-1").as_str().to_owned();
        for n in 1..token.len() {
            assert!(PageToken::decode_key(PageQuery::Locations, &token[..n]).is_err(), "first {n} characters");
        }
        assert!(PageToken::decode_key(PageQuery::Locations, &format!("{token}A")).is_err());
        assert!(PageToken::decode_key(PageQuery::Locations, &format!("{token}AA")).is_err());
        assert!(PageToken::decode_key(PageQuery::Locations, &format!("{token}=")).is_err(), "padding");
    }

    #[test]
    fn garbage_multi_byte_and_old_hex_tokens_are_refused_without_panicking() {
        let garbage = [
            "00",
            "4142",
            "zz",
            "ff",
            "xyz",
            "not-a-token",
            "====",
            "é",
            "日本語",
            "🦀🦀🦀🦀",
            "\0",
            "A\0B",
            "\u{200F}",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "////",
            "++++",
            " ",
            "\u{FEFF}AAAA",
        ];
        for g in garbage {
            assert!(PageToken::decode_key(PageQuery::Skus, g).is_err(), "{g:?}");
            assert!(PageToken::decode_key(PageQuery::Locations, g).is_err(), "{g:?}");
            assert!(PageToken::decode_number(A_AT_WH1, g).is_err(), "{g:?}");
        }
    }

    #[test]
    fn a_token_longer_than_the_cap_is_refused_before_decoding() {
        let long = PageToken::after_key(PageQuery::Skus, &"Z".repeat(500));
        assert_eq!(PageToken::decode_key(PageQuery::Skus, long.as_str()), Err(PageError::TooLong));
        assert_eq!(PageToken::decode_key(PageQuery::Skus, &"A".repeat(1 << 20)), Err(PageError::TooLong));
    }

    #[test]
    fn a_sealed_key_that_is_not_an_identifier_never_comes_out() {
        // Only this server can seal a token, but what comes out goes to
        // Postgres: a NUL, a space or invalid UTF-8 must not, even so.
        for key in [&b"A\0B"[..], b"A B", b"\xff\xfe", b"", "é".as_bytes()] {
            let mut body = header(TOKEN_VERSION, PageQuery::Skus);
            body.extend_from_slice(key);
            let token = sealed_raw(&body);
            assert_eq!(PageToken::decode_key(PageQuery::Skus, &token), Err(PageError::BadKey), "{key:?}");
        }
    }

    #[test]
    fn a_ledger_position_must_be_a_positive_id_of_eight_bytes() {
        for id in [0, -1, i64::MIN] {
            let token = PageToken::after_number(A_AT_WH1, id);
            assert_eq!(PageToken::decode_number(A_AT_WH1, token.as_str()), Err(PageError::BadKey), "{id}");
        }
        let short = PageToken::after_key(A_AT_WH1, "1234567");
        assert_eq!(PageToken::decode_number(A_AT_WH1, short.as_str()), Err(PageError::BadKey));
        let keyed = PageToken::after_key(A_AT_WH1, "12345678");
        assert_eq!(PageToken::decode_key(A_AT_WH1, keyed.as_str()), Err(PageError::BadKey), "a key for movements");
    }

    #[test]
    fn every_refusal_reads_the_same() {
        assert_eq!(PageError::Damaged.to_string(), "is not a token this server issued for this query");
        assert_eq!(PageError::TooLong.to_string(), PageError::OtherQuery.to_string());
    }

    proptest! {
        #[test]
        fn no_arbitrary_text_decodes(s in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{1,200}"]) {
            prop_assume!(!s.is_empty());
            prop_assert!(PageToken::decode_key(PageQuery::Skus, &s).is_err());
            prop_assert!(PageToken::decode_number(A_AT_WH1, &s).is_err());
        }
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(PageSize::parse(0).map(PageSize::get), Ok(100));
        assert_eq!(PageSize::parse(5000).map(PageSize::get), Ok(1000));
        assert!(PageSize::parse(-1).is_err());
    }
}
