-- reserve.lua: holds every line of an order or none.
--
-- KEYS[1]            the order header key
-- KEYS[2..]          five keys per partition the lines touch (see common.lua)
-- ARGV[1..3]         common (clock offset, expiry batch, partition count)
-- ARGV[4]            order_id
-- ARGV[5]            ttl in ms
-- ARGV[6]            channel ('' for none)
-- ARGV[7]            how long the header outlives the hold, in ms (tombstone)
-- ARGV[8]            number of lines N
-- ARGV[9]            number of locations M in the allocation order
-- ARGV[10..9+M]      location ids, highest priority first
-- then per line      partition group index, sku, location ('' = allocate), quantity
--
-- Returns one of
--   {'RESERVED', <order reply>}        held now
--   {'EXISTS', <order reply>}          the order already had a reservation; nothing changed
--   {'UNKNOWN', sku, ...}              SKUs not registered; nothing changed
--   {'STOP', sku, ...}                 SKUs stopped; nothing changed
--   {'SHORT', sku, location, requested, available, ...}   nothing changed
--   {'NOGEN'}                          a partition lacks its generation marker
-- (<order reply>: see order_reply in common.lua.)

local now = now_ms()
if not gen_ok(2) then return { 'NOGEN' } end
expire_all(2, now)

local okey = KEYS[1]
local order = ARGV[4]
if redis.call('EXISTS', okey) == 1 then
  return order_reply('EXISTS', okey, now)
end

local ttl = tonumber(ARGV[5])
local channel = ARGV[6]
local grace = tonumber(ARGV[7])
local nlines = tonumber(ARGV[8])
local nlocs = tonumber(ARGV[9])
local rank = {}
for i = 1, nlocs do rank[ARGV[9 + i]] = i end

-- Locations a record holds, in allocation order (unranked ones last, by name).
local function ordered_locations(rec)
  local locs = {}
  for loc, _ in pairs(rec.l) do locs[#locs + 1] = loc end
  if #locs < 2 then return locs end
  table.sort(locs, function(a, b)
    local ra, rb = rank[a] or (nlocs + 1), rank[b] or (nlocs + 1)
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  return locs
end

-- Decode each SKU once; allocation works on these copies, so two lines of
-- the same SKU see each other's holds.
local recs, parts_of = {}, {}
local unknown, stopped, short = {}, {}, {}
local lines = {}
local a = 9 + nlocs
for i = 1, nlines do
  local pi, sku, loc, q = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  a = a + 4
  lines[i] = { pi = pi, sku = sku, loc = loc, q = q }
  if recs[sku] == nil then
    local p = part_keys(2, pi)
    local rec = read_sku(p, sku)
    recs[sku] = rec or false
    parts_of[sku] = pi
    if not rec then
      unknown[#unknown + 1] = sku
    elseif rec.stop == 1 then
      stopped[#stopped + 1] = sku
    end
  end
end
if #unknown > 0 then
  local out = { 'UNKNOWN' }
  for _, s in ipairs(unknown) do out[#out + 1] = s end
  return out
end
if #stopped > 0 then
  local out = { 'STOP' }
  for _, s in ipairs(stopped) do out[#out + 1] = s end
  return out
end

-- Allocate: an explicit location must fill its line alone; otherwise the
-- first location (by priority) that can fill it alone, else a split across
-- locations in priority order.
local held = {}   -- list of {pi, sku, loc, q}
for _, ln in ipairs(lines) do
  local rec = recs[ln.sku]
  if ln.loc ~= '' then
    local avail = rec.l[ln.loc] and available(rec.l[ln.loc]) or 0
    if avail >= ln.q then
      local l = level(rec, ln.loc)
      l[RS] = l[RS] + ln.q
      held[#held + 1] = { ln.pi, ln.sku, ln.loc, ln.q }
    else
      short[#short + 1] = { ln.sku, ln.loc, ln.q, math.max(avail, 0) }
    end
  else
    local locs = ordered_locations(rec)
    local total, whole = 0, nil
    for _, loc in ipairs(locs) do
      local avail = available(rec.l[loc])
      if avail > 0 then total = total + avail end
      if whole == nil and avail >= ln.q then whole = loc end
    end
    if whole then
      local l = rec.l[whole]
      l[RS] = l[RS] + ln.q
      held[#held + 1] = { ln.pi, ln.sku, whole, ln.q }
    elseif total >= ln.q then
      local left = ln.q
      for _, loc in ipairs(locs) do
        if left == 0 then break end
        local l = rec.l[loc]
        local take = math.min(math.max(available(l), 0), left)
        if take > 0 then
          l[RS] = l[RS] + take
          held[#held + 1] = { ln.pi, ln.sku, loc, take }
          left = left - take
        end
      end
    else
      short[#short + 1] = { ln.sku, '', ln.q, total }
    end
  end
end
if #short > 0 then
  local out = { 'SHORT' }
  for _, s in ipairs(short) do
    for _, v in ipairs(s) do out[#out + 1] = v end
  end
  return out
end

-- Everything fits: write the records, one event per SKU-location, the
-- per-partition holds, the expiry index and the header.
local ea = now + ttl
local sum = {}       -- "pi\0sku\0loc" -> {pi, sku, loc, q}
local sum_order = {}
for _, h in ipairs(held) do
  local k = h[1] .. '\0' .. h[2] .. '\0' .. h[3]
  if sum[k] then
    sum[k][4] = sum[k][4] + h[4]
  else
    sum[k] = { h[1], h[2], h[3], h[4] }
    sum_order[#sum_order + 1] = k
  end
end
local by_part = {}
for _, k in ipairs(sum_order) do
  local s = sum[k]
  local p = part_keys(2, s[1])
  emit(p, 'reserve', s[2], s[3], { 0, s[4], 0, 0 }, recs[s[2]].l[s[3]], order, '', '', now, { 'e', ea, 'ch', channel })
  by_part[s[1]] = by_part[s[1]] or {}
  table.insert(by_part[s[1]], { s[2], s[3], s[4] })
end
for sku, rec in pairs(recs) do
  write_sku(part_keys(2, parts_of[sku]), sku, rec)
end
for pi, hl in pairs(by_part) do
  local p = part_keys(2, pi)
  redis.call('HSET', p.holds, order, cjson.encode({ e = ea, c = 0, l = hl }))
  redis.call('ZADD', p.exp, ea, order)
end
local fields = { 'st', 'ACTIVE', 'ca', now, 'ea', ea, 'ch', channel, 'n', #sum_order }
-- The reply is built from the values in hand (same shape as order_reply).
local reply = { 'RESERVED', 'ACTIVE', now, ea, channel, '', #sum_order }
for i, k in ipairs(sum_order) do
  local s = sum[k]
  fields[#fields + 1] = 's' .. i
  fields[#fields + 1] = s[2]
  fields[#fields + 1] = 'l' .. i
  fields[#fields + 1] = s[3]
  fields[#fields + 1] = 'q' .. i
  fields[#fields + 1] = s[4]
  reply[#reply + 1] = s[2]
  reply[#reply + 1] = s[3]
  reply[#reply + 1] = s[4]
end
redis.call('HSET', okey, unpack(fields))
redis.call('PEXPIRE', okey, ttl + grace)
return reply
