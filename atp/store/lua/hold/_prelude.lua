-- hold/_prelude.lua: what the scripts of hold/ share (prepended to each by atp/store/scripts.py).
-- One SKU's side of a reservation: its stock, holds and expiry, one slot. The record side is
-- record/; atp/store/reservations.py runs the two.
--
-- KEYS[1]  atp:v2:{SKU}:stock   KEYS[2]  atp:v2:{SKU}:holds   KEYS[3]  atp:v2:{SKU}:expiry
-- ARGV[1]  reservation id       ARGV[2]  now (epoch ms)       then the script's own
-- (reserve/make.lua, which places several SKUs' lines, points these three at each SKU's keys
-- in turn.)
local stock, holds, expiry = KEYS[1], KEYS[2], KEYS[3]
local rid, now = ARGV[1], tonumber(ARGV[2])

-- A hold's name is '<reservation id>@<location>' (atp.core.reservations.hold_member).
local function loc_of(member)
  return string.sub(member, string.find(member, '@', 1, true) + 1)
end

-- Overdue at now >= expires (atp.core.reservations.is_overdue).
local function overdue(expires)
  return now >= tonumber(expires)
end

local function give_back(member, loc)
  local units = redis.call('HGET', holds, member)
  if units then
    redis.call('HINCRBY', stock, 'rs:' .. loc, -tonumber(units))
    redis.call('HDEL', holds, member)
  end
  redis.call('ZREM', expiry, member)
end

-- Give back `units` of the reservation's hold at `loc`, as far as it has them (a shipment may
-- have used some): atp.core.amendments.cut_holds.
local function take_off(loc, units)
  local member = rid .. '@' .. loc
  local have = tonumber(redis.call('HGET', holds, member) or '0')
  local back = math.max(0, math.min(units, have))
  if back == 0 then return end
  redis.call('HINCRBY', stock, 'rs:' .. loc, -back)
  if back == have then
    redis.call('HDEL', holds, member)
    redis.call('ZREM', expiry, member)
  else
    redis.call('HINCRBY', holds, member, -back)
  end
end

-- An attempt at a pending reservation is known by its expires_at: record/begin.lua gives each
-- takeover a later one than the attempt before. The reservation's hold at `loc` belongs to
-- attempt `expires` or an older one when its expiry is at most `expires`; nil when it has none.
-- Returns 'none', 'ours' (this attempt's or older: ours to give back) or 'newer'.
local function owner(member, expires)
  if redis.call('HEXISTS', holds, member) == 0 then return 'none' end
  local score = redis.call('ZSCORE', expiry, member)
  if score and tonumber(score) <= tonumber(expires) then return 'ours' end
  return 'newer'  -- a newer attempt's (or no expiry at all: confirmed, not a pending one)
end

-- The candidate locations of the lines from ARGV[pos] (see place_lines), each once.
local function line_locations(pos)
  local seen, locs = {}, {}
  local lines = tonumber(ARGV[pos])
  pos = pos + 1
  for _ = 1, lines do
    local n = tonumber(ARGV[pos + 2])
    pos = pos + 3
    for _ = 1, n do
      if not seen[ARGV[pos]] then
        seen[ARGV[pos]] = true
        table.insert(locs, ARGV[pos])
      end
      pos = pos + 2
    end
  end
  return locs
end

-- Holds past their expiry no longer count: give them back before placing anything (the API's
-- sweeper marks their reservations expired later). Scores up to now are the overdue ones.
local function give_back_overdue()
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do
    give_back(member, loc_of(member))
  end
end

-- The SKU's lines placed against its counts, from ARGV[pos]: the number of lines, then per line
-- its index in the request, quantity, number of candidate locations, then per candidate:
-- location, safety stock. Returns allocations {{line, {{loc, qty}, ...}}, ...}, shortages
-- {{line, requested, available}, ...}, the units taken per location, and the position in ARGV
-- after the lines. `partial` ('1'): a line that does not fit takes what there is, split in
-- candidate order, and is still listed as short.
-- The Python original is atp.core.reservations.hold_lines: the ATP formula
-- (atp.core.availability.location_atp) less what earlier lines took, and the allocation order
-- (atp.core.reservations.allocate: whole at the first that fits, else split in that order).
local function place_lines(pos, partial)
  local taken = {}
  local function available(loc, safety)
    local on_hand = tonumber(redis.call('HGET', stock, 'oh:' .. loc) or '0')
    local reserved = tonumber(redis.call('HGET', stock, 'rs:' .. loc) or '0')
    return on_hand - reserved - safety - (taken[loc] or 0)
  end
  local allocations, shortages = {}, {}
  local lines = tonumber(ARGV[pos])
  pos = pos + 1
  for _ = 1, lines do
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
    local want = qty
    if total < qty then
      table.insert(shortages, {line, qty, total})
      want = (partial == '1') and total or 0
    end
    if #parts == 0 and want > 0 then
      local left = want
      for _, cand in ipairs(cands) do
        if left > 0 and cand[2] > 0 then
          local take = math.min(left, cand[2])
          table.insert(parts, {cand[1], take})
          left = left - take
        end
      end
    end
    for _, part in ipairs(parts) do taken[part[1]] = (taken[part[1]] or 0) + part[2] end
    table.insert(allocations, {line, parts})
  end
  return allocations, shortages, taken, pos
end

-- Allocations as JSON, per line its parts [[loc, qty], ...]: a line that holds nothing (allowed
-- with allow_partial) is [], where cjson would write an empty table as {}.
local function allocations_json(per_line)
  local out = {}
  for i, parts in ipairs(per_line) do out[i] = (#parts == 0) and '[]' or cjson.encode(parts) end
  return '[' .. table.concat(out, ',') .. ']'
end
