#!lua
-- hold/check.lua: would this SKU's lines fit? Holds nothing (a request already short on another
-- SKU still reports every shortfall). Overdue holds are given back first, as by take.
-- ARGV[3]  expires_at (unused; as take)   ARGV[4]  allow_partial (unused: a request that allows
-- partial holds is never checked)   ARGV[5..]  the lines (see place_lines in the prelude)
-- Returns {'fits'} | {'short', JSON [[line, requested, available], ...]}
give_back_overdue()
local _, shortages = place_lines(5)
if #shortages > 0 then return {'short', cjson.encode(shortages)} end
return {'fits'}
