-- common.lua: shared helpers, prepended to every script (see scripts.rs).
--
-- Data layout of one partition p (every key carries the hash tag {p}, so one
-- partition lives in one Redis Cluster slot; keys.rs builds every name):
--   lvl    hash   field <sku> -> MessagePack {stop=0|1, l={<location>=[on_hand,reserved,committed,in_transit]}}
--                 (MessagePack, not JSON: a 3-location record fits Redis's 64-byte
--                 allocation class instead of 96, and packs and unpacks faster)
--                 A field exists exactly for the SKUs the catalog has registered.
--   holds  hash   field <order_id> -> JSON {"e":expires_ms,"c":0|1,"l":[[sku,location,qty],...]}
--                 The lines of that order that live in this partition; c=1 once committed.
--   exp    zset   member <order_id>, score expires_ms: the uncommitted holds, by expiry.
--   ev     stream one entry per changed SKU-location (read by the reconciler).
--   ops    zset   member <digest of operation_id>, score forget_at_ms: applied
--                 operation ids (16-byte digests: ids are often long, and
--                 one is kept per stock change for 24 h; see keys.rs).
-- An order's header is its own hash key (in the partition of the order id):
--   st ACTIVE|COMMITTED|FULFILLED|RELEASED, ca, ea (ms), ch, rr, n, s<i>/l<i>/q<i>.
--   EXPIRED is derived: st == ACTIVE and now >= ea.
--
-- Partition keys come five at a time; part_keys(first, i) names the i-th group.
-- Every script that acts on partitions first checks their generation marker
-- (see gen_ok) and answers NOGEN without touching anything when one is missing.
-- Every script's ARGV starts with the same three values:
--   ARGV[1] clock offset in ms added to Redis TIME (0 in production; tests move time)
--   ARGV[2] most expired holds to release per partition in this call
--   ARGV[3] number of partition key groups in KEYS

local OH, RS, CM, IT = 1, 2, 3, 4

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
end

local function part_keys(first, i)
  local b = first + (i - 1) * 5
  return { lvl = KEYS[b], holds = KEYS[b + 1], exp = KEYS[b + 2], ev = KEYS[b + 3], ops = KEYS[b + 4] }
end

local function read_sku(p, sku)
  local raw = redis.call('HGET', p.lvl, sku)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local function write_sku(p, sku, rec)
  redis.call('HSET', p.lvl, sku, cmsgpack.pack(rec))
end

-- The four stored numbers of one location, created at zero on first use.
local function level(rec, loc)
  local l = rec.l[loc]
  if not l then
    l = { 0, 0, 0, 0 }
    rec.l[loc] = l
  end
  return l
end

local function available(l)
  return l[OH] - l[RS] - l[CM]
end

-- Appends one stock event: the change (deltas) and the levels after it,
-- packed into one tab-separated field `v` (one field instead of seventeen
-- makes XADD, the reconciler's XREADGROUP and the stream's memory several
-- times cheaper). Ids cannot hold a tab; the reason, which can, comes last.
--   kind, sku, location, d_on_hand, d_reserved, d_committed, d_in_transit,
--   on_hand, reserved, committed, in_transit, time ms, expiry ms ('' unless
--   reserve), channel, order id, operation id, reason
-- (parsed by src/reconcile/event.rs).
local function emit(p, kind, sku, loc, d, l, order, op, reason, now, ea, channel)
  redis.call('XADD', p.ev, '*', 'v', table.concat({
    kind, sku, loc, d[OH], d[RS], d[CM], d[IT], l[OH], l[RS], l[CM], l[IT],
    now, ea or '', channel or '', order, op, reason }, '\t'))
end

-- The generation marker: a field of every partition's lvl hash, written
-- when the partition is set up or rebuilt from Postgres ('#' cannot occur in
-- a SKU). A partition without it belongs to a fresh or wiped Redis, and no
-- script may act on it until it is rebuilt.
local GEN = '#gen'

