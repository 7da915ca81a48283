// The batos UI: one page, served by the kernel beside /ws, speaking batos.v1 in JSON.
// Everything shown comes from the kernel and stays live through its event stream: a
// committed transaction refreshes the morphs it touches, cycle events drive the cycle
// panel. Text from the image (slot values, model output) only ever enters the page as
// text nodes; a display_yourself fragment is rendered in a sandboxed iframe.
"use strict";

// ---------------------------------------------------------------- small helpers

/** Makes an element: el("div", {class: "x", onclick: f}, child, "text"…). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const wallNow = () => performance.timeOrigin + performance.now();
const oidRef = (oid) => "#" + oid;

function notice(text, bad) {
  const n = $("notice");
  n.textContent = text;
  n.className = bad ? "error" : "";
}

/** Makes a request whose answer is a line for the notice bar, then runs `after`; a
 * failure goes to the notice bar too. */
async function announce(bridge, op, fields, after) {
  try {
    notice((await bridge.request(op, fields)).text);
    if (after) await after();
  } catch (e) {
    notice(e.message, true);
  }
}

/** A value in batos JSON, shortened for a table cell. */
function shortJson(value, max = 160) {
  const text = JSON.stringify(value);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

const isObjectRef = (v) => v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && "$object" in v;
const isMethod = (v) => v && typeof v === "object" && !Array.isArray(v) && "$method" in v;

/** How many arguments a selector takes: one per colon (`at:put:` takes two). */
const arity = (selector) => (selector.match(/:/g) || []).length;

/** Arguments typed as comma-separated JSON values (`5`, `"Ada", 3`); throws a clear error. */
function parseArgs(text) {
  const trimmed = text.trim();
  if (!trimmed) return [];
  try {
    return JSON.parse("[" + trimmed + "]");
  } catch (e) {
    throw new Error(`the arguments are not JSON values separated by commas (${e.message}); e.g. 5, "text", [1, 2]`);
  }
}

/**
 * A virtualised list: only the rows in view exist, so 10,000 entries cost what 40 do.
 * `render(item)` makes one row's content.
 */
class VirtualList {
  constructor(container, render, rowHeight = 22) {
    this.container = container;
    this.render = render;
    this.rowHeight = rowHeight;
    this.items = [];
    this.spacer = el("div", { class: "spacer" });
    container.append(this.spacer);
    container.addEventListener("scroll", () => this.draw());
  }
  set(items) {
    this.items = items;
    this.spacer.style.height = items.length * this.rowHeight + "px";
    this.draw();
  }
  draw() {
    const top = this.container.scrollTop;
    const height = this.container.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - 5);
    const last = Math.min(this.items.length, Math.ceil((top + height) / this.rowHeight) + 5);
    for (const row of [...this.container.querySelectorAll(".row")]) row.remove();
    for (let i = first; i < last; i++) {
      const row = el("div", { class: "row" }, this.render(this.items[i], i));
      row.style.top = i * this.rowHeight + "px";
      this.container.append(row);
    }
  }
}

// ---------------------------------------------------------------- the bridge

/** The connection to the kernel: requests answered by id, events to listeners, and
 * reconnection that resumes the event stream where it left off. */
class Bridge {
  constructor(token) {
    this.token = token;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.onLive = [];
    this.seq = null;
    this.live = false;
    this.backoff = 250;
    this.waiting = [];
  }

  connect() {
    const ws = new WebSocket(`ws://${location.host}/ws`, ["batos.v1"]);
    this.ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", protocol: "batos.v1", client: "batos-ui", token: this.token };
      // The first connection starts at the head; a reconnection catches up from the last
      // event handled.
      if (this.seq !== null) hello.resume_from = this.seq;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (m) => this.receive(JSON.parse(m.data));
    ws.onclose = (e) => {
      const wasLive = this.live;
      this.live = false;
      for (const [, p] of this.pending) p.reject(new Error("the connection to the kernel closed before it answered; it may or may not have happened — check before retrying"));
      this.pending.clear();
      if (e.code === 4001) {
        $("login").hidden = false;
        setConnection("bad token", "reconnecting");
        return;
      }
      setConnection("reconnecting…", "reconnecting");
      if (wasLive) this.backoff = 250;
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 4000);
    };
  }

  receive(message) {
    switch (message.type) {
      case "welcome":
        if (this.seq === null) this.seq = message.head_seq;
        this.session = message.session;
        this.live = true;
        this.backoff = 250;
        setConnection("live", "live");
        for (const f of this.onLive) f();
        for (const w of this.waiting.splice(0)) w();
        break;
      case "reply": {
        const p = this.pending.get(message.re);
        if (!p) break;
        this.pending.delete(message.re);
        if (message.error) p.reject(Object.assign(new Error(message.error.message), { body: message.error }));
        else p.resolve(message.ok);
        break;
      }
      case "event":
        if (message.seq > (this.seq || 0)) this.seq = message.seq;
        for (const f of this.listeners) f(message);
        break;
      case "error": {
        const p = message.re && this.pending.get(message.re);
        if (p) {
          this.pending.delete(message.re);
          p.reject(new Error(message.error.message));
        } else if (message.error.kind !== "resume_expired") {
          notice(message.error.message, true);
        }
        break;
      }
      default:
        break;
    }
  }

  /** Sends a request; resolves with its output (`{text, json}`), rejects with its error. */
  async request(op, fields = {}, id = null) {
    if (!this.live) await new Promise((resolve) => this.waiting.push(resolve));
    const rid = id || "ui-" + this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { resolve, reject });
      this.ws.send(JSON.stringify({ type: "request", id: rid, request: { op, ...fields } }));
    });
  }

  /** A fresh request id, for requests whose events the caller follows. */
  newId() {
    return "ui-" + this.nextId++;
  }

  cancel(target) {
    if (this.live) this.ws.send(JSON.stringify({ type: "cancel", id: this.newId(), target }));
  }
}

