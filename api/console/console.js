// The agent console: why a SKU can or cannot be bought, and what a reservation holds.
// Only the public API, with the agent's key: GET /v1/availability/{sku}/explain (every term per
// location and the rule behind it), GET /v1/availability/{sku}/movements (the ledger's journal,
// paged), GET /v1/reservations/{id} (needs the reserve scope).
// Query string: ?sku=...&channel=...&location=... or ?reservation=... looks up at once.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "atp-console-key";
let older = null; // the journal's next page: {sku, location, before}

function showError(text) {
  $("error").hidden = !text;
  $("error").textContent = text || "";
}

// GET a path of this API as JSON; a refusal becomes an Error whose message a person can act on.
async function get(path) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  const res = await fetch(path, { headers });
  if (!res.ok) {
    let text = `HTTP ${res.status}`;
    try {
      const p = await res.json();
      text = `${p.title || res.status}: ${p.detail || ""}`;
    } catch (_) {
      // not problem+json: the status says it
    }
    throw new Error(text);
  }
  return res.json();
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  return td;
}

function row(cells, cls) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c);
  if (cls) tr.className = cls;
  return tr;
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+.*$/, "") : null;
}

function showTerms(x) {
  $("sku-title").textContent = `${x.sku} on ${x.channel}`;
  $("summary").textContent =
    `${x.status.replace(/_/g, " ")}: ${x.available_to_fulfil} available to fulfil, ` +
    `${x.available_to_order} available to order (low stock at ${x.low_stock_threshold} or less)`;
  $("formula").textContent = x.formula;
  const rule = x.future_stock;
  const kit = x.kit && x.kit.components.map((c) => `${c.quantity} x ${c.sku}`).join(", ");
  $("future").textContent = kit
    ? `Kit of ${kit}: in kits, from its components; a kit is promised from stock on hand.`
    : rule
    ? `Future stock: inbound due within ${rule.horizon_days} days, at most ` +
      (rule.limit_units !== null ? `${rule.limit_units} units` : `${rule.limit_percent} %`) +
      (x.future.length
        ? `; counted: ${x.future.map((f) => `${f.quantity} on ${when(f.eta)}`).join(", ")}`
        : "; none due")
    : "This channel promises no future stock.";
  const body = $("terms").querySelector("tbody");
  body.replaceChildren();
  for (const l of x.locations) {
    const why = l.counts_for_channel ? "yes" : `no: ${l.excluded_because}`;
    const inbound = l.inbound.map((i) => `${i.qty} (${i.asn}) on ${when(i.eta)}`).join("; ");
    const cls = l.oversell_exposure > 0 ? "exposed" : l.counts_for_channel ? "" : "excluded";
    body.appendChild(
      row(
        [
          cell(`${l.location_id} (${l.type})` + limitedBy(l)),
          cell(why),
          cell(l.on_hand, "num"),
          cell(l.reserved, "num"),
          cell(`${l.safety_stock} (${l.safety_stock_rule})`),
          cell(l.atp, "num"),
          cell(l.oversell_exposure, "num"),
          cell(inbound || null),
          cell(when(l.last_count_at)),
          cell(when(l.last_movement_at)),
        ],
        cls,
      ),
    );
  }
}

// A kit's location: the component that makes the fewest kits there, and what it has.
function limitedBy(l) {
  if (!l.limiting_component) return "";
  const c = l.components.find((x) => x.sku === l.limiting_component);
  return `, limited by ${c.sku} (${c.atp} available, ${c.quantity} a kit)`;
}

function showJournal(page, append) {
  const body = $("journal").querySelector("tbody");
  if (!append) body.replaceChildren();
  for (const m of page.movements) {
    body.appendChild(
      row([
        cell(when(m.seen_at)),
        cell(when(m.occurred_at)),
        cell(m.location_id),
        cell(m.source),
        cell(m.kind),
        cell(m.quantity, "num"),
        cell(m.outcome.replace(/_/g, " ")),
        cell(m.on_hand_after, "num"),
        cell(m.event_id),
      ]),
    );
  }
  if (!append && page.movements.length === 0) {
    body.appendChild(row([cell("No movements kept for this SKU (or the journal is off).")]));
  }
  $("older").hidden = !page.next;
  older = page.next ? { ...older, before: page.next } : null;
}

function movementsPath(sku, location, before) {
  const q = new URLSearchParams({ limit: "25" });
  if (location) q.set("location_id", location);
  if (before) q.set("before", before);
  return `/v1/availability/${encodeURIComponent(sku)}/movements?${q}`;
}

async function lookupSku(sku, channel, location) {
  showError("");
  $("rid-view").hidden = true;
  try {
    const q = new URLSearchParams({ channel });
    const [terms, page] = await Promise.all([
      get(`/v1/availability/${encodeURIComponent(sku)}/explain?${q}`),
      get(movementsPath(sku, location, null)),
    ]);
    older = { sku, location };
    showTerms(terms);
    showJournal(page, false);
    $("sku-view").hidden = false;
  } catch (e) {
    $("sku-view").hidden = true;
    showError(e.message);
  }
}

async function loadOlder() {
  if (!older) return;
  try {
    showJournal(await get(movementsPath(older.sku, older.location, older.before)), true);
  } catch (e) {
    showError(e.message);
  }
}

async function lookupReservation(rid) {
  showError("");
  $("sku-view").hidden = true;
  try {
    const r = await get(`/v1/reservations/${encodeURIComponent(rid)}`);
    $("rid-title").textContent = `Reservation ${r.reservation_id}`;
    $("rid-state").textContent =
      `${r.state} on ${r.channel}; created ${when(r.created_at)}, updated ${when(r.updated_at)}` +
      (r.expires_at ? `, expires ${when(r.expires_at)}` : "") +
      (r.changes.length ? `; quantities changed by ${r.changes.join(", ")}` : "");
    const body = $("lines").querySelector("tbody");
    body.replaceChildren();
    for (const l of r.lines) {
      const where = l.allocations.map((a) => `${a.quantity} at ${a.location_id}`).join(", ");
      body.appendChild(
        row([
          cell(l.sku),
          cell(l.requested, "num"),
          cell(l.held, "num"),
          cell(l.fulfilled_quantity, "num"),
          cell(where || null),
        ]),
      );
    }
    const moved = $("transfers").querySelector("tbody");
    moved.replaceChildren();
    for (const t of r.transfers) {
      moved.appendChild(
        row([
          cell(t.transfer_id),
          cell(t.sku),
          cell(t.from_location_id),
          cell(t.to_location_id),
          cell(t.quantity, "num"),
        ]),
      );
    }
    $("rid-view").hidden = false;
  } catch (e) {
    $("rid-view").hidden = true;
    showError(e.message);
  }
}

function showKeyState() {
  $("key-state").textContent = sessionStorage.getItem(KEY) ? "key set for this tab" : "no key";
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("key").value.trim();
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
  $("key").value = "";
  showKeyState();
});
$("sku-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookupSku($("sku").value.trim(), $("channel").value.trim() || "online", $("location").value.trim());
});
$("rid-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookupReservation($("rid").value.trim());
});
$("older").addEventListener("click", loadOlder);

const params = new URLSearchParams(location.search);
showKeyState();
if (params.get("sku")) {
  $("sku").value = params.get("sku");
  $("channel").value = params.get("channel") || "online";
  $("location").value = params.get("location") || "";
  lookupSku($("sku").value, $("channel").value, $("location").value);
} else if (params.get("reservation")) {
  $("rid").value = params.get("reservation");
  lookupReservation($("rid").value);
}
