// stemfill studio: the page. Plain JavaScript, no build step; talks to the server's /api (stemfill/studio/server.py).
"use strict";

const $ = (s) => document.querySelector(s);
const STEM_ORDER = ["guitar", "bass", "drums", "other"];
const COLORS = {};
for (const k of ["drums", "bass", "guitar", "other", "new"]) {
  COLORS[k] = getComputedStyle(document.documentElement).getPropertyValue("--" + k).trim();
}
const SCORE_EXTS = [".mid", ".midi", ".kar", ".gp3", ".gp4", ".gp5", ".gpx", ".gp"];
const AUDIO_EXTS = [".wav", ".flac", ".ogg"];

const S = {
  song: null,        // the song's info (tracks with notes in seconds, bars, sections)
  takes: [],         // take summaries, oldest first
  details: {},       // take id -> detail (tracks with notes)
  current: null,     // the take shown as B (null: none yet)
  listening: "B",    // "A" or "B"
  part: "all",       // all | new | rest
  sel: null,         // {a, b}: 0-based bars selected on the roll
  recording: null,   // a dropped WAV/FLAC waiting for its prompt
};

// --- talking to the server ---------------------------------------------------------------------------------

function showError(msg) {
  const e = $("#error");
  e.textContent = msg ? "error: " + msg : "";
  e.hidden = !msg;
}

async function api(url, opts = {}) {
  let r;
  try {
    r = await fetch(url, opts);
  } catch (err) {
    throw new Error("the studio is not answering (is `stemfill studio` still running?)");
  }
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${url}: HTTP ${r.status}`);
  return body;
}

function status(text) { $("#status").textContent = text || ""; }

// --- opening files -------------------------------------------------------------------------------------------

function ext(name) { const i = name.lastIndexOf("."); return i < 0 ? "" : name.slice(i).toLowerCase(); }

async function openFile(file) {
  showError("");
  const e = ext(file.name);
  if (AUDIO_EXTS.includes(e)) {
    S.recording = file;
    $("#rec-name").textContent = file.name;
    $("#rec-go").disabled = false;
    $("#recording-box").scrollIntoView({ behavior: "smooth" });
    return;
  }
  status(`opening ${file.name}…`);
  try {
    const info = await api(`/api/songs?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
    loadSong(info);
    status("");
  } catch (err) {
    status("");
    showError(err.message);
  }
}

function loadSong(info) {
  S.song = info;
  S.takes = info.takes || [];
  S.details = {};
  S.current = null;
  S.listening = "B";
  S.sel = null;
  $("#bars").value = "";
  $("#song-name").textContent = `${info.name} — ${info.n_bars} bars, ${info.meter}, ${info.qpm} qpm, ${fmt(info.seconds)}`;
  for (const w of info.warnings || []) showError(`${info.name}: ${w}`);
  $("#generate").disabled = false;
  $("#play").disabled = false;
  $("#play-bar").disabled = false;
  document.body.dataset.song = info.id;
  renderTracks();
  renderTakes();
  setSource();
  drawRoll();
  if (S.takes.length) selectTake(S.takes[S.takes.length - 1].id);
}

// --- tracks and takes ----------------------------------------------------------------------------------------

function shownTracks() {
  if (S.listening === "B" && S.current !== null && S.details[S.current]) return S.details[S.current].tracks;
  return S.song ? S.song.tracks : [];
}

