#!lua
-- apply_ledger.lua: write one SKU's folded ledger state and the counts the API serves, and let
-- shipments consume the holds of the reservations they fulfil, in one atomic step, but only
-- if nobody wrote the SKU since the caller read it (optimistic version).
--
-- KEYS[1]  atp:v2:{SKU}:ledger   (hash)      KEYS[2]  atp:v2:{SKU}:stock   (hash)
-- KEYS[3]  atp:v2:{SKU}:holds    (hash)      KEYS[4]  atp:v2:{SKU}:expiry  (sorted set)
-- KEYS[5]  atp:v2:{<tag>}:stats  (hash, optional): the ledger's counters of the SKU's hash slot
--          (<tag> is chosen to hash to that slot, atp.store.keys.stats), kept in the same step
--          skus              SKUs with a ledger (counted at a SKU's first write)
--          pairs             (SKU, location) pairs with ledger state (counted at first write)
--          <channel>:<code>  SKUs whose recorded status on the channel is <code>
--          Readers sum the hashes of all slots (LedgerStore.stats).
-- ARGV[1]  the version the caller read ('0' for a SKU never written)
-- ARGV[2]  updated_at, epoch milliseconds
-- ARGV[3]  number of location groups, then groups of four: location id, ledger state JSON,
--          on_hand, next inbound ('<eta_ms>:<qty>', or '' when nothing is inbound)
-- then     number of fulfilments, then groups of four: location id, reservation id, units
--          (shipped or picked up against that reservation, newly applied in this write), and the
--          units of its hold the caller expects it to use up (atp.core.reservations.use_holds, the
--          rule's Python original, from the holds it read with the ledger)
-- then     number of statuses (may be absent: 0), then pairs: channel, status code (i, l or o
--          for in, low and out of stock) of the SKU after this write; each is recorded in
--          KEYS[1] as 's:<channel>' and the counters in KEYS[5] move with it
--
-- Returns {1, new_version, consumed, unmatched} when written, where consumed is JSON
-- [[reservation id, location, units], ...] of holds used up and unmatched is JSON
-- [[reservation id, location], ...] of fulfilments that found no hold (unknown or closed);
-- {0, current_version} when the version moved, or a hold is not what the caller expected
-- (a reservation changed it since the read): nothing was written, re-read and fold again.
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  return {0, current}
end
local version = tonumber(current) + 1
local stats = KEYS[5]
local new_pairs = 0
-- The fulfilments first, without writing: each uses min(held, units) of the hold it names
-- (0 when nothing is held), as atp.core.reservations.use_holds computes it.
local fpos = 4 + 4 * tonumber(ARGV[3])
local uses, left = {}, {}
for _ = 1, tonumber(ARGV[fpos]) do
  local loc, rid, units = ARGV[fpos + 1], ARGV[fpos + 2], tonumber(ARGV[fpos + 3])
  local member = rid .. '@' .. loc
  local held = left[member] or tonumber(redis.call('HGET', KEYS[3], member) or '0')
  local used = held > 0 and math.min(held, units) or 0
  if used ~= tonumber(ARGV[fpos + 4]) then
    return {0, current}
  end
  left[member] = held - used
  table.insert(uses, {loc, rid, member, held, used})
  fpos = fpos + 4
end
local pos = 4
for _ = 1, tonumber(ARGV[3]) do
  local loc = ARGV[pos]
  new_pairs = new_pairs + redis.call('HSET', KEYS[1], 'l:' .. loc, ARGV[pos + 1])
  redis.call('HSET', KEYS[2], 'oh:' .. loc, ARGV[pos + 2])
  if ARGV[pos + 3] == '' then
    redis.call('HDEL', KEYS[2], 'ib:' .. loc)
  else
    redis.call('HSET', KEYS[2], 'ib:' .. loc, ARGV[pos + 3])
  end
  pos = pos + 4
end
local consumed, unmatched = {}, {}
pos = fpos + 1
for _, use in ipairs(uses) do
  local loc, rid, member, held, used = use[1], use[2], use[3], use[4], use[5]
  if held > 0 then
    if used == held then
      redis.call('HDEL', KEYS[3], member)
      redis.call('ZREM', KEYS[4], member)
    else
      redis.call('HSET', KEYS[3], member, held - used)
    end
    redis.call('HINCRBY', KEYS[2], 'rs:' .. loc, -used)
    table.insert(consumed, {rid, loc, used})
  else
    table.insert(unmatched, {rid, loc})
  end
end
for _ = 1, tonumber(ARGV[pos] or '0') do
  local channel, status = ARGV[pos + 1], ARGV[pos + 2]
  pos = pos + 2
  local field = 's:' .. channel
  local old = redis.call('HGET', KEYS[1], field)
  if old ~= status then
    redis.call('HSET', KEYS[1], field, status)
    if stats then
      if old then
        redis.call('HINCRBY', stats, channel .. ':' .. old, -1)
      end
      redis.call('HINCRBY', stats, channel .. ':' .. status, 1)
    end
  end
end
if stats then
  if current == '0' then
    redis.call('HINCRBY', stats, 'skus', 1)
  end
  if new_pairs > 0 then
    redis.call('HINCRBY', stats, 'pairs', new_pairs)
  end
end
redis.call('HSET', KEYS[1], 'v', version)
redis.call('HSET', KEYS[2], 'ts', ARGV[2])
return {1, version, cjson.encode(consumed), cjson.encode(unmatched)}
