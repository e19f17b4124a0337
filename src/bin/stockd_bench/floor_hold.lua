-- floor_hold.lua: the bare hold the floor server runs per Reserve (see
-- floor.rs): check, count, remember, with none of stockd's bookkeeping (no
-- order header, no per-partition hold record, no expiry index, no event, no
-- idempotency). It prices one script call per request, not stockd's design.
--
-- KEYS[1]   the SKU's counter hash (field `reserved`)
-- KEYS[2]   the hold's key
-- ARGV[1]   quantity
-- ARGV[2]   hold ttl in ms
-- ARGV[3]   stock: the most that may be reserved in all
--
-- Returns 1 (held) or 0 (not enough stock; nothing changed).

local q = tonumber(ARGV[1])
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if reserved + q > tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved', q)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