function renderTracks() {
  const ul = $("#tracks");
  ul.innerHTML = "";
  for (const t of shownTracks()) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="chip ${t.new ? "new" : t.stem}"></span><span></span><span class="count">${t.stem} · ${t.count}</span>`;
    li.children[1].textContent = t.name;
    li.title = "Show as tab / score";
    li.onclick = () => showTab(t);
    ul.appendChild(li);
  }
}

function takeLabel(t) {
  const o = t.options;
  const bits = [o.stems.join("+")];
  if (o.bars) bits.push(`bars ${o.bars}`);
  for (const k of ["density", "complexity", "register", "fills", "style"]) if (o[k] && o[k] !== "auto") bits.push(`${k} ${o[k]}`);
  if (o.temperature) bits.push(`T ${o.temperature}`);
  if (o.rests === false) bits.push("no rests");
  bits.push(`seed ${o.seed}`);
  return bits.join(", ");
}

function renderTakes() {
  const ul = $("#takes");
  ul.innerHTML = "";
  const sel = $("#ab-a");
  const keep = sel.value;
  sel.innerHTML = '<option value="original">original</option>';
  for (const t of S.takes) {
    const li = document.createElement("li");
    li.dataset.take = t.id;
    if (t.id === S.current) li.className = "current";
    const notes = t.added.map((a) => a.count).reduce((x, y) => x + y, 0);
    li.innerHTML = `<span class="chip new"></span><b>Take ${t.id}</b> <span class="muted"></span>
      <span class="count">${notes} notes</span><button class="del" title="Delete this take">×</button>`;
    li.children[2].textContent = takeLabel(t);
    li.onclick = (ev) => { if (!ev.target.classList.contains("del")) selectTake(t.id); };
    li.querySelector(".del").onclick = () => deleteTake(t.id);
    ul.appendChild(li);
    const opt = document.createElement("option");
    opt.value = String(t.id);
    opt.textContent = `take ${t.id}`;
    sel.appendChild(opt);
  }
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  $("#undo").disabled = !S.takes.length;
  $("#ab").disabled = S.current === null;
  document.body.dataset.takes = String(S.takes.length);
}

async function selectTake(id) {
  try {
    if (!S.details[id]) S.details[id] = await api(`/api/songs/${S.song.id}/takes/${id}`);
  } catch (err) { showError(err.message); return; }
  S.current = id;
  S.listening = "B";
  $("#ab-b").textContent = `B: take ${id}`;
  renderTakes();
  renderTracks();
  setSource(true);
  drawRoll();
}

async function deleteTake(id) {
  try {
    const r = await api(`/api/songs/${S.song.id}/takes/${id}`, { method: "DELETE" });
    S.takes = r.takes;
    delete S.details[id];
    if (S.current === id) {
      S.current = null;
      $("#ab-b").textContent = "B: —";
      if (S.takes.length) { await selectTake(S.takes[S.takes.length - 1].id); return; }
    }
    renderTakes(); renderTracks(); setSource(true); drawRoll();
  } catch (err) { showError(err.message); }
}

// --- generating ----------------------------------------------------------------------------------------------

async function generate(ev) {
  ev.preventDefault();
  showError("");
  const f = new FormData($("#gen-form"));
  const opts = { stems: f.getAll("stem"), seed: f.get("seed") || 0, replace: f.get("replace") === "on",
                 rests: f.get("rests") === "on" };
  for (const k of ["bars", "density", "complexity", "register", "fills", "style", "temperature"]) {
    const v = (f.get(k) || "").trim();
    if (v && v !== "auto") opts[k] = v;  // auto: left to the model
  }
  const btn = $("#generate");
  btn.disabled = true;
  $("#progress").hidden = false;
  const t0 = performance.now();
  const tick = setInterval(async () => {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    let q = "";
    try { const st = await api("/api/state"); if (st.waiting > 1) q = ` (${st.waiting - 1} ahead in the queue)`; } catch (_) {}
    $("#progress-text").textContent = `generating ${opts.stems.join("+")}… ${secs} s${q}`;
  }, 500);
  try {
    const take = await api(`/api/songs/${S.song.id}/takes`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(opts),
    });
    S.details[take.id] = take;
    const summary = Object.assign({}, take);
    delete summary.tracks;
    S.takes = S.takes.filter((t) => t.id !== take.id).concat([summary]);
    const st = await api(`/api/songs/${S.song.id}/takes`);  // the server's bounded store decides what is kept
    S.takes = st.takes;
    await selectTake(take.id);
    status(`take ${take.id}: ${take.added.map((a) => `${a.name} (${a.count} notes)`).join(", ")} in ${take.seconds.toFixed(1)} s`);
  } catch (err) {
    showError(err.message);
  } finally {
    clearInterval(tick);
    btn.disabled = false;
    $("#progress").hidden = true;
  }
}

// --- listening -----------------------------------------------------------------------------------------------

const player = $("#player");

function viewOf(which) {
  if (which === "A") return $("#ab-a").value;
  return S.current === null ? "original" : String(S.current);
}

function audioUrl(view, part) {
  const p = view === "original" ? "all" : part;
  return `/api/songs/${S.song.id}/takes/${view}/download.wav?inline=1&part=${p}`;
}

function setSource(keepTime) {
  if (!S.song) return;
  const view = viewOf(S.listening);
  const url = audioUrl(view, S.part);
  const t = player.currentTime || 0;
  const playing = !player.paused;
  if (player.dataset.url !== url) {
    player.dataset.url = url;
    player.src = url;
    if (keepTime) {
      player.addEventListener("loadedmetadata", () => { player.currentTime = Math.min(t, player.duration || t); if (playing) player.play(); }, { once: true });
    }
  }
  $("#ab-now").textContent = S.listening;
  const dl = view === "original" ? "the original" : `take ${view}`;
  $("#dl-which").textContent = dl;
  for (const e of ["mid", "gp5", "wav"]) {
    const a = $("#dl-" + e);
    a.href = `/api/songs/${S.song.id}/takes/${view}/download.${e}`;
    a.classList.remove("disabled");
  }
}

function play(fromBar) {
  if (!S.song) return;
  setSource(true);
  if (fromBar !== undefined) {
    const at = S.song.bars[fromBar] || 0;
    if (player.readyState >= 1) player.currentTime = at;
    else player.addEventListener("loadedmetadata", () => { player.currentTime = at; }, { once: true });
  }
  player.play().catch((err) => showError(`cannot play: ${err.message}`));
}

$("#play").onclick = () => { if (player.paused) play(); else player.pause(); };
$("#play-bar").onclick = () => play(S.sel ? S.sel.a : 0);
player.addEventListener("play", () => { $("#play").textContent = "❚❚ Pause"; document.body.dataset.playing = "1"; loop(); });
player.addEventListener("pause", () => { $("#play").textContent = "▶ Play"; document.body.dataset.playing = ""; drawOverlay(); });
player.addEventListener("error", async () => {
  if (!player.dataset.url) return;
  try { await api(player.dataset.url); } catch (err) { showError(err.message); }
});
$("#ab").onclick = () => { S.listening = S.listening === "A" ? "B" : "A"; renderTracks(); setSource(true); drawRoll(); };
$("#ab-a").onchange = () => { if (S.listening === "A") { renderTracks(); setSource(true); drawRoll(); } };
for (const r of document.querySelectorAll("input[name=part]")) {
  r.onchange = () => { S.part = r.value; setSource(true); drawRoll(); };
}

function loop() {
  drawOverlay();
  $("#time").textContent = fmt(player.currentTime);
  if (!player.paused) requestAnimationFrame(loop);
}

function fmt(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(1).padStart(4, "0")}`;
}

