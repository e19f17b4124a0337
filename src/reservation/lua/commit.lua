-- commit.lua: picking started; reserved -> committed, the hold stops expiring.
--
-- KEYS[1]      the order header key
-- KEYS[2..]    five keys per partition holding the order's lines
-- ARGV[1..3]   common (clock offset, expiry batch, partition count)
-- ARGV[4]      order_id
-- ARGV[5]      the header's created-at as the caller read it (guards against a
--              header replaced between that read and this call)
--
-- Returns 'OK|NOOP|STATE\t<order reply>', {'NOTFOUND'}, {'STALE'} or {'NOGEN'}.
-- NOOP: already committed. STATE: the status forbids it (nothing changed).

local now = now_ms()
if not gen_ok(2) then return done({ 'NOGEN' }) end
expire_all(2, now)
local okey, order = KEYS[1], ARGV[4]
local st, h, early = guarded_status(okey, now)
if early then return done(early) end
if st == 'COMMITTED' then return done(header_reply('NOOP', h, now)) end
if st ~= 'ACTIVE' then return done(header_reply('STATE', h, now)) end

move_holds(order, 'commit', function(q) return { 0, -q, q, 0 } end, true, '', now)
h.st = 'COMMITTED'
write_header(okey, h, nil) -- no TTL: a committed order waits for fulfil or release
return done(header_reply('OK', h, now))
