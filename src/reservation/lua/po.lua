-- po.lua: a purchase order's movement at one location, for the PO's lines
-- whose SKUs live in this partition: submit (in_transit up), receive
-- (in_transit down, on_hand up) or cancel (in_transit down). Applied once
-- per operation id and partition, every line or none: the engine makes one
-- call per partition the PO's SKUs live in, each with the same operation id.
--
-- KEYS[1..5]   the partition's keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      kind, as the events name it: po_submit, po_receive or po_cancel
-- ARGV[5]      location
-- ARGV[6]      operation id (po:<po_id>:submit, po:<po_id>:receive:<id>, po:<po_id>:cancel)
-- ARGV[7]      how long the operation id is remembered, in ms
-- ARGV[8]      the operation id's digest: its member in the ops index
-- ARGV[9]      the PO id (the events' reason, so the ledger names the PO)
-- ARGV[10..]   per line, three values: sku, on_hand delta, in_transit delta
--
-- Returns {'OK'}, {'DUP'}, {'UNKNOWN', sku}, {'SHORT', sku, in_transit},
-- {'RANGE', sku} or {'NOGEN'}.
-- DUP: the operation id was applied before; nothing changed.
-- UNKNOWN: a SKU the catalog never registered; nothing changed.
-- SHORT: in_transit of that SKU-location would fall below zero; nothing changed.
-- RANGE: a delta is not a whole number, or on_hand or in_transit of that
-- SKU-location would leave -LEVEL_LIMIT..LEVEL_LIMIT; nothing changed.

local now = now_ms()
if not gen_ok(1) then return done({ 'NOGEN' }) end
expire_all(1, now)
local p = part_keys(1, 1)
local kind, loc, op, po = ARGV[4], ARGV[5], ARGV[6], ARGV[9]
redis.call('ZREMRANGEBYSCORE', p.ops, '-inf', now)
if redis.call('ZSCORE', p.ops, ARGV[8]) then return done({ 'DUP' }) end

-- Every check before the first write.
local lines, recs = {}, {}
for i = 10, #ARGV, 3 do
  local sku = ARGV[i]
  local rec = recs[sku] or read_sku(p, sku)
  if not rec then return done({ 'UNKNOWN', sku }) end
  recs[sku] = rec
  local d = { tonumber(ARGV[i + 1]), 0, 0, tonumber(ARGV[i + 2]) }
  local l = rec.l[loc] or { 0, 0, 0, 0 }
  if not (whole(d[OH]) and whole(d[IT]) and whole(l[OH] + d[OH]) and whole(l[IT] + d[IT])) then
    return done({ 'RANGE', sku })
  end
  if l[IT] + d[IT] < 0 then return done({ 'SHORT', sku, l[IT] }) end
  lines[#lines + 1] = { sku, d }
end

redis.call('ZADD', p.ops, now + tonumber(ARGV[7]), ARGV[8])
for _, line in ipairs(lines) do
  apply(p, recs[line[1]], kind, line[1], loc, line[2], '', op, po, now)
end
for sku, rec in pairs(recs) do write_sku(p, sku, rec) end
return done({ 'OK' })
