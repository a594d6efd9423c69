#!lua
-- hold/change.lua: this SKU's side of a change of a reservation's quantities (the saga in
-- atp/store/changes.py), one phase per call. The attempt's mark (KEYS[4], a hash: `placed`,
-- `cut`, `state`) makes each phase happen once however often it is asked, and an attempt
-- that was undone (another SKU was short, or the reservation closed) do nothing more. The mark
-- has no expiry while the change may still run (atp/store/changes.py gives it one when the
-- change is done; `undo` here), so a change finished late does nothing twice.
-- ARGV[3]  'place' | 'check' | 'cut' | 'undo' | 'expiry'
-- ARGV[4]  how long the mark is kept once undone (ms)
-- ARGV[5]  the expiry of new holds ('' none: a confirmed reservation), as the change read it;
--   `expiry` (an extend or confirm made while the change runs) sets it in the mark, where
--   `place` takes it from instead, and moves what was placed onto it
-- place, check: ARGV[6..]  the lines' increases (place_lines, prelude: the Python original is
--   atp.core.reservations.hold_lines, all or nothing)
-- cut: ARGV[6..]  pairs: location, units to give back (atp.core.amendments.cut_holds)
-- Returns place: {'placed', JSON [[line, [[loc, qty], ...]], ...]} (now or before)
--               | {'short', JSON [[line, requested, available], ...]} (nothing held)
--         check: {'ok'} | {'short', ...}   cut, undo, expiry: {'ok'}
--         place, cut: {'undone'} (the attempt was undone: nothing changed)
local mark, phase = KEYS[4], ARGV[3]
local done = redis.call('HGET', mark, 'state')

if phase == 'undo' then
  if done == 'placed' then
    for _, line in ipairs(cjson.decode(redis.call('HGET', mark, 'placed'))) do
      for _, part in ipairs(line[2]) do
        take_off(part[1], part[2])
      end
    end
  end
  redis.call('HSET', mark, 'state', 'undone')
  redis.call('PEXPIREAT', mark, now + tonumber(ARGV[4]))
  return {'ok'}
end
if phase == 'expiry' then
  redis.call('HSET', mark, 'expiry', ARGV[5])
  if done == 'placed' then
    for _, line in ipairs(cjson.decode(redis.call('HGET', mark, 'placed'))) do
      for _, part in ipairs(line[2]) do
        local member = rid .. '@' .. part[1]
        if ARGV[5] == '' then
          redis.call('ZREM', expiry, member)
        else
          redis.call('ZADD', expiry, 'XX', ARGV[5], member)
        end
      end
    end
  end
  return {'ok'}
end
if done == 'undone' and phase ~= 'check' then return {'undone'} end

if phase == 'cut' then
  if redis.call('HEXISTS', mark, 'cut') == 1 then return {'ok'} end
  for i = 6, #ARGV, 2 do
    take_off(ARGV[i], tonumber(ARGV[i + 1]))
  end
  redis.call('HSET', mark, 'cut', '1')
  return {'ok'}
end

if phase == 'place' and done == 'placed' then
  return {'placed', redis.call('HGET', mark, 'placed')}
end
give_back_overdue()
local allocations, shortages, taken = place_lines(6, '0')
if #shortages > 0 then return {'short', cjson.encode(shortages)} end
if phase == 'check' then return {'ok'} end
local score = redis.call('HGET', mark, 'expiry') or ARGV[5]
for loc, units in pairs(taken) do
  local member = rid .. '@' .. loc
  local held = redis.call('HEXISTS', holds, member) == 1
  redis.call('HINCRBY', stock, 'rs:' .. loc, units)
  redis.call('HINCRBY', holds, member, units)
  if score ~= '' and not held then
    redis.call('ZADD', expiry, score, member)
  end
end
local placed = cjson.encode(allocations)
redis.call('HSET', mark, 'state', 'placed', 'placed', placed)
return {'placed', placed}
