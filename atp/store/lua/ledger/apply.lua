#!lua name=__LIBRARY__
-- ledger/apply.lua: a Redis Function library that applies one SKU's movements to its ledger in
-- Redis (layout v3), uses up the holds its shipments fulfil and records its status per channel
-- with the ledger's counters: one atomic call per SKU, in the SKU's hash slot, whose work per
-- movement does not grow with the pair's history.
--
-- Python originals (the executable specification; tests/integration/test_ledger_v3.py runs both
-- on the same generated inputs): the fold is atp.core.ledger (apply_in_place, compact,
-- future_inbound), the journal atp.core.journal, a batch's effect on a SKU
-- atp.core.updates.update_sku, the holds atp.core.reservations.use_holds, a channel's status
-- atp.core.availability.channel_total with atp.core.network.Network.safety_rule.
--
-- atp/store/ledger_function.py fills in __LIBRARY__, __FUNCTION__ and __CHANNELS__ (the
-- network's channels, low-stock thresholds and safety stock, resolved per level) and loads the
-- library on every master. The library's top level runs once, at load: CHANNELS is built once.
--
-- Per (SKU, location), hash tag {SKU} (atp.store.keys):
--   ledger hash  l:<loc>  summary "base_qty,base_ms,count_ms,last_ms,,,count_id" (empty for
--                         none; count_id last, it may hold commas), written only when the base,
--                         the last count or last_ms (the newest count, ASN or delta folded into
--                         the base) changes: a delta writes its own two entries and the served
--                         count, nothing else. The last movement is the newer of last_ms and
--                         the newest kept delta, the kept deltas' sum the served oh:<loc> minus
--                         base_qty, their number ZCARD d. Fields
--                         5 and 6 (delta sum and count) are left empty; an older writer's
--                         values there are rewritten whenever the pair changes, and an older
--                         reader stops at the empty field instead of trusting a stale sum.
--   d   sorted set: event ids of the deltas kept after the base, scored by occurred_ms (the
--       dedupe index: each id is stored here only)
--   t   hash: occurred_ms -> the sum of the kept deltas' qty at that time (deltas leave by
--       time, so a time's sum is all a drop needs)
--   n   hash: ASN id -> "eta_ms:qty" expected inbound
--   rt  hash: ASN id -> occurred_ms of the newest kept receipt naming it (a positive delta
--       with the ASN as ref: its ASN is not inbound)
--   q, r  the first v3 writer's quantities by event id and receipts per ASN: converted into
--       t and rt by the first call that loads the pair (convert_older), then deleted
--   j   list: the newest movements with their outcome and the on hand after each, newest
--       first, at most ARGV 5 (atp.core.journal: entries, kept), repeats included; it expires
--       ARGV 6 ms after the pair's last movement
-- on_hand = base_qty + the kept deltas' sum; kept deltas are those after base_ms (DESIGN.md).
--
-- KEYS  1 ledger (v3)  2 stock  3 holds  4 expiry  5 stats  6 the SKU's v2 ledger (must not
--       exist: run `atp migrate`), then per location i of ARGV: d_i, t_i, n_i, rt_i, q_i, r_i,
--       j_i (the journal), then last the shipped hash (units shipments used up of each hold
--       member so far, kept until the reservation closes: atp.store.keys.shipped)
-- ARGV  1 sku  2 now_ms  3 retention_ms  4 inbound_grace_ms  5 journal entries kept per pair
--       (0: none)  6 the journal's lifetime after the pair's last movement (ms, Redis' own
--       clock: the one rule here not in logical time)  7 number of locations L, then
--       the L location ids, then the number of movements, then per movement (grouped by
--       location, in the order of ARGV's locations; batch order within one):
--       location index (1..L), effect (d delta, c count, i inbound), event id, occurred_ms,
--       qty, ref ('' none), eta_ms ('' none), ships ('1': an applied one uses up the hold of
--       reservation <ref> at its location, atp.core.reservations.shipment), source, kind
-- Returns {outcomes, 0} when nothing changed (outcomes: one letter per movement in ARGV
-- order: a applied, d duplicate, s superseded, t too late), else {outcomes, 1, stock before
-- (flat field/value list), stock after, consumed {rid, loc, units, ...}, unmatched {rid, loc,
-- ...}}.

local CHANNELS = __CHANNELS__

local function num(s)
  if s == nil or s == '' then
    return nil
  end
  return tonumber(s)
end

local function str(n)
  if n == nil then
    return ''
  end
  return string.format('%d', n)
end

-- Python compares strings by code point; UTF-8 bytes sort the same way. Lua's `<` on strings
-- uses the server's locale (strcoll), so compare bytes.
local function bytes_lt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local function hash_map(key)
  local flat, map = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

local function same_map(a, b)
  for k, v in pairs(a) do
    if b[k] ~= v then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

local function append(list, field, value)
  table.insert(list, field)
  table.insert(list, value)
end

-- `cmd key items...` in commands of at most 2,000 items (unpack has a small stack).
local function in_chunks(cmd, key, items)
  for first = 1, #items, 2000 do
    redis.call(cmd, key, unpack(items, first, math.min(#items, first + 1999)))
  end
end

local function parse_delta(v)
  local colon = string.find(v, ':', 1, true)
  if colon then
    return tonumber(string.sub(v, 1, colon - 1)), string.sub(v, colon + 1)
  end
  return tonumber(v), nil
end

-- The kept deltas as the first v3 writer kept them (q: event id -> "qty" or "qty:<ASN>"; r:
-- ASN -> receipts kept) into t and rt, once per pair, in the call that first loads it.
local function convert_older(k)
  if redis.call('EXISTS', k.q) == 0 then
    return
  end
  local sums, newest = {}, {}
  for id, v in pairs(hash_map(k.q)) do
    local score = redis.call('ZSCORE', k.d, id)
    if not score then
      error('ledger ' .. k.q .. ': delta ' .. id .. ' is not in ' .. k.d)
    end
    local at = tonumber(score)
    local qty, ref = parse_delta(v)
    sums[str(at)] = (sums[str(at)] or 0) + qty
    if ref and qty > 0 and (newest[ref] == nil or at > newest[ref]) then
      newest[ref] = at
    end
  end
  local items = {}
  for at, total in pairs(sums) do
    append(items, at, str(total))
  end
  in_chunks('HSET', k.t, items)
  items = {}
  for asn, at in pairs(newest) do
    append(items, asn, str(at))
  end
  in_chunks('HSET', k.rt, items)
  redis.call('DEL', k.q, k.r)
end

local function later(a, b)
  if a == nil or (b ~= nil and b > a) then
    return b
  end
  return a
end

local function newest_delta(k)
  return num(redis.call('ZRANGE', k.d, -1, -1, 'WITHSCORES')[2])
end

-- The base and the last count: what the summary holds besides the last movement.
local function base_of(p)
  return table.concat({str(p.base_qty), str(p.base_ms), str(p.count_ms), p.count_id or ''}, ',')
end

local function encode_pair(p)
  return table.concat({
    str(p.base_qty), str(p.base_ms), str(p.count_ms), str(p.last_ms), '', '', p.count_id or '',
  }, ',')
end

-- The pair's summary, and its inbound as it was: a pair has changed when its base, its last
-- movement, its kept deltas or its inbound differ at the end (update_sku compares the folded
-- state with the stored one: an ASN added and dropped as overdue in the same call, no newer
-- than the last movement, changes nothing). The last movement is the newer of the stored
-- last_ms and the newest kept delta (compact works it out only when a count or an ASN was
-- applied or the base moved: a call of deltas alone reads nothing more).
local function load_pair(ledger, loc, k, served)
  local raw = redis.call('HGET', ledger, 'l:' .. loc)
  if not raw then
    return {new = true, base_qty = 0, dsum = 0, inbound0 = {}}
  end
  local f, start = {}, 1
  for i = 1, 6 do
    local comma = string.find(raw, ',', start, true)
    f[i] = string.sub(raw, start, comma - 1)
    start = comma + 1
  end
  local count_id = string.sub(raw, start)
  local base_qty = tonumber(f[1])
  convert_older(k)
  local p = {
    new = false, inbound0 = hash_map(k.n), stored_last = num(f[4]), last_ms = num(f[4]),
    legacy = f[5] ~= '' or f[6] ~= '',  -- an older writer's delta sum and count
    base_qty = base_qty, base_ms = num(f[2]), count_ms = num(f[3]),
    dsum = tonumber(served['oh:' .. loc] or '0') - base_qty,
    count_id = count_id ~= '' and count_id or nil,
  }
  p.base0 = base_of(p)
  return p
end

-- Drop the kept deltas up to time `bound` (inclusive, or before it): their quantities (summed
-- per time in t) and the receipts among them (rt keeps each ASN's newest). Returns the sum and
-- the newest dropped time (nil when none). Each delta is dropped once: amortised O(1).
local function drop_deltas(p, k, bound, inclusive)
  local max_score = inclusive and str(bound) or '(' .. str(bound)
  local scored = redis.call('ZRANGEBYSCORE', k.d, '-inf', max_score, 'WITHSCORES')
  if #scored == 0 then
    return 0, nil
  end
  local times, seen = {}, {}
  for i = 2, #scored, 2 do
    local at = str(tonumber(scored[i]))
    if not seen[at] then
      seen[at] = true
      table.insert(times, at)
    end
  end
  local sum = 0
  for first = 1, #times, 2000 do
    local last = math.min(#times, first + 1999)
    for _, total in ipairs(redis.call('HMGET', k.t, unpack(times, first, last))) do
      sum = sum + tonumber(total)
    end
  end
  in_chunks('HDEL', k.t, times)
  redis.call('ZREMRANGEBYSCORE', k.d, '-inf', max_score)
  local gone = {}
  for asn, at in pairs(hash_map(k.rt)) do
    if tonumber(at) < bound or (inclusive and tonumber(at) == bound) then
      table.insert(gone, asn)
    end
  end
  in_chunks('HDEL', k.rt, gone)
  p.dsum = p.dsum - sum
  return sum, tonumber(times[#times])
end

-- A receipt naming an ASN: those units are no longer inbound (atp.core.ledger._close_inbound).
local function close_inbound(k, m)
  if m.ref and m.qty > 0 then
    redis.call('HDEL', k.n, m.ref)
  end
end

local function apply_delta(p, k, m, horizon)
  if redis.call('ZSCORE', k.d, m.id) then
    return 'd'
  end
  if m.occ < horizon then
    return 't'
  end
  if p.base_ms and m.occ <= p.base_ms then
    if p.count_ms and m.occ <= p.count_ms then
      close_inbound(k, m)
      return 's'
    end
    return 't'
  end
  close_inbound(k, m)
  redis.call('ZADD', k.d, m.occ, m.id)
  redis.call('HINCRBY', k.t, str(m.occ), m.qty)
  if m.ref and m.qty > 0 then
    local newest = num(redis.call('HGET', k.rt, m.ref))
    if newest == nil or m.occ > newest then
      redis.call('HSET', k.rt, m.ref, str(m.occ))
    end
  end
  p.dsum = p.dsum + m.qty
  p.moved = true
  return 'a'
end

local function apply_count(p, k, m)
  if p.count_ms then
    if m.occ == p.count_ms and m.id == p.count_id then
      return 'd'
    end
    if m.occ < p.count_ms or (m.occ == p.count_ms and bytes_lt(m.id, p.count_id)) then
      return 's'
    end
  end
  if p.base_ms and m.occ <= p.base_ms and p.base_ms ~= p.count_ms then
    return 't'  -- the base moved past this time by compaction: the deltas between are unknown
  end
  drop_deltas(p, k, m.occ, true)
  p.base_qty, p.base_ms, p.count_ms, p.count_id = m.qty, m.occ, m.occ, m.id
  return 'a'
end

local function apply_inbound(p, k, m)
  if redis.call('HEXISTS', k.n, m.id) == 1 then
    return 'd'
  end
  if redis.call('HEXISTS', k.rt, m.id) == 1 then
    return 's'  -- its receipt arrived first: nothing is inbound any more
  end
  redis.call('HSET', k.n, m.id, str(m.eta or m.occ) .. ':' .. str(m.qty))
  return 'a'
end

-- Deltas older than the window into the base; overdue inbound dropped; the next inbound
-- ("eta:qty" summed over the earliest eta, or '') for the served hash.
local function compact(p, k, now, retention, grace)
  local sum, newest = drop_deltas(p, k, now - retention, false)
  if newest then
    p.base_qty = p.base_qty + sum
    if p.base_ms == nil or newest > p.base_ms then
      p.base_ms = newest
    end
  end
  local overdue = now - grace
  local inbound = hash_map(k.n)
  local by_eta, etas = {}, {}
  for asn, v in pairs(inbound) do
    local colon = string.find(v, ':', 1, true)
    local eta, qty = tonumber(string.sub(v, 1, colon - 1)), tonumber(string.sub(v, colon + 1))
    if eta < overdue then
      redis.call('HDEL', k.n, asn)
      inbound[asn] = nil
    else
      if by_eta[eta] == nil then
        by_eta[eta] = 0
        table.insert(etas, eta)
      end
      by_eta[eta] = by_eta[eta] + qty
    end
  end
  -- atp.core.ledger.future_inbound: every eta with its summed qty, earliest first; the first
  -- is served as ib:<loc>, the rest as fu:<loc> ("eta:qty,eta:qty", '' for none).
  table.sort(etas)
  local rest = {}
  for i = 2, #etas do
    table.insert(rest, str(etas[i]) .. ':' .. str(by_eta[etas[i]]))
  end
  p.next_inbound = #etas > 0 and (str(etas[1]) .. ':' .. str(by_eta[etas[1]])) or ''
  p.later_inbound = table.concat(rest, ',')
  -- The stored last_ms is the newest count, ASN or delta folded into the base (so the same
  -- movements store the same summary however they were batched); a reader takes the newer of
  -- it and d's newest. Deltas alone change neither.
  local base_changed = p.new or base_of(p) ~= p.base0
  local last_moved = false
  if base_changed or p.other_last then
    p.last_ms = later(later(p.stored_last, p.base_ms), p.other_last)
    if not base_changed and p.last_ms ~= p.stored_last then
      local newest = newest_delta(k)
      last_moved = later(p.last_ms, newest) ~= later(p.stored_last, newest)
    end
  end
  -- An ASN applied and dropped as overdue, older than a kept delta: the summary is written
  -- (quietly) but the pair has not changed.
  p.summary_changed = base_changed or p.last_ms ~= p.stored_last
  return base_changed or last_moved or p.moved or not same_map(p.inbound0, inbound)
end

-- The SKU's status code per channel from its served hash (atp.core.availability.channel_total).
local function statuses(sku, served)
  local oh, rs, locs = {}, {}, {}
  for field, value in pairs(served) do
    local prefix = string.sub(field, 1, 3)
    if prefix == 'oh:' then
      oh[string.sub(field, 4)] = tonumber(value)
      locs[string.sub(field, 4)] = true
    elseif prefix == 'rs:' then
      rs[string.sub(field, 4)] = tonumber(value)
      locs[string.sub(field, 4)] = true
    end
  end
  local out = {}
  for _, ch in ipairs(CHANNELS) do
    local total = 0
    local pair, sku_rule = ch.pair[sku], ch.sku[sku]
    for loc in pairs(locs) do
      local safety = ch.base[loc]  -- nil: the location does not count for the channel
      if safety then
        local rule = pair and pair[loc]
        if rule == nil then
          rule = sku_rule
        end
        if rule ~= nil then
          safety = rule
        end
        total = total + math.max(0, (oh[loc] or 0) - (rs[loc] or 0) - safety)
      end
    end
    local status = 'i'
    if total <= 0 then
      status = 'o'
    elseif total <= ch.low then
      status = 'l'
    end
    table.insert(out, {ch.id, status})
  end
  return out
end

local function record_statuses(ledger, stats, sku, served)
  local now = statuses(sku, served)
  if #now == 0 then
    return
  end
  local fields = {}
  for _, st in ipairs(now) do
    table.insert(fields, 's:' .. st[1])
  end
  local old, changed = redis.call('HMGET', ledger, unpack(fields)), {}
  for i, st in ipairs(now) do
    local channel, status = st[1], st[2]
    if old[i] ~= status then
      append(changed, fields[i], status)
      if old[i] then
        redis.call('HINCRBY', stats, channel .. ':' .. old[i], -1)
      end
      redis.call('HINCRBY', stats, channel .. ':' .. status, 1)
    end
  end
  if #changed > 0 then
    redis.call('HSET', ledger, unpack(changed))
  end
end

-- Shipments use up min(held, units) of the hold they name, in order (use_holds).
local function use_holds(keys, shipments, served)
  local consumed, unmatched, left = {}, {}, {}
  for _, s in ipairs(shipments) do
    local loc, rid, units = s[1], s[2], s[3]
    local member = rid .. '@' .. loc
    local held = left[member] or tonumber(redis.call('HGET', keys[3], member) or '0')
    if held > 0 then
      local used = math.min(held, units)
      left[member] = held - used
      if used == held then
        redis.call('HDEL', keys[3], member)
        redis.call('ZREM', keys[4], member)
      else
        redis.call('HSET', keys[3], member, str(held - used))
      end
      served['rs:' .. loc] = str(redis.call('HINCRBY', keys[2], 'rs:' .. loc, -used))
      redis.call('HINCRBY', keys[#keys], member, used)
      for _, x in ipairs({rid, loc, str(used)}) do
        table.insert(consumed, x)
      end
    else
      left[member] = held
      table.insert(unmatched, rid)
      table.insert(unmatched, loc)
    end
  end
  return consumed, unmatched
end

local APPLY = {d = apply_delta, c = apply_count, i = apply_inbound}

-- One movement's journal entry (atp.core.journal.Entry.encode): when the ledger saw it, when it
-- occurred, its outcome, qty, the pair's on hand after it, its effect, source, kind, event id.
local function journal_entry(args, pos, p, out)
  return table.concat({
    args[2], args[pos + 4], out, args[pos + 5], str(p.base_qty + p.dsum), args[pos + 2],
    args[pos + 9], args[pos + 10], args[pos + 3],
  }, '\31')
end

-- A pair served before fu:<loc> existed has none although more than one arrival is expected:
-- written (quietly: nothing about the pair changed) by the first call that loads the pair.
local function fill_later_inbound(stock_key, pair, served)
  local field, value = 'fu:' .. pair.loc, pair.p.later_inbound
  if (served[field] or '') == value then
    return
  end
  if value == '' then
    redis.call('HDEL', stock_key, field)
    served[field] = nil
  else
    redis.call('HSET', stock_key, field, value)
    served[field] = value
  end
end

local function apply(keys, args)
  if redis.call('EXISTS', keys[6]) == 1 then
    return redis.error_reply('ATP_V2_LEDGER ' .. keys[6] ..
      ' has the v2 layout: stop the workers and run `atp migrate` (docs/operations.md)')
  end
  local sku, now = args[1], tonumber(args[2])
  local retention, grace = tonumber(args[3]), tonumber(args[4])
  local journal_entries, journal_ttl = tonumber(args[5]), tonumber(args[6])
  local nlocs = tonumber(args[7])
  local pos = 8 + nlocs
  local outcomes, shipments = {}, {}
  local before = redis.call('HGETALL', keys[2])
  local served = {}
  for i = 1, #before, 2 do
    served[before[i]] = before[i + 1]
  end
  local pairs_of = {}
  for li = 1, nlocs do
    local base = 6 + 7 * (li - 1)
    local k = {
      d = keys[base + 1], t = keys[base + 2], n = keys[base + 3], rt = keys[base + 4],
      q = keys[base + 5], r = keys[base + 6], j = keys[base + 7],
    }
    local loc = args[7 + li]
    pairs_of[li] = {loc = loc, p = load_pair(keys[1], loc, k, served), k = k, journal = {}}
  end
  local horizon = now - retention
  for _ = 1, tonumber(args[pos]) do
    local pair = pairs_of[tonumber(args[pos + 1])]
    local ref, eta = args[pos + 6], args[pos + 7]
    local m = {
      effect = args[pos + 2], id = args[pos + 3], occ = tonumber(args[pos + 4]),
      qty = tonumber(args[pos + 5]), ref = ref ~= '' and ref or nil, eta = num(eta),
    }
    local out = APPLY[m.effect](pair.p, pair.k, m, horizon)
    if out == 'a' then
      if m.effect ~= 'd' then  -- a kept delta's time is in d; a dropped one moved the base
        pair.p.other_last = later(pair.p.other_last, m.occ)
      end
      if args[pos + 8] == '1' then
        table.insert(shipments, {pair.loc, m.ref, -m.qty})
      end
    end
    table.insert(outcomes, out)
    if journal_entries > 0 then
      table.insert(pair.journal, journal_entry(args, pos, pair.p, out))
    end
    pos = pos + 10
  end
  local changed, quiet = {}, {}
  for _, pair in ipairs(pairs_of) do
    if compact(pair.p, pair.k, now, retention, grace) then
      table.insert(changed, pair)
    else
      if pair.p.summary_changed then
        append(quiet, 'l:' .. pair.loc, encode_pair(pair.p))
      end
      fill_later_inbound(keys[2], pair, served)
    end
  end
  in_chunks('HSET', keys[1], quiet)
  for _, pair in ipairs(pairs_of) do
    if #pair.journal > 0 then
      in_chunks('LPUSH', pair.k.j, pair.journal)  -- the last pushed is the newest, at the head
      redis.call('LTRIM', pair.k.j, 0, journal_entries - 1)
      redis.call('PEXPIRE', pair.k.j, journal_ttl)  -- an idle pair's journal goes
    end
  end
  outcomes = table.concat(outcomes)
  if #changed == 0 and #shipments == 0 then
    return {outcomes, 0}
  end
  local first = redis.call('EXISTS', keys[1]) == 0
  -- One HSET per hash (each command is a record in the AOF), and only the fields that change.
  local summaries, stock, gone, new_pairs = {}, {}, {}, 0
  for _, pair in ipairs(changed) do
    local p, loc = pair.p, pair.loc
    if p.summary_changed or p.legacy then  -- an older reader must not find a stale sum
      append(summaries, 'l:' .. loc, encode_pair(p))
    end
    local oh = str(p.base_qty + p.dsum)
    if served['oh:' .. loc] ~= oh then
      append(stock, 'oh:' .. loc, oh)
    end
    for prefix, value in pairs({['ib:'] = p.next_inbound, ['fu:'] = p.later_inbound}) do
      local field = prefix .. loc
      if value == '' then
        if served[field] then
          table.insert(gone, field)
        end
      elseif served[field] ~= value then
        append(stock, field, value)
      end
    end
    if p.new then
      new_pairs = new_pairs + 1
    end
  end
  append(stock, 'ts', args[2])
  in_chunks('HSET', keys[1], summaries)
  in_chunks('HSET', keys[2], stock)
  in_chunks('HDEL', keys[2], gone)
  for i = 1, #stock, 2 do
    served[stock[i]] = stock[i + 1]
  end
  for _, field in ipairs(gone) do
    served[field] = nil
  end
  local consumed, unmatched = use_holds(keys, shipments, served)
  if first then
    redis.call('HINCRBY', keys[5], 'skus', 1)
  end
  if new_pairs > 0 then
    redis.call('HINCRBY', keys[5], 'pairs', new_pairs)
  end
  record_statuses(keys[1], keys[5], sku, served)
  local after = {}
  for field, value in pairs(served) do
    append(after, field, value)
  end
  return {outcomes, 1, before, after, consumed, unmatched}
end

redis.register_function('__FUNCTION__', apply)