function setConnection(text, state) {
  const c = $("connection");
  c.textContent = text;
  c.dataset.state = state;
}

// ---------------------------------------------------------------- objects, read once

/**
 * What each object looked like when last read (`inspect`), shared by every morph: a
 * morph re-reads only the objects a transaction changed, so 50 morphs sharing a parent
 * cost one read when that parent changes, not 50. An entry is dropped when an event says
 * its object changed (before any morph refreshes), and all of them on reconnection.
 */
class ObjectReads {
  constructor(bridge) {
    this.bridge = bridge;
    this.reads = new Map();
  }
  get(oid) {
    let read = this.reads.get(oid);
    if (!read) {
      read = this.bridge.request("inspect", { object: oidRef(oid) }).then((o) => o.json);
      this.reads.set(oid, read);
      // A failed read is not kept: the next morph asks again.
      read.catch(() => this.reads.get(oid) === read && this.reads.delete(oid));
    }
    return read;
  }
  forget(oids) {
    for (const oid of oids) this.reads.delete(oid);
  }
  clear() {
    this.reads.clear();
  }
}

// ---------------------------------------------------------------- the world

/** The open morphs, their placement (kept in the image) and the parent arrows. */
class World {
  constructor(bridge) {
    this.bridge = bridge;
    this.morphs = new Map();
    this.reads = new ObjectReads(bridge);
    this.names = new Map();
    this.node = $("world");
    this.arrows = $("arrows");
  }

  async start() {
    const [roots, layout] = await Promise.all([this.bridge.request("roots"), this.bridge.request("layout")]);
    this.names = new Map(Object.entries(roots.json).map(([name, oid]) => [Number(String(oid).replace("#", "")), name]));
    const placed = layout.json;
    // First visit: genesis open on the left, the other roots folded in a column beside it.
    let slot = 0;
    const place = (name) => {
      if (name === "genesis") return { x: 20, y: 20 };
      return { x: 380, y: 20 + 40 * slot++ };
    };
    // Named roots appear as morphs unless the person closed them; every other morph
    // the person opened comes back where it was left.
    for (const [name, ref] of Object.entries(roots.json)) {
      const oid = Number(String(ref).replace("#", ""));
      const p = placed[oidRef(oid)];
      if (p && !p.open) continue;
      const where = p || place(name);
      this.open(oid, where.x, where.y, { collapsed: !p && name !== "genesis", persist: false });
    }
    for (const [ref, p] of Object.entries(placed)) {
      const oid = Number(ref.slice(1));
      if (p.open && !this.morphs.has(oid)) this.open(oid, p.x, p.y, { persist: false });
    }
  }

  /** Opens (or brings forward) the morph of `oid`. */
  open(oid, x, y, { collapsed = false, persist = true } = {}) {
    let morph = this.morphs.get(oid);
    if (morph) {
      morph.node.classList.remove("collapsed");
      morph.node.scrollIntoView({ block: "nearest", inline: "nearest" });
      morph.flash();
      return morph;
    }
    if (x === undefined) {
      const n = this.morphs.size;
      x = 40 + (n % 5) * 40 + this.node.scrollLeft;
      y = 60 + (n % 7) * 30 + this.node.scrollTop;
    }
    morph = new Morph(this, oid, x, y, collapsed);
    this.morphs.set(oid, morph);
    this.node.append(morph.node);
    morph.refresh();
    if (persist) this.place(morph);
    return morph;
  }

  close(morph) {
    morph.node.remove();
    this.morphs.delete(morph.oid);
    this.bridge.request("place", { object: oidRef(morph.oid), x: morph.x, y: morph.y, open: false }).catch((e) => notice(e.message, true));
    this.drawArrows();
  }

  place(morph) {
    const [x, y] = [morph.x, morph.y];
    this.bridge.request("place", { object: oidRef(morph.oid), x, y, open: true })
      .then(() => (morph.node.dataset.placed = `${x},${y}`))
      .catch((e) => notice(e.message, true));
  }

  nameOf(oid) {
    return this.names.get(oid);
  }

  /** A transaction committed: refresh every morph showing an object it changed, itself
   * or through a parent. */
  changed(changes) {
    const touched = new Set(Object.keys(changes).map((k) => Number(k.replace("#", ""))));
    this.reads.forget(touched);
    for (const morph of this.morphs.values()) {
      if (morph.shows.some((oid) => touched.has(oid))) morph.refresh();
    }
  }

  refreshAll() {
    this.reads.clear();
    for (const morph of this.morphs.values()) morph.refresh();
  }

  /** Redraws the parent arrows once per frame, however many morphs changed in it:
   * drawing reads every morph's height, which forces a layout. */
  drawArrows() {
    if (this.arrowsPending) return;
    this.arrowsPending = true;
    requestAnimationFrame(() => {
      this.arrowsPending = false;
      this.drawArrowsNow();
    });
  }

  drawArrowsNow() {
    const svg = this.arrows;
    while (svg.firstChild) svg.firstChild.remove();
    const ns = "http://www.w3.org/2000/svg";
    const defs = document.createElementNS(ns, "defs");
    const marker = document.createElementNS(ns, "marker");
    for (const [k, v] of Object.entries({ id: "head", markerWidth: 8, markerHeight: 8, refX: 7, refY: 4, orient: "auto" })) marker.setAttribute(k, v);
    const tip = document.createElementNS(ns, "path");
    tip.setAttribute("d", "M0,0 L8,4 L0,8 z");
    tip.setAttribute("fill", "#2f6f9f");
    marker.append(tip);
    defs.append(marker);
    svg.append(defs);
    for (const morph of this.morphs.values()) {
      for (const parent of morph.parents) {
        const target = this.morphs.get(parent);
        if (!target) continue;
        const line = document.createElementNS(ns, "line");
        const [x1, y1] = [morph.x + 165, morph.y];
        const [x2, y2] = [target.x + 165, target.y + target.node.offsetHeight];
        for (const [k, v] of Object.entries({ x1, y1, x2, y2, "marker-end": "url(#head)" })) line.setAttribute(k, v);
        line.dataset.from = morph.oid;
        line.dataset.to = parent;
        svg.append(line);
      }
    }
  }
}

