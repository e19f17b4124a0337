//! A private PostgreSQL on a free port, for tests that stop or crash
//! Postgres (the shared one is never touched that way). Like `RedisServer`:
//! `start`, `stop` (an immediate shutdown: a crash, no checkpoint), `restart`
//! on the same port and data, and Drop stops it and removes its directory.
//!
//! initdb and postgres refuse to run as root, so when the tests run as root
//! they run as the `postgres` OS user (`runuser`), in a directory it owns.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sqlx::Connection;

pub struct PgServer {
    pub port: u16,
    /// Owned by the server's OS user: `data/` (the cluster), `pg.log`, and the
    /// Unix socket.
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has initdb and pg_ctl.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect("initdb and pg_ctl under /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A command for a PostgreSQL program, run as `postgres` when we are root.
fn pg_command(program: &Path, dir: &Path) -> Command {
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    // The server user may not be allowed into the test's working directory.
    cmd.current_dir(dir).stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgServer {
    /// Creates a cluster in a temporary directory, starts it on a free port
    /// and waits until it accepts connections.
    pub async fn start() -> PgServer {
        let dir = std::env::temp_dir().join(format!("stockd-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bin = postgres_bin();
        let server = PgServer { port: free_port(), dir, bin, running: false };
        let (dir, initdb) = (server.dir.clone(), server.bin.join("initdb"));
        tokio::task::spawn_blocking(move || {
            if running_as_root() {
                run(
                    {
                        let mut c = Command::new("chown");
                        c.args(["postgres:postgres"]).arg(&dir);
                        c
                    },
                    "chown",
                );
            }
            let mut cmd = pg_command(&initdb, &dir);
            cmd.arg("-D").arg(dir.join("data")).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
            run(cmd, "initdb");
        })
        .await
        .expect("initdb task");
        let mut server = server;
        server.restart().await;
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) on the same port and data directory, and waits until a
    /// connection succeeds. After `stop` this runs crash recovery first.
    pub async fn restart(&mut self) {
        let mut cmd = pg_command(&self.bin.join("pg_ctl"), &self.dir);
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("pg.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "-t", "20", "start"]);
        tokio::task::spawn_blocking(move || run(cmd, "pg_ctl start")).await.expect("pg_ctl task");
        self.running = true;
        let url = self.url();
        let up = super::eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                match sqlx::PgConnection::connect(&url).await {
                    Ok(c) => c.close().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(up, "postgres on port {} does not accept connections; log:\n{}", self.port, self.log());
    }

    /// Stops it at once, like a crash (`pg_ctl -m immediate`): every session
    /// is cut, nothing is checkpointed. Waits until the server is gone.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let mut cmd = pg_command(&self.bin.join("pg_ctl"), &self.dir);
        cmd.arg("-D").arg(self.dir.join("data")).args(["-m", "immediate", "-w", "stop"]);
        if let Err(e) = cmd.output() {
            eprintln!("pg_ctl stop on port {}: {e}", self.port);
        }
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pg.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
