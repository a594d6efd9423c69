-- webhook/_prelude.lua: what the scripts of webhook/ share (prepended to each by
-- atp/store/scripts.py). Every key is in the `{wh}` slot (atp.store.keys.webhook_keys), so each
-- change of a subscription and its messages is one atomic step, on one Redis as on a cluster.
-- Their caller and the rules' Python home: atp/store/webhooks.py (WebhookStore).

-- Push an entry on a capped list, newest first.
local function log(key, entry, keep)
  redis.call('LPUSH', key, entry)
  redis.call('LTRIM', key, 0, tonumber(keep) - 1)
end
