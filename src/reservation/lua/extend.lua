-- extend.lua: moves the expiry of an active reservation to now + ttl.
--
-- KEYS[1]      the order header key
-- KEYS[2..]    five keys per partition holding the order's lines
-- ARGV[1..3]   common (clock offset, expiry batch, partition count)
-- ARGV[4]      order_id
-- ARGV[5]      the header's created-at as the caller read it
-- ARGV[6]      how long the header outlives the hold, in ms (tombstone)
-- ARGV[7]      ttl in ms
--
-- Returns 'OK|STATE\t<order reply>', {'NOTFOUND'}, {'STALE'} or {'NOGEN'}.
-- STATE: not active (committed ones no longer expire; ended ones cannot).

local now = now_ms()
if not gen_ok(2) then return done({ 'NOGEN' }) end
expire_all(2, now)
local okey, order = KEYS[1], ARGV[4]
local st, h, early = guarded_status(okey, now)
if early then return done(early) end
if st ~= 'ACTIVE' then return done(header_reply('STATE', h, now)) end

local ttl = tonumber(ARGV[7])
local ea = now + ttl
for i = 1, tonumber(ARGV[3]) do
  local p = part_keys(2, i)
  if redis.call('HEXISTS', p.holds, order) == 1 then
    redis.call('ZADD', p.exp, ea, order)
    -- No number changes, but the reconciler keeps the expiry so that a
    -- rebuild restores the hold with the expiry it really has.
    redis.call('XADD', p.ev, '*', 'k', 'extend', 'o', order, 'e', ea, 't', now)
  end
end
h.ea = ea
write_header(okey, h, ttl + tonumber(ARGV[6]))
return done(header_reply('OK', h, now))
