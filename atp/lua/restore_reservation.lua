-- restore_reservation.lua: put back one reservation as its events left it (`atp rebuild`), with
-- its holds, in one atomic step. A reservation that exists already is left as it is: it was
-- written after the wipe (or by an earlier rebuild) and is newer than the events.
--
-- KEYS[1]  atp:v1:res:{ID}     KEYS[2]  atp:v1:reservations:expiring     KEYS[3]  atp:v1:outbox
--          (the outbox is not written: a restore is not a change, and its events are in Kafka)
-- KEYS[4..] per SKU of the reservation: stock, holds, expiry (3 keys each)
-- ARGV[1]  reservation id      ARGV[2]  state (held, confirmed, released, expired, fulfilled)
-- ARGV[3]  fingerprint         ARGV[4]  request JSON          ARGV[5]  allocations JSON
-- ARGV[6]  created_ms          ARGV[7]  updated_ms            ARGV[8]  expires_ms
-- ARGV[9]  when the record expires (epoch ms), or '' for never (a confirmed reservation)
-- ARGV[10] number of lines, then per line the SKU index (1-based) of its key group
--
-- Holds are put back only for held and confirmed reservations; only held ones expire.
-- Returns 'restored' | 'exists'
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local rid, state, expires = ARGV[1], ARGV[2], ARGV[8]

if state == 'held' or state == 'confirmed' then
  local allocations = cjson.decode(ARGV[5])
  for line, parts in ipairs(allocations) do
    local base = 3 + (tonumber(ARGV[10 + line]) - 1) * 3
    local stock, holds, expiry = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
    for _, part in ipairs(parts) do
      local loc, units = part[1], part[2]
      local member = rid .. '@' .. loc
      redis.call('HINCRBY', stock, 'rs:' .. loc, units)
      redis.call('HINCRBY', holds, member, units)
      if state == 'held' then redis.call('ZADD', expiry, expires, member) end
    end
  end
  if state == 'held' then redis.call('ZADD', KEYS[2], expires, rid) end
end

redis.call('HSET', KEYS[1], 'state', state, 'fingerprint', ARGV[3], 'request', ARGV[4],
  'allocations', ARGV[5], 'created_ms', ARGV[6], 'updated_ms', ARGV[7], 'expires_ms', expires)
if ARGV[9] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[9]) end
return 'restored'
