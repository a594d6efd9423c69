#!lua
-- webhook/settle.lua: record one attempt of a message (WebhookStore.settle): it goes
-- (delivered, or given up on and kept in `failed`), or waits for its next attempt with one
-- more attempt counted. Nothing is written for a subscription deleted meanwhile, or a message
-- no longer pending.
-- KEYS  1 subscriptions  2 due  3 msg  4 log  5 failed
-- ARGV  1 subscription id  2 message id  3 next attempt (ms; '' when it goes)  4 the message
--       with one more attempt ('' when it goes)  5 the log entry  6 the failed entry ('' none)
--       7 log entries kept  8 failed entries kept
-- Returns 1 when recorded, 0 when not.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 or not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  if ARGV[6] ~= '' then log(KEYS[5], ARGV[6], ARGV[8]) end
else
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
end
log(KEYS[4], ARGV[5], ARGV[7])
return 1
