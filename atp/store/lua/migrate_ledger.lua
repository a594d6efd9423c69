#!lua
-- migrate_ledger.lua: one SKU's v2 ledger (a JSON value per pair) into the v3 structures
-- that ledger/apply.lua keeps, and the v2 hash deleted, in one atomic step (atp/store/migrate.py
-- converts each pair with atp.core.ledger.LedgerState and sends the result).
--
-- KEYS  1 the v2 ledger  2 the v3 ledger  3 the served stock, then per pair: d, t, n, rt
--       (atp.store.keys.pair_keys)
-- ARGV  1 number of pairs, then per pair: location, summary, the arrivals expected after the
--       next one (the served fu:<loc>, '' for none), then for each of d, t, n and rt
--       the number of entries and per entry two values: d event id, occurred_ms; t
--       occurred_ms, summed qty; n ASN id, "eta:qty"; rt ASN id, occurred_ms of its newest
--       receipt; then the v2 hash's other fields to keep: count, then field, value
-- Returns 1 when converted, 0 when there was no v2 ledger (already migrated).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local pos = 2
local function add_chunked(cmd, key, items)
  -- at most 1,000 entries per command: Lua's unpack has a small stack
  for first = 1, #items, 2000 do
    redis.call(cmd, key, unpack(items, first, math.min(#items, first + 1999)))
  end
end
for p = 1, tonumber(ARGV[1]) do
  local base = 3 + 4 * (p - 1)
  local loc, summary, later = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
  redis.call('HSET', KEYS[2], 'l:' .. loc, summary)
  if later ~= '' then  -- v2 served only the next arrival
    redis.call('HSET', KEYS[3], 'fu:' .. loc, later)
  end
  pos = pos + 3
  for part = 1, 4 do
    local m = tonumber(ARGV[pos])
    pos = pos + 1
    local items = {}
    for _ = 1, m do
      if part == 1 then  -- ZADD takes the score first
        table.insert(items, ARGV[pos + 1])
        table.insert(items, ARGV[pos])
      else
        table.insert(items, ARGV[pos])
        table.insert(items, ARGV[pos + 1])
      end
      pos = pos + 2
    end
    if m > 0 then
      add_chunked(part == 1 and 'ZADD' or 'HSET', KEYS[base + part], items)
    end
  end
end
local keep = tonumber(ARGV[pos])
for _ = 1, keep do
  redis.call('HSET', KEYS[2], ARGV[pos + 1], ARGV[pos + 2])
  pos = pos + 2
end
redis.call('DEL', KEYS[1])
return 1
