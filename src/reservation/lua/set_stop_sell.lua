-- set_stop_sell.lua: stops or resumes selling a SKU (a count discrepancy under
-- investigation stops it). Stopped SKUs are refused by reserve.lua.
--
-- KEYS[1..5]   the SKU's partition keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      sku
-- ARGV[5]      1 to stop, 0 to resume
-- ARGV[6]      operation_id (recorded on the event)
--
-- Returns 1 when the flag changed, 0 when it already had that value,
-- -1 when the SKU is unknown, -2 without a generation marker.

local now = now_ms()
local p = part_keys(1, 1)
if not gen_ok(1) then return done(-2) end
local rec = read_sku(p, ARGV[4])
if not rec then return done(-1) end
local stop = tonumber(ARGV[5])
if rec.stop == stop then return done(0) end
rec.stop = stop
write_sku(p, ARGV[4], rec)
redis.call('XADD', p.ev, '*', 'k', stop == 1 and 'stop_sell' or 'resume_sell',
  's', ARGV[4], 'op', ARGV[6], 't', now)
return done(1)
