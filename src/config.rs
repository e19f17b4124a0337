//! Settings, read from the environment once at start-up. Each field says its
//! variable and default. A bad value is an error naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cycle_count::CycleCountSettings;
use crate::domain::Ttl;
use crate::replenishment::ReplenishmentSettings;

/// Upper bound for `STOCKD_RESERVE_BATCH`: one script call must stay short,
/// since Redis runs nothing else meanwhile.
const MAX_RESERVE_BATCH: usize = 1000;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything `stockd serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/stockd`.
    pub database_url: String,
    /// `STOCKD_DATABASE_SCHEMA`: Postgres schema to use (search_path); default
    /// none (the server's default, `public`). Lets several stores share a database.
    pub database_schema: Option<String>,
    /// `STOCKD_REDIS_PREFIX`, default `stockd`: prefix of every Redis key.
    pub redis_prefix: String,
    /// `STOCKD_PARTITIONS`, default 256: partition count P, used only when the
    /// store is first set up (then it is read back from Postgres).
    pub partitions: u32,
    /// `STOCKD_GRPC_ADDR`, default `0.0.0.0:50051`.
    pub grpc_addr: SocketAddr,
    /// `STOCKD_HTTP_ADDR`, default `0.0.0.0:8080` (metrics and probes).
    pub http_addr: SocketAddr,
    /// `STOCKD_RESERVATION_TTL`, default `30m`: hold length when a request gives none.
    pub reservation_ttl: Ttl,
    /// `STOCKD_TOMBSTONE_TTL`, default `24h`: how long an ended order is remembered.
    pub tombstone_ttl: Duration,
    /// `STOCKD_OPERATION_RETENTION`, default `24h`: how long an operation id is remembered.
    pub operation_retention: Duration,
    /// `STOCKD_SWEEP_INTERVAL`, default `1s`: expiry sweep period for idle SKUs.
    pub sweep_interval: Duration,
    /// `STOCKD_EXPIRY_BATCH`, default 100: expired holds one call releases per partition.
    pub expiry_batch: u32,
    /// `STOCKD_REDIS_TIMEOUT`, default `1s`: deadline of one Redis call.
    pub redis_timeout: Duration,
    /// `STOCKD_REDIS_POOL_SIZE`, default 8: multiplexed Redis connections.
    pub redis_pool_size: usize,
    /// `STOCKD_RESERVE_BATCH`, default 64: most Reserve calls coalesced into
    /// one script call (1: every call alone).
    pub reserve_batch: usize,
    /// `STOCKD_RESERVE_CALLS`, default 2: Reserve script calls in flight at
    /// once; further Reserve calls wait and are coalesced into the next ones.
    pub reserve_calls: usize,
    /// `STOCKD_DATABASE_POOL_SIZE`, default 10.
    pub database_pool_size: u32,
    /// `STOCKD_RECONCILER`, `on` (default) or `off`: whether this replica
    /// competes to lead the reconciler (off: it never writes levels to Postgres).
    pub reconciler_enabled: bool,
    /// `STOCKD_RECONCILE_INTERVAL`, default `250ms`: how often idle streams are read.
    pub reconcile_interval: Duration,
    /// `STOCKD_RECONCILE_BATCH`, default 2000: about the most events per
    /// batch (asked for in stream entries by the events an entry held last
    /// time), shared by the partitions that have entries (at least 16 each);
    /// grows up to 8 times under a backlog, never above this for one partition.
    pub reconcile_batch: usize,
    /// `STOCKD_RECONCILE_LAG_ALERT`, default `5s`: reconcile lag that logs a warning.
    pub reconcile_lag_alert: Duration,
    /// `STOCKD_DRIFT_CHECK_INTERVAL`, default `5m`: how often Redis, the snapshot
    /// and the ledger are compared (stockd_drift_mismatches).
    pub drift_check_interval: Duration,
    /// `STOCKD_HEALTH_INTERVAL`, default `1s`: how often backends are probed for health.
    pub health_interval: Duration,
    /// `STOCKD_REQUEST_TIMEOUT`, default `5s`: a gRPC call running longer is
    /// cancelled (DEADLINE_EXCEEDED / CANCELLED).
    pub request_timeout: Duration,
    /// `STOCKD_MAX_CONCURRENT_REQUESTS`, default 1024: calls in progress at
    /// once; beyond it calls are refused at once with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// `STOCKD_REQUEST_BODY_TIMEOUT`, default `2s`: a gRPC call's request
    /// message must arrive within this of its headers, else DEADLINE_EXCEEDED;
    /// a call takes a request slot only once its message has arrived.
    pub request_body_timeout: Duration,
    /// `STOCKD_MAX_CONCURRENT_STREAMS`, default 200: HTTP/2 streams one gRPC
    /// connection may have open (advertised in SETTINGS), so also the most
    /// request slots one connection can hold.
    pub max_concurrent_streams: u32,
    /// `STOCKD_SEND_TIMEOUT`, default `10s`: a response the client has not
    /// read this long after it was ready, or a socket that accepts no bytes
    /// for this long, closes the connection (both ports).
    pub send_timeout: Duration,
    /// `STOCKD_IDLE_TIMEOUT`, default `60s`: a connection with no call in
    /// progress for this long is closed (both ports).
    pub idle_timeout: Duration,
    /// `STOCKD_KEEPALIVE_INTERVAL`, default `30s`: a gRPC connection that has
    /// sent nothing for this long gets an HTTP/2 PING.
    pub keepalive_interval: Duration,
    /// `STOCKD_KEEPALIVE_TIMEOUT`, default `20s`: a PING not answered within
    /// this closes the connection.
    pub keepalive_timeout: Duration,
    /// `STOCKD_MAX_CONNECTIONS`, default 1024: open connections per port
    /// (gRPC and HTTP each); one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// `STOCKD_HTTP_HEADER_TIMEOUT`, default `10s`: on the HTTP port, a
    /// request's headers must arrive within this (from the connection's start
    /// or the end of the previous request).
    pub http_header_timeout: Duration,
    /// `STOCKD_SHUTDOWN_GRACE`, default `20s`: on SIGTERM, how long in-flight
    /// calls may take to finish (keep it below terminationGracePeriodSeconds).
    pub shutdown_grace: Duration,
    /// `STOCKD_AUTH_TOKENS_FILE`: bearer tokens and their roles, one
    /// `<role> <token>` per line (roles: checkout, admin). Unset: no token
    /// checks (local use).
    pub auth_tokens_file: Option<std::path::PathBuf>,
    /// `STOCKD_TLS_CERT` and `STOCKD_TLS_KEY`: PEM server certificate and key;
    /// both set turns TLS on.
    pub tls_cert: Option<std::path::PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// `STOCKD_TLS_CLIENT_CA`: PEM CA; when set, clients must present a
    /// certificate it signed (mutual TLS).
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// `STOCKD_LOG`, default `info`: a tracing filter (e.g. `stockd=debug,info`).
    pub log_filter: String,
    /// `STOCKD_LOG_FORMAT`, `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Cycle counting: gates, schedule, ABC classes (`STOCKD_COUNT_*`,
    /// `STOCKD_ABC_*`; see `CycleCountSettings`).
    pub cycle_count: CycleCountSettings,
    /// `STOCKD_REPLENISHMENT`, `on` (default) or `off`: whether this replica
    /// competes to lead the replenishment worker (reorder watch and sweep,
    /// unfinished PO movements, PO notifications). The RPCs work either way.
    pub replenishment_enabled: bool,
    /// Replenishment settings:
    /// `STOCKD_REORDER_WINDOW_DAYS` (28, 1..=365): days of history velocity is measured over;
    /// `STOCKD_REORDER_REVIEW_DAYS` (30, 0..=365): cover beyond the lead time an order fills up to;
    /// `STOCKD_SERVICE_LEVEL` (0.95, above 0.5 and below 1): suppliers' default service level;
    /// `STOCKD_REORDER_INTERVAL` (`1h`): period of the full reorder sweep;
    /// `STOCKD_REORDER_WATCH_INTERVAL` (`2s`): how often the ledger is read for changed SKU-locations;
    /// `STOCKD_NOTIFY_TIMEOUT` (`10s`): deadline of one PO notification request;
    /// `STOCKD_NOTIFY_MAX_ATTEMPTS` (20): attempts before a notification is given up;
    /// `STOCKD_NOTIFY_BACKOFF` (`30s`): first retry wait, doubled per attempt up to 1 h, with jitter.
    pub replenishment: ReplenishmentSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            database_url: "postgres://postgres@127.0.0.1:5432/stockd".into(),
            database_schema: None,
            redis_prefix: "stockd".into(),
            partitions: 256,
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 50051)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            reservation_ttl: Ttl::parse(Duration::from_secs(30 * 60)).unwrap_or_else(|_| unreachable!()),
            tombstone_ttl: Duration::from_secs(24 * 3600),
            operation_retention: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(1),
            expiry_batch: 100,
            redis_timeout: Duration::from_secs(1),
            redis_pool_size: 8,
            reserve_batch: 64,
            reserve_calls: 2,
            database_pool_size: 10,
            reconciler_enabled: true,
            reconcile_interval: Duration::from_millis(250),
            reconcile_batch: 2000,
            reconcile_lag_alert: Duration::from_secs(5),
            drift_check_interval: Duration::from_secs(300),
            health_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_concurrent_requests: 1024,
            request_body_timeout: Duration::from_secs(2),
            max_concurrent_streams: 200,
            send_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_connections: 1024,
            http_header_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
            auth_tokens_file: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            log_filter: "info".into(),
            log_format: LogFormat::Text,
            cycle_count: CycleCountSettings::default(),
            replenishment_enabled: true,
            replenishment: ReplenishmentSettings::default(),
        }
    }
}

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: {why}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What it held.
    pub value: String,
    /// Why that is wrong.
    pub why: String,
}

