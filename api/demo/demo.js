// The demo product page: availability, the delivery promise and pickup stores, kept live.
// Only the public API: GET /v1/stream/availability (Server-Sent Events, read with fetch so an
// API key can go in a header; reconnects with Last-Event-ID), POST /v1/delivery-options.
// Query string: ?sku=...&postal_code=...&channel=... (defaults below).
"use strict";

const params = new URLSearchParams(location.search);
const page = {
  sku: params.get("sku") || "SKU-000001",
  zip: params.get("postal_code") || "10003",
  channel: params.get("channel") || "online",
};
const $ = (id) => document.getElementById(id);
const STATUS_TEXT = { in_stock: "In stock", low_stock: "Low stock", out_of_stock: "Out of stock" };

let lastEventId = null;
let retryMs = 1000;
let deadline = null; // when the shown promise's cutoff passes (client clock)
let optionsTimer = null;

function headers(extra) {
  const out = Object.assign({}, extra);
  const key = sessionStorage.getItem("atp-demo-key");
  if (key) out.Authorization = "Bearer " + key;
  return out;
}

function showError(text) {
  $("error").hidden = !text;
  $("error").textContent = text || "";
}

// A problem+json answer as a sentence a person can act on.
async function problemText(res) {
  try {
    const p = await res.json();
    return `${p.title || res.status}: ${p.detail || ""}`;
  } catch (_) {
    return `HTTP ${res.status}`;
  }
}

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn").textContent = text;
}

function item(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  return li;
}

// One `availability` event: the badge, the count and the stores near the ZIP code.
function showAvailability(a) {
  const badge = $("badge");
  badge.dataset.status = a.status;
  badge.textContent = a.status === "low_stock" ? `Only ${a.atp} left` : STATUS_TEXT[a.status] || a.status;
  $("atp").textContent = String(a.atp);
  const stores = (a.pickup || []).filter((s) => s.atp > 0);
  $("pickup").replaceChildren(
    ...(stores.length
      ? stores.map((s) => item(`${s.name} (${s.distance_km} km): ${s.atp} to pick up`))
      : [item("No store near this ZIP code has it to pick up.", "quiet")]),
  );
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  scheduleOptions(150); // the promise may change with the stock
}

function dateAt(iso, timeZone) {
  return new Date(iso).toLocaleDateString("en-US", { weekday: "long", month: "short", day: "numeric", timeZone });
}

function timeAt(iso, timeZone) {
  return new Date(iso).toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", timeZone, timeZoneName: "short" });
}

// The fastest delivery (not pickup) becomes "Get it by ... if you order within ...".
function showOptions(body) {
  const tz = body.destination.timezone;
  const options = body.options || [];
  const list = options.map((o) =>
    item(
      o.kind === "pickup"
        ? `${o.service}: ready by ${timeAt(o.promised_by, tz)} ${dateAt(o.promised_by, tz)}`
        : `${o.service}: by ${dateAt(o.promised_by, tz)}${o.split ? " (in parts)" : ""}`,
    ),
  );
  for (const n of body.not_offered || []) list.push(item(`${n.service}: ${n.reason}`, "quiet"));
  $("options").replaceChildren(...list);
  const shipped = options.filter((o) => o.kind !== "pickup");
  const best = shipped.sort((x, y) => Date.parse(x.promised_by) - Date.parse(y.promised_by))[0];
  const promise = $("promise");
  if (!best) {
    promise.dataset.service = "";
    promise.textContent = `No delivery to ${page.zip} right now.`;
    deadline = null;
    return;
  }
  promise.dataset.service = best.service;
  const countdown = document.createElement("span");
  countdown.id = "countdown";
  promise.replaceChildren(
    `Get it by ${dateAt(best.promised_by, tz)} if you order within `,
    countdown,
  );
  deadline = Date.now() + best.order_within_seconds * 1000;
  tick();
}

function tick() {
  const el = $("countdown");
  if (!el || deadline === null) return;
  const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
  const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
  el.textContent = h ? `${h} h ${m} min` : `${m} min ${String(s).padStart(2, "0")} s`;
  if (left === 0) {
    deadline = null;
    scheduleOptions(1000); // the cutoff passed: the next promise
  }
}

function scheduleOptions(ms) {
  clearTimeout(optionsTimer);
  optionsTimer = setTimeout(loadOptions, ms);
}

async function loadOptions() {
  const body = {
    lines: [{ sku: page.sku, quantity: 1 }],
    destination: { postal_code: page.zip },
    channel: page.channel,
  };
  try {
    const res = await fetch("/v1/delivery-options", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      $("promise").textContent = await problemText(res);
      deadline = null;
      return;
    }
    showOptions(await res.json());
  } catch (err) {
    scheduleOptions(5000);
  }
}

// Server-Sent Events over fetch: blocks split at a blank line, fields at the first ": ".
function handleBlock(block) {
  const fields = {};
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a heartbeat comment
    const at = line.indexOf(":");
    const name = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    fields[name] = fields[name] === undefined ? value : fields[name] + "\n" + value;
  }
  if (fields.id !== undefined) lastEventId = fields.id;
  if (fields.data !== undefined && (fields.event || "message") === "availability") {
    const a = JSON.parse(fields.data);
    if (a.sku === page.sku) showAvailability(a);
  }
}

async function listen() {
  const q = new URLSearchParams({ skus: page.sku, channel: page.channel, postal_code: page.zip });
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  try {
    const res = await fetch("/v1/stream/availability?" + q, { headers: headers(extra), cache: "no-store" });
    if (!res.ok) {
      showError(await problemText(res));
      if (res.status !== 429 && res.status !== 503 && res.status < 500) {
        setConn("stopped", "not live: fix the request and reload");
        return; // the same request would be refused again
      }
    } else {
      showError("");
      setConn("live", "live");
      retryMs = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    }
  } catch (err) {
    // the connection dropped (the API restarted, the network went): reconnect below
  }
  setConn("reconnecting", `reconnecting in ${Math.round(retryMs / 1000)} s…`);
  setTimeout(listen, retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
}

function start() {
  $("title").textContent = page.sku;
  $("sku-input").value = page.sku;
  $("zip-input").value = page.zip;
  $("zip-shown").textContent = page.zip;
  $("zip-pickup").textContent = page.zip;
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("atp-demo-key", $("key-input").value.trim());
    location.reload();
  });
  setInterval(tick, 1000);
  listen();
}

start();
