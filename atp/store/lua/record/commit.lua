-- record/commit.lua: the holds are taken: pending -> held, indexed and published.
-- ARGV[3]  fingerprint   ARGV[4]  allocations JSON
-- ARGV[5]  when the record expires (epoch ms, on the caller's clock so `atp rebuild` can set
--          the same)
-- Returns {'held'} | {'lost'} (the mark expired, or is another request's: the caller gives its
-- holds back)
local ours = redis.call('HGET', rec, 'fingerprint') == ARGV[3]
if state == 'held' and ours then return {'held'} end  -- committed already (a repeat)
if state ~= 'pending' or not ours then return {'lost'} end
local expires = redis.call('HGET', rec, 'expires_ms')
redis.call('HSET', rec, 'state', 'held', 'allocations', ARGV[4])
redis.call('PEXPIREAT', rec, ARGV[5])
redis.call('ZADD', expiring, expires, rid)
publish('held', {'allocations', ARGV[4], 'request', redis.call('HGET', rec, 'request')})
return {'held'}
