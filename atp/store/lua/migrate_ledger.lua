#!lua
-- migrate_ledger.lua: one SKU's v2 ledger (a JSON value per pair) into the v3 structures
-- that ledger/apply.lua keeps, and the v2 hash deleted, in one atomic step (atp/store/migrate.py
-- converts each pair with atp.core.ledger.LedgerState and sends the result).
--
-- KEYS  1 the v2 ledger  2 the v3 ledger, then per pair: d, q, n, r (atp.store.keys.pair_keys)
-- ARGV  1 number of pairs, then per pair: location, summary, number of deltas, then per
--       delta: event id, occurred_ms, "qty" or "qty:ref"; number of inbound, then per ASN:
--       id, "eta:qty"; number of receipts, then per ASN: id, count
--       then the v2 hash's other fields to keep: count, then field, value
-- Returns 1 when converted, 0 when there was no v2 ledger (already migrated).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local pos = 2
local function add_chunked(cmd, key, items, width)
  -- at most 1,000 entries per command: Lua's unpack has a small stack
  for first = 1, #items, 1000 * width do
    local chunk = {}
    for i = first, math.min(#items, first + 1000 * width - 1) do
      table.insert(chunk, items[i])
    end
    redis.call(cmd, key, unpack(chunk))
  end
end
for p = 1, tonumber(ARGV[1]) do
  local base = 2 + 4 * (p - 1)
  local loc, summary = ARGV[pos], ARGV[pos + 1]
  redis.call('HSET', KEYS[2], 'l:' .. loc, summary)
  local n = tonumber(ARGV[pos + 2])
  pos = pos + 3
  local scored, quantities = {}, {}
  for _ = 1, n do
    table.insert(scored, ARGV[pos + 1])
    table.insert(scored, ARGV[pos])
    table.insert(quantities, ARGV[pos])
    table.insert(quantities, ARGV[pos + 2])
    pos = pos + 3
  end
  if n > 0 then
    add_chunked('ZADD', KEYS[base + 1], scored, 2)
    add_chunked('HSET', KEYS[base + 2], quantities, 2)
  end
  for part = 3, 4 do
    local m = tonumber(ARGV[pos])
    pos = pos + 1
    local items = {}
    for _ = 1, m do
      table.insert(items, ARGV[pos])
      table.insert(items, ARGV[pos + 1])
      pos = pos + 2
    end
    if m > 0 then
      add_chunked('HSET', KEYS[base + part], items, 2)
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
