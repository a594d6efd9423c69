-- reservation.lua: the record side of a reservation (its hash, its shard's expiring index and
-- outbox: one slot), in one atomic step per change. The holds live in the SKUs' slots and are
-- changed by holds.lua before or after this script (the saga in atp/reservation_store.py).
--
-- KEYS[1]  atp:v2:{r<n>}:res:<id>   KEYS[2]  atp:v2:{r<n>}:expiring   KEYS[3]  atp:v2:{r<n>}:outbox
-- ARGV[1]  op   ARGV[2]  reservation id   ARGV[3]  now (epoch ms)   then per op:
--
-- begin    ARGV[4] fingerprint, ARGV[5] request JSON, ARGV[6] expires_at (epoch ms)
--          Marks the id as taken (state 'pending') until expires_at, so a request repeated while
--          its holds are being taken is not run twice, and the mark of a saga that died vanishes
--          with its holds. Returns {'begun'} | {'replay', same} | {'pending', same}, where same
--          is '1' when the stored fingerprint is this request's, else '0'.
-- commit   ARGV[4] fingerprint, ARGV[5] allocations JSON, ARGV[6] when the record expires
--          (epoch ms, on the caller's clock so `atp rebuild` can set the same), holds taken:
--          pending -> held, indexed and published. Returns {'held'} | {'lost'} (the mark expired
--          or is another request's: the caller gives its holds back).
-- abort    ARGV[4] fingerprint: drop our pending mark (the request was short). Returns {'ok'}.
-- confirm  held -> confirmed (no expiry); the caller took the SKUs' holds off their expiry.
-- extend   ARGV[4] new expires_at, ARGV[5] replay ms: held -> held with a later expires_at.
-- release  ARGV[5] replay ms: held|confirmed -> released (held and overdue -> expired).
-- expire   ARGV[5] replay ms: held and overdue -> expired (the sweeper); otherwise nothing.
-- fulfil   ARGV[5] replay ms: held|confirmed -> fulfilled; the caller saw no holds left.
--          release, expire and fulfil run after the caller changed the holds.
-- restore  ARGV[4] state, ARGV[5] fingerprint, ARGV[6] request, ARGV[7] allocations,
--          ARGV[8] created_ms, ARGV[9] expires_ms, ARGV[10] record expiry ('' never):
--          `atp rebuild`; an existing record is left alone. Returns {'restored'} | {'exists'}
--
-- Transitions return {'ok', new_state} | {'noop', state} | {'not_found'} | {'invalid', state}
--   | {'expired'} (confirm or extend of a hold past expires_at: nothing changed; the caller
--   releases the holds and expires the reservation)
local op, rid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rec, expiring, outbox = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('HGET', rec, 'state')

local function publish(event, extra)
  redis.call('XADD', outbox, 'MAXLEN', '~', 1000000, '*', 'type', event, 'reservation_id', rid,
    'at', ARGV[3], 'expires_ms', redis.call('HGET', rec, 'expires_ms'), unpack(extra or {}))
end

if op == 'begin' then
  if state then
    local same = redis.call('HGET', rec, 'fingerprint') == ARGV[4] and '1' or '0'
    return {state == 'pending' and 'pending' or 'replay', same}
  end
  redis.call('HSET', rec, 'state', 'pending', 'fingerprint', ARGV[4], 'request', ARGV[5],
    'created_ms', ARGV[3], 'updated_ms', ARGV[3], 'expires_ms', ARGV[6])
  redis.call('PEXPIREAT', rec, ARGV[6])
  return {'begun'}
elseif op == 'commit' then
  local ours = redis.call('HGET', rec, 'fingerprint') == ARGV[4]
  if state == 'held' and ours then return {'held'} end  -- committed already (a repeat)
  if state ~= 'pending' or not ours then
    return {'lost'}
  end
  local expires = redis.call('HGET', rec, 'expires_ms')
  redis.call('HSET', rec, 'state', 'held', 'allocations', ARGV[5])
  redis.call('PEXPIREAT', rec, ARGV[6])
  redis.call('ZADD', expiring, expires, rid)
  publish('held', {'allocations', ARGV[5], 'request', redis.call('HGET', rec, 'request')})
  return {'held'}
elseif op == 'abort' then
  if state == 'pending' and redis.call('HGET', rec, 'fingerprint') == ARGV[4] then
    redis.call('DEL', rec)
  end
  return {'ok'}
elseif op == 'restore' then
  if state then return {'exists'} end
  local st = ARGV[4]
  redis.call('HSET', rec, 'state', st, 'fingerprint', ARGV[5], 'request', ARGV[6],
    'allocations', ARGV[7], 'created_ms', ARGV[8], 'updated_ms', ARGV[3], 'expires_ms', ARGV[9])
  if ARGV[10] ~= '' then redis.call('PEXPIREAT', rec, ARGV[10]) end
  if st == 'held' then redis.call('ZADD', expiring, ARGV[9], rid) end
  return {'restored'}
end

if not state or state == 'pending' then return {'not_found'} end
local expires = tonumber(redis.call('HGET', rec, 'expires_ms') or '0')
local overdue = state == 'held' and now >= expires

-- The record's lifetime is set as an absolute time on the caller's clock (now + ttl), so a
-- rebuild from the events (atp/rebuild.py) sets the same expiry.
local function record(new_state, event, ttl)
  redis.call('HSET', rec, 'state', new_state, 'updated_ms', ARGV[3])
  publish(event)
  if ttl then redis.call('PEXPIREAT', rec, now + tonumber(ttl)) end
end

local function close(new_state)
  redis.call('ZREM', expiring, rid)
  record(new_state, new_state, ARGV[5])
  return {'ok', new_state}
end

if op == 'expire' then
  if not overdue then return {'noop', state} end
  return close('expired')
elseif op == 'release' then
  if state == 'released' or state == 'expired' then return {'noop', state} end
  if state == 'fulfilled' then return {'invalid', state} end
  return close(overdue and 'expired' or 'released')
elseif op == 'fulfil' then
  if state ~= 'held' and state ~= 'confirmed' then return {'noop', state} end
  return close('fulfilled')
end

-- confirm and extend start from a live hold.
if op == 'confirm' and state == 'confirmed' then return {'noop', state} end
if state ~= 'held' then return {'invalid', state} end
if overdue then return {'expired'} end
if op == 'confirm' then
  redis.call('ZREM', expiring, rid)
  redis.call('PERSIST', rec)
  record('confirmed', 'confirmed')
  return {'ok', 'confirmed'}
elseif op == 'extend' then
  redis.call('ZADD', expiring, ARGV[4], rid)
  redis.call('HSET', rec, 'expires_ms', ARGV[4])
  record('held', 'extended', tonumber(ARGV[4]) - now + tonumber(ARGV[5]))
  return {'ok', 'held'}
end
return redis.error_reply('unknown op ' .. op)
