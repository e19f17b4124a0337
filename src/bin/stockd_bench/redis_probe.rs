//! Read-only looks at the Redis behind the server: memory (`INFO memory`,
//! `MEMORY USAGE` per key of the store's prefix), CPU (`INFO cpu`) and
//! per-command cost (`INFO commandstats`). Nothing here writes to Redis.

use std::collections::BTreeMap;

use anyhow::Context;
use redis::aio::MultiplexedConnection;

/// Keys whose MEMORY USAGE is asked in one pipeline.
const USAGE_BATCH: usize = 500;

/// A connection to the server's Redis and, optionally, its key prefix.
pub struct RedisProbe {
    conn: MultiplexedConnection,
    prefix: Option<String>,
}

/// Calls and total time of one command (from `INFO commandstats`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommandStat {
    /// Calls since the stats were last reset.
    pub calls: u64,
    /// Microseconds spent in them.
    pub usec: u64,
}

/// Server-side figures at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `used_memory`.
    pub used_memory: u64,
    /// `used_cpu_user + used_cpu_sys` of the Redis process, in seconds.
    pub cpu_s: f64,
    /// Per command name (`evalsha`, `hget`, ...).
    pub commands: BTreeMap<String, CommandStat>,
}

impl RedisProbe {
    /// Connects to `url`; `prefix` (the server's `STOCKD_REDIS_PREFIX`)
    /// enables the per-key breakdown.
    pub async fn connect(url: &str, prefix: Option<String>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("--redis-url {url:?}"))?;
        let conn = client.get_multiplexed_async_connection().await.with_context(|| format!("connecting to {url}"))?;
        Ok(Self { conn, prefix })
    }

    /// Memory, CPU and command statistics now.
    pub async fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        let memory: String = redis::cmd("INFO").arg("memory").query_async(&mut self.conn).await?;
        let cpu: String = redis::cmd("INFO").arg("cpu").query_async(&mut self.conn).await?;
        let stats: String = redis::cmd("INFO").arg("commandstats").query_async(&mut self.conn).await?;
        let fields = info_fields(&memory);
        let used_memory = fields.get("used_memory").and_then(|v| v.parse().ok()).context("INFO memory: used_memory")?;
        let cpu_fields = info_fields(&cpu);
        let cpu_s = ["used_cpu_user", "used_cpu_sys"]
            .iter()
            .filter_map(|k| cpu_fields.get(*k).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        Ok(Snapshot { used_memory, cpu_s, commands: command_stats(&stats) })
    }

    /// Keys, and keys with an expiry, in database 0 (`INFO keyspace`).
    pub async fn key_counts(&mut self) -> anyhow::Result<(u64, u64)> {
        let info: String = redis::cmd("INFO").arg("keyspace").query_async(&mut self.conn).await?;
        Ok(keyspace_counts(&info))
    }

    /// `used_memory` now.
    pub async fn used_memory(&mut self) -> anyhow::Result<u64> {
        Ok(self.snapshot().await?.used_memory)
    }

    /// Every key matching `pattern` (SCAN, so the server is never blocked).
    async fn scan(&mut self, pattern: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn)
                .await?;
            out.extend(keys);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// Entries in the store's event streams not yet reconciled and trimmed
    /// (0 without a prefix).
    pub async fn stream_backlog(&mut self) -> anyhow::Result<u64> {
        let Some(prefix) = self.prefix.clone() else { return Ok(0) };
        let keys = self.scan(&format!("{prefix}:*:ev")).await?;
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("XLEN").arg(k);
        }
        let lens: Vec<u64> = pipe.query_async(&mut self.conn).await?;
        Ok(lens.iter().sum())
    }

    /// Waits (up to `limit`) until the reconciler has drained the event
    /// streams, so that a memory reading counts what stays, not the events
    /// in transit (their number depends on the reconcile lag, not on the
    /// data). Returns the backlog left.
    pub async fn wait_for_drained_streams(&mut self, limit: std::time::Duration) -> anyhow::Result<u64> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let left = self.stream_backlog().await?;
            if left == 0 || tokio::time::Instant::now() >= until {
                return Ok(left);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// MEMORY USAGE summed per kind of key under the prefix (`lvl`, `holds`,
    /// `exp`, `ev`, `ops`, `ord`, ...): (keys, bytes). Empty without a prefix.
    pub async fn usage_by_kind(&mut self) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let Some(prefix) = self.prefix.clone() else { return Ok(out) };
        let keys = self.scan(&format!("{prefix}:*")).await?;
        for batch in keys.chunks(USAGE_BATCH) {
            let mut pipe = redis::pipe();
            for k in batch {
                pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
            }
            let sizes: Vec<Option<u64>> = pipe.query_async(&mut self.conn).await?;
            for (k, size) in batch.iter().zip(sizes) {
                let e = out.entry(key_kind(&prefix, k)).or_default();
                e.0 += 1;
                e.1 += size.unwrap_or(0);
            }
        }
        Ok(out)
    }
}