// --- the piano roll ----------------------------------------------------------------------------------------------

const TOP = 20, LEFT = 54;
const roll = $("#roll"), overlay = $("#overlay");

function fit(c) {
  const r = c.getBoundingClientRect(), d = window.devicePixelRatio || 1;
  if (c.width !== Math.round(r.width * d) || c.height !== Math.round(r.height * d)) {
    c.width = Math.round(r.width * d);
    c.height = Math.round(r.height * d);
  }
  const g = c.getContext("2d");
  g.setTransform(d, 0, 0, d, 0, 0);
  return [g, r.width, r.height];
}

function duration() {
  let end = S.song ? S.song.seconds : 1;
  for (const t of shownTracks()) for (const n of t.notes) end = Math.max(end, n[1]);
  return Math.max(end, 0.001);
}

function xOf(sec, w) { return LEFT + (sec / duration()) * (w - LEFT - 4); }
function secOf(x, w) { return Math.max(0, ((x - LEFT) / (w - LEFT - 4)) * duration()); }
function barAt(sec) {
  const b = S.song.bars;
  let k = 0;
  while (k + 1 < b.length && b[k + 1] <= sec) k++;
  return k;
}

function drawRoll() {
  const [g, w, h] = fit(roll);
  g.clearRect(0, 0, w, h);
  if (!S.song) {
    g.fillStyle = "#8a8a96"; g.font = "15px system-ui"; g.textAlign = "center";
    g.fillText("Open or drop a MIDI or Guitar Pro file to see it here.", w / 2, h / 2);
    drawOverlay();
    return;
  }
  const tracks = shownTracks();
  const lanes = STEM_ORDER.filter((s) => tracks.some((t) => t.stem === s && t.notes.length) ||
    (s !== "other" && S.takes.some((k) => k.added.some((a) => a.stem === s))));
  const lh = (h - TOP) / Math.max(1, lanes.length);
  const bars = S.song.bars;
  // bar lines and numbers
  g.font = "11px system-ui"; g.textAlign = "left";
  let lastLabel = -1e9;
  for (let k = 0; k < bars.length; k++) {
    const x = xOf(bars[k], w);
    g.fillStyle = k % 4 === 0 ? "#d0d0d8" : "#ececf0";
    g.fillRect(Math.round(x), TOP, 1, h - TOP);
    if (x - lastLabel >= 24) { g.fillStyle = "#6b6b78"; g.fillText(String(k + 1), x + 2, 13); lastLabel = x; }
  }
  // lanes
  lanes.forEach((stem, i) => {
    const y0 = TOP + i * lh;
    g.fillStyle = "#fafafc"; g.fillRect(0, y0, LEFT - 2, lh);
    g.fillStyle = "#dcdce2"; g.fillRect(0, y0 + lh - 1, w, 1);
    g.fillStyle = COLORS[stem]; g.font = "12px system-ui"; g.fillText(stem, 6, y0 + 16);
    const mine = tracks.filter((t) => t.stem === stem);
    let lo = 127, hi = 0;
    for (const t of mine) for (const n of t.notes) { lo = Math.min(lo, n[2]); hi = Math.max(hi, n[2]); }
    if (lo > hi) { lo = 40; hi = 60; }
    lo -= 1; hi += 1;
    const ph = (lh - 6) / (hi - lo + 1);
    for (const t of mine) {
      g.fillStyle = t.new ? COLORS.new : COLORS[stem];
      if (t.new && S.part === "rest" && S.listening === "B") g.globalAlpha = 0.25;
      else if (!t.new && S.part === "new" && S.listening === "B") g.globalAlpha = 0.25;
      for (const n of t.notes) {
        const x = xOf(n[0], w), x2 = xOf(n[1], w);
        const y = y0 + 3 + (hi - n[2]) * ph;
        g.fillRect(x, y, Math.max(1.5, x2 - x - 0.5), Math.max(1.5, ph - 0.3));
      }
      g.globalAlpha = 1;
    }
  });
  // section changes
  g.strokeStyle = "#7a3fb0"; g.setLineDash([5, 4]); g.lineWidth = 1.2;
  for (const k of S.song.sections) {
    const x = Math.round(xOf(bars[k], w)) + 0.5;
    g.beginPath(); g.moveTo(x, TOP - 4); g.lineTo(x, h); g.stroke();
  }
  g.setLineDash([]);
  drawOverlay();
  renderLegend(lanes);
  if (!performance.getEntriesByName("roll-drawn").length) performance.mark("roll-drawn");  // bench/studio.py
}

