-- get_order.lua: reads an order header (no writes), deriving EXPIRED with the
-- same clock the writing scripts use.
--
-- KEYS[1]      the order header key
-- KEYS[2..6]   the keys of the header's partition (only its marker is read)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
--
-- Returns 'OK\t<order reply>', {'NOTFOUND'} or {'NOGEN'}.

local now = now_ms()
if not gen_ok(2) then return done({ 'NOGEN' }) end
local h = read_header(KEYS[1])
if not h then return done({ 'NOTFOUND' }) end
return done(header_reply('OK', h, now))
