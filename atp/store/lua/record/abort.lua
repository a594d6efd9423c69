#!lua
-- record/abort.lua: drop our pending mark (the request was short, or the sweeper abandons a
-- half-made reservation; its holds were given back), unless a newer attempt has taken over.
-- ARGV[3]  fingerprint   ARGV[4]  expires_at of this attempt
-- Returns {'ok'}
if state == 'pending' and redis.call('HGET', rec, 'fingerprint') == ARGV[3]
    and tonumber(redis.call('HGET', rec, 'expires_ms')) == tonumber(ARGV[4]) then
  redis.call('DEL', rec)
  redis.call('ZREM', pending, rid)
end
return {'ok'}