// ---------------------------------------------------------------- a morph

/** One object, live: its slots, inherited slots by parent, methods, a send box, where a
 * selector resolves, its history with undo, and its own display. */
class Morph {
  constructor(world, oid, x, y, collapsed) {
    this.world = world;
    this.bridge = world.bridge;
    this.oid = oid;
    this.x = x;
    this.y = y;
    this.parents = [];
    this.shows = [oid];
    this.loading = null;
    this.again = false;
    this.node = el("div", { class: "morph" + (collapsed ? " collapsed" : ""), dataset: { oid } });
    this.node.style.left = x + "px";
    this.node.style.top = y + "px";
    this.title = el("span", { class: "name", text: oidRef(oid) });
    const halo = el("span", { class: "halo" },
      el("button", { type: "button", title: "clone this object", class: "clone", onclick: () => this.cloneIt() }, "clone"),
      el("button", { type: "button", title: "ask the object to display itself", class: "display", onclick: () => this.displayYourself() }, "display"),
      el("button", { type: "button", title: "fold", class: "fold", onclick: () => this.node.classList.toggle("collapsed") }, "–"),
      el("button", { type: "button", title: "close", class: "close", onclick: () => this.world.close(this) }, "×"));
    this.header = el("div", { class: "morph-title" }, this.title, halo);
    this.body = el("div", { class: "morph-body" });
    this.output = el("div", { class: "result" });
    // What a render replaces (the object's slots), and what it keeps: the send box, the
    // last answer, the resolution and the history keep whatever the person typed or
    // opened while the object changes under them.
    this.slots = el("div", { class: "slot-tables" });
    this.problem = el("div", { class: "error" });
    this.display = el("div", { class: "display" });
    this.body.append(this.problem, this.slots, this.sendBox(), this.output, this.resolveBox(), this.historyBox(), this.display);
    this.node.append(this.header, this.body);
    this.dragging();
  }

  flash() {
    this.node.animate([{ outlineColor: "#2f6f9f", outlineStyle: "solid", outlineWidth: "2px" }, { outlineWidth: "0px" }], 600);
  }