-- True when every partition group from KEYS[first] on carries the marker.
local function gen_ok(first)
  for i = 1, tonumber(ARGV[3]) do
    if redis.call('HEXISTS', part_keys(first, i).lvl, GEN) == 0 then return false end
  end
  return true
end

-- Applies deltas d to one SKU-location of a decoded record and emits the event.
local function apply(p, rec, kind, sku, loc, d, order, op, reason, now)
  local l = level(rec, loc)
  for i = 1, 4 do l[i] = l[i] + d[i] end
  emit(p, kind, sku, loc, d, l, order, op, reason, now)
end

-- Moves the hold of `order` in partition p: applies deltas(q) to each line's
-- SKU-location, then keeps the hold marked committed (keep = true) or
-- deletes it. Either way it leaves the expiry index.
local function move_hold(p, order, kind, deltas, keep, reason, now)
  local raw = redis.call('HGET', p.holds, order)
  if raw then
    local hold = cjson.decode(raw)
    local recs = {}
    for _, line in ipairs(hold.l) do
      local sku, loc, q = line[1], line[2], line[3]
      local rec = recs[sku] or read_sku(p, sku)
      if rec then
        recs[sku] = rec
        apply(p, rec, kind, sku, loc, deltas(q), order, '', reason, now)
      end
    end
    for sku, rec in pairs(recs) do write_sku(p, sku, rec) end
    if keep then
      hold.c = 1
      redis.call('HSET', p.holds, order, cjson.encode(hold))
    else
      redis.call('HDEL', p.holds, order)
    end
  end
  redis.call('ZREM', p.exp, order)
end

-- Releases up to `limit` holds of partition p whose expiry has passed, so that
-- a SKU under traffic is never blocked by a dead hold. Returns how many.
local function expire_due(p, now, limit)
  local due = redis.call('ZRANGEBYSCORE', p.exp, '-inf', now, 'LIMIT', 0, limit)
  for _, order in ipairs(due) do
    move_hold(p, order, 'expire', function(q) return { 0, -q, 0, 0 } end, false, 'expired', now)
  end
  return #due
end

-- Releases expired holds in every partition group of this call.
local function expire_all(first, now)
  local limit = tonumber(ARGV[2])
  for i = 1, tonumber(ARGV[3]) do
    expire_due(part_keys(first, i), now, limit)
  end
end

-- The order header as a flat reply: status, ca, ea, ch, rr, n, then
-- sku, location, qty per line. EXPIRED is derived here.
local function order_reply(tag, okey, now)
  local h = redis.call('HMGET', okey, 'st', 'ca', 'ea', 'ch', 'rr', 'n')
  local st = h[1]
  if st == 'ACTIVE' and now >= tonumber(h[3]) then st = 'EXPIRED' end
  local out = { tag, st, h[2], h[3], h[4] or '', h[5] or '', h[6] }
  for i = 1, tonumber(h[6]) do
    local line = redis.call('HMGET', okey, 's' .. i, 'l' .. i, 'q' .. i)
    out[#out + 1] = line[1]
    out[#out + 1] = line[2]
    out[#out + 1] = line[3]
  end
  return out
end

-- The status of an order header, with EXPIRED derived; nil when absent.
local function order_status(okey, now)
  local h = redis.call('HMGET', okey, 'st', 'ea')
  if not h[1] then return nil end
  if h[1] == 'ACTIVE' and now >= tonumber(h[2]) then return 'EXPIRED' end
  return h[1]
end

-- Moves every hold of `order` (in each partition group from KEYS[2] on).
local function move_holds(order, kind, deltas, keep, reason, now)
  for i = 1, tonumber(ARGV[3]) do
    move_hold(part_keys(2, i), order, kind, deltas, keep, reason, now)
  end
end

-- The order's status once the header is known to be the one the caller read
-- (same created-at, ARGV[5]); otherwise a reply to return at once.
local function guarded_status(okey, now)
  local st = order_status(okey, now)
  if not st then return nil, { 'NOTFOUND' } end
  if redis.call('HGET', okey, 'ca') ~= ARGV[5] then return nil, { 'STALE' } end
  return st, nil
end
