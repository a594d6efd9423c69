#!lua
-- reserve/make.lua: a whole reservation in one step, where the record and every SKU's keys are
-- on one server (one Redis). It does what the saga of atp/store/reservations.py does in steps,
-- with the same replies and the same state afterwards: record/begin.lua, hold/take.lua for
-- each SKU (hold/check.lua once one is short), record/commit.lua, or on a shortfall the holds
-- given back and record/abort.lua. A request repeated while an earlier attempt (a saga's) is
-- pending takes over as record/begin.lua says; the earlier attempt, should it resume, is fenced
-- out as it is by a saga's takeover.
-- KEYS[1..4]  the record's keys (record/_prelude.lua)   KEYS[5..]  per SKU: stock, holds, expiry
-- ARGV[3]  fingerprint   ARGV[4]  request JSON   ARGV[5]  expires_at (epoch ms)
-- ARGV[6]  how long an attempt owns a pending reservation before a repeat may take over (ms)
-- ARGV[7]  how long the record outlives its expiry (ms)   ARGV[8]  the number of SKUs
-- ARGV[9]  allow_partial ('1': hold what fits; short only when nothing does, else '0')
-- ARGV[10]  the live streams' change feed's length ('': no feed; else the feed is the last
--           key, and a reservation made adds each SKU to it as ChangeFeed.publish does in
--           atp/store/feed.py, for every channel: ALL_CHANNELS, '*')
-- ARGV[11..]  per SKU, in KEYS order: its name, then its lines (place_lines in hold/_prelude.lua)
-- Returns {'held', the record's fields and values} (made now) | {'replay', the same} (made
-- before: answer it) | {'pending', ms until a repeat may take over} | {'conflict'}
--       | {'short', JSON [[line, requested, available], ...]} (nothing held, the id free)
--       | {'lost'} (a newer attempt holds here: this one stops, nothing held)
local attempt = tonumber(ARGV[5])
if state then
  if redis.call('HGET', rec, 'fingerprint') ~= ARGV[3] then return {'conflict'} end
  if state ~= 'pending' then return {'replay', unpack(redis.call('HGETALL', rec))} end
  local waited = now - tonumber(redis.call('HGET', rec, 'started_ms') or '0')
  if waited < tonumber(ARGV[6]) then return {'pending', tostring(tonumber(ARGV[6]) - waited)} end
  attempt = math.max(attempt, tonumber(redis.call('HGET', rec, 'expires_ms')) + 1)
end

-- Place every SKU's lines before anything is held: all of them or none.
local partial = ARGV[9]
local places, shortages, lines, pos, held, skus = {}, {}, {}, 11, 0, {}
for s = 1, tonumber(ARGV[8]) do
  stock, holds, expiry = KEYS[3 * s + 2], KEYS[3 * s + 3], KEYS[3 * s + 4]
  table.insert(skus, ARGV[pos])
  pos = pos + 1
  give_back_overdue()
  for _, loc in ipairs(line_locations(pos)) do
    local member = rid .. '@' .. loc
    local who = owner(member, attempt)
    if who == 'newer' then return {'lost'} end
    if who == 'ours' then give_back(member, loc) end
  end
  local allocations, short, taken
  allocations, short, taken, pos = place_lines(pos, partial)
  for _, shortage in ipairs(short) do table.insert(shortages, shortage) end
  for _, allocation in ipairs(allocations) do lines[allocation[1] + 1] = allocation[2] end
  for _, units in pairs(taken) do held = held + units end
  table.insert(places, {stock, holds, expiry, taken})
end
if #shortages > 0 and (partial ~= '1' or held == 0) then
  if state then  -- an earlier attempt's mark: its holds went back above (record/abort.lua)
    redis.call('DEL', rec)
    redis.call('ZREM', pending, rid)
  end
  return {'short', cjson.encode(shortages)}
end

for _, place in ipairs(places) do
  stock, holds, expiry = place[1], place[2], place[3]
  for loc, units in pairs(place[4]) do
    local member = rid .. '@' .. loc
    redis.call('HINCRBY', stock, 'rs:' .. loc, units)
    redis.call('HINCRBY', holds, member, units)
    redis.call('ZADD', expiry, attempt, member)
  end
end
local allocations = allocations_json(lines)
if not state then
  redis.call('HSET', rec, 'fingerprint', ARGV[3], 'request', ARGV[4], 'created_ms', ARGV[2])
end
redis.call('HSET', rec, 'state', 'held', 'updated_ms', ARGV[2], 'expires_ms', attempt,
  'allocations', allocations)
redis.call('HDEL', rec, 'started_ms')
redis.call('ZREM', pending, rid)
redis.call('PEXPIREAT', rec, attempt + tonumber(ARGV[7]))
redis.call('ZADD', expiring, attempt, rid)
publish('held', {'allocations', allocations, 'request', redis.call('HGET', rec, 'request')})
if ARGV[10] ~= '' then  -- its units left the ATP of every channel: live streams answer again
  for _, sku in ipairs(skus) do
    redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', ARGV[10], '*', 's', sku, 'c', '*')
  end
end
return {'held', unpack(redis.call('HGETALL', rec))}
