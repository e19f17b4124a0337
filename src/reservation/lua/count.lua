-- count.lua: a cycle count of one SKU-location, judged against on_hand at
-- this instant: no reservation, fulfilment or receipt can slip between the
-- read and the correction, so nothing in flight is lost. (on_hand, not
-- available: held and committed units are still on the shelf.)
--
-- The gates are those of `decide` in src/cycle_count/policy.rs, which is
-- their documentation (a test runs both on the same table):
--   diff = |counted - on_hand|, base = max(on_hand, 1)
--   diff == 0                                          MATCHED: nothing changes
--   diff < min_units, or diff * 10000 <= adjust * base ADJUSTED: on_hand := counted
--                                                      (an adjust event, reason count)
--   diff * 10000 <= stop * base                        INVESTIGATION: nothing changes
--   otherwise                                          STOP_SELL: the location is stopped
--                                                      (rec.s, see common.lua) as well
-- (Integers throughout: every number is within LEVEL_LIMIT and the gates
-- within 10000, so each product is exact in a double.)
--
-- Applied once per operation id: the answer is kept (KEYS[6]) as long as the
-- id is remembered, and a resubmission gets it back unchanged.
--
-- KEYS[1..5]   the SKU's partition keys (see common.lua)
-- KEYS[6]      where the answer is kept (keys.rs count_answer)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      sku
-- ARGV[5]      location
-- ARGV[6]      counted: a whole number in 0..LEVEL_LIMIT
-- ARGV[7]      operation_id (on the event)
-- ARGV[8]      how long the operation id and the answer are kept, in ms
-- ARGV[9]      the operation id's digest: its member in the ops index
-- ARGV[10]     the id an investigation gets if this count opens one
-- ARGV[11]     adjust gate, in basis points of base
-- ARGV[12]     stop gate, in basis points of base
-- ARGV[13]     absolute minimum: a smaller difference is corrected at once
--
-- Returns {tag, action, expected, counted, investigation_id, sku, location}:
--   OK       decided now
--   DUP      decided before: the kept answer, with the SKU and location it was for
--   UNKNOWN  the SKU is not registered; nothing changed
--   RANGE    counted is not a whole number within 0..LEVEL_LIMIT; nothing changed
--   LOST     the operation id was applied, but its answer is no longer kept
--            (Redis was rebuilt since); nothing changed
--   NOGEN    the partition has no generation marker; nothing changed
-- action is MATCHED, ADJUSTED, INVESTIGATION or STOP_SELL ('' unless OK or DUP);
-- investigation_id is '' unless the action is INVESTIGATION or STOP_SELL.

local now = now_ms()
local sku, loc, counted, op = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
if not gen_ok(1) then return done({ 'NOGEN', '', 0, 0, '', sku, loc }) end
expire_all(1, now)
local p = part_keys(1, 1)
redis.call('ZREMRANGEBYSCORE', p.ops, '-inf', now)

local kept = redis.call('GET', KEYS[6])
if kept then
  local f = split(kept, 6)
  return done({ 'DUP', f[1], tonumber(f[2]), tonumber(f[3]), f[4], f[5], f[6] })
end
local rec = read_sku(p, sku)
if not rec then return done({ 'UNKNOWN', '', 0, 0, '', sku, loc }) end
if redis.call('ZSCORE', p.ops, ARGV[9]) then return done({ 'LOST', '', 0, 0, '', sku, loc }) end
if not whole(counted) or counted < 0 then return done({ 'RANGE', '', 0, 0, '', sku, loc }) end

local l = rec.l[loc]
local expected = l and l[OH] or 0
local diff = math.abs(counted - expected)
local base = math.max(expected, 1)
local action
if diff == 0 then
  action = 'MATCHED'
elseif diff < tonumber(ARGV[13]) or diff * 10000 <= tonumber(ARGV[11]) * base then
  action = 'ADJUSTED'
elseif diff * 10000 <= tonumber(ARGV[12]) * base then
  action = 'INVESTIGATION'
else
  action = 'STOP_SELL'
end

if action == 'ADJUSTED' then
  apply(p, rec, 'adjust', sku, loc, { counted - expected, 0, 0, 0 }, '', op, 'count', now)
  write_sku(p, sku, rec)
elseif action == 'STOP_SELL' then
  local s = rec.s or {}
  if s[loc] ~= 1 then
    s[loc] = 1
    rec.s = s
    write_sku(p, sku, rec)
    -- The same entry as set_stop_sell.lua writes.
    redis.call('XADD', p.ev, '*', 'k', 'stop_sell', 's', sku, 'l', loc, 'op', op, 't', now)
  end
end
local inv = ''
if action == 'INVESTIGATION' or action == 'STOP_SELL' then inv = ARGV[10] end
redis.call('ZADD', p.ops, now + tonumber(ARGV[8]), ARGV[9])
local e, c = string.format('%d', expected), string.format('%d', counted)
redis.call('SET', KEYS[6], action .. '\t' .. e .. '\t' .. c .. '\t' .. inv .. '\t' .. sku .. '\t' .. loc,
  'PX', ARGV[8])
return done({ 'OK', action, expected, counted, inv, sku, loc })
