-- get_order.lua: reads an order header (no writes), deriving EXPIRED with the
-- same clock the writing scripts use.
--
-- KEYS[1]      the order header key
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 0)
--
-- Returns {'OK', <order reply>} or {'NOTFOUND'}.

local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return { 'NOTFOUND' } end
return order_reply('OK', KEYS[1], now)
