-- expire.lua: the sweeper's call for an idle partition: releases holds whose
-- expiry has passed, so availability reflects them without other traffic.
--
-- KEYS[1..5]   the partition's keys (see common.lua)
-- ARGV[1..3]   common (clock offset, expiry batch, partition count = 1)
--
-- Returns the number of holds released (at most ARGV[2]), or -2 without a
-- generation marker.

local now = now_ms()
if not gen_ok(1) then return done(-2) end
return done(expire_due(part_keys(1, 1), now, ARGV[2]))
