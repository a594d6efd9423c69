#!lua
-- record/begin.lua: start an attempt at a reservation. A new id is marked as taken (state
-- 'pending') until expires_at, so a request repeated while its holds are being taken is not run
-- twice, and the mark of a saga that died vanishes with its holds. The same request again while
-- it is pending waits for ARGV[6] ms from the last attempt's start, then takes over: a new
-- attempt, with an expires_at later than the last one's (attempts are told apart by it; the
-- hold/ scripts and commit and abort are fenced by it).
-- ARGV[3]  fingerprint   ARGV[4]  request JSON   ARGV[5]  expires_at (epoch ms)
-- ARGV[6]  how long an attempt owns a pending reservation before a repeat may take over (ms)
-- Returns {'begun', expires_at of this attempt} | {'replay'} (this request was made: answer it)
--       | {'pending', ms until a repeat may take over} | {'conflict'} (the id was used for
--       another request)
if state then
  if redis.call('HGET', rec, 'fingerprint') ~= ARGV[3] then return {'conflict'} end
  if state ~= 'pending' then return {'replay'} end
  local waited = now - tonumber(redis.call('HGET', rec, 'started_ms') or '0')
  if waited < tonumber(ARGV[6]) then return {'pending', tostring(tonumber(ARGV[6]) - waited)} end
  local expires = math.max(tonumber(ARGV[5]), tonumber(redis.call('HGET', rec, 'expires_ms')) + 1)
  redis.call('HSET', rec, 'started_ms', ARGV[2], 'updated_ms', ARGV[2], 'expires_ms', expires)
  redis.call('PEXPIREAT', rec, expires)
  redis.call('ZADD', pending, now + tonumber(ARGV[6]), rid)
  return {'begun', tostring(expires)}
end
redis.call('HSET', rec, 'state', 'pending', 'fingerprint', ARGV[3], 'request', ARGV[4],
  'created_ms', ARGV[2], 'updated_ms', ARGV[2], 'started_ms', ARGV[2], 'expires_ms', ARGV[5])
redis.call('PEXPIREAT', rec, ARGV[5])
redis.call('ZADD', pending, now + tonumber(ARGV[6]), rid)
return {'begun', ARGV[5]}
