//! The Lua scripts, loaded once. Each script is `common.lua` followed by its
//! own file; `redis::Script` runs it with EVALSHA and loads it again when the
//! server answers NOSCRIPT (after a restart or SCRIPT FLUSH).

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

/// A script and the name it is measured under.
pub struct NamedScript {
    /// The file name without `.lua`.
    pub name: &'static str,
    /// The script (common.lua followed by the file).
    pub script: Script,
}

fn build(name: &'static str, body: &str) -> NamedScript {
    NamedScript { name, script: Script::new(&format!("{COMMON}\n{body}")) }
}

/// Every script the engine runs.
pub struct Scripts {
    pub reserve: NamedScript,
    pub extend: NamedScript,
    pub commit: NamedScript,
    pub fulfill: NamedScript,
    pub release: NamedScript,
    pub adjust: NamedScript,
    pub register_sku: NamedScript,
    pub set_stop_sell: NamedScript,
    pub expire: NamedScript,
    pub get_order: NamedScript,
    pub restore: NamedScript,
}

/// The scripts, compiled into the binary and hashed once per process.
pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve: build("reserve", include_str!("lua/reserve.lua")),
    extend: build("extend", include_str!("lua/extend.lua")),
    commit: build("commit", include_str!("lua/commit.lua")),
    fulfill: build("fulfill", include_str!("lua/fulfill.lua")),
    release: build("release", include_str!("lua/release.lua")),
    adjust: build("adjust", include_str!("lua/adjust.lua")),
    register_sku: build("register_sku", include_str!("lua/register_sku.lua")),
    set_stop_sell: build("set_stop_sell", include_str!("lua/set_stop_sell.lua")),
    expire: build("expire", include_str!("lua/expire.lua")),
    get_order: build("get_order", include_str!("lua/get_order.lua")),
    restore: build("restore", include_str!("lua/restore.lua")),
});
