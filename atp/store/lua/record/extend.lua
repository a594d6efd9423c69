#!lua
-- record/extend.lua: held -> held with a later expires_at. The caller moved the holds' expiry
-- first (hold/extend.lua).
-- ARGV[3]  new expires_at (epoch ms)   ARGV[4]  how long a closed record answers replays (ms)
-- Returns as the changes do (prelude).
if missing() then return {'not_found'} end
if state ~= 'held' then return {'invalid', state} end
if overdue() then return {'expired'} end
redis.call('ZADD', expiring, ARGV[3], rid)
redis.call('HSET', rec, 'expires_ms', ARGV[3])
record('held', 'extended', tonumber(ARGV[3]) - now + tonumber(ARGV[4]))
return {'ok', 'held'}
