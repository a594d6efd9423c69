-- transition.lua: change a reservation's state in one atomic step, with its holds and its event.
-- One script for the four transitions because they share the release of holds; each op checks
-- the state it may start from.
--
-- KEYS[1]  atp:v1:res:{ID}     KEYS[2]  atp:v1:reservations:expiring     KEYS[3]  atp:v1:outbox
-- KEYS[4..] per SKU of the reservation: stock, holds, expiry (3 keys each)
-- ARGV[1]  reservation id      ARGV[2]  now (epoch ms)
-- ARGV[3]  op: confirm | extend | release | expire | fulfil
-- ARGV[4]  for extend: the new expires_at (epoch ms); otherwise unused
-- ARGV[5]  how long a closed record is kept to answer replays (ms)
-- ARGV[6]  number of lines, then per line the SKU index (1-based) of its key group
--
-- ops:  confirm  held -> confirmed (an order hold, no expiry)
--       extend   held -> held with a later expires_at
--       release  held|confirmed -> released (a held one already past expires_at -> expired)
--       expire   held and past expires_at -> expired (the sweeper); otherwise nothing
--       fulfil   held|confirmed whose holds shipments have used up -> fulfilled (the worker)
-- Returns {'ok', new_state} | {'noop', state} | {'not_found'} | {'invalid', state}
--         | {'expired'} (confirm or extend came too late: the reservation is now expired)
local rid, now, op = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'not_found'} end
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0')
local overdue = state == 'held' and now >= expires

local function each_member(fn)
  local allocations = cjson.decode(redis.call('HGET', KEYS[1], 'allocations'))
  for line, parts in ipairs(allocations) do
    local base = 3 + (tonumber(ARGV[6 + line]) - 1) * 3
    for _, part in ipairs(parts) do
      fn(KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], part[1], rid .. '@' .. part[1])
    end
  end
end

local function release_holds()
  each_member(function(stock, holds, expiry, loc, member)
    local units = redis.call('HGET', holds, member)
    if units then
      redis.call('HINCRBY', stock, 'rs:' .. loc, -tonumber(units))
      redis.call('HDEL', holds, member)
    end
    redis.call('ZREM', expiry, member)
  end)
end

-- The record's lifetime is set as an absolute time on the caller's clock (now + ttl), so a
-- rebuild from the events (atp/rebuild.py) sets the same expiry.
local function record(new_state, event, ttl)
  redis.call('HSET', KEYS[1], 'state', new_state, 'updated_ms', ARGV[2])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 1000000, '*', 'type', event,
    'reservation_id', rid, 'at', ARGV[2],
    'expires_ms', redis.call('HGET', KEYS[1], 'expires_ms'))
  if ttl then redis.call('PEXPIREAT', KEYS[1], now + tonumber(ttl)) end
end

local function close(new_state)
  release_holds()
  redis.call('ZREM', KEYS[2], rid)
  record(new_state, new_state, ARGV[5])
end

if op == 'expire' then
  if not overdue then return {'noop', state} end
  close('expired')
  return {'ok', 'expired'}
elseif op == 'release' then
  if state == 'released' or state == 'expired' then return {'noop', state} end
  if state == 'fulfilled' then return {'invalid', state} end
  if overdue then close('expired') return {'ok', 'expired'} end
  close('released')
  return {'ok', 'released'}
end

if op == 'fulfil' then
  if state ~= 'held' and state ~= 'confirmed' then return {'noop', state} end
  local left = 0
  each_member(function(_, holds, _, _, member)
    left = left + redis.call('HEXISTS', holds, member)
  end)
  if left > 0 then return {'noop', state} end
  redis.call('ZREM', KEYS[2], rid)
  record('fulfilled', 'fulfilled', ARGV[5])
  return {'ok', 'fulfilled'}
end

-- confirm and extend start from a live hold.
if op == 'confirm' and state == 'confirmed' then return {'noop', state} end
if state ~= 'held' then return {'invalid', state} end
if overdue then
  close('expired')
  return {'expired'}
end
if op == 'confirm' then
  each_member(function(_, _, expiry, _, member) redis.call('ZREM', expiry, member) end)
  redis.call('ZREM', KEYS[2], rid)
  redis.call('PERSIST', KEYS[1])
  record('confirmed', 'confirmed')
  return {'ok', 'confirmed'}
elseif op == 'extend' then
  local new_expiry = ARGV[4]
  each_member(function(_, _, expiry, _, member)
    redis.call('ZADD', expiry, 'XX', new_expiry, member)
  end)
  redis.call('ZADD', KEYS[2], new_expiry, rid)
  redis.call('HSET', KEYS[1], 'expires_ms', new_expiry)
  record('held', 'extended', tonumber(new_expiry) - now + tonumber(ARGV[5]))
  return {'ok', 'held'}
end
return redis.error_reply('unknown op ' .. op)