function renderLegend(lanes) {
  const parts = lanes.map((s) => `<span><i class="chip ${s}"></i>${s}</span>`);
  parts.push('<span><i class="chip new"></i>new part</span>');
  parts.push('<span style="color:#7a3fb0">┆ section change</span>');
  parts.push('<span>drag across bars to choose where to generate; click to play from a bar</span>');
  $("#legend").innerHTML = parts.join("");
}

function drawOverlay() {
  const [g, w, h] = fit(overlay);
  g.clearRect(0, 0, w, h);
  if (!S.song) return;
  const bars = S.song.bars, end = duration();
  if (S.sel) {
    const a = xOf(bars[S.sel.a], w), b = xOf(S.sel.b + 1 < bars.length ? bars[S.sel.b + 1] : end, w);
    g.fillStyle = "rgba(214, 51, 108, 0.12)"; g.fillRect(a, TOP, b - a, h - TOP);
    g.fillStyle = "rgba(214, 51, 108, 0.7)"; g.fillRect(a, TOP - 3, b - a, 3);
  }
  const x = xOf(player.currentTime || 0, w);
  g.fillStyle = "#d6336c"; g.fillRect(Math.round(x) - 1, 0, 2, h);
}

let drag = null;
overlay.addEventListener("mousedown", (ev) => {
  if (!S.song) return;
  const r = overlay.getBoundingClientRect();
  const bar = barAt(secOf(ev.clientX - r.left, r.width));
  drag = { start: bar, x: ev.clientX, moved: false };
});
window.addEventListener("mousemove", (ev) => {
  if (!drag) return;
  const r = overlay.getBoundingClientRect();
  if (Math.abs(ev.clientX - drag.x) < 4 && !drag.moved) return;
  drag.moved = true;
  const bar = barAt(secOf(ev.clientX - r.left, r.width));
  S.sel = { a: Math.min(drag.start, bar), b: Math.max(drag.start, bar) };
  $("#bars").value = S.sel.a === S.sel.b ? `${S.sel.a + 1}` : `${S.sel.a + 1}-${S.sel.b + 1}`;
  $("#from-bar").textContent = String(S.sel.a + 1);
  drawOverlay();
});
window.addEventListener("mouseup", () => {
  if (!drag) return;
  if (!drag.moved) {  // a click: play from that bar
    $("#from-bar").textContent = String(drag.start + 1);
    const at = S.song.bars[drag.start];
    player.currentTime = at;
    drawOverlay();
    $("#time").textContent = fmt(at);
  }
  drag = null;
});
$("#bars").addEventListener("change", () => {
  const m = /^\s*(\d+)\s*(?:-\s*(\d*))?\s*$/.exec($("#bars").value);
  if (!m || !S.song) { S.sel = null; drawOverlay(); return; }
  const a = parseInt(m[1], 10) - 1;
  const b = m[2] ? parseInt(m[2], 10) - 1 : (/-/.test($("#bars").value) ? S.song.bars.length - 1 : a);
  S.sel = { a, b: Math.max(a, b) };
  $("#from-bar").textContent = String(a + 1);
  drawOverlay();
});
window.addEventListener("resize", drawRoll);

