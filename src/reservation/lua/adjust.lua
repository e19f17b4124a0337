-- adjust.lua: a physical change to on_hand of one SKU-location, by a delta or
-- to an absolute value. Applied once per operation id.
--
-- KEYS[1..5]   the partition's keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      sku
-- ARGV[5]      location
-- ARGV[6]      'delta' or 'set'
-- ARGV[7]      the delta, or the new on_hand
-- ARGV[8]      operation_id
-- ARGV[9]      reason
-- ARGV[10]     how long the operation id is remembered, in ms
-- ARGV[11]     the operation id's digest: its member in the ops index
--
-- Returns {'OK'|'DUP'|'UNKNOWN'|'RANGE'|'NOGEN', on_hand, reserved, committed, in_transit, applied delta}.
-- DUP: the operation id was applied before; nothing changed, levels as now.
-- RANGE: ARGV[7] is not a whole number within LEVEL_LIMIT, or the change
-- would take on_hand outside -LEVEL_LIMIT..LEVEL_LIMIT; nothing changed
-- (the operation id is not used up), levels as now.

local now = now_ms()
if not gen_ok(1) then return done({ 'NOGEN', 0, 0, 0, 0, 0 }) end
expire_all(1, now)
local p = part_keys(1, 1)
local sku, loc, mode, value, op, reason = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9]
redis.call('ZREMRANGEBYSCORE', p.ops, '-inf', now)

local rec = read_sku(p, sku)
if not rec then return done({ 'UNKNOWN', 0, 0, 0, 0, 0 }) end
local l = rec.l[loc] or { 0, 0, 0, 0 }
if redis.call('ZSCORE', p.ops, ARGV[11]) then
  return done({ 'DUP', l[OH], l[RS], l[CM], l[IT], 0 })
end

local delta = value
if mode == 'set' then delta = value - l[OH] end
if not whole(value) or not whole(l[OH] + delta) then
  return done({ 'RANGE', l[OH], l[RS], l[CM], l[IT], 0 })
end
redis.call('ZADD', p.ops, now + tonumber(ARGV[10]), ARGV[11])
-- A first count at a new location is recorded even when it is zero, so the
-- location exists (exports list it, the ledger shows the count).
if delta ~= 0 or rec.l[loc] == nil then
  apply(p, rec, 'adjust', sku, loc, { delta, 0, 0, 0 }, '', op, reason, now)
  write_sku(p, sku, rec)
  l = rec.l[loc]
end
return done({ 'OK', l[OH], l[RS], l[CM], l[IT], delta })
