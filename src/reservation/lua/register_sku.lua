-- register_sku.lua: makes a catalog SKU known to the engine (no stock yet).
-- Until then a reservation of it is answered UNKNOWN_SKU.
--
-- KEYS[1..5]   the SKU's partition keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      sku
--
-- Returns 1 when the SKU was new, 0 when it was already known, -2 when the
-- partition has no generation marker (Redis must be rebuilt first).

local p = part_keys(1, 1)
if not gen_ok(1) then return done(-2) end
if redis.call('HEXISTS', p.lvl, ARGV[4]) == 1 then return done(0) end
redis.call('HSET', p.lvl, ARGV[4], cmsgpack.pack({ stop = 0, l = {} }))
return done(1)
