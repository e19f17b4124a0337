-- resolve_count.lua: closes a count investigation in one step: on_hand of
-- the SKU-location is set to the accepted count (an adjust event, reason
-- count), and the location's stop flag (rec.s, see common.lua) is lifted
-- when asked. Applied once per operation id (inv:<id>:resolve).
--
-- KEYS[1..5]   the SKU's partition keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      sku
-- ARGV[5]      location
-- ARGV[6]      the accepted on_hand: a whole number in 0..LEVEL_LIMIT
-- ARGV[7]      operation_id
-- ARGV[8]      how long the operation id is remembered, in ms
-- ARGV[9]      the operation id's digest: its member in the ops index
-- ARGV[10]     1 to lift the location's stop flag, 0 to leave it
--
-- Returns {'OK'|'DUP'|'UNKNOWN'|'RANGE'|'NOGEN', on_hand, reserved, committed,
-- in_transit, applied delta, 1 when a stop was lifted else 0}.
-- DUP: the operation id was applied before; nothing changed, levels as now.
-- RANGE: ARGV[6] is not a whole number within 0..LEVEL_LIMIT; nothing changed.

local now = now_ms()
if not gen_ok(1) then return done({ 'NOGEN', 0, 0, 0, 0, 0, 0 }) end
expire_all(1, now)
local p = part_keys(1, 1)
local sku, loc, accepted, op = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', p.ops, '-inf', now)

local rec = read_sku(p, sku)
if not rec then return done({ 'UNKNOWN', 0, 0, 0, 0, 0, 0 }) end
local l = rec.l[loc] or { 0, 0, 0, 0 }
if redis.call('ZSCORE', p.ops, ARGV[9]) then
  return done({ 'DUP', l[OH], l[RS], l[CM], l[IT], 0, 0 })
end
if not whole(accepted) or accepted < 0 then
  return done({ 'RANGE', l[OH], l[RS], l[CM], l[IT], 0, 0 })
end

redis.call('ZADD', p.ops, now + tonumber(ARGV[8]), ARGV[9])
local delta = accepted - l[OH]
local changed = false
-- As in adjust.lua, a first value at a new location is recorded even when
-- it is zero, so the location exists.
if delta ~= 0 or rec.l[loc] == nil then
  apply(p, rec, 'adjust', sku, loc, { delta, 0, 0, 0 }, '', op, 'count', now)
  l = rec.l[loc]
  changed = true
end
local lifted = ARGV[10] == '1' and rec.s and rec.s[loc]
if lifted then
  rec.s[loc] = nil
  -- No empty set is kept: it would pack as an array.
  if not next(rec.s) then rec.s = nil end
  changed = true
end
if changed then write_sku(p, sku, rec) end
local reply = { 'OK', l[OH], l[RS], l[CM], l[IT], delta, lifted and 1 or 0 }
if not lifted then return done(reply) end
-- The correction's entry is written first (done), then the resume (the same
-- entry as set_stop_sell.lua writes): a reader in stream order (the
-- reconciler, channel sync) never sees the location selling at its old count.
done(reply)
redis.call('XADD', p.ev, '*', 'k', 'resume_sell', 's', sku, 'l', loc, 'op', op, 't', now)
return done(reply)
