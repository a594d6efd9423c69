-- holds.lua: one SKU's side of a reservation (its stock, holds and expiry: one slot), in one
-- atomic step. The record side is reservation.lua; atp/reservation_store.py runs the two.
--
-- KEYS[1]  atp:v2:{SKU}:stock   KEYS[2]  atp:v2:{SKU}:holds   KEYS[3]  atp:v2:{SKU}:expiry
-- ARGV[1]  op   ARGV[2]  reservation id   ARGV[3]  now (epoch ms)   then per op:
--
-- take | check  ARGV[4] expires_at, ARGV[5] number of lines of this SKU, then per line: its
--          index in the request (0-based), quantity, number of candidate locations, then per
--          candidate: location, safety stock. One candidate: the caller named the location.
--          Several: the service chooses, in the order given (whole line at the first that fits,
--          else split in that order). All lines fit, or nothing is held. `check` holds nothing.
--          Returns {'held', JSON [[line, [[loc, qty], ...]], ...]} ({'fits'} for check)
--                | {'short', JSON [[line, requested, available], ...]}
-- release  ARGV[4..] locations: give back what the reservation holds there. Returns {'ok'}
-- persist  ARGV[4..] locations: take the holds off the expiry (confirm).
-- extend   ARGV[4] new expires_at, ARGV[5..] locations: move the holds' expiry.
--          persist and extend return {'expired'} and change nothing when a hold is overdue,
--          else {'ok'}; holds already used up by shipments are skipped.
-- left     ARGV[4..] locations: {'left', n} holds not yet used up by shipments (fulfil)
-- restore  ARGV[4] state, ARGV[5] expires_at, ARGV[6..] pairs of location, units: set the holds
--          to these units (idempotent: a repeated restore changes nothing). Returns {'ok'}
local op, rid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local stock, holds, expiry = KEYS[1], KEYS[2], KEYS[3]

local function give_back(member, loc)
  local units = redis.call('HGET', holds, member)
  if units then
    redis.call('HINCRBY', stock, 'rs:' .. loc, -tonumber(units))
    redis.call('HDEL', holds, member)
  end
  redis.call('ZREM', expiry, member)
end

if op == 'take' or op == 'check' then
  -- Holds past their expiry no longer count: give them back before checking (the sweeper marks
  -- their reservations expired later).
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
    give_back(member, string.sub(member, string.find(member, '@', 1, true) + 1))
  end
  local taken = {}  -- units allocated by earlier lines of this request, by location
  local function available(loc, safety)
    local on_hand = tonumber(redis.call('HGET', stock, 'oh:' .. loc) or '0')
    local reserved = tonumber(redis.call('HGET', stock, 'rs:' .. loc) or '0')
    return on_hand - reserved - safety - (taken[loc] or 0)
  end
  local allocations, shortages = {}, {}
  local pos = 6
  for _ = 1, tonumber(ARGV[5]) do
    local line, qty, n = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1]), tonumber(ARGV[pos + 2])
    pos = pos + 3
    local cands = {}
    for _ = 1, n do
      table.insert(cands, {ARGV[pos], math.max(0, available(ARGV[pos], tonumber(ARGV[pos + 1])))})
      pos = pos + 2
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
      table.insert(shortages, {line, qty, total})
    else
      for _, part in ipairs(parts) do taken[part[1]] = (taken[part[1]] or 0) + part[2] end
    end
    table.insert(allocations, {line, parts})
  end
  if #shortages > 0 then return {'short', cjson.encode(shortages)} end
  if op == 'check' then return {'fits'} end
  for loc, units in pairs(taken) do
    local member = rid .. '@' .. loc
    redis.call('HINCRBY', stock, 'rs:' .. loc, units)
    redis.call('HINCRBY', holds, member, units)
    redis.call('ZADD', expiry, ARGV[4], member)
  end
  return {'held', cjson.encode(allocations)}
elseif op == 'release' then
  for i = 4, #ARGV do give_back(rid .. '@' .. ARGV[i], ARGV[i]) end
  return {'ok'}
elseif op == 'persist' or op == 'extend' then
  local first = op == 'extend' and 5 or 4
  for i = first, #ARGV do
    local score = redis.call('ZSCORE', expiry, rid .. '@' .. ARGV[i])
    if score and tonumber(score) <= now then return {'expired'} end
  end
  for i = first, #ARGV do
    local member = rid .. '@' .. ARGV[i]
    if op == 'persist' then
      redis.call('ZREM', expiry, member)
    else
      redis.call('ZADD', expiry, 'XX', ARGV[4], member)
    end
  end
  return {'ok'}
elseif op == 'left' then
  local n = 0
  for i = 4, #ARGV do n = n + redis.call('HEXISTS', holds, rid .. '@' .. ARGV[i]) end
  return {'left', n}
elseif op == 'restore' then
  for i = 6, #ARGV, 2 do
    local loc, units = ARGV[i], tonumber(ARGV[i + 1])
    local member = rid .. '@' .. loc
    local old = tonumber(redis.call('HGET', holds, member) or '0')
    redis.call('HINCRBY', stock, 'rs:' .. loc, units - old)
    redis.call('HSET', holds, member, units)
    if ARGV[4] == 'held' then redis.call('ZADD', expiry, ARGV[5], member) end
  end
  return {'ok'}
end
return redis.error_reply('unknown op ' .. op)
