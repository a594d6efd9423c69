#!lua
-- hold/transfer.lua: move units the reservation holds at one location to another, checked at
-- the destination in the same step (the Python original: atp.core.amendments
-- .transfer_outcome). The moved units keep the source hold's expiry (none: confirmed).
-- KEYS[4]  the transfer's mark (atp:v2:{SKU}:moved:<id>@<transfer id>): '1' once it moved, so
--          a retry of a transfer whose answer was lost does not move again; '<code> <attempt>
--          <n>' when that attempt was refused, so that every runner of the attempt (its client
--          and a request finishing it: atp/store/pending.py) gets the same answer, the one the
--          record is aborted on, however the stock changed since
-- ARGV[3]  from   ARGV[4]  to   ARGV[5]  units   ARGV[6]  safety stock at the destination
-- ARGV[7]  how long a refusal is kept (ms; a move's mark is kept until the transfer is done,
--          then as long: atp/store/transfers.py, and `atp rebuild` sets the same)
-- ARGV[8]  the attempt (record/transfer.lua begin)
-- Returns {'moved'} (now or before) | {'not_held', units held at the source}
--       | {'short', ATP at the destination} (nothing changed)
local seen = redis.call('GET', KEYS[4])
if seen == '1' then return {'moved'} end
if seen then
  local code, attempt, n = string.match(seen, '^(%S+) (%S*) (%S+)$')
  -- Refused in this attempt, or in a later one (this runner is stale): that answer.
  if attempt == ARGV[8] or (tonumber(attempt) or 0) > (tonumber(ARGV[8]) or 0) then
    return {code, tonumber(n)}
  end
end

local function refuse(code, n)
  redis.call('SET', KEYS[4], code .. ' ' .. ARGV[8] .. ' ' .. n, 'PXAT', now + tonumber(ARGV[7]))
  return {code, n}
end

give_back_overdue()
local src, dst, units = ARGV[3], ARGV[4], tonumber(ARGV[5])
local from_member, to_member = rid .. '@' .. src, rid .. '@' .. dst
local held = tonumber(redis.call('HGET', holds, from_member) or '0')
if held < units then return refuse('not_held', held) end
local on_hand = tonumber(redis.call('HGET', stock, 'oh:' .. dst) or '0')
local reserved = tonumber(redis.call('HGET', stock, 'rs:' .. dst) or '0')
local atp = on_hand - reserved - tonumber(ARGV[6])
if atp < units then return refuse('short', math.max(0, atp)) end
local score = redis.call('ZSCORE', expiry, from_member)
take_off(src, units)
redis.call('HINCRBY', stock, 'rs:' .. dst, units)
redis.call('HINCRBY', holds, to_member, units)
if score then redis.call('ZADD', expiry, score, to_member) end
redis.call('SET', KEYS[4], '1')  -- kept while the transfer is pending: it expires once done
return {'moved'}
