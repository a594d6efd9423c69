#!lua
-- record/release.lua: held|confirmed -> released (held and overdue -> expired). The caller gave
-- back the holds first (hold/release.lua).
-- ARGV[3]  how long the closed record answers replays (ms)
-- ARGV[4]  what shipments had used up of its holds (JSON, '' or absent: none; prelude close)
-- Returns as the changes do (prelude).
if missing() then return {'not_found'} end
if state == 'released' or state == 'expired' then return {'noop', state} end
if state == 'fulfilled' then return {'invalid', state} end
return close(overdue() and 'expired' or 'released', ARGV[3], ARGV[4])
