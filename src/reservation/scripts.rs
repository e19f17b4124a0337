//! The Lua scripts, loaded once. Each script is `common.lua` followed by its
//! own file; `redis::Script` runs it with EVALSHA and loads it again when the
//! server answers NOSCRIPT (after a restart or SCRIPT FLUSH).

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("lua/common.lua");

fn build(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

/// Every script the engine runs.
pub struct Scripts {
    pub reserve: Script,
    pub extend: Script,
    pub commit: Script,
    pub fulfill: Script,
    pub release: Script,
    pub adjust: Script,
    pub register_sku: Script,
    pub set_stop_sell: Script,
    pub expire: Script,
    pub get_order: Script,
    pub restore: Script,
}

/// The scripts, compiled into the binary and hashed once per process.
pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve: build(include_str!("lua/reserve.lua")),
    extend: build(include_str!("lua/extend.lua")),
    commit: build(include_str!("lua/commit.lua")),
    fulfill: build(include_str!("lua/fulfill.lua")),
    release: build(include_str!("lua/release.lua")),
    adjust: build(include_str!("lua/adjust.lua")),
    register_sku: build(include_str!("lua/register_sku.lua")),
    set_stop_sell: build(include_str!("lua/set_stop_sell.lua")),
    expire: build(include_str!("lua/expire.lua")),
    get_order: build(include_str!("lua/get_order.lua")),
    restore: build(include_str!("lua/restore.lua")),
});
