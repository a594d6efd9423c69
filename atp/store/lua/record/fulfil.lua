#!lua
-- record/fulfil.lua: held|confirmed -> fulfilled; the caller saw no holds left (hold/left.lua).
-- ARGV[3]  how long the closed record answers replays (ms)
-- Returns as the changes do (prelude).
if missing() then return {'not_found'} end
if state ~= 'held' and state ~= 'confirmed' then return {'noop', state} end
return close('fulfilled', ARGV[3])
