#!lua
-- webhook/lease.lua: take, keep or give up the lease on sending one subscription's messages
-- (atp/store/webhooks.py): one worker at a time sends them, so each is attempted by one.
-- KEYS[1]  the lease (atp.store.keys.webhook_keys()['lease'])
-- ARGV[1]  who asks (host-pid)   ARGV[2]  how long the lease lasts (ms); 0: give it up
-- Returns 1 when the caller holds the lease for ARGV[2] ms from now (or gave it up), else 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
