-- common.lua: shared helpers, prepended to every script (see scripts.rs).
--
-- Data layout of one partition p (every key carries the hash tag {p}, so one
-- partition lives in one Redis Cluster slot; keys.rs builds every name):
--   lvl    hash   field <sku> -> MessagePack {stop=0|1, l={<location>=[on_hand,reserved,committed,in_transit]},
--                 s={<location>=1}}
--                 stop: selling the SKU is stopped everywhere (set_stop_sell.lua);
--                 s: the locations where selling it is stopped (a count over the stop
--                 gate, count.lua; lifted by resolve_count.lua), absent while none is.
--                 (MessagePack, not JSON: a 3-location record fits Redis's 64-byte
--                 allocation class instead of 96, and packs and unpacks faster)
--                 A field exists exactly for the SKUs the catalog has registered.
--   holds  hash   field <order_id> -> "<c>\t<sku>\t<location>\t<qty>[\t<sku>\t<location>\t<qty>...]"
--                 The lines of that order that live in this partition; c is 1 once
--                 committed, else 0. Tab-packed, without the expiry (the exp score
--                 has it): a one-line hold stays under Redis's 64-byte listpack
--                 value limit, so a partition with few holds keeps the compact encoding.
--   exp    zset   member <order_id>, score expires_ms: the uncommitted holds, by expiry.
--   ev     stream one entry per script call that changed SKU-locations of the
--                 partition: field `v` once per changed SKU-location, in order
--                 (read by the reconciler; see emit and done).
--   ops    zset   member <digest of operation_id>, score forget_at_ms: applied
--                 operation ids (16-byte digests: ids are often long, and
--                 one is kept per stock change for 24 h; see keys.rs).
-- An order's header is one string key (in the partition of the order id),
-- tab-packed (see pack_header): a string costs ~50 bytes less than a hash and
-- is written with its TTL in one SET.
--   status letter (A active, C committed, F fulfilled, R released, E expired), created
--   ms, expiry as ms after created (7 digits for 30 minutes instead of 13: it keeps a
--   one-line header within a 64-byte allocation), channel, line count n, n times
--   sku, location, qty, and last the release reason when there is one (the only
--   value that may hold a tab).
--   EXPIRED is derived: ACTIVE and now >= expires.
--
-- Partition keys come five at a time; part_keys(first, i) names the i-th group.
-- Every script that acts on partitions first checks their generation marker
-- (see gen_ok) and answers NOGEN without touching anything when one is missing.
-- Every script's ARGV starts with the same three values:
--   ARGV[1] clock offset in ms added to Redis TIME (0 in production; tests move time)
--   ARGV[2] most expired holds to release per partition in this call
--   ARGV[3] number of partition key groups in KEYS

local OH, RS, CM, IT = 1, 2, 3, 4

-- The bound on every stored number (MAX_LEVEL in src/domain/quantity.rs; a
-- unit test in scripts.rs keeps the two equal). Lua numbers are doubles,
-- exact for integers up to 2^53: a number within this bound, plus or minus
-- any change a request may carry, is exact, and so is every sum the ledger
-- keeps of them in Postgres.
local LEVEL_LIMIT = 1000000000

-- True for a whole number within -LEVEL_LIMIT..LEVEL_LIMIT (false for nil,
-- NaN, infinities and fractions).
local function whole(x)
  return type(x) == 'number' and x == math.floor(x) and x >= -LEVEL_LIMIT and x <= LEVEL_LIMIT
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
end

-- Each group's table is made once per call and shared (only emit adds to it,
-- keeping the partition's events until the script ends):
-- the helpers ask for the same groups again and again.
local PART_KEYS = {}
local function part_keys(first, i)
  local b = first + (i - 1) * 5
  local p = PART_KEYS[b]
  if not p then
    p = { lvl = KEYS[b], holds = KEYS[b + 1], exp = KEYS[b + 2], ev = KEYS[b + 3], ops = KEYS[b + 4] }
    PART_KEYS[b] = p
  end
  return p
end

