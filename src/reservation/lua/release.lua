-- release.lua: cancelled or abandoned; the held quantities return to available.
--
-- KEYS[1]      the order header key
-- KEYS[2..]    five keys per partition holding the order's lines
-- ARGV[1..3]   common (clock offset, expiry batch, partition count)
-- ARGV[4]      order_id
-- ARGV[5]      the header's created-at as the caller read it
-- ARGV[6]      how long the header is kept as a tombstone, in ms
-- ARGV[7]      reason (free text)
--
-- Returns 'OK|NOOP|STATE\t<order reply>', {'NOTFOUND'}, {'STALE'} or {'NOGEN'}.
-- NOOP: already released or expired (its stock is already back).
-- STATE: fulfilled, the goods are gone (nothing changed).

local now = now_ms()
if not gen_ok(2) then return done({ 'NOGEN' }) end
expire_all(2, now)
local okey, order, reason = KEYS[1], ARGV[4], ARGV[7]
local st, h, early = guarded_status(okey, now)
if early then return done(early) end
if st == 'RELEASED' or st == 'EXPIRED' then return done(header_reply('NOOP', h, now)) end
if st == 'ACTIVE' then
  move_holds(order, 'release', function(q) return { 0, -q, 0, 0 } end, false, reason, now)
elseif st == 'COMMITTED' then
  move_holds(order, 'release', function(q) return { 0, 0, -q, 0 } end, false, reason, now)
else
  return done(header_reply('STATE', h, now))
end
h.st = 'RELEASED'
set_reason(h, reason)
write_header(okey, h, ARGV[6])
return done(header_reply('OK', h, now))