  /** Re-reads the object and its ancestors; a change arriving meanwhile reads again. */
  refresh() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load()
      .catch((e) => this.showError(e))
      .finally(() => {
        this.loading = null;
        if (this.again) {
          this.again = false;
          this.refresh();
        }
      });
    return this.loading;
  }

  async load() {
    const reads = this.world.reads;
    const me = await reads.get(this.oid);
    // The ancestors in the order a lookup searches them: depth first, parents in
    // order, each once.
    const ancestors = [];
    const seen = new Set([this.oid]);
    const stack = [...me.parents].reverse();
    while (stack.length) {
      const p = stack.pop();
      if (seen.has(p)) continue;
      seen.add(p);
      let info;
      try {
        info = await reads.get(p);
      } catch {
        continue; // a parent removed by undo or pack answers nothing
      }
      ancestors.push(info);
      stack.push(...[...info.parents].reverse());
    }
    this.parents = me.parents;
    this.shows = [this.oid, ...ancestors.map((a) => a.oid)];
    this.render(me, ancestors);
  }

  showError(e) {
    this.problem.textContent = e.message;
  }

  render(me, ancestors) {
    // A slot being edited is not swept away by a change elsewhere: the render waits for
    // the edit to end.
    if (this.slots.querySelector("input.edit")) {
      this.deferred = [me, ancestors];
      return;
    }
    this.deferred = null;
    this.problem.textContent = "";
    const name = me.name || this.world.nameOf(this.oid);
    this.title.textContent = name ? `${name} ${oidRef(this.oid)}` : oidRef(this.oid);
    const own = el("table", { class: "slots own" });
    const taken = new Set();
    for (const [slot, value] of Object.entries(me.slots)) {
      own.append(this.slotRow(slot, value, { editable: true }));
      taken.add(slot);
    }
    own.append(this.newSlotRow());
    const inherited = [];
    for (const a of ancestors) {
      const rows = el("table", { class: "slots inherited", dataset: { from: a.oid } });
      for (const [slot, value] of Object.entries(a.slots)) {
        const shadowed = taken.has(slot);
        rows.append(this.slotRow(slot, value, { shadowed, from: a.oid }));
        taken.add(slot);
      }
      const label = a.name ? `${a.name} ${oidRef(a.oid)}` : oidRef(a.oid);
      inherited.push(el("h4", {}, "from ", el("button", { type: "button", class: "ref", onclick: () => this.world.open(a.oid) }, label)), rows);
    }
    const parents = me.parents.length
      ? me.parents.flatMap((p, i) => [i ? ", " : "", el("button", { type: "button", class: "ref", onclick: () => this.world.open(p) }, this.label(p))])
      : ["none"];
    this.slots.replaceChildren(
      el("div", { class: "muted parents" }, "parents: ", ...parents),
      el("h4", {}, "slots"), own,
      ...inherited,
    );
    this.node.dataset.renderedWall = String(wallNow());
    this.reloadHistory();
    this.world.drawArrows();
  }

  label(oid) {
    const name = this.world.nameOf(oid);
    return name ? `${name} ${oidRef(oid)}` : oidRef(oid);
  }

  valueNode(value) {
    if (isObjectRef(value)) {
      const target = value.$object;
      return el("button", { type: "button", class: "ref", onclick: () => this.world.open(target) }, this.label(target));
    }
    if (isMethod(value)) {
      const m = value.$method;
      const kind = m.native ? `native ${m.native}` : `component${m.grants && m.grants.length ? " (" + m.grants.join(", ") + ")" : ""}`;
      return el("span", {}, el("span", { class: "badge" }, kind), m.unconfirmed ? el("span", { class: "badge", title: m.unconfirmed }, "unconfirmed") : "");
    }
    return shortJson(value);
  }

  slotRow(slot, value, { editable = false, shadowed = false, from = null } = {}) {
    const method = isMethod(value);
    const nameCell = el("td", { class: "slot-name", text: slot });
    const valueCell = el("td", { class: "value" }, this.valueNode(value));
    const row = el("tr", { class: "slot-row" + (method ? " method" : "") + (shadowed ? " shadowed" : ""), dataset: { slot, from: from ?? "" } }, nameCell, valueCell);
    if (shadowed) row.title = "shadowed: a slot nearer the receiver answers this name";
    if (method && !shadowed) nameCell.addEventListener("click", () => this.sendForm(slot));
    if (editable && !method) valueCell.addEventListener("click", () => this.editSlot(row, slot, value));
    return row;
  }

  /** Edits a slot's value in place: JSON, checked before anything is sent. */
  editSlot(row, slot, value) {
    const cell = row.querySelector(".value");
    if (cell.querySelector("input")) return;
    const input = el("input", { type: "text", class: "edit", value: JSON.stringify(value) });
    const problem = el("div", { class: "error" });
    const commit = async () => {
      let parsed;
      try {
        parsed = JSON.parse(input.value);
      } catch (e) {
        problem.textContent = `not JSON: ${e.message}. Text needs quotes ("like this"); an object is {"$object": 3}.`;
        return;
      }
      try {
        await this.bridge.request("set", { object: oidRef(this.oid), slot, value: parsed });
        done(parsed);
      } catch (e) {
        problem.textContent = e.message;
      }
    };
    const done = (shown) => {
      cell.replaceChildren(this.valueNode(shown));
      const deferred = this.deferred;
      if (deferred) this.render(...deferred);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") commit();
      if (e.key === "Escape") done(value);
    });
    cell.replaceChildren(input, problem);
    input.focus();
    input.select();
  }

  newSlotRow() {
    const name = el("input", { type: "text", placeholder: "new slot", class: "new-slot-name" });
    const value = el("input", { type: "text", placeholder: "JSON value", class: "new-slot-value" });
    const problem = el("div", { class: "error" });
    const add = async () => {
      if (!name.value.trim()) return (problem.textContent = "give the slot a name");
      let parsed;
      try {
        parsed = JSON.parse(value.value);
      } catch (e) {
        return (problem.textContent = `not JSON: ${e.message}`);
      }
      try {
        await this.bridge.request("set", { object: oidRef(this.oid), slot: name.value.trim(), value: parsed });
      } catch (e) {
        problem.textContent = e.message;
      }
    };
    value.addEventListener("keydown", (e) => e.key === "Enter" && add());
    return el("tr", {}, el("td", {}, name), el("td", {}, value, problem));
  }

  /** Clicking an understood message: send it, asking for its arguments first. */
  sendForm(selector) {
    const n = arity(selector);
    if (n === 0) return this.send(selector, []);
    const inputs = Array.from({ length: n }, (_, i) => el("input", { type: "text", placeholder: `argument ${i + 1} (JSON)`, class: "arg" }));
    const problem = el("div", { class: "error" });
    const form = el("form", { class: "row-form method-form" }, el("code", {}, selector), ...inputs, el("button", { type: "submit" }, "send"), problem);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      try {
        const args = inputs.map((i, k) => {
          try {
            return JSON.parse(i.value);
          } catch (err) {
            throw new Error(`argument ${k + 1} is not JSON (${err.message})`);
          }
        });
        form.remove();
        this.send(selector, args);
      } catch (err) {
        problem.textContent = err.message;
      }
    });
    this.output.replaceChildren(form);
    inputs[0].focus();
  }

  sendBox() {
    const selector = el("input", { type: "text", placeholder: "selector, e.g. factorial:", class: "selector" });
    const args = el("input", { type: "text", placeholder: "arguments: 5, \"text\"", class: "args" });
    const brief = el("input", { type: "text", placeholder: "if it is new: what it should do (optional)", class: "brief" });
    const examples = el("textarea", { placeholder: "examples, one per line: 5 => 120", class: "examples" });
    const stateful = el("input", { type: "checkbox", class: "stateful" });
    const problem = el("div", { class: "error" });
    const form = el("form", { class: "send-box" },
      selector, args, el("button", { type: "submit" }, "send"),
      el("details", {}, el("summary", { class: "muted" }, "brief and examples for a new method"), brief, examples, el("label", {}, stateful, " keeps state in the object")),
      problem);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      problem.textContent = "";
      const sel = selector.value.trim();
      if (!sel) return (problem.textContent = "type a selector: a message name such as size or factorial:");
      let parsed;
      try {
        parsed = parseArgs(args.value);
      } catch (err) {
        return (problem.textContent = err.message);
      }
      if (parsed.length !== arity(sel)) {
        return (problem.textContent = `\`${sel}\` takes ${arity(sel)} argument(s) (one per colon); ${parsed.length} given`);
      }
      const lines = examples.value.split("\n").map((l) => l.trim()).filter(Boolean);
      const bad = lines.find((l) => !l.includes("=>"));
      if (bad) return (problem.textContent = `an example reads ARGS => RESULT, e.g. 5 => 120; not: ${bad}`);
      this.send(sel, parsed, { brief: brief.value.trim() || null, examples: lines, stateful: stateful.checked });
    });
    return form;
  }

  /** Sends a message to this object. One nothing understands opens the cycle panel. */
  async send(selector, args, extra = {}) {
    const id = this.bridge.newId();
    cyclePanel.expect(id, this);
    this.output.replaceChildren(el("span", { class: "muted" }, `${selector} …`));
    try {
      const out = await this.bridge.request("send", { object: oidRef(this.oid), selector, args, ...extra }, id);
      const result = out.json.result;
      if (isObjectRef(result)) {
        this.output.replaceChildren(`${selector} → `, this.valueNode(result));
        this.world.open(result.$object);
      } else {
        this.output.replaceChildren(el("span", { class: "answer", text: `${selector} → ${JSON.stringify(result)}` }));
      }
      return result;
    } catch (e) {
      this.output.replaceChildren(el("span", { class: "error", text: `${selector}: ${e.message}` }));
      return undefined;
    } finally {
      cyclePanel.forget(id);
    }
  }

  async cloneIt() {
    try {
      const out = await this.bridge.request("clone", { object: oidRef(this.oid) });
      this.world.open(out.json.oid, this.x + 40, this.y + 40);
    } catch (e) {
      notice(e.message, true);
    }
  }

  /** `display_yourself`: the object writes its own view (synthesised if it cannot yet);
   * the fragment is shown in a sandbox without scripts or this page's origin. */
  async displayYourself() {
    const html = await this.send("display_yourself", [], {
      brief: "Answer an HTML fragment (text, no <html> or <body>) that describes this object: a heading and a list of its slots and their values.",
      stateful: true,
    });
    if (typeof html !== "string") return;
    const frame = el("iframe", { class: "display-frame", sandbox: "", referrerpolicy: "no-referrer", title: "the object's own display" });
    frame.srcdoc = html;
    this.display.replaceChildren(frame);
  }

  resolveBox() {
    const input = el("input", { type: "text", placeholder: "where does … resolve?", class: "resolve-selector" });
    const answer = el("div", { class: "resolution" });
    const form = el("form", { class: "row-form" }, input, el("button", { type: "submit" }, "find"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const out = (await this.bridge.request("resolve", { object: oidRef(this.oid), selector: input.value.trim() })).json;
        answer.replaceChildren(...this.describeResolution(out));
      } catch (err) {
        answer.replaceChildren(el("div", { class: "error", text: err.message }));
      }
    });
    return el("div", {}, form, answer);
  }

  describeResolution(out) {
    const path = out.visited.map((o) => this.label(o)).join(" → ");
    if (out.holder === null) return [el("div", {}, `nothing answers \`${out.selector}\` (searched ${path})`)];
    const f = out.found;
    const parts = [el("div", {}, `\`${out.selector}\` resolves on `, el("button", { type: "button", class: "ref", onclick: () => this.world.open(out.holder) }, this.label(out.holder)), ` (searched ${path})`)];
    if (f.kind === "data") parts.push(el("div", {}, "data: ", shortJson(f.value, 400)));
    if (f.kind === "native") parts.push(el("div", {}, "native primitive ", el("code", {}, f.primitive)));
    if (f.kind === "component") {
      parts.push(el("div", {}, `component ${f.component.slice(0, 16)}… (${f.size} bytes), grants: ${f.grants.length ? f.grants.join(", ") : "none"}`));
      parts.push(el("div", { class: f.audit.passed ? "" : "error" }, f.audit.passed ? "audit: passes" : `audit: refused — ${f.audit.reason}`));
      if (f.origin === "synthesised") {
        parts.push(el("div", {}, "made by cycle ", el("button", { type: "button", class: "ref", onclick: () => cyclePanel.showPast(f.cycle) }, f.cycle), f.model ? ` (${f.model})` : ""));
      }
      if (f.origin === "plugin") parts.push(el("div", {}, `plugin ${f.plugin}: ${f.description || ""}`));
      if (f.unconfirmed) parts.push(el("div", { class: "muted" }, `unconfirmed: ${f.unconfirmed}`));
      if (f.source) parts.push(el("pre", { class: "source", text: f.source }));
    }
    return parts;
  }

  historyBox() {
    const list = el("div", { class: "history-list" });
    const details = el("details", { class: "history" }, el("summary", { class: "muted" }, "history"), list);
    // Open, it follows the object: every render reads it again.
    this.reloadHistory = async () => {
      if (!details.open) return;
      try {
        const all = (await this.bridge.request("history", { limit: 2000 })).json;
        const mine = all.filter((h) => h.changes.some((c) => c.endsWith(`#${this.oid}`) || c.includes(`#${this.oid}.`)));
        list.replaceChildren(...(mine.length ? mine.map((h) => el("div", { class: "history-entry" },
          el("code", {}, String(h.tx)), " ", h.description, " ",
          el("button", { type: "button", class: "undo", onclick: () => announce(this.bridge, "undo", { tx: h.tx }) }, "undo"))) : [el("div", { class: "muted" }, "no transactions touched it recently")]));
      } catch (e) {
        list.replaceChildren(el("div", { class: "error", text: e.message }));
      }
    };
    details.addEventListener("toggle", this.reloadHistory);
    return details;
  }


  /** Dragging by the title bar (Pointer Events); dropping onto another morph's slot
   * stores a reference to this object there instead of moving it. */
  dragging() {
    let start = null;
    this.header.addEventListener("pointerdown", (e) => {
      if (e.target.closest("button")) return;
      start = { px: e.clientX, py: e.clientY, x: this.x, y: this.y };
      this.header.setPointerCapture(e.pointerId);
      this.node.classList.add("dragging");
    });
    this.header.addEventListener("pointermove", (e) => {
      if (!start) return;
      this.x = Math.max(0, start.x + e.clientX - start.px);
      this.y = Math.max(0, start.y + e.clientY - start.py);
      this.node.style.left = this.x + "px";
      this.node.style.top = this.y + "px";
      this.world.drawArrows();
    });
    const end = async (e) => {
      if (!start) return;
      const from = start;
      start = null;
      this.node.classList.remove("dragging");
      const target = this.slotUnder(e.clientX, e.clientY);
      if (target) {
        // A drop on a slot stores a reference; the morph goes back where it was.
        this.x = from.x;
        this.y = from.y;
        this.node.style.left = this.x + "px";
        this.node.style.top = this.y + "px";
        this.world.drawArrows();
        try {
          await this.bridge.request("set", { object: oidRef(target.oid), slot: target.slot, value: { $object: this.oid } });
        } catch (err) {
          notice(err.message, true);
        }
        return;
      }
      if (from.x !== this.x || from.y !== this.y) this.world.place(this);
    };
    this.header.addEventListener("pointerup", end);
    this.header.addEventListener("pointercancel", end);
  }

  slotUnder(x, y) {
    this.node.style.pointerEvents = "none";
    const under = document.elementFromPoint(x, y);
    this.node.style.pointerEvents = "";
    const row = under && under.closest(".morph .slots.own .slot-row");
    if (!row) return null;
    const morph = row.closest(".morph");
    const oid = Number(morph.dataset.oid);
    if (oid === this.oid) return null;
    return { oid, slot: row.dataset.slot };
  }
}