impl Config {
    /// Reads the environment, starting from the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Config::default();
        let text = |var: &'static str, dst: &mut String| {
            if let Some(v) = get(var) {
                *dst = v;
            }
        };
        text("REDIS_URL", &mut c.redis_url);
        text("DATABASE_URL", &mut c.database_url);
        text("STOCKD_REDIS_PREFIX", &mut c.redis_prefix);
        text("STOCKD_LOG", &mut c.log_filter);
        c.database_schema = get("STOCKD_DATABASE_SCHEMA").filter(|s| !s.is_empty());
        if let Some(s) = &c.database_schema
            && !s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            return Err(err("STOCKD_DATABASE_SCHEMA", s, "letters, digits and _ only"));
        }
        parse(&get, "STOCKD_PARTITIONS", &mut c.partitions, |v| v.parse::<u32>().map_err(|e| e.to_string()))?;
        parse(&get, "STOCKD_GRPC_ADDR", &mut c.grpc_addr, |v| {
            v.parse().map_err(|e: std::net::AddrParseError| e.to_string())
        })?;
        parse(&get, "STOCKD_HTTP_ADDR", &mut c.http_addr, |v| {
            v.parse().map_err(|e: std::net::AddrParseError| e.to_string())
        })?;
        parse(&get, "STOCKD_RESERVATION_TTL", &mut c.reservation_ttl, |v| {
            Ttl::parse(parse_duration(v)?).map_err(|e| e.to_string())
        })?;
        parse(&get, "STOCKD_TOMBSTONE_TTL", &mut c.tombstone_ttl, parse_duration)?;
        parse(&get, "STOCKD_OPERATION_RETENTION", &mut c.operation_retention, parse_duration)?;
        parse(&get, "STOCKD_SWEEP_INTERVAL", &mut c.sweep_interval, positive_duration)?;
        parse(&get, "STOCKD_EXPIRY_BATCH", &mut c.expiry_batch, |v| match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_REDIS_TIMEOUT", &mut c.redis_timeout, positive_duration)?;
        parse(&get, "STOCKD_REDIS_POOL_SIZE", &mut c.redis_pool_size, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_RESERVE_BATCH", &mut c.reserve_batch, |v| match v.parse::<usize>() {
            Ok(n) if (1..=MAX_RESERVE_BATCH).contains(&n) => Ok(n),
            _ => Err(format!("must be an integer from 1 to {MAX_RESERVE_BATCH}")),
        })?;
        parse(&get, "STOCKD_RESERVE_CALLS", &mut c.reserve_calls, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_DATABASE_POOL_SIZE", &mut c.database_pool_size, |v| match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_HEALTH_INTERVAL", &mut c.health_interval, positive_duration)?;
        parse(&get, "STOCKD_REQUEST_TIMEOUT", &mut c.request_timeout, positive_duration)?;
        parse(&get, "STOCKD_MAX_CONCURRENT_REQUESTS", &mut c.max_concurrent_requests, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_SHUTDOWN_GRACE", &mut c.shutdown_grace, parse_duration)?;
        parse(&get, "STOCKD_REQUEST_BODY_TIMEOUT", &mut c.request_body_timeout, positive_duration)?;
        parse(&get, "STOCKD_MAX_CONCURRENT_STREAMS", &mut c.max_concurrent_streams, |v| match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_SEND_TIMEOUT", &mut c.send_timeout, positive_duration)?;
        parse(&get, "STOCKD_IDLE_TIMEOUT", &mut c.idle_timeout, positive_duration)?;
        parse(&get, "STOCKD_KEEPALIVE_INTERVAL", &mut c.keepalive_interval, positive_duration)?;
        parse(&get, "STOCKD_KEEPALIVE_TIMEOUT", &mut c.keepalive_timeout, positive_duration)?;
        parse(&get, "STOCKD_MAX_CONNECTIONS", &mut c.max_connections, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("must be a positive integer".into()),
        })?;
        parse(&get, "STOCKD_HTTP_HEADER_TIMEOUT", &mut c.http_header_timeout, positive_duration)?;
        let path = |var: &str| get(var).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
        c.auth_tokens_file = path("STOCKD_AUTH_TOKENS_FILE");
        c.tls_cert = path("STOCKD_TLS_CERT");
        c.tls_key = path("STOCKD_TLS_KEY");
        c.tls_client_ca = path("STOCKD_TLS_CLIENT_CA");
        if c.tls_cert.is_some() != c.tls_key.is_some() {
            return Err(err("STOCKD_TLS_CERT", "", "STOCKD_TLS_CERT and STOCKD_TLS_KEY go together"));
        }
        if c.tls_client_ca.is_some() && c.tls_cert.is_none() {
            return Err(err("STOCKD_TLS_CLIENT_CA", "", "needs STOCKD_TLS_CERT and STOCKD_TLS_KEY"));
        }
        parse(&get, "STOCKD_DRIFT_CHECK_INTERVAL", &mut c.drift_check_interval, positive_duration)?;
        parse(&get, "STOCKD_RECONCILER", &mut c.reconciler_enabled, |v| match v {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err("must be on or off".into()),
        })?;
        parse(&get, "STOCKD_RECONCILE_INTERVAL", &mut c.reconcile_interval, positive_duration)?;
        parse(&get, "STOCKD_RECONCILE_BATCH", &mut c.reconcile_batch, |v| match v.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err("must be 1..=10000".into()),
        })?;
        parse(&get, "STOCKD_RECONCILE_LAG_ALERT", &mut c.reconcile_lag_alert, positive_duration)?;
        parse(&get, "STOCKD_LOG_FORMAT", &mut c.log_format, |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be text or json".into()),
        })?;
        c.cycle_count = CycleCountSettings::from_lookup(&get)?;
        parse_replenishment(&get, &mut c)?;
        if !c.redis_url.starts_with("redis://")
            && !c.redis_url.starts_with("rediss://")
            && !c.redis_url.starts_with("unix://")
        {
            return Err(err("REDIS_URL", &c.redis_url, "must start with redis://, rediss:// or unix://"));
        }
        if !c.database_url.starts_with("postgres://") && !c.database_url.starts_with("postgresql://") {
            return Err(err("DATABASE_URL", &c.database_url, "must start with postgres://"));
        }
        if c.redis_prefix.is_empty()
            || c.redis_prefix.contains(['{', '}'])
            || c.redis_prefix.chars().any(char::is_whitespace)
        {
            return Err(err("STOCKD_REDIS_PREFIX", &c.redis_prefix, "must be non-empty, without braces or spaces"));
        }
        if !(1..=crate::reservation::MAX_PARTITIONS).contains(&c.partitions) {
            return Err(err("STOCKD_PARTITIONS", &c.partitions.to_string(), "must be 1..=16384"));
        }
        Ok(c)
    }
}

