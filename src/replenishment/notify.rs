//! Notifications of created or changed POs: an outbox in Postgres
//! (`po_notifications`, written in the reorder check's transaction) and a
//! sender that POSTs each due one, as JSON, to its supplier's notify URL.
//!
//! The body is the PO as it stands when sent, with a Slack-compatible
//! `text` ("Auto PO for 3 SKUs from Acme"), so a Slack incoming webhook (or
//! anything that reads `text`) shows it as it is. Any 2xx is delivered;
//! anything else (or no answer within the timeout) is retried with
//! exponential backoff and jitter, up to a number of attempts. Delivery
//! never touches the PO: a failing URL loses nothing and blocks nothing but
//! its own notification. Plain http:// only (no TLS client is built in):
//! point suppliers that need https at a relay.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Uri, header};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use sqlx::PgPool;

use super::ReplenishmentSettings;
use super::orders::{self, PurchaseOrder};

/// Longest notify URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Due notifications taken per pass.
const BATCH: i64 = 100;
/// Requests in flight at once.
const PARALLEL: usize = 8;

/// Checks a notify URL as a supplier gives it: empty (none) or an absolute
/// http:// URL.
pub fn check_notify_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let uri: Uri = url.parse().map_err(|e| format!("is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") if uri.authority().is_some() => Ok(()),
        Some("https") => Err("https is not supported: use an http:// URL (e.g. a relay inside your network)".into()),
        _ => Err("must be an absolute http:// URL".into()),
    }
}

/// The notification's `text`: "Auto PO for N SKUs from Supplier".
pub fn text(lines: usize, supplier_name: &str) -> String {
    let skus = if lines == 1 { "SKU" } else { "SKUs" };
    format!("Auto PO for {lines} {skus} from {supplier_name}")
}

fn rfc3339(t: std::time::SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The JSON body sent for a PO: `text`, the event (created or changed) and
/// the PO with its lines.
pub fn payload(po: &PurchaseOrder, supplier_name: &str, event: &str) -> serde_json::Value {
    json!({
        "text": text(po.lines.len(), supplier_name),
        "event": event,
        "purchase_order": {
            "po_id": po.po_id,
            "supplier_id": po.supplier_id,
            "supplier_name": supplier_name,
            "location_id": po.location_id,
            "status": po.status.as_str(),
            "created_at": rfc3339(po.created_at),
            "submitted_at": po.submitted_at.map(rfc3339),
            "lines": po.lines.iter().map(|l| json!({
                "sku": l.sku,
                "quantity": l.quantity,
                "received": l.received,
            })).collect::<Vec<_>>(),
        },
    })
}

/// The wait before the next attempt after `attempts` failed ones: `base`
/// doubled per attempt, at most an hour, times `jitter` (from [0.5, 1], so
/// that many notifications failing together do not retry together).
pub fn backoff(base: Duration, attempts: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
    doubled.min(MAX_BACKOFF).mul_f64(jitter.clamp(0.5, 1.0))
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NotifyOutcome {
    /// Delivered (2xx).
    pub delivered: u64,
    /// Failed and rescheduled (or given up).
    pub failed: u64,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: i64,
    po_id: String,
    event: String,
    attempts: i32,
    notify_url: String,
    name: String,
}

/// Sends due notifications.
pub struct Notifier {
    db: PgPool,
    client: Client<HttpConnector, Full<Bytes>>,
    settings: ReplenishmentSettings,
}

impl Notifier {
    /// A sender for the outbox in `db`.
    pub fn new(db: PgPool, settings: ReplenishmentSettings) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { db, client, settings }
    }

    /// Sends every notification that is due (a batch), each once.
    pub async fn try_execute_task(&self) -> Result<NotifyOutcome, sqlx::Error> {
        let due: Vec<Due> = sqlx::query_as(
            "SELECT n.id, n.po_id, n.event, n.attempts, s.notify_url, s.name
             FROM po_notifications n
             JOIN purchase_orders po ON po.po_id = n.po_id
             JOIN suppliers s ON s.supplier_id = po.supplier_id
             WHERE n.delivered_at IS NULL AND n.gave_up_at IS NULL AND n.next_attempt_at <= now()
             ORDER BY n.next_attempt_at, n.id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&self.db)
        .await?;
        let results: Vec<Result<bool, sqlx::Error>> =
            futures::stream::iter(due).map(|n| self.send(n)).buffer_unordered(PARALLEL).collect().await;
        let mut outcome = NotifyOutcome::default();
        for r in results {
            if r? {
                outcome.delivered += 1;
            } else {
                outcome.failed += 1;
            }
        }
        Ok(outcome)
    }

    /// One attempt; records its result. Ok(true) when delivered.
    async fn send(&self, n: Due) -> Result<bool, sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        let Some(po) = orders::load(&mut conn, std::slice::from_ref(&n.po_id)).await?.pop() else {
            return Ok(false);
        };
        drop(conn);
        let body = payload(&po, &n.name, &n.event);
        let result = match check_notify_url(&n.notify_url) {
            Err(e) if n.notify_url.is_empty() => Err(format!("the supplier has no notify URL now ({e})")),
            Err(e) => Err(format!("notify URL {e}")),
            Ok(()) if n.notify_url.is_empty() => Err("the supplier has no notify URL now".to_owned()),
            Ok(()) => self.post(&n.notify_url, n.id, &body).await,
        };
        let attempts = n.attempts.saturating_add(1);
        match result {
            Ok(()) => {
                sqlx::query(
                    "UPDATE po_notifications SET delivered_at = now(), attempts = $2, payload = $3, last_error = ''
                     WHERE id = $1",
                )
                .bind(n.id)
                .bind(attempts)
                .bind(&body)
                .execute(&self.db)
                .await?;
                tracing::info!(po = n.po_id, url = n.notify_url, "PO notification delivered");
                Ok(true)
            }
            Err(error) => {
                let give_up = u32::try_from(attempts).unwrap_or(u32::MAX) >= self.settings.notify_max_attempts;
                let wait = backoff(self.settings.notify_backoff, u32::try_from(attempts).unwrap_or(0), jitter());
                sqlx::query(
                    "UPDATE po_notifications SET attempts = $2, last_error = $3,
                         next_attempt_at = now() + make_interval(secs => $4),
                         gave_up_at = CASE WHEN $5 THEN now() END
                     WHERE id = $1",
                )
                .bind(n.id)
                .bind(attempts)
                .bind(&error)
                .bind(wait.as_secs_f64())
                .bind(give_up)
                .execute(&self.db)
                .await?;
                tracing::warn!(po = n.po_id, attempts, give_up, ?wait, error, "PO notification failed");
                Ok(false)
            }
        }
    }

    async fn post(&self, url: &str, id: i64, body: &serde_json::Value) -> Result<(), String> {
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "stockd")
            // The same on every retry: a receiver can drop a duplicate.
            .header("idempotency-key", format!("stockd-po-notification-{id}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("request: {e}"))?;
        let timeout = self.settings.notify_timeout;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => {
                Err(format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))
            }
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!("answered {}", response.status())),
        }
    }
}

