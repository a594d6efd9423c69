-- hold/take.lua: hold this SKU's lines of a reservation, all of them or none.
-- ARGV[3]  expires_at (epoch ms)   ARGV[4..]  the lines (see place_lines in the prelude)
-- Returns {'held', JSON [[line, [[loc, qty], ...]], ...]}
--       | {'short', JSON [[line, requested, available], ...]} (nothing held)
give_back_overdue()
local allocations, shortages, taken = place_lines(4)
if #shortages > 0 then return {'short', cjson.encode(shortages)} end
for loc, units in pairs(taken) do
  local member = rid .. '@' .. loc
  redis.call('HINCRBY', stock, 'rs:' .. loc, units)
  redis.call('HINCRBY', holds, member, units)
  redis.call('ZADD', expiry, ARGV[3], member)
end
return {'held', cjson.encode(allocations)}
