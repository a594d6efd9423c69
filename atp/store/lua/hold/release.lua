#!lua
-- hold/release.lua: give back what the reservation holds at these locations.
-- ARGV[3]  '' (a reservation that is made: every hold) or the expires_at of an attempt at a
--          pending one (its holds and older attempts'; a newer attempt's are left alone)
-- ARGV[4..]  locations
-- Returns {'ok'}
for i = 4, #ARGV do
  local member = rid .. '@' .. ARGV[i]
  if ARGV[3] == '' or owner(member, ARGV[3]) == 'ours' then give_back(member, ARGV[i]) end
end
return {'ok'}
