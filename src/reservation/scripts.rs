//! The Lua scripts, loaded once. Each script is `common.lua` followed by its
//! own file; `redis::Script` runs it with EVALSHA and loads it again when the
//! server answers NOSCRIPT (after a restart or SCRIPT FLUSH). Every script
//! returns through `done` (common.lua), which writes the events it kept: a
//! test below checks each top-level `return`.

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
    pub count: NamedScript,
    pub resolve_count: NamedScript,
    pub expire: NamedScript,
    pub get_order: NamedScript,
    pub restore: NamedScript,
    pub po: NamedScript,
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
    count: build("count", include_str!("lua/count.lua")),
    resolve_count: build("resolve_count", include_str!("lua/resolve_count.lua")),
    expire: build("expire", include_str!("lua/expire.lua")),
    get_order: build("get_order", include_str!("lua/get_order.lua")),
    restore: build("restore", include_str!("lua/restore.lua")),
    po: build("po", include_str!("lua/po.lua")),
});

#[cfg(test)]
mod tests {
    /// The script files, by name.
    const FILES: [(&str, &str); 14] = [
        ("reserve", include_str!("lua/reserve.lua")),
        ("extend", include_str!("lua/extend.lua")),
        ("commit", include_str!("lua/commit.lua")),
        ("fulfill", include_str!("lua/fulfill.lua")),
        ("release", include_str!("lua/release.lua")),
        ("adjust", include_str!("lua/adjust.lua")),
        ("register_sku", include_str!("lua/register_sku.lua")),
        ("set_stop_sell", include_str!("lua/set_stop_sell.lua")),
        ("count", include_str!("lua/count.lua")),
        ("resolve_count", include_str!("lua/resolve_count.lua")),
        ("expire", include_str!("lua/expire.lua")),
        ("get_order", include_str!("lua/get_order.lua")),
        ("restore", include_str!("lua/restore.lua")),
        ("po", include_str!("lua/po.lua")),
    ];

    /// The `return`s of a script's top level that do not go through
    /// `done(...)`: outside its top-level functions (from a `function` line
    /// at column 0 to an `end` line at column 0) and outside one-line
    /// `function(...) ... end` arguments. Comments are skipped.
    fn returns_without_done(source: &str) -> Vec<String> {
        let mut in_function = false;
        let mut found = Vec::new();
        for line in source.lines() {
            if line.starts_with("local function ") || line.starts_with("function ") {
                in_function = true;
            }
            if in_function {
                in_function = line != "end";
                continue;
            }
            let code = line.split("--").next().unwrap_or("");
            // One-line anonymous functions return to their caller, not the script.
            let code = match (code.find("function("), code.rfind(" end")) {
                (Some(a), Some(b)) if a < b => format!("{}{}", &code[..a], &code[b + 4..]),
                _ => code.to_owned(),
            };
            if let Some(i) = code.find("return ")
                && !code[i..].starts_with("return done(")
            {
                found.push(line.trim().to_owned());
            }
        }
        found
    }

    #[test]
    fn every_script_returns_through_done_so_its_events_are_written() {
        for (name, source) in FILES {
            assert!(source.contains("return done("), "{name} never returns through done");
            assert_eq!(returns_without_done(source), Vec::<String>::new(), "{name}.lua");
        }
    }

    #[test]
    fn the_scripts_bound_on_levels_is_the_domains() {
        let line = format!("local LEVEL_LIMIT = {}\n", crate::domain::MAX_LEVEL);
        assert!(super::COMMON.contains(&line), "common.lua must say {line:?}");
    }

    #[test]
    fn the_check_finds_a_return_that_skips_done() {
        let script = "local function f()\n  return 1\nend\nif x then return y end\n\
                      g(function(q) return q end)\n-- return in a comment\nreturn done(z)\n";
        assert_eq!(returns_without_done(script), ["if x then return y end"]);
    }
}
