-- record/_prelude.lua: what the scripts of record/ share (prepended to each by
-- atp/store/scripts.py). The record side of a reservation: its hash, its shard's expiring
-- index and outbox, one slot; every change is published to the outbox in the same step.
-- The holds live in the SKUs' slots and change by hold/ before or after (the saga in
-- atp/store/reservations.py).
--
-- KEYS[1]  atp:v2:{r<n>}:res:<id>   KEYS[2]  atp:v2:{r<n>}:expiring   KEYS[3]  atp:v2:{r<n>}:outbox
-- KEYS[4]  atp:v2:{r<n>}:pending (pending ids by when a repeat may take over)
-- ARGV[1]  reservation id           ARGV[2]  now (epoch ms)           then the script's own
--
-- The changes (confirm, extend, release, expire, fulfil) reply as atp.core.reservations
-- .transition, their Python original: {'ok', new state} | {'noop', state} | {'invalid', state}
-- | {'expired'} (a confirm or extend of a hold past its expiry: nothing changed; the caller
-- gives back the holds and expires it) | {'not_found'}.
local rec, expiring, outbox, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rid, now = ARGV[1], tonumber(ARGV[2])
local state = redis.call('HGET', rec, 'state')

local function publish(event, extra)
  redis.call('XADD', outbox, 'MAXLEN', '~', 1000000, '*', 'type', event, 'reservation_id', rid,
    'at', ARGV[2], 'expires_ms', redis.call('HGET', rec, 'expires_ms'), unpack(extra or {}))
end

-- No reservation under this id (a pending mark is not one yet).
local function missing()
  return not state or state == 'pending'
end

-- A held reservation is overdue at now >= expires_ms (atp.core.reservations.is_overdue).
local function overdue()
  return state == 'held' and now >= tonumber(redis.call('HGET', rec, 'expires_ms') or '0')
end

-- The record's lifetime is an absolute time on the caller's clock (now + ttl), so a rebuild
-- from the events (atp/tools/rebuild.py) sets the same expiry.
local function record(new_state, event, ttl)
  redis.call('HSET', rec, 'state', new_state, 'updated_ms', ARGV[2])
  publish(event)
  if ttl then redis.call('PEXPIREAT', rec, now + tonumber(ttl)) end
end

-- Closed: off the expiring index, kept `replay_ms` for replays. `shipped` (JSON, '' none):
-- what shipments had used up of its holds, {sku: {location: units}} (atp/store/shipments.py),
-- kept in the record and published with the event.
local function close(new_state, replay_ms, shipped)
  redis.call('ZREM', expiring, rid)
  redis.call('HSET', rec, 'state', new_state, 'updated_ms', ARGV[2])
  if shipped and shipped ~= '' then
    redis.call('HSET', rec, 'shipped', shipped)
    publish(new_state, {'shipped', shipped})
  else
    publish(new_state)
  end
  redis.call('PEXPIREAT', rec, now + tonumber(replay_ms))
  return {'ok', new_state}
end

-- A list the record keeps as JSON in `field` (its transfers, its changes), and the index of
-- the entry whose first item is `id` (nil: none).
local function load_list(field, id)
  local list = cjson.decode(redis.call('HGET', rec, field) or '[]')
  for i, entry in ipairs(list) do
    if entry[1] == id then return list, i end
  end
  return list, nil
end

-- An empty list is no field, as a record that never had one (and its rebuild) has.
local function save_list(field, list)
  if #list == 0 then
    redis.call('HDEL', rec, field)
  else
    redis.call('HSET', rec, field, cjson.encode(list))
  end
end
