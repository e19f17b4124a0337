-- set_stop_sell.lua: stops or resumes selling a SKU everywhere, or at one
-- location. reserve.lua refuses a SKU stopped everywhere, and allocates
-- nothing from a stopped location. (A count over the stop gate stops one
-- SKU-location in count.lua itself; this is the manual switch.)
--
-- KEYS[1..5]   the SKU's partition keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      sku
-- ARGV[5]      1 to stop, 0 to resume
-- ARGV[6]      operation_id (recorded on the event)
-- ARGV[7]      location; '' for the whole SKU
--
-- The event is its own stream entry: k stop_sell|resume_sell, s sku, l location
-- ('' for the whole SKU), op, t (parsed by src/reconcile/event.rs).
--
-- Returns 1 when the flag changed, 0 when it already had that value,
-- -1 when the SKU is unknown, -2 without a generation marker.

local now = now_ms()
local p = part_keys(1, 1)
if not gen_ok(1) then return done(-2) end
local sku, loc = ARGV[4], ARGV[7]
local rec = read_sku(p, sku)
if not rec then return done(-1) end
local stop = tonumber(ARGV[5])
if loc == '' then
  if rec.stop == stop then return done(0) end
  rec.stop = stop
else
  local s = rec.s or {}
  if (s[loc] == 1) == (stop == 1) then return done(0) end
  if stop == 1 then s[loc] = 1 else s[loc] = nil end
  -- No empty set is kept: it would pack as an array.
  if next(s) then rec.s = s else rec.s = nil end
end
write_sku(p, sku, rec)
redis.call('XADD', p.ev, '*', 'k', stop == 1 and 'stop_sell' or 'resume_sell',
  's', sku, 'l', loc, 'op', ARGV[6], 't', now)
return done(1)
