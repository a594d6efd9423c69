#!lua
-- record/transfer.lua: the record's side of moving held units between locations (the saga in
-- atp/store/transfers.py: begin, then hold/transfer.lua, then commit or abort). The record
-- keeps its transfers in `moves` as [id, sku, from, to, units, status]
-- (atp.core.reservations.MOVE_PENDING / MOVE_DONE), a pending one also with when it began (so
-- that another request may finish it once it is stale: atp/store/pending.py); its allocations
-- stay as first held.
-- ARGV[3]  'begin' | 'commit' | 'abort'   ARGV[4]  transfer id
-- ARGV[5]  sku   ARGV[6]  from   ARGV[7]  to   ARGV[8]  units   ARGV[9]  most moves kept
-- ARGV[10]  abort: the attempt (a stale runner does not drop a later attempt's entry)
-- begin:  {'begun', attempt} (listed as pending: release, confirm and fulfil now cover the
--         destination; a retry of a pending one gets its attempt: when it began)
--         | {'replay'} (done already) | {'transfer_conflict'} (the id names another transfer)
--         | {'too_many'} | {'busy', 'change', its id, when it began} (a change is pending)
--         | {'not_found'} | {'expired'} | {'invalid', state}
-- commit: {'ok', state} (done, published as `transferred`; a repeat publishes nothing)
-- abort:  {'ok', state} (a pending transfer that moved nothing is forgotten)
if missing() then return {'not_found'} end
local phase, tid = ARGV[3], ARGV[4]
local moves, found = load_list('moves', tid)

if phase == 'begin' then
  if found then
    local m = moves[found]
    if m[2] ~= ARGV[5] or m[3] ~= ARGV[6] or m[4] ~= ARGV[7] or m[5] ~= tonumber(ARGV[8]) then
      return {'transfer_conflict'}
    end
    if m[6] ~= 'pending' then return {'replay'} end  -- done (or applied by a change since)
    return {'begun', m[7] or ''}  -- a retry: hold/transfer.lua knows what the attempt did
  end
  if state ~= 'held' and state ~= 'confirmed' then return {'invalid', state} end
  if overdue() then return {'expired'} end
  if #moves >= tonumber(ARGV[9]) then return {'too_many'} end
  for _, c in ipairs(cjson.decode(redis.call('HGET', rec, 'changes') or '[]')) do
    if c[3] == 'pending' then return {'busy', 'change', c[1], c[5]} end
  end
  table.insert(moves, {tid, ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), 'pending', ARGV[2]})
  save_list('moves', moves)
  return {'begun', ARGV[2]}
end
if not found then return {'ok', state} end
if phase == 'abort' then
  if moves[found][6] == 'pending' and (moves[found][7] or '') == (ARGV[10] or '') then
    table.remove(moves, found)
    save_list('moves', moves)
  end
  return {'ok', state}
end
if moves[found][6] ~= 'pending' then return {'ok', state} end
moves[found][6] = 'done'
moves[found][7] = nil
save_list('moves', moves)
redis.call('HSET', rec, 'updated_ms', ARGV[2])
publish('transferred', {'transfer_id', tid, 'sku', ARGV[5], 'from_location_id', ARGV[6],
  'to_location_id', ARGV[7], 'quantity', ARGV[8]})
return {'ok', state}
