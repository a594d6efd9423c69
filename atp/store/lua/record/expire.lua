#!lua
-- record/expire.lua: held and overdue -> expired (the sweeper); otherwise nothing. The caller
-- gave back the holds first.
-- ARGV[3]  how long the closed record answers replays (ms)
-- ARGV[4]  what shipments had used up of its holds (JSON, '' or absent: none; prelude close)
-- Returns as the changes do (prelude).
if missing() then return {'not_found'} end
if not overdue() then return {'noop', state} end
return close('expired', ARGV[3], ARGV[4])
