-- apply_ledger.lua: write one SKU's folded ledger state and the counts the API serves, in one
-- atomic step, but only if nobody wrote the SKU since the caller read it (optimistic version).
--
-- KEYS[1]  atp:v1:{SKU}:ledger   (hash)
-- KEYS[2]  atp:v1:{SKU}:stock    (hash)
-- ARGV[1]  the version the caller read ('0' for a SKU never written)
-- ARGV[2]  updated_at, epoch milliseconds
-- ARGV[3..] groups of four: location id, ledger state JSON, on_hand, next inbound
--           ('<eta_ms>:<qty>', or '' when nothing is inbound)
--
-- Returns {1, new_version} when written; {0, current_version} when the version moved on, in
-- which case nothing was written and the caller re-reads and folds again.
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  return {0, current}
end
local version = tonumber(current) + 1
for i = 3, #ARGV, 4 do
  local loc = ARGV[i]
  redis.call('HSET', KEYS[1], 'l:' .. loc, ARGV[i + 1])
  redis.call('HSET', KEYS[2], 'oh:' .. loc, ARGV[i + 2])
  if ARGV[i + 3] == '' then
    redis.call('HDEL', KEYS[2], 'ib:' .. loc)
  else
    redis.call('HSET', KEYS[2], 'ib:' .. loc, ARGV[i + 3])
  end
end
redis.call('HSET', KEYS[1], 'v', version)
redis.call('HSET', KEYS[2], 'ts', ARGV[2])
return {1, version}
