#!lua
-- webhook/enqueue.lua: queue messages, due now, for subscriptions that still exist
-- (WebhookStore.enqueue). A message already pending is left as it is (a record read again);
-- a subscription with ARGV[2] messages pending already gets no more: the message is dropped
-- and the drop logged.
-- KEYS[1]  subscriptions; then per subscription i (1-based): KEYS[3i-1] due, KEYS[3i] msg,
--          KEYS[3i+1] log
-- ARGV[1]  now (ms)   ARGV[2]  most pending a subscription   ARGV[3]  log entries kept
-- ARGV[4..] per message, four: subscription index i, subscription id, message id, the
--          encoded message, then the log entry if it is dropped (five in all)
-- Returns {queued, dropped, gone (its subscription was deleted)}
local queued, dropped, gone = 0, 0, 0
local room = {}
for a = 4, #ARGV, 5 do
  local i, sid, id, msg, entry = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local due, body, log_key = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  if redis.call('HEXISTS', KEYS[1], sid) == 0 then
    gone = gone + 1
  else
    if room[i] == nil then room[i] = tonumber(ARGV[2]) - redis.call('ZCARD', due) end
    if redis.call('ZSCORE', due, id) then
      -- pending already: nothing to do
    elseif room[i] <= 0 then
      dropped = dropped + 1
      log(log_key, entry, ARGV[3])
    else
      room[i] = room[i] - 1
      queued = queued + 1
      redis.call('HSET', body, id, msg)
      redis.call('ZADD', due, ARGV[1], id)
    end
  end
end
return {queued, dropped, gone}
