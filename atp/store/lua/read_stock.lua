#!lua flags=no-writes
-- read_stock.lua: what the API serves for one SKU, with reservations past their expiry already
-- discounted: a held reservation stops counting at expires_at, even before the sweeper runs
-- (scores up to now are overdue: atp.core.reservations.is_overdue).
--
-- KEYS[1]  atp:v2:{SKU}:stock   KEYS[2]  atp:v2:{SKU}:holds   KEYS[3]  atp:v2:{SKU}:expiry
-- ARGV[1]  now, epoch milliseconds
--
-- Returns {stock hash as a flat field/value list, {location, units, location, units, ...}} where
-- the second list names the units of overdue holds per location (to subtract from rs:<loc>).
local stock = redis.call('HGETALL', KEYS[1])
local overdue = {}
local members = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
for _, member in ipairs(members) do
  local units = redis.call('HGET', KEYS[2], member)
  if units then
    local loc = string.sub(member, string.find(member, '@', 1, true) + 1)
    table.insert(overdue, loc)
    table.insert(overdue, units)
  end
end
return {stock, overdue}