/// The replenishment settings (see `Config::replenishment`).
fn parse_replenishment(get: &impl Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    let days = |max: u32, min: u32| {
        move |v: &str| match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number of days from {min} to {max}")),
        }
    };
    let r = &mut c.replenishment;
    parse(get, "STOCKD_REPLENISHMENT", &mut c.replenishment_enabled, |v| match v {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err("must be on or off".into()),
    })?;
    parse(get, "STOCKD_REORDER_WINDOW_DAYS", &mut r.window_days, days(365, 1))?;
    parse(get, "STOCKD_REORDER_REVIEW_DAYS", &mut r.review_days, days(365, 0))?;
    parse(get, "STOCKD_SERVICE_LEVEL", &mut r.service_level, |v| match v.parse::<f64>() {
        Ok(x) if x > 0.5 && x < 1.0 => Ok(x),
        _ => Err("must be a fraction above 0.5 and below 1, such as 0.95".into()),
    })?;
    parse(get, "STOCKD_REORDER_INTERVAL", &mut r.sweep_interval, positive_duration)?;
    parse(get, "STOCKD_REORDER_WATCH_INTERVAL", &mut r.watch_interval, positive_duration)?;
    parse(get, "STOCKD_NOTIFY_TIMEOUT", &mut r.notify_timeout, positive_duration)?;
    parse(get, "STOCKD_NOTIFY_MAX_ATTEMPTS", &mut r.notify_max_attempts, |v| match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("must be a positive integer".into()),
    })?;
    parse(get, "STOCKD_NOTIFY_BACKOFF", &mut r.notify_backoff, positive_duration)?;
    Ok(())
}

