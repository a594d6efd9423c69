#!lua
-- hold/persist.lua: take the reservation's holds at these locations off the expiry (confirm).
-- ARGV[3..]  locations (holds already used up by shipments are skipped)
-- Returns {'ok'} | {'expired'} (a hold is overdue: nothing changed)
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', expiry, rid .. '@' .. ARGV[i])
  if score and overdue(score) then return {'expired'} end
end
for i = 3, #ARGV do redis.call('ZREM', expiry, rid .. '@' .. ARGV[i]) end
return {'ok'}
