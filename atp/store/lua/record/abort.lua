-- record/abort.lua: drop our pending mark (the request was short; its holds were given back).
-- ARGV[3]  fingerprint
-- Returns {'ok'}
if state == 'pending' and redis.call('HGET', rec, 'fingerprint') == ARGV[3] then
  redis.call('DEL', rec)
end
return {'ok'}