fn jitter() -> f64 {
    rand::random_range(0.5..=1.0)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::replenishment::orders::{PoLine, PoStatus};

    #[test]
    fn notify_urls_are_empty_or_absolute_http() {
        assert!(check_notify_url("").is_ok());
        assert!(check_notify_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_notify_url("http://relay.internal/po?x=1").is_ok());
        for bad in ["https://hooks.slack.com/x", "ftp://x/y", "/relative", "not a url", "http:/x"] {
            assert!(check_notify_url(bad).is_err(), "{bad}");
        }
        assert!(check_notify_url(&format!("http://x/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn the_payload_carries_the_po_and_a_slack_text() {
        let po = PurchaseOrder {
            po_id: "PO-1".into(),
            supplier_id: "acme".into(),
            location_id: "WH1".into(),
            status: PoStatus::Draft,
            lines: vec![
                PoLine { sku: "A".into(), quantity: 12, received: 0 },
                PoLine { sku: "B".into(), quantity: 6, received: 0 },
            ],
            created_at: UNIX_EPOCH + Duration::from_millis(1_764_800_000_123),
            submitted_at: None,
        };
        let p = payload(&po, "Acme Ltd", "created");
        assert_eq!(p["text"], "Auto PO for 2 SKUs from Acme Ltd");
        assert_eq!(p["event"], "created");
        assert_eq!(p["purchase_order"]["po_id"], "PO-1");
        assert_eq!(p["purchase_order"]["status"], "DRAFT");
        assert_eq!(p["purchase_order"]["lines"][1]["quantity"], 6);
        assert_eq!(p["purchase_order"]["created_at"], "2025-12-03T22:13:20.123Z");
        assert!(p["purchase_order"]["submitted_at"].is_null());
        assert_eq!(text(1, "Acme"), "Auto PO for 1 SKU from Acme");
    }

    #[test]
    fn backoff_doubles_to_an_hour_with_jitter() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(base, 4, 1.0), Duration::from_secs(240));
        assert_eq!(backoff(base, 4, 0.5), Duration::from_secs(120));
        assert_eq!(backoff(base, 30, 1.0), Duration::from_secs(3600), "capped");
        assert_eq!(backoff(base, 1, 7.0), Duration::from_secs(30), "jitter never lengthens it");
    }
}