// ---------------------------------------------------------------- the cycle panel

/** A synthesis cycle, watched as it happens: its states in order, the mind's text as
 * it is written, each attempt's code, diagnostics and results, the verdict. */
class CyclePanel {
  constructor(bridge) {
    this.bridge = bridge;
    this.expecting = new Map();
    this.cycle = null;
    this.request = null;
    $("cycle-close").addEventListener("click", () => ($("cycle-panel").hidden = true));
    $("cycle-cancel").addEventListener("click", () => this.request && this.bridge.cancel(this.request));
  }

  /** A send with this request id is in flight: its cycle, if it starts one, is shown. */
  expect(id, morph) {
    this.expecting.set(id, morph);
  }

  forget(id) {
    this.expecting.delete(id);
  }

  begin(cycle, title, request) {
    this.cycle = cycle;
    this.request = request;
    this.streamKey = null;
    $("cycle-panel").hidden = false;
    $("cycle-title").textContent = title;
    $("cycle-timeline").replaceChildren();
    $("cycle-attempts").replaceChildren();
    $("cycle-verdict").replaceChildren();
    $("cycle-stream").hidden = true;
    $("cycle-stream-text").textContent = "";
    $("cycle-cancel").hidden = !request;
  }

  event(message) {
    const e = message.event;
    const cause = message.cause;
    if (e.phase === "started" || e.phase === "joined") {
      if (cause && cause.session === this.bridge.session && this.expecting.has(cause.id)) this.begin(e.cycle, `cycle ${e.cycle}: ${e.detail || "joined"}`, cause.id);
      return;
    }
    if (e.cycle !== this.cycle) return;
    if (e.phase === "state") {
      this.addState(e.state, e.detail);
      if (e.state === "COMPLETE" || e.state === "FAILED") {
        $("cycle-cancel").hidden = true;
        $("cycle-verdict").replaceChildren(el("div", { class: e.state === "COMPLETE" ? "" : "error", text: e.line }));
        this.loadAttempts();
      }
    } else if (e.phase === "text") {
      const key = `${e.round}.${e.candidate}`;
      if (key !== this.streamKey) {
        this.streamKey = key;
        $("cycle-stream-title").textContent = `the mind writes round ${e.round} candidate ${e.candidate}`;
        $("cycle-stream-text").textContent = "";
      }
      $("cycle-stream").hidden = false;
      $("cycle-stream-text").append(e.detail);
    } else if (e.phase === "attempt") {
      this.loadAttempts();
    }
  }

