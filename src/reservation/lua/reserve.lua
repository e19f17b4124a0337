-- reserve.lua: holds every line of an order or none, for a batch of orders.
--
-- Concurrent Reserve calls are coalesced into one call of this script (see
-- batch.rs): the fixed cost of a call (EVALSHA, the clock, the generation
-- check, the expiry pass, decoding a hot SKU's record) is paid once per
-- batch instead of once per order. Orders are applied one after the other,
-- exactly as if each had been its own call: each is all-or-nothing, and a
-- later order sees the holds of the earlier ones (the same order id twice
-- in one batch gives EXISTS the second time).
--
-- KEYS[1..5*G]       five keys per partition any order touches (see common.lua)
-- KEYS[5*G+k]        the header key of the k-th order
-- ARGV[1..3]         common (clock offset, expiry batch, partition count G)
-- ARGV[4]            number of orders K
-- then per order     order_id, ttl in ms, channel ('' for none), how long the
--                    header outlives the hold in ms (tombstone), number of
--                    lines N, number of locations M in the allocation order,
--                    M location ids (highest priority first), then per line:
--                    partition group index, sku, location ('' = allocate), quantity
--
-- Returns {'NOGEN'} when a partition lacks its generation marker (nothing
-- changed), else an array of K replies, one per order, each one of
--   'RESERVED\t<order reply>'          held now (one string)
--   'EXISTS\t<order reply>'            the order already had a reservation; nothing changed
--   {'UNKNOWN', sku, ...}              SKUs not registered; nothing changed
--   {'STOP', sku, ...}                 SKUs stopped; nothing changed: stopped everywhere,
--                                      or a line that only stopped locations could fill
--                                      (an explicit stopped location, or a line whose
--                                      stock is enough only counting stopped ones)
--   {'SHORT', sku, location, requested, available, ...}   nothing changed
-- (<order reply>: status, tab, header as stored; see header_reply in common.lua.)

local now = now_ms()
if not gen_ok(1) then return done({ 'NOGEN' }) end
expire_all(1, now)

local nparts = tonumber(ARGV[3])
local norders = tonumber(ARGV[4])

-- Decoded level records shared by the whole batch: a SKU is decoded once and
-- written once, however many orders hold it. false: not registered.
local recs, part_of, dirty = {}, {}, {}
-- Hold records and expiry entries of the batch, per partition group, written
-- with one HSET and one ZADD per partition after the batch (no order of the
-- batch reads them; each order's header is written at once, so a repeated
-- order id is still seen).
local new_holds, new_expiries, touched = {}, {}, {}

local function record(pi, sku)
  local rec = recs[sku]
  if rec == nil then
    rec = read_sku(part_keys(1, pi), sku) or false
    recs[sku] = rec
    part_of[sku] = pi
  end
  return rec
end

-- Keeps an order's hold record and expiry entry for partition group pi, to
-- be written with the batch's (see new_holds).
local function add_hold(pi, order, packed, ea_s)
  if not new_holds[pi] then
    new_holds[pi], new_expiries[pi] = {}, {}
    touched[#touched + 1] = pi
  end
  local h, e = new_holds[pi], new_expiries[pi]
  h[#h + 1] = order
  h[#h + 1] = packed
  e[#e + 1] = ea_s
  e[#e + 1] = order
end

-- `list` with x appended unless it holds it already; a new list when nil.
local function add_once(list, x)
  if not list then return { x } end
  for _, y in ipairs(list) do
    if y == x then return list end
  end
  list[#list + 1] = x
  return list
end

-- Locations a record holds, in allocation order (unranked ones last, by name).
local function ordered_locations(rec, rank, nlocs)
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

-- Reserves one order whose arguments start at ARGV[a + 1]. Returns its reply
-- and the index of its last argument.
local function reserve_one(okey, a)
  local order = ARGV[a + 1]
  local ttl = tonumber(ARGV[a + 2])
  local channel = ARGV[a + 3]
  local grace = tonumber(ARGV[a + 4])
  local nlines = tonumber(ARGV[a + 5])
  local nlocs = tonumber(ARGV[a + 6])
  local rank = {}
  for i = 1, nlocs do rank[ARGV[a + 6 + i]] = i end
  a = a + 6 + nlocs
  local lines = {}
  for i = 1, nlines do
    lines[i] = { pi = tonumber(ARGV[a + 1]), sku = ARGV[a + 2], loc = ARGV[a + 3], q = tonumber(ARGV[a + 4]) }
    a = a + 4
  end

  local existing = read_header(okey)
  if existing then
    return header_reply('EXISTS', existing, now), a
  end

  local unknown, stopped, short = {}, {}, {}
  local seen = {}
  for _, ln in ipairs(lines) do
    if not seen[ln.sku] then
      seen[ln.sku] = true
      local rec = record(ln.pi, ln.sku)
      if not rec then
        unknown[#unknown + 1] = ln.sku
      elseif rec.stop == 1 then
        stopped[#stopped + 1] = ln.sku
      end
    end
  end
  if #unknown > 0 then return { 'UNKNOWN', unpack(unknown) }, a end
  if #stopped > 0 then return { 'STOP', unpack(stopped) }, a end

  -- Allocate on the shared records: an explicit location must fill its line
  -- alone; otherwise the first location (by priority) that can fill it
  -- alone, else a split across locations in priority order. Two lines of
  -- the same SKU see each other's holds. Undone below if any line is short.
  -- A stopped location (rec.s, see common.lua) gives nothing: a line it
  -- alone could fill, or that needs its stock, is refused as STOP rather
  -- than SHORT (the stock is there, but not for sale).
  local held = {}   -- list of {pi, sku, loc, q}
  local halted      -- SKUs refused for a stopped location (made on the first)
  for _, ln in ipairs(lines) do
    local rec = recs[ln.sku]
    local stops = rec.s
    if stops and ln.loc ~= '' and stops[ln.loc] then
      halted = add_once(halted, ln.sku)
    elseif ln.loc ~= '' then
      local avail = rec.l[ln.loc] and available(rec.l[ln.loc]) or 0
      if avail >= ln.q then
        local l = rec.l[ln.loc]
        l[RS] = l[RS] + ln.q
        held[#held + 1] = { ln.pi, ln.sku, ln.loc, ln.q }
      else
        short[#short + 1] = { ln.sku, ln.loc, ln.q, math.max(avail, 0) }
      end
    else
      local locs = ordered_locations(rec, rank, nlocs)
      local total, whole, blocked = 0, nil, 0
      for _, loc in ipairs(locs) do
        local avail = available(rec.l[loc])
        if stops and stops[loc] then
          if avail > 0 then blocked = blocked + avail end
        else
          if avail > 0 then total = total + avail end
          if whole == nil and avail >= ln.q then whole = loc end
        end
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
          local take = 0
          if not (stops and stops[loc]) then take = math.min(math.max(available(l), 0), left) end
          if take > 0 then
            l[RS] = l[RS] + take
            held[#held + 1] = { ln.pi, ln.sku, loc, take }
            left = left - take
          end
        end
      elseif total + blocked >= ln.q then
        halted = add_once(halted, ln.sku)
      else
        short[#short + 1] = { ln.sku, '', ln.q, total }
      end
    end
  end
  if #short > 0 or halted then
    for _, h in ipairs(held) do
      local l = recs[h[2]].l[h[3]]
      l[RS] = l[RS] - h[4]
    end
    if halted then return { 'STOP', unpack(halted) }, a end
    local out = { 'SHORT' }
    for _, s in ipairs(short) do
      for _, v in ipairs(s) do out[#out + 1] = v end
    end
    return out, a
  end

  -- Everything fits: one event per SKU-location, the per-partition holds,
  -- the expiry index and the header. The records are written after the batch.
  local ea = now + ttl
  local ea_s = string.format('%d', ea)
  -- One entry {pi, sku, loc, q} per SKU-location: a line split across
  -- locations next to another line of its SKU may hold one SKU-location
  -- twice. Most orders hold one SKU-location, and skip the merge. (A SKU has
  -- one partition, so sku and location name an entry.)
  local entries = held
  if #held > 1 then
    entries = {}
    local at = {}
    for _, h in ipairs(held) do
      local k = h[2] .. '\0' .. h[3]
      local e = at[k]
      if e then
        e[4] = e[4] + h[4]
      else
        e = { h[1], h[2], h[3], h[4] }
        at[k] = e
        entries[#entries + 1] = e
      end
    end
  end
  local lines = {}
  for i, s in ipairs(entries) do
    emit(part_keys(1, s[1]), 'reserve', s[2], s[3], { 0, s[4], 0, 0 }, recs[s[2]].l[s[3]], order, '', '', now, ea_s,
      channel)
    dirty[s[2]] = true
    lines[i] = { s[2], s[3], s[4] }
  end
  -- The hold record of each partition: its lines of this order.
  if #entries == 1 then
    add_hold(entries[1][1], order, pack_hold(false, lines), ea_s)
  else
    local by_part, part_list = {}, {}
    for i, s in ipairs(entries) do
      local mine = by_part[s[1]]
      if not mine then
        mine = {}
        by_part[s[1]] = mine
        part_list[#part_list + 1] = s[1]
      end
      mine[#mine + 1] = lines[i]
    end
    for _, pi in ipairs(part_list) do
      add_hold(pi, order, pack_hold(false, by_part[pi]), ea_s)
    end
  end
  local h = new_header('ACTIVE', now, ea, channel, lines)
  write_header(okey, h, ttl + grace)
  return header_reply('RESERVED', h, now), a
end

local replies = {}
local a = 4
for k = 1, norders do
  replies[k], a = reserve_one(KEYS[5 * nparts + k], a)
end
for sku, _ in pairs(dirty) do
  write_sku(part_keys(1, part_of[sku]), sku, recs[sku])
end
for _, pi in ipairs(touched) do
  local p = part_keys(1, pi)
  redis.call('HSET', p.holds, unpack(new_holds[pi]))
  redis.call('ZADD', p.exp, unpack(new_expiries[pi]))
end
return done(replies)
