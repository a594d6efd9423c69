#!lua
-- record/confirm.lua: held -> confirmed (an order: no expiry). The caller took the SKUs' holds
-- off their expiry first (hold/persist.lua).
-- Returns as the changes do (prelude).
if missing() then return {'not_found'} end
if state == 'confirmed' then return {'noop', state} end
if state ~= 'held' then return {'invalid', state} end
if overdue() then return {'expired'} end
redis.call('ZREM', expiring, rid)
redis.call('PERSIST', rec)
record('confirmed', 'confirmed')
return {'ok', 'confirmed'}
