"use strict";
// qrate contact sheet. Every piece of data (file names, EXIF, reasons) goes into the page as
// text (textContent / setAttribute), never as HTML. Nothing is fetched except the thumbnails next
// to the page, and -- only when served by `qrate report --serve` -- one POST back to it.
(function () {
  const D = JSON.parse(document.getElementById("qrate-data").textContent);
  const P = D.photos;
  const BUCKETS = ["best", "good", "maybe", "trash", "error"];
  const ROW = 236, CELL = 188, GAP = 6;
  let folder = location.pathname.replace(/\/[^/]*$/, "").replace(/^.*\//, "");
  try { folder = decodeURIComponent(folder); } catch (e) { /* shown as it is */ }
  const TITLE = D.title || "qrate: " + (folder || "contact sheet");
  document.title = TITLE;
  const STORE = "qrate-marks:" + location.pathname;
  let marks = {};
  try { const s = localStorage.getItem(STORE); if (s) { const m = JSON.parse(s); if (m && typeof m === "object") marks = m; } } catch (e) { /* no storage */ }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 10000) / 10000);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function markOf(i) { return marks[P[i].path] || null; }

  // -- layout ------------------------------------------------------------------------------------
  const app = el("div"); app.id = "app";
  const bar = el("div"); bar.id = "bar";
  const grid = el("div"); grid.id = "grid"; grid.tabIndex = 0;
  const spacer = el("div"); spacer.id = "spacer"; grid.appendChild(spacer);
  const side = el("div"); side.id = "side";
  app.append(bar, grid, side);
  document.body.appendChild(app);

  bar.appendChild(el("h1", null, TITLE));
  const filt = { buckets: new Set(BUCKETS), flag: "", camera: "", subject: "", marked: false };
  const counts = {}; BUCKETS.forEach(b => counts[b] = 0); P.forEach(p => counts[p.bucket] = (counts[p.bucket] || 0) + 1);
  for (const b of BUCKETS) {
    if (!counts[b]) continue;
    const c = el("span", "chip"); c.dataset.bucket = b; c.title = "show / hide " + b;
    c.append(el("span", "dot b-" + b), el("span", null, (D.buckets && D.buckets[b] || b) + " " + counts[b]));
    c.addEventListener("click", () => {
      if (filt.buckets.has(b)) filt.buckets.delete(b); else filt.buckets.add(b);
      c.classList.toggle("off", !filt.buckets.has(b)); refilter();
    });
    bar.appendChild(c);
  }
  function selectOf(name, label, values) {
    const l = el("label", null, label + " ");
    const s = el("select"); s.name = name;
    s.appendChild(new Option("all", ""));
    [...values].sort().forEach(v => s.appendChild(new Option(v, v)));
    s.addEventListener("change", () => { filt[name] = s.value; refilter(); s.blur(); grid.focus(); });
    l.appendChild(s); bar.appendChild(l);
    return s;
  }
  const flagSet = new Set(), camSet = new Set(), subjSet = new Set();
  P.forEach(p => { p.flags.forEach(f => flagSet.add(f)); if (p.camera) camSet.add(p.camera); if (p.vision && p.vision.subject) subjSet.add(p.vision.subject); });
  selectOf("flag", "flag", flagSet);
  selectOf("camera", "camera", camSet);
  if (subjSet.size) selectOf("subject", "subject", subjSet);
  const markedBox = el("label", null, " ");
  const mb = document.createElement("input"); mb.type = "checkbox"; mb.name = "marked";
  mb.addEventListener("change", () => { filt.marked = mb.checked; refilter(); grid.focus(); });
  markedBox.append(mb, document.createTextNode("only my marks")); bar.appendChild(markedBox);
  const cmpBtn = el("button", null, "Compare (0)"); cmpBtn.id = "compare-btn";
  const saveBtn = el("button", null, "Save decisions"); saveBtn.id = "save";
  bar.append(cmpBtn, saveBtn);
  const status = el("span"); status.id = "status"; bar.appendChild(status);

  // -- rows (virtualised) -------------------------------------------------------------------------
  let rows = [], order = [], rowOf = new Map(), colOf = new Map(), live = new Map(), cellEls = new Map();
  let cur = -1;
  const cmp = [];

  function visible(i) {
    const p = P[i];
    if (!filt.buckets.has(p.bucket)) return false;
    if (filt.flag && !p.flags.includes(filt.flag)) return false;
    if (filt.camera && p.camera !== filt.camera) return false;
    if (filt.subject && !(p.vision && p.vision.subject === filt.subject)) return false;
    if (filt.marked && !markOf(i)) return false;
    return true;
  }
  function buildRows() {
    rows = []; order = []; rowOf = new Map(); colOf = new Map();
    const perRow = Math.max(1, Math.floor((grid.clientWidth - 24) / (CELL + GAP)));
    let pack = null;
    for (const g of D.groups) {
      const items = g.filter(visible);
      if (!items.length) continue;
      if (g.length === 1) {
        if (!pack || pack.items.length >= perRow) { pack = { label: "single frames", items: [] }; rows.push(pack); }
        pack.items.push(items[0]);
      } else {
        pack = null;
        const b = P[g[0]].burst;
        rows.push({ label: "burst " + fmt(b) + " · " + g.length + " frames" + (items.length < g.length ? " (" + items.length + " shown)" : ""), items });
      }
    }
    rows.forEach((r, ri) => r.items.forEach((i, ci) => { rowOf.set(i, ri); colOf.set(i, ci); order.push(i); }));
    spacer.style.height = (rows.length * ROW) + "px";
  }
  function stars(n) { return n ? "★".repeat(n) : ""; }
  function cellEl(i) {
    const p = P[i], m = markOf(i);
    const c = el("div", "cell bk-" + p.bucket);
    c.dataset.i = String(i);
    c.setAttribute("data-path", p.path);
    c.title = p.name;
    const box = el("div", "thumbbox");
    if (p.thumb) {
      const img = document.createElement("img");
      img.loading = "lazy"; img.decoding = "async"; img.alt = p.name;
      if (p.thumb.w) { img.width = p.thumb.w; img.height = p.thumb.h; }
      img.src = p.thumb.src;
      box.appendChild(img);
    } else {
      box.appendChild(el("div", "nothumb", p.error ? "not judged: " + (p.error.code || "") : "no preview"));
    }
    c.appendChild(box);
    if (p.bucket === "best") c.appendChild(el("span", "badge qpick", "qrate pick"));
    if (m && m.pick === "pick") c.appendChild(el("span", "badge pick", "PICK"));
    if (m && m.pick === "reject") c.appendChild(el("span", "badge reject", "REJECT"));
    if (m) c.appendChild(el("span", "mine", "yours"));
    const meta = el("div", "meta");
    meta.appendChild(el("span", "name", p.name));
    if (m && m.rating) { meta.appendChild(document.createTextNode(" ")); meta.appendChild(el("span", "stars", stars(m.rating))); }
    c.appendChild(meta);
    if (i === cur) c.classList.add("cur");
    if (cmp.includes(i)) c.classList.add("cmp");
    c.addEventListener("click", ev => { select(i, false); if (ev.shiftKey) toggleCompare(i); grid.focus(); });
    c.addEventListener("dblclick", () => { if (!cmp.includes(i)) toggleCompare(i); openCompare(); });
    cellEls.set(i, c);
    return c;
  }
  function rowEl(ri) {
    const r = rows[ri];
    const e = el("div", "row"); e.style.top = (ri * ROW) + "px";
    e.appendChild(el("div", "rowhead", r.label));
    const s = el("div", "strip");
    r.items.forEach(i => s.appendChild(cellEl(i)));
    e.appendChild(s);
    return e;
  }
  function render() {
    const top = grid.scrollTop, h = grid.clientHeight || 800;
    const first = Math.max(0, Math.floor(top / ROW) - 3), last = Math.min(rows.length - 1, Math.ceil((top + h) / ROW) + 3);
    for (const [ri, e] of live) {
      if (ri < first || ri > last) { e.remove(); live.delete(ri); rows[ri] && rows[ri].items.forEach(i => cellEls.delete(i)); }
    }
    for (let ri = first; ri <= last; ri++) if (!live.has(ri)) { const e = rowEl(ri); spacer.appendChild(e); live.set(ri, e); }
    const text = order.length + " of " + P.length + " photos shown · " + Object.keys(marks).length + " marked";
    if (text !== lastStatus) { status.textContent = text; lastStatus = text; }
  }
  let lastStatus = "";
  let pending = false;
  grid.addEventListener("scroll", () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); } });
  function refresh(i) {  // redraw one photo's cell after a mark
    const old = cellEls.get(i);
    if (old) { const n = cellEl(i); old.replaceWith(n); }
  }
  function refilter() {
    for (const e of live.values()) e.remove();
    live = new Map(); cellEls = new Map();
    buildRows();
    if (!rowOf.has(cur)) cur = order.length ? order[0] : -1;
    grid.scrollTop = Math.min(grid.scrollTop, Math.max(0, rows.length * ROW - grid.clientHeight));
    render();
    if (cur >= 0) select(cur, true); else showSide(-1);
  }
  window.addEventListener("resize", () => { const c = cur; refilter(); if (c >= 0 && rowOf.has(c)) select(c, true); });

  // -- selection and the side panel ----------------------------------------------------------------
  function select(i, scroll) {
    if (i < 0) return;
    const old = cellEls.get(cur); if (old) old.classList.remove("cur");
    cur = i;
    if (scroll !== false) {
      const ri = rowOf.get(i);
      const top = ri * ROW;
      if (top < grid.scrollTop) grid.scrollTop = top;
      else if (top + ROW > grid.scrollTop + grid.clientHeight) grid.scrollTop = top + ROW - grid.clientHeight;
      render();
    }
    const c = cellEls.get(i);
    if (c) {
      c.classList.add("cur");
      const s = c.parentElement;
      if (c.offsetLeft < s.scrollLeft) s.scrollLeft = c.offsetLeft - GAP;
      else if (c.offsetLeft + c.offsetWidth > s.scrollLeft + s.clientWidth) s.scrollLeft = c.offsetLeft + c.offsetWidth - s.clientWidth + GAP;
    }
    showSide(i);
  }
  function kv(dl, k, v) { dl.append(el("dt", null, k), el("dd", null, v)); }
  function showSide(i) {
    side.replaceChildren();
    if (i < 0) { side.appendChild(el("p", null, "Nothing matches the filters.")); return; }
    const p = P[i], m = markOf(i);
    const h = el("h2", null, p.name); h.id = "side-name"; side.appendChild(h);
    side.appendChild(el("div", "path", p.path));
    if (p.thumb) {
      const big = el("div", "big");
      const img = document.createElement("img"); img.alt = p.name; img.src = p.thumb.src; big.appendChild(img);
      const faces = (p.vision && p.vision.faces) || [];
      faces.forEach(f => {
        const b = el("div", "face" + (f.main ? " main" : ""));
        b.style.left = (f.box[0] * 100) + "%"; b.style.top = (f.box[1] * 100) + "%";
        b.style.width = ((f.box[2] - f.box[0]) * 100) + "%"; b.style.height = ((f.box[3] - f.box[1]) * 100) + "%";
        b.appendChild(el("span", null, "eyes: " + (f.eyes || "unknown") + (f.main ? " · main" : "")));
        big.appendChild(b);
      });
      side.appendChild(big);
    }
    const ex = el("div", "explain", p.text); ex.id = "side-explain"; side.appendChild(ex);
    const dl = el("dl", "kv");
    kv(dl, "qrate", (D.buckets && D.buckets[p.bucket]) || p.bucket);
    kv(dl, "yours", m ? [m.pick || "", m.rating ? stars(m.rating) : ""].filter(Boolean).join(" ") || "–" : "–");
    kv(dl, "burst", p.burst === null ? "–" : fmt(p.burst) + " (rank " + fmt(p.rank) + " of " + fmt(p.burst_size) + ")");
    kv(dl, "score", fmt(p.score)); kv(dl, "quality", fmt(p.quality));
    kv(dl, "flags", p.flags.length ? p.flags.join(", ") : "none");
    kv(dl, "time", p.time || "–"); kv(dl, "camera", p.camera || "–");
    if (p.vision && p.vision.subject) kv(dl, "subject", p.vision.subject);
    if (p.error) kv(dl, "error", (p.error.code || "") + ": " + (p.error.message || ""));
    side.appendChild(dl);
    if (p.reasons.length) {
      side.appendChild(el("div", null, "Reasons and evidence:"));
      p.reasons.forEach(r => {
        const d = el("details"); d.open = false;
        d.appendChild(el("summary", null, String(r.code)));
        const t = el("table");
        Object.keys(r).filter(k => k !== "code").forEach(k => {
          const tr = el("tr"); tr.append(el("td", null, k), el("td", null, fmt(r[k]))); t.appendChild(tr);
        });
        d.appendChild(t); side.appendChild(d);
      });
    }
    side.appendChild(el("div", "help", "Keys: ← → photos · ↑ ↓ bursts · 1–5 rating · 0 no rating · P pick · X reject · U unmark · C add to compare · Enter compare · Esc close"));
  }

  // -- marks ---------------------------------------------------------------------------------------
  function setMark(i, change) {
    const path = P[i].path;
    const m = Object.assign({ pick: null, rating: null }, marks[path] || {}, change);
    if (!m.pick && !m.rating) delete marks[path]; else marks[path] = { pick: m.pick || null, rating: m.rating || null };
    try { localStorage.setItem(STORE, JSON.stringify(marks)); } catch (e) { /* no storage */ }
    refresh(i); select(i, false); render();
  }
  function decisions() {
    const paths = Object.keys(marks).sort();
    return {
      qrate_decisions: 1, plan_hash: null,
      decisions: paths.map(p => ({ path: p, pick: marks[p].pick || null, rating: marks[p].rating || null })),
    };
  }
  function download(obj) {
    const blob = new Blob([JSON.stringify(obj, null, 1) + "\n"], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob); a.download = "decisions.json";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
  const token = (/^#token=([A-Za-z0-9_-]{16,128})$/.exec(location.hash) || [])[1];
  saveBtn.addEventListener("click", () => {
    const obj = decisions();
    if (token && location.protocol === "http:" && location.hostname === "127.0.0.1") {
      fetch("/decisions", { method: "POST", headers: { "Content-Type": "application/json", "X-Qrate-Token": token }, body: JSON.stringify(obj) })
        .then(r => { status.textContent = r.ok ? "saved " + obj.decisions.length + " decisions to the output folder" : "save failed (" + r.status + ")"; })
        .catch(() => { status.textContent = "save failed: is `qrate report --serve` still running?"; });
    } else {
      download(obj);
      status.textContent = "downloaded decisions.json (" + obj.decisions.length + " decisions): run `qrate apply decisions.json --out-dir OUT`";
    }
  });

  // -- compare ---------------------------------------------------------------------------------------
  const cv = el("div"); cv.id = "compare";
  const cbar = el("div"); cbar.id = "cmpbar";
  const panes = el("div"); panes.id = "cmppanes";
  cv.append(cbar, panes); document.body.appendChild(cv);
  let zoom = { one: false, cx: 0.5, cy: 0.5, k: 1 };
  function toggleCompare(i) {
    const at = cmp.indexOf(i);
    if (at >= 0) cmp.splice(at, 1); else { if (cmp.length >= 4) cmp.shift(); cmp.push(i); }
    cmpBtn.textContent = "Compare (" + cmp.length + ")";
    for (const [j, c] of cellEls) c.classList.toggle("cmp", cmp.includes(j));
  }
  function layoutPanes() {
    for (const pane of panes.children) {
      const img = pane.querySelector("img"); if (!img) continue;
      const w = +img.dataset.w || img.naturalWidth || 1, h = +img.dataset.h || img.naturalHeight || 1;
      const pw = pane.clientWidth, ph = pane.clientHeight;
      const fit = Math.min(pw / w, ph / h);
      const s = zoom.one ? zoom.k : fit;
      const tx = zoom.one ? pw / 2 - zoom.cx * w * s : (pw - w * s) / 2;
      const ty = zoom.one ? ph / 2 - zoom.cy * h * s : (ph - h * s) / 2;
      img.style.transform = "translate(" + tx + "px," + ty + "px) scale(" + s + ")";
      pane.classList.toggle("zoomed", zoom.one);
    }
  }
  function openCompare() {
    if (cmp.length < 1) return;
    panes.replaceChildren(); cbar.replaceChildren();
    cbar.append(el("strong", null, "Compare " + cmp.length), el("span", null, "click: fit ⇄ zoom at that point (1:1, or 2× when the thumbnail is small) · drag: pan · wheel: zoom · Esc: close"));
    const close = el("button", null, "Close"); close.addEventListener("click", closeCompare); cbar.appendChild(close);
    panes.style.gridTemplateColumns = "repeat(" + cmp.length + ", 1fr)";
    cmp.forEach(i => {
      const p = P[i];
      const pane = el("div", "pane");
      if (p.thumb) {
        const img = document.createElement("img"); img.alt = p.name; img.draggable = false;
        img.dataset.w = String(p.thumb.w || 0); img.dataset.h = String(p.thumb.h || 0);
        img.addEventListener("load", layoutPanes); img.src = p.thumb.src; pane.appendChild(img);
      }
      pane.appendChild(el("div", "cap", p.name + " · " + ((D.buckets && D.buckets[p.bucket]) || p.bucket)));
      let drag = null, moved = false;
      pane.addEventListener("mousedown", ev => { drag = { x: ev.clientX, y: ev.clientY, cx: zoom.cx, cy: zoom.cy }; moved = false; });
      window.addEventListener("mousemove", ev => {
        if (!drag || !zoom.one) return;
        const img = pane.querySelector("img"); if (!img) return;
        const w = +img.dataset.w || 1, h = +img.dataset.h || 1;
        if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 3) moved = true;
        zoom.cx = drag.cx - (ev.clientX - drag.x) / (w * zoom.k); zoom.cy = drag.cy - (ev.clientY - drag.y) / (h * zoom.k);
        layoutPanes();
      });
      window.addEventListener("mouseup", () => { drag = null; });
      pane.addEventListener("click", ev => {
        if (moved) return;
        const img = pane.querySelector("img"); if (!img) return;
        const r = img.getBoundingClientRect();
        // 1:1 of the thumbnail's pixels, or twice the fitted size when the thumbnail is smaller than the pane
        const fit = r.width / (+img.dataset.w || r.width || 1);
        if (!zoom.one) { zoom = { one: true, k: Math.max(1, 2 * fit), cx: (ev.clientX - r.left) / r.width, cy: (ev.clientY - r.top) / r.height }; }
        else zoom.one = false;
        layoutPanes();
      });
      pane.addEventListener("wheel", ev => {
        ev.preventDefault();
        if (!zoom.one) { zoom.one = true; zoom.k = 1; }
        zoom.k = Math.min(8, Math.max(0.1, zoom.k * (ev.deltaY < 0 ? 1.25 : 0.8)));
        layoutPanes();
      }, { passive: false });
      panes.appendChild(pane);
    });
    zoom = { one: false, cx: 0.5, cy: 0.5, k: 1 };
    cv.classList.add("on");
    requestAnimationFrame(layoutPanes);
  }
  function closeCompare() { cv.classList.remove("on"); grid.focus(); }
  cmpBtn.addEventListener("click", () => { if (cmp.length < 2 && cur >= 0 && !cmp.includes(cur)) toggleCompare(cur); openCompare(); });

  // -- keyboard --------------------------------------------------------------------------------------
  document.addEventListener("keydown", ev => {
    const t = ev.target;
    if (t && (t.tagName === "SELECT" || t.tagName === "INPUT")) return;
    if (t && t.tagName === "BUTTON" && (ev.key === "Enter" || ev.key === " ")) return;  // the button's own click
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (cv.classList.contains("on")) {
      if (ev.key === "Escape") { closeCompare(); ev.preventDefault(); }
      else if (ev.key === "z" || ev.key === "Z") { zoom.one = !zoom.one; zoom.k = 1; layoutPanes(); }
      return;
    }
    if (cur < 0) return;
    const pos = order.indexOf(cur);
    let handled = true;
    switch (ev.key) {
      case "ArrowRight": if (pos < order.length - 1) select(order[pos + 1]); break;
      case "ArrowLeft": if (pos > 0) select(order[pos - 1]); break;
      case "ArrowDown": case "ArrowUp": {
        const ri = rowOf.get(cur) + (ev.key === "ArrowDown" ? 1 : -1);
        if (ri >= 0 && ri < rows.length) select(rows[ri].items[Math.min(colOf.get(cur), rows[ri].items.length - 1)]);
        break;
      }
      case "Home": select(order[0]); break;
      case "End": select(order[order.length - 1]); break;
      case "1": case "2": case "3": case "4": case "5": setMark(cur, { rating: +ev.key }); break;
      case "0": setMark(cur, { rating: null }); break;
      case "p": case "P": setMark(cur, { pick: "pick" }); break;
      case "x": case "X": setMark(cur, { pick: "reject" }); break;
      case "u": case "U": setMark(cur, { pick: null }); break;
      case "c": case "C": toggleCompare(cur); break;
      case "Enter": if (cmp.length) openCompare(); break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });

  buildRows();
  render();
  if (order.length) select(order[0], false); else showSide(-1);
  grid.focus();
  document.body.dataset.ready = "1";
})();
