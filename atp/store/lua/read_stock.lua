#!lua flags=no-writes
-- read_stock.lua: what the API serves for one or more SKUs, with reservations past their expiry
-- already discounted: a held reservation stops counting at expires_at, even before the sweeper
-- runs (scores up to now are overdue: atp.core.reservations.is_overdue).
--
-- KEYS     three per SKU, SKU after SKU: atp:v2:{SKU}:stock, atp:v2:{SKU}:holds,
--          atp:v2:{SKU}:expiry (on Redis Cluster one SKU per call: its keys share a slot)
-- ARGV[1]  now, epoch milliseconds
--
-- Returns, per SKU in KEYS order, {stock hash as a flat field/value list, {location, units,
-- location, units, ...}} where the second list names the units of overdue holds per location
-- (to subtract from rs:<loc>).
local out = {}
for i = 1, #KEYS, 3 do
  local stock = redis.call('HGETALL', KEYS[i])
  local overdue = {}
  local members = redis.call('ZRANGEBYSCORE', KEYS[i + 2], '-inf', ARGV[1])
  for _, member in ipairs(members) do
    local units = redis.call('HGET', KEYS[i + 1], member)
    if units then
      local loc = string.sub(member, string.find(member, '@', 1, true) + 1)
      table.insert(overdue, loc)
      table.insert(overdue, units)
    end
  end
  out[#out + 1] = {stock, overdue}
end
return out
