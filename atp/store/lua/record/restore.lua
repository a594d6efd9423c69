#!lua
-- record/restore.lua: put a reservation back as its events left it (`atp rebuild`); an existing
-- record is left alone (it is newer than the events).
-- ARGV[3]  state   ARGV[4]  fingerprint   ARGV[5]  request JSON   ARGV[6]  allocations JSON
-- ARGV[7]  created_ms   ARGV[8]  expires_ms   ARGV[9]  when the record expires ('' never)
-- ARGV[10]  its transfers as record/transfer.lua keeps them ('' none)
-- ARGV[11]  its changes as record/change.lua keeps them ('' none)
-- ARGV[12]  a closed one's shipped units as its close kept them ('' none; prelude close)
-- Returns {'restored'} | {'exists'}
if state then return {'exists'} end
redis.call('HSET', rec, 'state', ARGV[3], 'fingerprint', ARGV[4], 'request', ARGV[5],
  'allocations', ARGV[6], 'created_ms', ARGV[7], 'updated_ms', ARGV[2], 'expires_ms', ARGV[8])
if ARGV[10] ~= '' then redis.call('HSET', rec, 'moves', ARGV[10]) end
if ARGV[11] ~= '' then redis.call('HSET', rec, 'changes', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', rec, 'shipped', ARGV[12]) end
if ARGV[9] ~= '' then redis.call('PEXPIREAT', rec, ARGV[9]) end
if ARGV[3] == 'held' then redis.call('ZADD', expiring, ARGV[8], rid) end
return {'restored'}
