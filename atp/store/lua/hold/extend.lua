#!lua
-- hold/extend.lua: move the expiry of the reservation's holds at these locations.
-- ARGV[3]  new expires_at (epoch ms)   ARGV[4..]  locations (holds used up are skipped)
-- Returns {'ok'} | {'expired'} (a hold is overdue: nothing changed)
for i = 4, #ARGV do
  local score = redis.call('ZSCORE', expiry, rid .. '@' .. ARGV[i])
  if score and overdue(score) then return {'expired'} end
end
for i = 4, #ARGV do redis.call('ZADD', expiry, 'XX', ARGV[3], rid .. '@' .. ARGV[i]) end
return {'ok'}