fn err(var: &'static str, value: &str, why: &str) -> ConfigError {
    ConfigError { var, value: value.to_owned(), why: why.to_owned() }
}

fn parse<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    dst: &mut T,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<(), ConfigError> {
    if let Some(v) = get(var) {
        *dst = f(v.trim()).map_err(|why| ConfigError { var, value: v.clone(), why })?;
    }
    Ok(())
}

/// Parses `250ms`, `30s`, `30m`, `24h` or a bare number of seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a number with an optional unit (ms, s, m, h)".to_string())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("unknown unit {other:?} (ms, s, m, h)")),
    };
    Ok(d)
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    match parse_duration(v)? {
        d if d.is_zero() => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c = with(&[]).expect("defaults are valid");
        assert_eq!(c.reservation_ttl.get(), Duration::from_secs(1800));
        assert_eq!(c.grpc_addr.to_string(), "0.0.0.0:50051");
        assert_eq!(c.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.partitions, 256);
        assert_eq!(c.tombstone_ttl, Duration::from_secs(86_400));
        assert_eq!(c.request_body_timeout, Duration::from_secs(2));
        assert_eq!(c.max_concurrent_streams, 200);
        assert_eq!(c.send_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!((c.keepalive_interval, c.keepalive_timeout), (Duration::from_secs(30), Duration::from_secs(20)));
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.http_header_timeout, Duration::from_secs(10));
    }

    #[test]
    fn connection_limits_are_read_and_checked() {
        let c = with(&[("STOCKD_IDLE_TIMEOUT", "5m"), ("STOCKD_MAX_CONCURRENT_STREAMS", "64")]).expect("valid");
        assert_eq!((c.idle_timeout, c.max_concurrent_streams), (Duration::from_secs(300), 64));
        for var in [
            "STOCKD_REQUEST_BODY_TIMEOUT",
            "STOCKD_MAX_CONCURRENT_STREAMS",
            "STOCKD_SEND_TIMEOUT",
            "STOCKD_IDLE_TIMEOUT",
            "STOCKD_KEEPALIVE_INTERVAL",
            "STOCKD_KEEPALIVE_TIMEOUT",
            "STOCKD_MAX_CONNECTIONS",
            "STOCKD_HTTP_HEADER_TIMEOUT",
        ] {
            assert_eq!(with(&[(var, "0")]).expect_err("zero is refused").var, var);
        }
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = with(&[("STOCKD_GRPC_ADDR", "nowhere")]).expect_err("bad address");
        assert_eq!(e.var, "STOCKD_GRPC_ADDR");
        let e = with(&[("STOCKD_RESERVATION_TTL", "48h")]).expect_err("over 24 h");
        assert_eq!(e.var, "STOCKD_RESERVATION_TTL");
        let e = with(&[("REDIS_URL", "http://x")]).expect_err("bad scheme");
        assert_eq!(e.var, "REDIS_URL");
        let e = with(&[("STOCKD_REDIS_PREFIX", "a{b}")]).expect_err("braces");
        assert_eq!(e.var, "STOCKD_REDIS_PREFIX");
        let e = with(&[("STOCKD_PARTITIONS", "0")]).expect_err("zero partitions");
        assert_eq!(e.var, "STOCKD_PARTITIONS");
        let e = with(&[("STOCKD_DATABASE_SCHEMA", "x; drop")]).expect_err("bad schema");
        assert_eq!(e.var, "STOCKD_DATABASE_SCHEMA");
    }

    #[test]
    fn replenishment_settings_have_their_defaults_and_bounds() {
        let c = with(&[]).expect("defaults are valid");
        assert!(c.replenishment_enabled);
        assert_eq!((c.replenishment.window_days, c.replenishment.review_days), (28, 30));
        assert_eq!(c.replenishment.service_level, 0.95);
        assert_eq!(c.replenishment.sweep_interval, Duration::from_secs(3600));
        let c = with(&[("STOCKD_REORDER_WINDOW_DAYS", "90"), ("STOCKD_SERVICE_LEVEL", "0.99")]).expect("valid");
        assert_eq!((c.replenishment.window_days, c.replenishment.service_level), (90, 0.99));
        for (var, value) in [
            ("STOCKD_REORDER_WINDOW_DAYS", "0"),
            ("STOCKD_REORDER_REVIEW_DAYS", "-1"),
            ("STOCKD_SERVICE_LEVEL", "1"),
            ("STOCKD_SERVICE_LEVEL", "0.3"),
            ("STOCKD_REPLENISHMENT", "maybe"),
            ("STOCKD_NOTIFY_MAX_ATTEMPTS", "0"),
        ] {
            assert_eq!(with(&[(var, value)]).expect_err(value).var, var);
        }
    }
}
