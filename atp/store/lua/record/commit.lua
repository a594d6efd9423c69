#!lua
-- record/commit.lua: the holds are taken: pending -> held, indexed and published, if this is
-- still the attempt in charge.
-- ARGV[3]  fingerprint   ARGV[4]  allocations JSON
-- ARGV[5]  when the record expires (epoch ms, on the caller's clock so `atp rebuild` can set
--          the same)
-- ARGV[6]  expires_at of this attempt (record/begin.lua)
-- Returns {'held'} | {'replay'} (a newer attempt made it: answer the reservation as it stands)
--       | {'lost'} (the mark expired, is another request's, or a newer attempt took over: the
--       caller gives back its holds)
local ours = redis.call('HGET', rec, 'fingerprint') == ARGV[3]
if state ~= 'pending' and ours then
  if state == 'held' and tonumber(redis.call('HGET', rec, 'expires_ms')) == tonumber(ARGV[6]) then
    return {'held'}  -- committed already by this attempt
  end
  return {'replay'}
end
if state ~= 'pending' or not ours then return {'lost'} end  -- (not ours: another request)
local expires = redis.call('HGET', rec, 'expires_ms')
if tonumber(expires) ~= tonumber(ARGV[6]) then return {'lost'} end
redis.call('HSET', rec, 'state', 'held', 'allocations', ARGV[4])
redis.call('HDEL', rec, 'started_ms')  -- only attempts at a pending reservation need it
redis.call('ZREM', pending, rid)
redis.call('PEXPIREAT', rec, ARGV[5])
redis.call('ZADD', expiring, expires, rid)
publish('held', {'allocations', ARGV[4], 'request', redis.call('HGET', rec, 'request')})
return {'held'}
