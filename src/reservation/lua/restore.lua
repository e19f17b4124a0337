-- restore.lua: rebuilds one partition from Postgres (after Redis was wiped,
-- or when a store is set up). Writes nothing when the partition already has
-- its generation marker, so it can never overwrite live data.
--
-- KEYS[1..5]   the partition's keys (see common.lua)
-- KEYS[6..]    order header keys restored by this call (ids in this partition)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
-- ARGV[4]      the generation id
-- ARGV[5]      1 on the last call for this partition: then the marker is written
-- ARGV[6]      S, then S pairs: sku, JSON levels record
-- then         H, then H triples: order_id, JSON hold, expires_ms ('' when committed)
-- then         O, then O pairs: operation id digest (see keys.rs), forget_at_ms
-- then         per header key KEYS[6..]: F, then F field/value pairs, then
--              the key's time to live in ms (0: no expiry)
--
-- Returns 1 when written, 0 when the partition already had a marker.

local p = part_keys(1, 1)
if redis.call('HEXISTS', p.lvl, GEN) == 1 then return done(0) end

local a = 6
local function take()
  a = a + 1
  return ARGV[a - 1]
end

for _ = 1, tonumber(take()) do
  local sku, rec = take(), take()
  -- Given as JSON (Postgres builds it); stored packed like write_sku does.
  redis.call('HSET', p.lvl, sku, cmsgpack.pack(cjson.decode(rec)))
end
for _ = 1, tonumber(take()) do
  local order, hold, ea = take(), take(), take()
  -- Given as JSON {"c", "l"} (Postgres builds it); stored packed.
  local h = cjson.decode(hold)
  redis.call('HSET', p.holds, order, pack_hold(h.c == 1, h.l))
  if ea ~= '' then redis.call('ZADD', p.exp, tonumber(ea), order) end
end
for _ = 1, tonumber(take()) do
  local op, forget_at = take(), take()
  redis.call('ZADD', p.ops, tonumber(forget_at), op)
end
for k = 6, #KEYS do
  -- Given as field/value pairs (st, ca, ea, ch, rr, n, s<i>, l<i>, q<i>);
  -- stored packed like the scripts write it.
  local f = {}
  for _ = 1, tonumber(take()) do
    local name = take()
    f[name] = take()
  end
  local lines = {}
  for i = 1, tonumber(f.n) do
    lines[i] = { f['s' .. i], f['l' .. i], f['q' .. i] }
  end
  local h = new_header(f.st, tonumber(f.ca), tonumber(f.ea), f.ch or '', lines)
  set_reason(h, f.rr or '')
  local ttl = tonumber(take())
  write_header(KEYS[k], h, ttl > 0 and ttl or nil)
end
if ARGV[5] == '1' then redis.call('HSET', p.lvl, GEN, ARGV[4]) end
return done(1)
