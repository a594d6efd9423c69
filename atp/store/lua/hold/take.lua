#!lua
-- hold/take.lua: hold this SKU's lines of a reservation, all of them or none (with
-- allow_partial: what fits of each), for the attempt whose expires_at is ARGV[3]. Holds an older attempt of the same reservation left here (its
-- reply was lost) are given back first, so a retry that took over holds each unit once.
-- ARGV[3]  expires_at (epoch ms) of this attempt   ARGV[4]  allow_partial ('1' or '0')
-- ARGV[5..]  the lines (place_lines, prelude)
-- Returns {'held', JSON [[line, [[loc, qty], ...]], ...], JSON shortages (partial: may be
--         less than asked, even nothing)}
--       | {'short', JSON [[line, requested, available], ...]} (nothing held; not partial)
--       | {'lost'} (a newer attempt holds here: this one stops; nothing changed)
give_back_overdue()
for _, loc in ipairs(line_locations(5)) do
  local member = rid .. '@' .. loc
  local who = owner(member, ARGV[3])
  if who == 'newer' then return {'lost'} end
  if who == 'ours' then give_back(member, loc) end
end
local allocations, shortages, taken = place_lines(5, ARGV[4])
if #shortages > 0 and ARGV[4] ~= '1' then return {'short', cjson.encode(shortages)} end
for loc, units in pairs(taken) do
  local member = rid .. '@' .. loc
  redis.call('HINCRBY', stock, 'rs:' .. loc, units)
  redis.call('HINCRBY', holds, member, units)
  redis.call('ZADD', expiry, ARGV[3], member)
end
return {'held', cjson.encode(allocations), #shortages > 0 and cjson.encode(shortages) or '[]'}
