#!lua
-- hold/restore.lua: set the reservation's holds to these units (`atp rebuild`); a repeated
-- restore changes nothing.
-- ARGV[3]  state ('held' ones go on the expiry)   ARGV[4]  expires_at
-- ARGV[5..]  pairs: location, units
-- Returns {'ok'}
for i = 5, #ARGV, 2 do
  local loc, units = ARGV[i], tonumber(ARGV[i + 1])
  local member = rid .. '@' .. loc
  local old = tonumber(redis.call('HGET', holds, member) or '0')
  redis.call('HINCRBY', stock, 'rs:' .. loc, units - old)
  redis.call('HSET', holds, member, units)
  if ARGV[3] == 'held' then redis.call('ZADD', expiry, ARGV[4], member) end
end
return {'ok'}
