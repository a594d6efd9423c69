-- reserve.lua: hold stock for a reservation, all lines or nothing, in one atomic step.
--
-- KEYS[1]  atp:v1:res:{ID}                 KEYS[2]  atp:v1:reservations:expiring
-- KEYS[3]  atp:v1:outbox                   KEYS[4..] per SKU: stock, holds, expiry (3 keys each)
-- ARGV[1]  reservation id        ARGV[2]  request fingerprint (sha256 of the canonical body)
-- ARGV[3]  now (epoch ms)        ARGV[4]  expires_at (epoch ms)
-- ARGV[5]  how long the record lives (ms): the hold plus the time replays are answered. Set as
--          an absolute time on the caller's clock (now + ARGV[5]), so `atp rebuild` can set the
--          same expiry from the event.
-- ARGV[6]  the request as JSON (kept in the record)
-- ARGV[7]  number of lines, then per line: SKU index (1-based, into the per-SKU key groups),
--          quantity, number of candidate locations, then per candidate: location, safety stock.
--          One candidate: the caller named the location. Several: the service chooses, in the
--          order given (whole line at the first that fits, else split in that order).
--
-- Returns one of:
--   {'held', allocations}            allocations: JSON [[ [loc, qty], ... ] per line]
--   {'replay', fingerprint_matches}  the id exists: '1' same request, '0' a different one
--   {'short', shortages}             JSON [[line index, requested, available], ...]; nothing held
local now = tonumber(ARGV[3])

local existing = redis.call('HGET', KEYS[1], 'fingerprint')
if existing then
  return {'replay', existing == ARGV[2] and '1' or '0'}
end

local function sku_keys(i)
  local base = 3 + (i - 1) * 3
  return KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
end

-- Holds past their expiry no longer count: release them before checking (the sweeper marks
-- their reservations expired later).
local touched = {}
local function expire_overdue(i)
  if touched[i] then return end
  touched[i] = true
  local stock, holds, expiry = sku_keys(i)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
    local units = redis.call('HGET', holds, member)
    if units then
      local loc = string.sub(member, string.find(member, '@', 1, true) + 1)
      redis.call('HINCRBY', stock, 'rs:' .. loc, -tonumber(units))
      redis.call('HDEL', holds, member)
    end
    redis.call('ZREM', expiry, member)
  end
end

local taken = {}  -- units allocated by earlier lines of this request, by 'sku index|loc'
local function available(i, loc, safety)
  local stock = sku_keys(i)
  local on_hand = tonumber(redis.call('HGET', stock, 'oh:' .. loc) or '0')
  local reserved = tonumber(redis.call('HGET', stock, 'rs:' .. loc) or '0')
  return on_hand - reserved - safety - (taken[i .. '|' .. loc] or 0)
end

local allocations, shortages = {}, {}
local pos = 8
for line = 1, tonumber(ARGV[7]) do
  local i, qty, n = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
  pos = pos + 3
  expire_overdue(i)
  local cands = {}
  for c = 1, n do
    local loc, safety = ARGV[pos], tonumber(ARGV[pos + 1])
    pos = pos + 2
    table.insert(cands, {loc, math.max(0, available(i, loc, safety))})
  end
  local parts, total = {}, 0
  for _, cand in ipairs(cands) do
    total = total + cand[2]
    if #parts == 0 and cand[2] >= qty then parts = {{cand[1], qty}} end
  end
  if #parts == 0 and total >= qty then
    local left = qty
    for _, cand in ipairs(cands) do
      if left > 0 and cand[2] > 0 then
        local take = math.min(left, cand[2])
        table.insert(parts, {cand[1], take})
        left = left - take
      end
    end
  end
  if #parts == 0 then
    table.insert(shortages, {line - 1, qty, total})
  else
    for _, part in ipairs(parts) do
      local k = i .. '|' .. part[1]
      taken[k] = (taken[k] or 0) + part[2]
    end
  end
  table.insert(allocations, {i, parts})
end

if #shortages > 0 then
  return {'short', cjson.encode(shortages)}
end

local rid, expires = ARGV[1], ARGV[4]
local out = {}
for _, a in ipairs(allocations) do
  local stock, holds, expiry = sku_keys(a[1])
  local line = {}
  for _, part in ipairs(a[2]) do
    local member = rid .. '@' .. part[1]
    redis.call('HINCRBY', stock, 'rs:' .. part[1], part[2])
    redis.call('HINCRBY', holds, member, part[2])
    redis.call('ZADD', expiry, expires, member)
    table.insert(line, {part[1], part[2]})
  end
  table.insert(out, line)
end
local allocated = cjson.encode(out)
redis.call('HSET', KEYS[1], 'state', 'held', 'fingerprint', ARGV[2], 'request', ARGV[6],
  'allocations', allocated, 'created_ms', ARGV[3], 'updated_ms', ARGV[3], 'expires_ms', expires)
redis.call('PEXPIREAT', KEYS[1], now + tonumber(ARGV[5]))
redis.call('ZADD', KEYS[2], expires, rid)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 1000000, '*', 'type', 'held', 'reservation_id', rid,
  'at', ARGV[3], 'expires_ms', expires, 'allocations', allocated, 'request', ARGV[6])
return {'held', allocated}