  addState(state, detail) {
    $("cycle-timeline").append(el("li", { class: state, dataset: { state } }, el("span", { class: "state" }, state), " ", detail || ""));
  }

  async loadAttempts() {
    const cycle = this.cycle;
    try {
      const out = (await this.bridge.request("cycle", { id: cycle })).json;
      if (cycle !== this.cycle) return;
      this.renderAttempts(out.attempts || []);
    } catch (e) {
      $("cycle-attempts").replaceChildren(el("div", { class: "error", text: e.message }));
    }
  }

  renderAttempts(attempts) {
    $("cycle-attempts").replaceChildren(...attempts.map((a) => {
      const passed = a.outcome === "passed";
      return el("div", { class: "attempt" + (passed ? " passed" : ""), dataset: { outcome: a.outcome } },
        el("h5", {}, `round ${a.round} candidate ${a.candidate}: ${a.outcome}`),
        el("pre", { class: "code", text: a.code || "" }),
        a.detail ? el("pre", { class: "detail", text: a.detail }) : "");
    }));
  }

  /** A past cycle, from what it recorded. */
  async showPast(id) {
    try {
      const out = (await this.bridge.request("cycle", { id })).json;
      this.begin(id, `cycle ${id}: ${out.selector} (${out.state})`, null);
      // A past cycle keeps its outcome, not each transition: the journal has those.
      for (const key of ["brief", "signature", "examples"]) {
        if (out[key]) $("cycle-timeline").append(el("li", { class: "muted" }, `${key}: ${typeof out[key] === "string" ? out[key] : JSON.stringify(out[key])}`));
      }
      this.addState(out.state, out.reason || (out.method ? `installed \`${out.method}\`` : ""));
      this.renderAttempts(out.attempts || []);
    } catch (e) {
      notice(e.message, true);
    }
  }
}