/// `name:value` lines of an INFO section.
/// Keys and keys with an expiry of db0 from `INFO keyspace`
/// (`db0:keys=N,expires=M,avg_ttl=T`); zeros when it has none.
fn keyspace_counts(info: &str) -> (u64, u64) {
    let Some(db0) = info_fields(info).get("db0").copied() else { return (0, 0) };
    let count = |name: &str| {
        db0.split(',')
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (count("keys"), count("expires"))
}

/// Whether the keyspace's or the expiry table's bucket array grew between
/// two counts (keys, keys with expiry): Redis sizes each to the smallest
/// power of two at least its key count (4 at least).
pub fn table_doubled(before: (u64, u64), after: (u64, u64)) -> bool {
    let size = |n: u64| n.max(4).next_power_of_two();
    size(after.0) > size(before.0) || size(after.1) > size(before.1)
}

fn info_fields(info: &str) -> BTreeMap<&str, &str> {
    info.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.trim().split_once(':')).collect()
}

/// `cmdstat_<name>:calls=..,usec=..,...` lines.
fn command_stats(info: &str) -> BTreeMap<String, CommandStat> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let mut stat = CommandStat::default();
            for kv in rest.split(',') {
                match kv.split_once('=') {
                    Some(("calls", v)) => stat.calls = v.parse().ok()?,
                    Some(("usec", v)) => stat.usec = v.parse().ok()?,
                    _ => {}
                }
            }
            Some((name.to_owned(), stat))
        })
        .collect()
}

/// The kind of a store key: `<prefix>:{p}:lvl` is `lvl`, `<prefix>:{p}:ord:<id>`
/// is `ord`, anything else its first segment after the prefix.
fn key_kind(prefix: &str, key: &str) -> String {
    let rest = key.strip_prefix(prefix).and_then(|r| r.strip_prefix(':')).unwrap_or(key);
    let rest = match rest.strip_prefix('{').and_then(|r| r.split_once("}:")) {
        Some((_, after_tag)) => after_tag,
        None => rest,
    };
    rest.split(':').next().unwrap_or(rest).to_owned()
}

/// What changed between two snapshots, for the human report: Redis CPU
/// seconds and the commands that took the most time.
pub fn describe_delta(before: &Snapshot, after: &Snapshot) -> String {
    let mut rows: Vec<(String, CommandStat)> = after
        .commands
        .iter()
        .map(|(name, a)| {
            let b = before.commands.get(name).copied().unwrap_or_default();
            (name.clone(), CommandStat { calls: a.calls.saturating_sub(b.calls), usec: a.usec.saturating_sub(b.usec) })
        })
        .filter(|(_, d)| d.calls > 0)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.usec));
    let mut s = format!("redis-server CPU {:.2} s;", after.cpu_s - before.cpu_s);
    for (name, d) in rows.iter().take(4) {
        s.push_str(&format!(
            " {name}: {} calls, {:.2} us/call, {:.2} s total;",
            d.calls,
            d.usec as f64 / d.calls as f64,
            d.usec as f64 / 1e6
        ));
    }
    s
}

/// Per-kind difference of two breakdowns, bytes, for the human report.
pub fn describe_usage_delta(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
    per: f64,
    unit: &str,
) -> String {
    let mut parts = Vec::new();
    for (kind, (_, bytes)) in after {
        let b = before.get(kind).map_or(0, |x| x.1);
        let d = bytes.saturating_sub(b);
        if d > 0 {
            parts.push(format!("{kind} {:.0}", d as f64 / per));
        }
    }
    format!("MEMORY USAGE by key kind, bytes per {unit}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kinds_follow_the_store_layout() {
        assert_eq!(key_kind("bench1", "bench1:{17}:lvl"), "lvl");
        assert_eq!(key_kind("bench1", "bench1:{17}:ord:fs-1-2-3"), "ord");
        assert_eq!(key_kind("bench1", "bench1:gen"), "gen");
    }

    #[test]
    fn command_stats_are_read_from_info() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=250,usec_per_call=25.00,rejected_calls=0\r\n\
                    cmdstat_hget:calls=3,usec=3,usec_per_call=1.00\r\n";
        let s = command_stats(info);
        assert_eq!(s["evalsha"], CommandStat { calls: 10, usec: 250 });
        assert_eq!(s["hget"].calls, 3);
    }

    #[test]
    fn a_table_doubles_when_a_count_passes_a_power_of_two() {
        let info = "# Keyspace\r\ndb0:keys=262100,expires=250000,avg_ttl=1000\r\n";
        assert_eq!(keyspace_counts(info), (262_100, 250_000));
        assert_eq!(keyspace_counts("# Keyspace\r\n"), (0, 0));
        assert!(table_doubled((262_100, 250_000), (272_100, 250_000)), "keys passed 262,144");
        assert!(table_doubled((200_000, 262_000), (200_000, 263_000)), "keys with expiry passed 262,144");
        assert!(!table_doubled((270_000, 270_000), (280_000, 280_000)), "both within 524,288");
        assert!(!table_doubled((0, 0), (3, 3)), "the smallest table holds 4");
    }

    #[test]
    fn info_fields_skip_headers() {
        let f = info_fields("# Memory\r\nused_memory:1234\r\nused_memory_human:1.2K\r\n");
        assert_eq!(f["used_memory"], "1234");
    }
}