// --- tab / score (alphaTab, rendering only: the audio is the server's FluidSynth render) ----------------------------

let tabApi = null;

async function showTab(track) {
  if (!S.song) return;
  const view = viewOf(S.listening);
  $("#tab-title").textContent = `${track.name} (${view === "original" ? "original" : "take " + view})`;
  if (typeof alphaTab === "undefined") { $("#tab").textContent = "alphaTab did not load."; return; }
  try {
    const r = await fetch(`/api/songs/${S.song.id}/takes/${view}/download.gp5`);
    if (!r.ok) throw new Error((await r.json()).error);
    const data = new Uint8Array(await r.arrayBuffer());
    if (!tabApi) {
      tabApi = new alphaTab.AlphaTabApi($("#tab"), {
        core: { fontDirectory: "/static/vendor/alphatab/font/", useWorkers: false, engine: "svg" },
        player: { enablePlayer: false },
        display: { scale: 0.9, staveProfile: "Default" },
      });
      tabApi.error.on((e) => showError(`tab view: ${e && e.message ? e.message : e}`));
    }
    tabApi.settings.display.staveProfile = track.drum ? alphaTab.StaveProfile.Score :
      (track.stem === "bass" || track.stem === "guitar" ? alphaTab.StaveProfile.Tab : alphaTab.StaveProfile.Default);
    tabApi.updateSettings();
    tabApi.load(data, [track.index]);
    $("#tab-box").scrollIntoView({ behavior: "smooth", block: "nearest" });
  } catch (err) { showError(err.message); }
}