// ---------------------------------------------------------------- the side bar

class Side {
  constructor(bridge, world) {
    this.bridge = bridge;
    this.world = world;
    this.current = "objects";
    this.objects = [];
    this.journal = [];
    this.objectList = new VirtualList($("object-list"), (o) => {
      const name = o.name ? ` ${o.name}` : "";
      return el("span", { class: "object-row", dataset: { oid: o.oid }, onclick: () => this.world.open(o.oid) }, `#${o.oid}${name}`, el("span", { class: "muted" }, `  ${o.slots} slot(s)`));
    });
    this.journalList = new VirtualList($("journal-list"), (j) => el("span", { class: "mono", title: JSON.stringify(j) }, JSON.stringify(j)));
    this.historyList = new VirtualList($("history-list"), (h) => el("span", {}, el("code", {}, String(h.tx)), " ", h.description,
      el("button", { type: "button", class: "undo", onclick: () => announce(this.bridge, "undo", { tx: h.tx }) }, "undo")));
    this.cycleList = new VirtualList($("cycle-list"), (c) => el("span", { onclick: () => cyclePanel.showPast(c.id) }, `${c.id} ${c.state} ${c.selector}`));
    $("object-filter").addEventListener("input", () => this.showObjects());
    $("journal-filter").addEventListener("input", () => this.showJournal());
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => this.select(b.dataset.tab));
    $("plugin-upload").addEventListener("submit", (e) => this.upload(e));
    $("chat-form").addEventListener("submit", (e) => this.ask(e));
  }

  select(tab) {
    this.current = tab;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${tab}`;
    this.load(tab);
  }

  /** Something changed that `tab` shows: reload it if shown (a tab is read afresh
   * whenever it is selected). */
  touch(tab) {
    if (this.current === tab) this.schedule(tab);
  }

  schedule(tab) {
    // Many transactions in a burst reload the list once.
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.load(this.current);
    }, 150);
  }

  async load(tab) {
    try {
      if (tab === "objects") {
        this.objects = (await this.bridge.request("objects")).json;
        this.showObjects();
      } else if (tab === "cycles") {
        this.cycleList.set((await this.bridge.request("cycles")).json.slice().reverse());
      } else if (tab === "journal") {
        this.journal = (await this.bridge.request("journal", { limit: 10000 })).json;
        this.showJournal();
      } else if (tab === "history") {
        this.historyList.set((await this.bridge.request("history", { limit: 10000 })).json);
      } else if (tab === "plugins") {
        await this.showPlugins();
      } else if (tab === "models") {
        await this.showModels();
      } else if (tab === "mind") {
        await this.showMind();
      }
    } catch (e) {
      notice(e.message, true);
    }
  }

  showObjects() {
    const f = $("object-filter").value.trim().toLowerCase();
    const shown = f ? this.objects.filter((o) => (`#${o.oid} ${o.name || ""}`).toLowerCase().includes(f)) : this.objects;
    $("object-count").textContent = `${shown.length} of ${this.objects.length} reachable object(s)`;
    this.objectList.set(shown);
  }

  showJournal() {
    const f = $("journal-filter").value.trim().toLowerCase();
    this.journalList.set(f ? this.journal.filter((j) => JSON.stringify(j).toLowerCase().includes(f)) : this.journal);
  }

  async showPlugins() {
    const [list, stats] = await Promise.all([this.bridge.request("plugin_list"), this.bridge.request("plugin_stats")]);
    const byName = new Map(stats.json.map((s) => [s.name, s]));
    const rows = list.json.map((p) => {
      const s = byName.get(p.name) || {};
      const failures = Object.values(s.failures || {}).reduce((a, b) => a + b, 0);
      return el("tr", { dataset: { plugin: p.name } }, el("td", {}, p.name), el("td", {}, el("code", {}, p.selector), ` on ${p.target}`),
        el("td", {}, `${s.calls ?? 0} call(s), ${failures} failure(s), fuel ${s.fuel_used ?? 0}`),
        el("td", {}, el("button", { type: "button", onclick: () => announce(this.bridge, "plugin_remove", { name: p.name }, () => this.showPlugins()) }, "remove")));
    });
    $("plugin-list").replaceChildren(rows.length ? el("table", { class: "plain" }, ...rows) : el("div", { class: "muted" }, "no plugins installed"));
  }


  async upload(e) {
    e.preventDefault();
    const result = $("plugin-result");
    const file = $("plugin-file").files[0];
    const manifest = $("plugin-manifest").files[0];
    if (!file || !manifest) return (result.textContent = "choose the component (.wasm or .wat) and its manifest (.toml)");
    const bytes = new Uint8Array(await file.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    try {
      const out = await this.bridge.request("plugin_add", { file: file.name, component: btoa(binary), manifest: await manifest.text(), origin: `uploaded ${file.name}` });
      result.textContent = out.text;
      result.className = "";
      await this.showPlugins();
    } catch (err) {
      result.textContent = err.message;
      result.className = "error";
    }
  }

  async showModels() {
    const models = (await this.bridge.request("model_list")).json;
    $("model-list").replaceChildren(el("table", { class: "plain" }, ...models.map((m) => el("tr", { dataset: { model: m.name } },
      el("td", {}, m.name, el("div", { class: "muted" }, m.description || "")),
      el("td", {}, m.present ? "present" : `${Math.round((m.size || 0) / 1e6)} MB`),
      el("td", {}, m.present ? "" : el("button", { type: "button", onclick: () => announce(this.bridge, "model_pull", { name: m.name }, () => this.showModels()) }, "pull"), el("progress", { hidden: true, max: 1, value: 0 }), el("div", { class: "muted step" }))))));
  }


  /** The metric over the beats kept, as a line against the threshold (beats that acted
   * marked), and the latest acts. */
  async showMind() {
    const cem = (await this.bridge.request("cem", { limit: 200 })).json;
    const terms = cem.terms;
    $("cem-now").textContent = `now ${cem.cem.toFixed(3)} (cog ${terms.cog.toFixed(2)}, sol ${terms.sol.toFixed(2)}, struc ${terms.struc.toFixed(2)}, rel ${terms.rel.toFixed(2)}) · heartbeat ${cem.enabled ? "on" : "off"} · ${cem.beats.length} beat(s)`;
    const svg = $("cem-plot");
    const ns = "http://www.w3.org/2000/svg";
    const shape = (tag, attrs) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      return node;
    };
    // The metric is in [0, 1]: 100 units tall, 5 of margin.
    const y = (v) => 105 - Math.max(0, Math.min(1, v)) * 100;
    const n = cem.beats.length;
    const x = (i) => (n < 2 ? 140 : (i * 280) / (n - 1));
    const parts = [shape("line", { class: "threshold", x1: 0, x2: 280, y1: y(cem.threshold), y2: y(cem.threshold) })];
    if (n > 0) {
      const points = cem.beats.map((b, i) => `${x(i).toFixed(1)},${y(b.cem).toFixed(1)}`).join(" ");
      parts.push(shape("polyline", { class: "cem", points }));
      cem.beats.forEach((b, i) => {
        if (b.act) parts.push(shape("circle", { class: "act", cx: x(i), cy: y(b.cem), r: 3 }));
      });
    }
    svg.replaceChildren(...parts);
    $("cem-acts").replaceChildren(...cem.acts.slice(-10).reverse().map((a) =>
      el("div", { class: "muted" }, `beat ${a.beat}: ${a.what || a.kind} — ${a.ok ? "done" : "failed"}: ${a.summary || ""}`)));
  }

  /** Asks the personas; their answers stream in from `dialogue` events of this request. */
  async ask(e) {
    e.preventDefault();
    const question = $("chat-question").value.trim();
    if (!question) return;
    const persona = $("chat-persona").value;
    const id = this.bridge.newId();
    this.chat = { id, turns: new Map() };
    const live = el("div", { class: "chat-live" });
    $("chat-log").replaceChildren(el("div", { class: "muted" }, question), live);
    this.chat.live = live;
    try {
      const out = await this.bridge.request("chat", persona ? { question, persona } : { question }, id);
      const d = out.json;
      const sources = d.sources.map((s) => el("div", { class: "muted" }, `[${s.n}] ${s.source}`));
      live.replaceChildren(...d.turns.map((t) => el("div", { class: "turn", dataset: { persona: t.persona } }, el("strong", {}, t.name), t.text)), ...sources,
        el("div", { class: "muted" }, d.routing.forced ? `${d.dialogue}: asked by name` : `${d.dialogue}: routed as "${d.routing.archetype}"`));
    } catch (err) {
      live.append(el("div", { class: "error" }, err.message));
    }
  }

  /** More of a persona's answer, for the question being asked. */
  dialogue(m) {
    if (!this.chat || !m.cause || m.cause.id !== this.chat.id || m.event.phase !== "text") return;
    let turn = this.chat.turns.get(m.event.persona);
    if (!turn) {
      turn = el("div", { class: "turn", dataset: { persona: m.event.persona } }, el("strong", {}, m.event.persona.toUpperCase()));
      this.chat.turns.set(m.event.persona, turn);
      this.chat.live.append(turn);
    }
    turn.append(m.event.text);
  }

  modelProgress(e) {
    const row = document.querySelector(`#model-list tr[data-model="${CSS.escape(e.model)}"]`);
    if (!row) return;
    const bar = row.querySelector("progress");
    bar.hidden = false;
    bar.max = e.total || 1;
    bar.value = e.total ? e.done : 0;
    row.querySelector(".step").textContent = e.total ? `${e.step}: ${Math.round((100 * e.done) / e.total)}%` : e.step;
  }
}

