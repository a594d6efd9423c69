-- record/begin.lua: mark the id as taken (state 'pending') until expires_at, so a request
-- repeated while its holds are being taken is not run twice; the mark of a saga that died
-- vanishes with its holds.
-- ARGV[3]  fingerprint   ARGV[4]  request JSON   ARGV[5]  expires_at (epoch ms)
-- Returns {'begun'} | {'replay'} (this request was made: answer it) | {'pending'} (it is being
-- made) | {'conflict'} (the id was used for another request)
if state then
  if redis.call('HGET', rec, 'fingerprint') ~= ARGV[3] then return {'conflict'} end
  return {state == 'pending' and 'pending' or 'replay'}
end
redis.call('HSET', rec, 'state', 'pending', 'fingerprint', ARGV[3], 'request', ARGV[4],
  'created_ms', ARGV[2], 'updated_ms', ARGV[2], 'expires_ms', ARGV[5])
redis.call('PEXPIREAT', rec, ARGV[5])
return {'begun'}