// --- recordings --------------------------------------------------------------------------------------------------

$("#rec-go").onclick = async () => {
  const file = S.recording;
  if (!file) return;
  showError("");
  const btn = $("#rec-go");
  btn.disabled = true;
  status(`adding to ${file.name}… (beats, notes, the model; up to a minute)`);
  try {
    const r = await api(`/api/audio?name=${encodeURIComponent(file.name)}&prompt=${encodeURIComponent($("#prompt").value)}`,
      { method: "POST", body: file });
    $("#rec-result").hidden = false;
    $("#rec-heard").textContent = `Heard ${r.beats.length} beats at about ${r.qpm} qpm in ${r.beats_per_bar}/4 and ` +
      `${r.notes_heard} notes; added ${r.stems.join(" and ")} (${r.notes_added} notes). ` + r.log.join(" ");
    $("#rec-before").src = `/api/audio/${r.id}/before.wav`;
    $("#rec-after").src = `/api/audio/${r.id}/after.wav`;
    drawRecording(r);
    status("");
  } catch (err) { status(""); showError(err.message); }
  btn.disabled = false;
};

function drawRecording(r) {
  const c = $("#rec-canvas");
  const [g, w, h] = fit(c);
  g.clearRect(0, 0, w, h);
  const X = (s) => (s / r.seconds) * w;
  g.fillStyle = "#b8b8c6";
  r.beats.forEach((b, i) => g.fillRect(X(b), i % r.beats_per_bar === 0 ? 0 : h * 0.5, 1, h));
  g.fillStyle = COLORS.new;
  let lo = 127, hi = 0;
  for (const [, p] of r.new_notes) { lo = Math.min(lo, p); hi = Math.max(hi, p); }
  for (const [s, p] of r.new_notes) g.fillRect(X(s), h - 4 - ((p - lo) / Math.max(1, hi - lo)) * (h - 8), 3, 3);
}

// --- start -------------------------------------------------------------------------------------------------------

window.addEventListener("keydown", (ev) => {  // space: play / pause; A: switch A/B
  if (!S.song || ev.target.closest("input, select, textarea, button")) return;
  if (ev.code === "Space") { ev.preventDefault(); $("#play").click(); }
  if (ev.key === "a" && !$("#ab").disabled) $("#ab").click();
});
$("#file").onchange = (ev) => { if (ev.target.files[0]) openFile(ev.target.files[0]); ev.target.value = ""; };
$("#gen-form").onsubmit = generate;
$("#undo").onclick = () => { if (S.takes.length) deleteTake(S.takes[S.takes.length - 1].id); };
let dragDepth = 0;
window.addEventListener("dragenter", (ev) => { ev.preventDefault(); dragDepth++; $("#drop-veil").hidden = false; });
window.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; $("#drop-veil").hidden = true; } });
window.addEventListener("dragover", (ev) => ev.preventDefault());
window.addEventListener("drop", (ev) => {
  ev.preventDefault();
  dragDepth = 0;
  $("#drop-veil").hidden = true;
  const f = ev.dataTransfer.files[0];
  if (f) openFile(f);
});

(async function start() {
  drawRoll();
  try {
    const st = await api("/api/state");
    const id = st.first || (st.songs.length ? st.songs[st.songs.length - 1].id : null);
    if (id) loadSong(await api(`/api/songs/${id}`));
  } catch (err) { showError(err.message); }
  document.body.dataset.ready = "1";
})();