// ---------------------------------------------------------------- start

let cyclePanel;

function start() {
  // The token arrives in the login URL's fragment (never sent to any server) and is
  // kept for this browser session only; the address bar drops it.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem("batos-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  const token = sessionStorage.getItem("batos-token");
  if (!token) {
    $("login").hidden = false;
    return;
  }
  const bridge = new Bridge(token);
  const world = new World(bridge);
  cyclePanel = new CyclePanel(bridge);
  const side = new Side(bridge, world);
  let started = false;
  bridge.listeners.push((m) => {
    const e = m.event;
    if (e.kind === "transaction") {
      world.changed(e.changes);
      side.touch("objects");
      side.touch("history");
    } else if (e.kind === "cycle") {
      cyclePanel.event(m);
      if (e.phase === "state") {
        side.touch("cycles");
        side.touch("journal");
      }
    } else if (e.kind === "plugin") {
      side.touch("plugins");
    } else if (e.kind === "model") {
      side.modelProgress(e);
    } else if (e.kind === "dialogue") {
      side.dialogue(m);
    } else if (e.kind === "heartbeat") {
      side.touch("mind");
    }
  });
  bridge.onLive.push(() => {
    if (!started) {
      started = true;
      world.start().catch((e) => notice(e.message, true));
      side.select("objects");
    } else {
      // Back after a restart: replayed events refreshed what they touched; read
      // everything once more in case the gap outlived the kernel's retention.
      world.refreshAll();
      side.load(side.current);
    }
  });
  window.batos = { bridge, world, side };
  bridge.connect();
}

start();
