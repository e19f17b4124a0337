-- fulfill.lua: shipped; on_hand drops with committed (or reserved, when the
-- order was never committed: commit and fulfil at once).
--
-- KEYS[1]      the order header key
-- KEYS[2..]    five keys per partition holding the order's lines
-- ARGV[1..3]   common (clock offset, expiry batch, partition count)
-- ARGV[4]      order_id
-- ARGV[5]      the header's created-at as the caller read it
-- ARGV[6]      how long the header is kept as a tombstone, in ms
--
-- Returns 'OK|NOOP|STATE\t<order reply>', {'NOTFOUND'}, {'STALE'} or {'NOGEN'}.
-- NOOP: already fulfilled. STATE: released or expired (nothing changed).

local now = now_ms()
if not gen_ok(2) then return done({ 'NOGEN' }) end
expire_all(2, now)
local okey, order = KEYS[1], ARGV[4]
local st, h, early = guarded_status(okey, now)
if early then return done(early) end
if st == 'FULFILLED' then return done(header_reply('NOOP', h, now)) end
if st == 'ACTIVE' then
  move_holds(order, 'fulfill', function(q) return { -q, -q, 0, 0 } end, false, '', now)
elseif st == 'COMMITTED' then
  move_holds(order, 'fulfill', function(q) return { -q, 0, -q, 0 } end, false, '', now)
else
  return done(header_reply('STATE', h, now))
end
h.st = 'FULFILLED'
write_header(okey, h, ARGV[6])
return done(header_reply('OK', h, now))
