#!lua
-- webhook/delete.lua: remove a subscription with its pending messages, log, failures and lease
-- (WebhookStore.delete).
-- KEYS  1 subscriptions, then its due, msg, log, failed, lease   ARGV[1]  subscription id
-- Returns 1 when it existed, else 0.
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return existed
