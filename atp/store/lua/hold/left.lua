#!lua flags=no-writes
-- hold/left.lua: how many of the reservation's holds at these locations shipments have not
-- used up yet (fulfil closes the reservation at 0).
-- ARGV[3..]  locations
-- Returns {'left', n}
local n = 0
for i = 3, #ARGV do n = n + redis.call('HEXISTS', holds, rid .. '@' .. ARGV[i]) end
return {'left', n}
