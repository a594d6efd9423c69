-- hold/release.lua: give back what the reservation holds at these locations.
-- ARGV[3..]  locations
-- Returns {'ok'}
for i = 3, #ARGV do give_back(rid .. '@' .. ARGV[i], ARGV[i]) end
return {'ok'}