-- Splits s at tabs into at most n fields; the last keeps the rest, tabs and all.
local function split(s, n)
  local out, from = {}, 1
  while #out < n - 1 do
    local i = string.find(s, '\t', from, true)
    if not i then break end
    out[#out + 1] = string.sub(s, from, i - 1)
    from = i + 1
  end
  out[#out + 1] = string.sub(s, from)
  return out
end

-- A hold record (see the layout above) from its lines {{sku, location, qty}, ...}.
local function pack_hold(committed, lines)
  local t = { committed and '1' or '0' }
  for _, l in ipairs(lines) do
    t[#t + 1] = l[1]
    t[#t + 1] = l[2]
    t[#t + 1] = l[3]
  end
  return table.concat(t, '\t')
end

-- A hold record as {c = committed, l = {{sku, location, qty}, ...}}.
local function unpack_hold(raw)
  local f = split(raw, 1e9)
  local lines = {}
  for i = 2, #f - 2, 3 do
    lines[#lines + 1] = { f[i], f[i + 1], tonumber(f[i + 2]) }
  end
  return { c = f[1] == '1', l = lines }
end

-- (E: expired, as Postgres records it; a rebuild restores such tombstones.)
local STATUS_OF = { A = 'ACTIVE', C = 'COMMITTED', F = 'FULFILLED', R = 'RELEASED', E = 'EXPIRED' }
local LETTER_OF = { ACTIVE = 'A', COMMITTED = 'C', FULFILLED = 'F', RELEASED = 'R', EXPIRED = 'E' }

-- An order header as a table: st (status word as stored), ca (created ms, kept
-- as the string stored: the transitions' guard compares it), ea (expires ms),
-- tail (the stored fields from the channel on: channel, n, the lines and the
-- reason) and raw (the header as stored; write_header packs it anew).
-- Nil when absent.
-- Only the first three fields are split out: no script reads the channel or
-- the lines of a stored header (the holds have them), and the reply sends
-- the header as stored (see header_reply).
local function read_header(okey)
  local raw = redis.call('GET', okey)
  if not raw then return nil end
  local i = string.find(raw, '\t', 1, true)
  local j = string.find(raw, '\t', i + 1, true)
  local k = string.find(raw, '\t', j + 1, true)
  local ca = string.sub(raw, i + 1, j - 1)
  return {
    st = STATUS_OF[string.sub(raw, 1, i - 1)], ca = ca, ea = tonumber(ca) + tonumber(string.sub(raw, j + 1, k - 1)),
    tail = string.sub(raw, k + 1), raw = raw,
  }
end

-- A new header: ca and ea in ms, channel, lines {{sku, location, qty}, ...}.
local function new_header(st, ca, ea, channel, lines)
  local t = { channel, #lines }
  for _, l in ipairs(lines) do
    t[#t + 1] = l[1]
    t[#t + 1] = l[2]
    t[#t + 1] = l[3]
  end
  return { st = st, ca = string.format('%d', ca), ea = ea, tail = table.concat(t, '\t') }
end

-- Sets the release reason of a header that has none: only a release sets
-- one, and it acts on active and committed headers only, which have none.
local function set_reason(h, reason)
  if reason ~= '' then h.tail = h.tail .. '\t' .. reason end
end

-- Writes a header with a time to live in ms, or none (nil: SET drops any TTL).
local function write_header(okey, h, ttl_ms)
  h.raw = LETTER_OF[h.st] .. '\t' .. h.ca .. '\t' .. string.format('%d', h.ea - tonumber(h.ca)) .. '\t' .. h.tail
  if ttl_ms then
    redis.call('SET', okey, h.raw, 'PX', ttl_ms)
  else
    redis.call('SET', okey, h.raw)
  end
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
-- The numbers (all integers) go through one string.format('%d'):
-- concatenating a Lua number formats it with '%.14g', several times slower.
-- The rest is one `..` chain (one concatenation, one new string), 0.7 us
-- cheaper per event than building a table for table.concat. Every operand
-- is a string: ea is passed formatted, and order, op and reason are '' when
-- there is none.
--
-- Events are not XADDed one by one: a call's events for one stream are kept
-- (in order) and written as one entry, each event a field `v` of it, when
-- the script returns (through done). A flash-sale call that reserves a
-- dozen orders of one SKU then makes one XADD instead of a dozen, and the
-- reconciler reads, acknowledges and trims a dozen times fewer entries. An
-- entry holds at most EVENTS_PER_ENTRY events (unpack's limit on a table's
-- length is far above it).
local NUMBERS = '%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d'
local EVENTS_PER_ENTRY = 500
-- The partitions with events kept, in order. A partition's first event is
-- kept in its key group's table (see part_keys; most calls make one event
-- per partition, and no table is made for those), further ones in a list.
-- Eight slots are made at once (a table grown an element at a time is
-- resized at 1, 2 and 4); npending counts the ones in use.
local pending, npending = { false, false, false, false, false, false, false, false }, 0
local function emit(p, kind, sku, loc, d, l, order, op, reason, now, ea, channel)
  local ev = kind .. '\t' .. sku .. '\t' .. loc .. '\t'
    .. string.format(NUMBERS, d[OH], d[RS], d[CM], d[IT], l[OH], l[RS], l[CM], l[IT], now) .. '\t'
    .. (ea or '') .. '\t' .. (channel or '') .. '\t' .. order .. '\t' .. op .. '\t' .. reason
  local first = p.first_event
  if not first then
    p.first_event = ev
    npending = npending + 1
    pending[npending] = p
    return
  end
  local more = p.more_events
  if not more then
    more = { 'v', first }
    p.more_events = more
  end
  more[#more + 1] = 'v'
  more[#more + 1] = ev
  if #more >= 2 * EVENTS_PER_ENTRY then
    -- A full entry goes now; p stays in pending, where done skips
    -- it unless it keeps events again.
    redis.call('XADD', p.ev, '*', unpack(more))
    p.first_event, p.more_events = nil, nil
  end
end

-- Every script returns through this: the reply, once the events emit kept
-- are written, one entry per partition. (A script that returned without it
-- would drop its events: a unit test in scripts.rs checks every top-level
-- return of every script. One function rather than a flush and a wrapper:
-- each call of a script makes a closure of every definition here.)
local function done(reply)
  for i = 1, npending do
    local p = pending[i]
    local more = p.more_events
    if more then
      redis.call('XADD', p.ev, '*', unpack(more))
    elseif p.first_event then
      redis.call('XADD', p.ev, '*', 'v', p.first_event)
    end
    p.first_event, p.more_events = nil, nil
  end
  npending = 0
  return reply
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
    local hold = unpack_hold(raw)
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
      redis.call('HSET', p.holds, order, pack_hold(true, hold.l))
    else
      redis.call('HDEL', p.holds, order)
    end
    -- A committed hold left the expiry index when it was committed (and a
    -- rebuild does not index it): fulfilling or releasing it skips the ZREM.
    if hold.c then return end
  end
  redis.call('ZREM', p.exp, order)
end

-- Releases up to `limit` holds of partition p whose expiry has passed, so that
-- a SKU under traffic is never blocked by a dead hold. Returns how many.
-- (limit is ARGV[2] as sent, and now goes to Redis formatted with '%d':
-- Lua would format a number argument with its slower '%.14g'.)
local function expire_due(p, now, limit)
  local due = redis.call('ZRANGEBYSCORE', p.exp, '-inf', string.format('%d', now), 'LIMIT', '0', limit)
  for _, order in ipairs(due) do
    move_hold(p, order, 'expire', function(q) return { 0, -q, 0, 0 } end, false, 'expired', now)
  end
  return #due
end

-- Releases expired holds in every partition group of this call.
local function expire_all(first, now)
  for i = 1, tonumber(ARGV[3]) do
    expire_due(part_keys(first, i), now, ARGV[2])
  end
end

-- The status of a header, with EXPIRED derived.
local function status_of(h, now)
  if h.st == 'ACTIVE' and now >= h.ea then return 'EXPIRED' end
  return h.st
end

-- An order reply: tag, status (EXPIRED derived here), and the header as
-- stored (see the layout above; src/reservation/reply.rs reads it), joined
-- by tabs into one string (the header is last, as it holds tabs). One
-- string instead of a value per field, and instead of a three-value array:
-- cheaper to build here, to send, and to parse in stockd, where each reply
-- value costs its own parse and allocation (a batch of reserves answers
-- one per order).
local function header_reply(tag, h, now)
  return tag .. '\t' .. status_of(h, now) .. '\t' .. h.raw
end

-- Moves every hold of `order` (in each partition group from KEYS[2] on).
local function move_holds(order, kind, deltas, keep, reason, now)
  for i = 1, tonumber(ARGV[3]) do
    move_hold(part_keys(2, i), order, kind, deltas, keep, reason, now)
  end
end

-- The order's status and header once the header is known to be the one the
-- caller read (same created-at, ARGV[5]); otherwise a reply to return at once.
local function guarded_status(okey, now)
  local h = read_header(okey)
  if not h then return nil, nil, { 'NOTFOUND' } end
  if h.ca ~= ARGV[5] then return nil, nil, { 'STALE' } end
  return status_of(h, now), h, nil
end
