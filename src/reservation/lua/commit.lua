-- commit.lua: picking started; reserved -> committed, the hold stops expiring.
--
-- KEYS[1]      the order header key
-- KEYS[2..]    five keys per partition holding the order's lines
-- ARGV[1..3]   common (clock offset, expiry batch, partition count)
-- ARGV[4]      order_id
-- ARGV[5]      the header's created-at as the caller read it (guards against a
--              header replaced between that read and this call)
--
-- Returns {'OK'|'NOOP'|'STATE', <order reply>}, {'NOTFOUND'}, {'STALE'} or {'NOGEN'}.
-- NOOP: already committed. STATE: the status forbids it (nothing changed).

local now = now_ms()
if not gen_ok(2) then return { 'NOGEN' } end
expire_all(2, now)
local okey, order = KEYS[1], ARGV[4]
local st, early = guarded_status(okey, now)
if early then return early end
if st == 'COMMITTED' then return order_reply('NOOP', okey, now) end
if st ~= 'ACTIVE' then return order_reply('STATE', okey, now) end

move_holds(order, 'commit', function(q) return { 0, -q, q, 0 } end, true, '', now)
redis.call('HSET', okey, 'st', 'COMMITTED')
redis.call('PERSIST', okey)
return order_reply('OK', okey, now)
