#!lua
-- record/change.lua: the record's side of a change of a reservation's quantities (the saga in
-- atp/store/changes.py: begin, then hold/change.lua per SKU, then commit or abort). The record
-- keeps its changes in `changes` as [id, fingerprint, status] (atp.core.reservations
-- .CHANGE_PENDING ... CHANGE_DONE); one not done also with {sku: [locations it may hold at]}
-- (a release covers them), its attempt (when it began: the hold/ marks are per attempt) and
-- its lines (so that another request can run it again to finish it: atp/store/pending.py).
-- Its status decides, once, between the runners of an attempt (its client's retry, or a
-- request finishing it): `pending`, then `cutting` (decreases may be given back: it can no
-- longer be aborted) and `done`, or `aborting` (what it placed is being given back: it can no
-- longer be cut or committed) and dropped.
-- ARGV[3]  'begin' | 'cutting' | 'commit' | 'abort' | 'drop'   ARGV[4]  change id
-- ARGV[5]  fingerprint
-- begin:  ARGV[6]  JSON {sku: [locations]}   ARGV[7]  most changes kept   ARGV[8]  lines JSON
--   {'begun', attempt} (new, or a retry of one under way: the same attempt)
--   | {'aborting', attempt} (a retry of one being aborted: finish that, then begin again)
--   | {'replay'} (done already) | {'change_conflict'} (the id names other lines)
--   | {'busy', 'transfer' or 'change', its id, when it began} (another one is under way)
--   | {'too_many'} | {'not_found'} | {'expired'} | {'invalid', state}
-- cutting: ARGV[6]  attempt   {'ok'} | {'gone'} (aborted, or another attempt's)
-- commit: ARGV[6]  attempt   ARGV[7]  request JSON (the new quantities)
--   ARGV[8]  allocations JSON (with every done transfer: those become `applied`)
--   ARGV[9]  the change's lines JSON (published with it)
--   {'ok', state} (done, published as `changed`; a repeat publishes nothing)
--   | {'gone'} (this attempt is aborted) | {'expired'} | {'invalid', state}
-- abort:  ARGV[6]  attempt   {'aborting'} (give back what it placed, then drop it)
--   | {'cutting'} or {'done'} (another runner is past the point of no return) | {'gone'}
-- drop:   ARGV[6]  attempt   {'ok'} (an aborting attempt is forgotten)
if missing() then return {'not_found'} end
local phase, cid = ARGV[3], ARGV[4]
local changes, found = load_list('changes', cid)
local moves = load_list('moves')
local c = found and changes[found]

if phase == 'begin' then
  if c then
    if c[2] ~= ARGV[5] then return {'change_conflict'} end
    if c[3] == 'done' then return {'replay'} end
    if c[3] == 'aborting' then return {'aborting', c[5]} end
    return {'begun', c[5]}  -- a retry of one whose answer was lost: the marks know what it did
  end
  if state ~= 'held' and state ~= 'confirmed' then return {'invalid', state} end
  if overdue() then return {'expired'} end
  for _, m in ipairs(moves) do
    if m[6] == 'pending' then return {'busy', 'transfer', m[1], m[7] or ''} end
  end
  for _, other in ipairs(changes) do
    if other[3] ~= 'done' then return {'busy', 'change', other[1], other[5]} end
  end
  if #changes >= tonumber(ARGV[7]) then return {'too_many'} end
  table.insert(changes, {cid, ARGV[5], 'pending', cjson.decode(ARGV[6]), ARGV[2],
    cjson.decode(ARGV[8])})
  save_list('changes', changes)
  return {'begun', ARGV[2]}
end
local ours = c and c[5] == ARGV[6]
if phase == 'abort' then
  if c and c[3] == 'done' then return {'done'} end
  if not ours then return {'gone'} end
  if c[3] == 'cutting' then return {'cutting'} end
  c[3] = 'aborting'
  save_list('changes', changes)
  return {'aborting'}
end
if phase == 'drop' then
  if ours and c[3] == 'aborting' then
    table.remove(changes, found)
    save_list('changes', changes)
  end
  return {'ok'}
end
if c and c[3] == 'done' then return {'ok', state} end
if not ours or c[3] == 'aborting' then return {'gone'} end
if phase == 'cutting' then
  c[3] = 'cutting'
  save_list('changes', changes)
  return {'ok'}
end
if state ~= 'held' and state ~= 'confirmed' then return {'invalid', state} end
if overdue() then return {'expired'} end
changes[found] = {cid, ARGV[5], 'done'}
save_list('changes', changes)
for _, m in ipairs(moves) do
  if m[6] == 'done' then m[6] = 'applied' end
end
save_list('moves', moves)
redis.call('HSET', rec, 'request', ARGV[7], 'allocations', ARGV[8], 'updated_ms', ARGV[2])
publish('changed', {'change_id', cid, 'lines', ARGV[9], 'request', ARGV[7],
  'allocations', ARGV[8]})
return {'ok', state}
