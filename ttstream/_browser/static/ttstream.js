// ttstream.js: live image previews in the browser. An ES module with no dependency and
// no build step, served by ttstream's relays at <mount>/ttstream.js (and, from Python,
// the file ttstream.sinks.BROWSER_MODULE). The protocol is described in
// docs/live-previews.md of the ttstream repository.
//
//   <script type="module" src="/ttstream.js"></script>
//   <ttstream-preview src="/generations/abc/events"></ttstream-preview>     (SSE)
//
//   import { connect } from "/ttstream.js";                                  (own DOM)
//   const live = connect("/generations/abc/events");
//   live.addEventListener("preview", (e) => img.src = e.detail.image);
//
// Events (CustomEvent, detail in brackets), dispatched by connect()'s object and by the
// element:
//   preview      {job, index, image, bytes, size, media_type, ...}  a preview arrived
//   completed    {job, image, bytes, size, usage, output_format, ...} the final image
//   error        {job, message, connection}  the generation failed (connection: true
//                when the connection to this server was lost for good)
//   reconnecting {job, scope: "connection" | "api", attempt, regenerating}
//   reconnected  {job, scope}
//   end          {job, images, cancelled}  the generation ended; nothing more comes
// `image` is a URL: a data: URL over SSE, a blob: URL over websockets (revoked by
// close()), or the server's own URL when the API answered with one.

const WS = /^wss?:/i;
let jobCounter = 0;

function fire(target, type, detail) {
  target.dispatchEvent(new CustomEvent(type, { detail }));
}

function parse(text) {
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

// One generation watched over Server-Sent Events (an EventSource).
class SSEPreview extends EventTarget {
  constructor(src) {
    super();
    this.src = src;
    this.job = null;
    this.done = false;
    this.images = 0;
    this._lost = false;
    this._source = new EventSource(src);
    const on = (name, handler) => this._source.addEventListener(name, handler);
    on("open", () => {
      if (!this._lost) return;
      this._lost = false;
      fire(this, "reconnected", { job: null, scope: "connection" });
    });
    on("partial_image", (m) => this._image("preview", m));
    on("completed", (m) => this._image("completed", m));
    on("reconnecting", (m) => {
      const data = parse(m.data) || {};
      fire(this, "reconnecting", { ...data, job: null, scope: "api" });
    });
    on("end", (m) => {
      const data = parse(m.data) || {};
      this._finish();
      fire(this, "end", { job: null, images: data.images ?? this.images, cancelled: !!data.cancelled });
    });
    on("error", (m) => {
      if (this.done) return;
      if (m.data !== undefined) {  // the server's error event: the generation failed
        const data = parse(m.data) || {};
        this._finish();
        fire(this, "error", { job: null, message: String(data.message || "the generation failed"), connection: false });
        fire(this, "end", { job: null, images: this.images, cancelled: false });
      } else if (this._source.readyState === EventSource.CLOSED) {
        this._finish();
        fire(this, "error", {
          job: null, connection: true,
          message: "this server no longer sends this generation, or may not show it to you",
        });
        fire(this, "end", { job: null, images: this.images, cancelled: false });
      } else if (!this._lost) {
        this._lost = true;  // EventSource reconnects by itself, after the last event seen
        fire(this, "reconnecting", { job: null, scope: "connection" });
      }
    });
  }

  _image(type, message) {
    const data = parse(message.data);
    if (data === null) return;
    if (type === "completed") this.images += 1;
    fire(this, type, { ...data, job: null, id: message.lastEventId });
  }

  _finish() {
    this.done = true;
    this._source.close();
  }

  // Asks the server to end the generation (an HTTP DELETE of the events URL; the relay
  // answers it when the application allows cancelling). Resolves to true when accepted.
  async cancel() {
    if (this.done) return false;
    try {
      const answer = await fetch(this.src, { method: "DELETE" });
      return answer.ok;
    } catch {
      return false;
    }
  }

  close() {
    this._finish();
  }
}

// A websocket carrying any number of generations, told apart by their job id.
class SocketConnection {
  constructor(url) {
    this.url = url;
    this.jobs = new Map();
    this.urls = [];
    this._pending = null;  // {header, parts, left} while an image's binary frames arrive
    this.socket = new WebSocket(url);
    this.socket.binaryType = "blob";
    this._opened = new Promise((resolve, reject) => {
      this.socket.addEventListener("open", resolve, { once: true });
      this.socket.addEventListener("close", () => reject(new Error("closed")), { once: true });
    });
    this._opened.catch(() => {});
    this.socket.addEventListener("message", (m) => this._message(m.data));
    this.socket.addEventListener("close", () => {
      for (const job of this.jobs.values()) {
        job._lostSocket();
      }
      this.jobs.clear();
    });
  }

  async start(params, job = `job-${++jobCounter}`) {
    const handle = new SocketPreview(this, job);
    this.jobs.set(job, handle);
    try {
      await this._opened;
      this.socket.send(JSON.stringify({ type: "start", job, params: params || {} }));
    } catch {
      queueMicrotask(() => handle._lostSocket());
    }
    return handle;
  }

  _message(data) {
    if (typeof data !== "string") {
      const pending = this._pending;
      if (pending === null) return;  // no header announced it: not ours to show
      pending.parts.push(data);
      pending.left -= 1;
      if (pending.left <= 0) {
        this._pending = null;
        this._deliver(pending.header, new Blob(pending.parts, { type: pending.header.media_type }));
      }
      return;
    }
    const header = parse(data);
    if (header === null) return;
    const handle = this.jobs.get(header.job);
    if (header.type === "preview" || header.type === "completed") {
      const frames = Number(header.frames ?? 1);
      if (frames > 0) {
        this._pending = { header, parts: [], left: frames };
      } else {
        this._deliver(header, null);
      }
      return;
    }
    if (handle === undefined) return;
    if (header.type === "reconnecting") {
      fire(handle, "reconnecting", { ...header, scope: "api" });
    } else if (header.type === "error") {
      handle._error(String(header.message || "the generation failed"));
    } else if (header.type === "end") {
      handle._end(header);
    }
  }

  _deliver(header, blob) {
    const handle = this.jobs.get(header.job);
    if (handle === undefined) return;
    let image = header.url || null;
    if (blob !== null) {
      image = URL.createObjectURL(blob);
      this.urls.push(image);
    }
    if (header.type === "completed") handle.images += 1;
    fire(handle, header.type, { ...header, image, blob });
  }

  close() {
    this.socket.close(1000);
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

class SocketPreview extends EventTarget {
  constructor(connection, job) {
    super();
    this.connection = connection;
    this.job = job;
    this.done = false;
    this.images = 0;
  }

  _error(message, connection = false) {
    if (this.done) return;
    this.done = true;
    this.connection.jobs.delete(this.job);
    fire(this, "error", { job: this.job, message, connection });
    fire(this, "end", { job: this.job, images: this.images, cancelled: false });
  }

  _end(header) {
    if (this.done) return;
    this.done = true;
    this.connection.jobs.delete(this.job);
    fire(this, "end", { job: this.job, images: header.images ?? this.images, cancelled: !!header.cancelled });
  }

  _lostSocket() {
    this._error("the connection to this server was lost before the end of the generation", true);
  }

  // Sends {"type": "cancel", "job": ...}: the server stops the generation at once.
  async cancel() {
    if (this.done) return false;
    try {
      this.connection.socket.send(JSON.stringify({ type: "cancel", job: this.job }));
      return true;
    } catch {
      return false;
    }
  }

  // Over a websocket the generation belongs to the socket: closing it cancels it.
  close() {
    this.cancel();
    this.done = true;
  }
}

/**
 * Watches one generation; returns an EventTarget with `cancel()` and `close()`.
 *
 * `src` is the events URL of a relay (Server-Sent Events), or a ws:// or wss:// URL of a
 * websocket endpoint served by ttstream's `serve_generations`; over a websocket,
 * `options.params` (a JSON object: prompt, size...) starts the generation and
 * `options.connection` (from `openSocket(url)`) shares one socket between several.
 * Over a websocket the result is a Promise of that EventTarget.
 */
export function connect(src, options = {}) {
  const url = new URL(src, location.href);
  if (WS.test(url.protocol)) {
    const connection = options.connection || new SocketConnection(url.href);
    return connection.start(options.params || {}, options.job);
  }
  return new SSEPreview(url.href);
}

/** A websocket to a `serve_generations` endpoint, shared by several `connect` calls. */
export function openSocket(url) {
  return new SocketConnection(new URL(url, location.href).href);
}

// The element.

const STYLE = `
ttstream-preview {
  --tts-bg: #0d1017; --tts-panel: #161b24; --tts-line: #262d3a; --tts-text: #e8ecf3;
  --tts-muted: #8b95a7; --tts-accent: #7c5cff; --tts-ok: #3fb984; --tts-warn: #e5a50a;
  --tts-bad: #ff6b6b; --tts-fade: 400ms;
  display: grid; grid-template-rows: minmax(0, 1fr) auto; gap: 10px; min-height: 0;
  color: var(--tts-text); font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
}
ttstream-preview [hidden] { display: none !important; }
ttstream-preview, ttstream-preview *, ttstream-preview *::before, ttstream-preview *::after {
  box-sizing: border-box;  /* sizes below include padding and border, whatever the page sets */
}
.tts-frame {
  position: relative; overflow: hidden; border-radius: 14px; border: 1px solid var(--tts-line);
  background: radial-gradient(circle at 50% 40%, #171c27, #0a0c11 75%);
  container-type: size; min-height: 120px;
}
.tts-layer {
  position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain;
  opacity: 0; filter: blur(var(--blur, 0px));
  transition: opacity var(--tts-fade) ease, filter var(--tts-fade) ease;
}
.tts-layer:not([src]) { visibility: hidden; }
.tts-layer.tts-shown { opacity: 1; }
.tts-frame[data-state="error"] .tts-layer.tts-shown,
.tts-frame[data-state="cancelled"] .tts-layer.tts-shown { opacity: .45; filter: grayscale(.8); }
.tts-placeholder { position: absolute; inset: 0; display: grid; place-items: center; padding: 16px; }
.tts-frame.tts-has-image .tts-placeholder { visibility: hidden; }  /* the image fades in alone */
.tts-ghost {
  width: min(100cqw - 32px, (100cqh - 32px) * var(--ar, 1)); aspect-ratio: var(--ar, 1);
  border: 1.5px dashed var(--tts-line); border-radius: 10px;
  display: grid; place-items: center; text-align: center; color: var(--tts-muted); padding: 12px;
}
.tts-frame[data-state="waiting"] .tts-ghost {
  border-style: solid;
  background: linear-gradient(100deg, transparent 30%, rgba(124, 92, 255, .10) 50%, transparent 70%) 0 0 / 300% 100%;
  animation: tts-shimmer 1.6s linear infinite;
}
.tts-ghost strong { display: block; color: var(--tts-text); font-size: 17px; font-weight: 600; }
.tts-clock { font-variant-numeric: tabular-nums; font-size: 28px; color: var(--tts-text); margin-top: 4px; }
.tts-progress { position: absolute; left: 0; right: 0; top: 0; height: 3px; }
.tts-progress div { height: 100%; width: 0; background: var(--tts-accent); transition: width var(--tts-fade) ease; }
.tts-frame[data-state="waiting"] .tts-progress div { width: 30%; animation: tts-sweep 1.2s ease-in-out infinite alternate; }
.tts-frame:is([data-state="done"], [data-state="idle"], [data-state="error"], [data-state="cancelled"]) .tts-progress { opacity: 0; }
.tts-badge {
  position: absolute; top: 10px; left: 10px; display: inline-flex; align-items: center; gap: 7px;
  padding: 4px 11px; border-radius: 999px; font-size: 13px; border: 1px solid currentColor;
  background: rgba(13, 16, 23, .85); white-space: nowrap;
  max-width: calc(100% - 120px); overflow: hidden; text-overflow: ellipsis;
}
.tts-badge::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: currentColor; }
.tts-badge.tts-warn { color: var(--tts-warn); }
.tts-badge.tts-warn::before { animation: tts-pulse 1s ease-in-out infinite; }
.tts-badge.tts-ok { color: var(--tts-ok); }
.tts-cancel {
  position: absolute; top: 10px; right: 10px; font: inherit; font-size: 13px; cursor: pointer;
  color: var(--tts-text); background: rgba(13, 16, 23, .85); border: 1px solid var(--tts-line);
  border-radius: 999px; padding: 4px 12px;
}
.tts-cancel:hover { border-color: var(--tts-bad); color: var(--tts-bad); }
.tts-error {
  position: absolute; left: 50%; top: 50%; transform: translate(-50%, -50%);
  width: min(460px, calc(100% - 32px)); padding: 18px 20px; border-radius: 12px;
  background: rgba(22, 27, 36, .94); border: 1px solid rgba(255, 107, 107, .5);
}
.tts-error strong { color: var(--tts-bad); font-size: 16px; }
.tts-error p { margin: 6px 0 0; overflow-wrap: anywhere; }
.tts-bar {
  display: grid; grid-template-columns: auto auto minmax(0, 1fr) auto; grid-template-rows: 38px;
  align-items: center; column-gap: 14px; white-space: nowrap;
}
.tts-status { margin: 0; font-weight: 600; }
.tts-status.tts-failed { color: var(--tts-bad); }
.tts-elapsed, .tts-meta { color: var(--tts-muted); font-variant-numeric: tabular-nums; overflow: hidden; text-overflow: ellipsis; }
.tts-download {
  grid-column: 4; font: inherit; color: inherit; text-decoration: none; display: inline-flex;
  align-items: center; gap: 6px; padding: 7px 14px; border-radius: 10px; background: var(--tts-panel);
  border: 1px solid var(--tts-accent);
}
.tts-download:hover { background: #1f1a3a; }
.tts-download svg { width: 16px; height: 16px; }
.tts-download span { color: var(--tts-muted); font-variant-numeric: tabular-nums; }
@keyframes tts-shimmer { to { background-position: -300% 0; } }
@keyframes tts-sweep { from { margin-left: 0; } to { margin-left: 70%; } }
@keyframes tts-pulse { 50% { opacity: .25; } }
@media (prefers-reduced-motion: reduce) {
  ttstream-preview { --tts-fade: 0ms; }
  ttstream-preview * { animation: none !important; }
}
@media (max-width: 600px) {
  .tts-bar { font-size: 14px; grid-template-columns: auto minmax(0, 1fr) auto; grid-template-rows: 22px 36px; row-gap: 4px; }
  .tts-bar .tts-elapsed { grid-column: 2 / 4; justify-self: end; }
  .tts-bar .tts-meta { grid-row: 2; grid-column: 1 / 3; }
  .tts-bar .tts-download { grid-row: 2; grid-column: 3; }
  .tts-bar .tts-download span { display: none; }
}
`;

const TEMPLATE = `
<div class="tts-frame" data-state="idle">
  <div class="tts-placeholder"><div class="tts-ghost"><div class="tts-ghost-text"><strong>Your image appears here</strong>
    Previews stream in as it is drawn.</div></div></div>
  <img class="tts-layer" alt=""><img class="tts-layer" alt="">
  <div class="tts-progress"><div></div></div>
  <div class="tts-badge" role="status" aria-live="polite" hidden></div>
  <button class="tts-cancel" type="button" hidden>Cancel</button>
  <div class="tts-error" role="alert" hidden><strong>The generation failed</strong><p></p></div>
</div>
<div class="tts-bar">
  <p class="tts-status" role="status" aria-live="polite"></p>
  <span class="tts-elapsed"></span>
  <span class="tts-meta"></span>
  <a class="tts-download" hidden><svg viewBox="0 0 16 16" fill="none" stroke="currentColor"
    stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path
    d="M8 2v8m-3.5-3.5L8 10l3.5-3.5M3 13.5h10"/></svg>Download <span></span></a>
</div>`;

const RECONNECTED_MS = 2500;  // how long "Reconnected" stays up
const FINAL_TIMEOUT_S = 30;  // seconds a final image may take to load (finaltimeout)

const seconds = (ms) => ms < 60000
  ? `${(ms / 1000).toFixed(1)} s`
  : `${Math.floor(ms / 60000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, "0")} min`;
const byteSize = (n) => n < 1024 * 1024 ? `${Math.round(n / 1024)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
const dimensions = (text) => text.replace("x", " × ");
const sentence = (text) => text.charAt(0).toUpperCase() + text.slice(1);
// Image types a browser only ever draws (never runs): the download link keeps them.
const RASTER = new Set(["image/png", "image/jpeg", "image/webp", "image/gif", "image/avif"]);
const slug = (text) => text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "image";

function addStyle() {
  if (document.querySelector("style[data-ttstream-preview]")) return;
  const style = document.createElement("style");
  style.dataset.ttstreamPreview = "";
  style.textContent = STYLE;
  document.head.prepend(style);  // first, so that the page's own rules win
}

const freshStats = () => ({
  previewsShown: 0, firstPreviewAt: null, finalShown: false, finalShownAt: null,
  finalSize: null, errors: [], reconnects: 0, notices: [], cancelled: false,
});

/**
 * <ttstream-preview src="..."> renders one generation: previews crossfading in one
 * frame, then the final image in their place; elapsed time, size and tokens, a download
 * link, a reconnect badge, human error text, a cancel button.
 *
 * Attributes: src (events URL or ws(s):// URL), previews (how many previews to expect,
 * for the progress bar), size ("WxH": the placeholder's shape), label (the alt text and
 * download name), nocancel (no cancel button), finaltimeout (seconds a final image may
 * take to load and decode, default 30: a final given as the server's URL that does not
 * load by then is told as "could not be shown", and `end` comes).
 * Methods: start(params) (over a websocket: starts a generation), watch(src),
 * begin(text) (shows "starting" before src is known), cancel(), reset(),
 * showStatus(text), showError(title, text).
 * `stats` holds what was shown, for tests and analytics.
 */
export class TTStreamPreview extends HTMLElement {
  static get observedAttributes() { return ["src", "size"]; }

  constructor() {
    super();
    this.stats = freshStats();
    this._run = 0;
    this._live = null;
    this._front = 0;
    this._shown = Promise.resolve();
    this._startedAt = 0;
    this._ticker = null;
    this._blobUrl = null;
    this._linkUrl = null;  // the download link's own blob: URL, when the image is not raster
    this._badgeTimer = null;
    this._apiLost = false;
    this._images = 0;
    this._dropping = null;  // gives up the image being loaded underneath
  }

  connectedCallback() {
    if (this._frame) return;
    addStyle();
    this.innerHTML = TEMPLATE;
    const $ = (selector) => this.querySelector(selector);
    this._frame = $(".tts-frame");
    this._layers = [...this.querySelectorAll(".tts-layer")];
    this._ghostText = $(".tts-ghost-text");
    this._progress = $(".tts-progress div");
    this._badge = $(".tts-badge");
    this._cancelButton = $(".tts-cancel");
    this._errorCard = $(".tts-error");
    this._status = $(".tts-status");
    this._elapsed = $(".tts-elapsed");
    this._meta = $(".tts-meta");
    this._download = $(".tts-download");
    this._cancelButton.addEventListener("click", () => this.cancel());
    this._shape();
    const src = this.getAttribute("src");
    if (src) this.watch(src);
  }

  disconnectedCallback() {
    this._stop();
    if (this._socket) this._socket.close();
    this._socket = null;
  }

  attributeChangedCallback(name, old, value) {
    if (!this._frame) return;
    if (name === "size") this._shape();
    if (name === "src" && value && value !== this._watching && !WS.test(value)) this.watch(value);
  }

  get src() { return this.getAttribute("src") || ""; }
  set src(value) { this.setAttribute("src", value); }
  get expected() { return Number(this.getAttribute("previews") || 0); }
  get label() { return this.getAttribute("label") || ""; }
  get finalTimeout() {
    const value = Number(this.getAttribute("finaltimeout"));
    return Number.isFinite(value) && value > 0 ? value : FINAL_TIMEOUT_S;
  }

  _shape() {
    const [w, h] = (this.getAttribute("size") || "1x1").split("x").map(Number);
    if (w > 0 && h > 0) this._frame.style.setProperty("--ar", w / h);
  }

  // Forgets the generation on screen (its connection closed) and shows the empty frame.
  reset() {
    this._stop();
    this._run += 1;
    this._dropLoading();  // a final that never loads holds no later image back
    Object.assign(this.stats, freshStats());
    this._images = 0;
    this._apiLost = false;
    this._cancelRequested = false;
    for (const layer of this._layers) {
      clearTimeout(layer.cleanup);
      layer.classList.remove("tts-shown");
      layer.removeAttribute("src");
      layer.alt = "";
    }
    if (this._blobUrl) URL.revokeObjectURL(this._blobUrl);
    this._blobUrl = null;
    if (this._linkUrl) URL.revokeObjectURL(this._linkUrl);
    this._linkUrl = null;
    this._frame.dataset.state = "idle";
    this._frame.classList.remove("tts-has-image");
    this._progress.style.width = "";
    this._errorCard.hidden = true;
    this._badge.hidden = true;
    this._cancelButton.hidden = true;
    this._download.hidden = true;
    this._download.removeAttribute("href");
    this._elapsed.textContent = "";
    this._meta.textContent = "";
    this._setStatus("");
  }

  // Shows "starting" and the clock before the events URL is known (the page is still
  // asking its server to start the generation).
  begin(text = "Starting…") {
    this.reset();
    this._frame.dataset.state = "waiting";
    this._ghostText.innerHTML = `<strong></strong><div class="tts-clock"></div>`;
    this._ghostText.firstChild.textContent = this.getAttribute("size")
      ? `Generating ${dimensions(this.getAttribute("size"))}` : "Generating";
    this._setStatus(text);
    this._startClock();
    this._begun = this._run;
  }

  // Watches the generation at `src` (an events URL).
  watch(src) {
    if (this._begun !== this._run) this.begin();
    this._begun = null;
    this._watching = src;
    if (this.getAttribute("src") !== src) this.setAttribute("src", src);
    this._attach(connect(src));
  }

  // Over a websocket (src="ws://..."): starts a generation with `params`.
  async start(params) {
    if (this._begun !== this._run) this.begin();
    this._begun = null;
    const mine = this._run;
    if (!this._socket || this._socket.socket.readyState > 1) this._socket = openSocket(this.src);
    const live = await connect(this.src, { params, connection: this._socket });
    if (mine === this._run) this._attach(live);
    return live;
  }

  // Ends the generation server-side (the relay or the websocket endpoint stops it).
  async cancel() {
    if (!this._live || this._live.done) return false;
    this._cancelButton.disabled = true;
    this._setStatus("Cancelling…");
    this._cancelRequested = true;
    const accepted = await this._live.cancel();
    if (!accepted && this._live && !this._live.done) {
      this._cancelRequested = false;
      this._cancelButton.disabled = false;
      this._setStatus("This server did not cancel the generation");
    }
    return accepted;
  }

  _attach(live) {
    const mine = this._run;
    this._live = live;
    this._setStatus("Waiting for the first preview");
    this._cancelButton.hidden = this.hasAttribute("nocancel");
    this._cancelButton.disabled = false;
    // `after()`: what must be done before the event is handled and told (a promise).
    const relay = (type, handler, after = null) => live.addEventListener(type, async (event) => {
      if (after) await after();
      if (mine !== this._run) return;
      handler(event.detail);
      this.dispatchEvent(new CustomEvent(type, { detail: event.detail }));
    });
    // The final images are shown (decoded, stats and download link set) before `end`
    // is told, so that an `end` listener sees them on screen.
    let finals = Promise.resolve();
    relay("preview", (data) => this._preview(data));
    relay("completed", (data) => { finals = Promise.allSettled([finals, this._completed(data)]); });
    relay("reconnecting", (data) => this._reconnecting(data));
    relay("reconnected", () => {
      this.stats.reconnects += 1;
      this._notice("Reconnected", "tts-ok", RECONNECTED_MS);
    });
    relay("error", (data) => {
      if (this._cancelRequested && !data.connection) {
        // What a server without a cancel frame of its own says once it stopped the
        // generation this viewer cancelled (e.g. RedisRelay's error event).
        this._ended({ cancelled: true });
        return;
      }
      this._fail(data.connection ? "Connection lost" : "The generation failed", data.message);
    });
    relay("end", (data) => this._ended(data), () => finals);
  }

  _arrived() {
    this._images += 1;
    const expected = this.expected;
    if (expected) this._progress.style.width = `${(100 * this._images) / (expected + 1)}%`;
    if (this._apiLost) {
      this._apiLost = false;
      this._notice("API connection back", "tts-ok", RECONNECTED_MS);
    }
  }

  async _preview(data) {
    this._arrived();
    const expected = this.expected;
    const number = (data.index ?? 0) + 1;
    this._setStatus(expected ? `Preview ${number} of ${expected}` : `Preview ${number}`);
    const alt = `preview ${number}${expected ? ` of ${expected}` : ""}${this.label ? `: ${this.label}` : ""}`;
    const blur = expected ? 1.5 * Math.max(expected - (data.index ?? 0), 0) : 1.5;
    if (!data.image || !(await this._present(data.image, blur, alt))) return;
    this.stats.previewsShown += 1;
    if (this.stats.firstPreviewAt === null) this.stats.firstPreviewAt = performance.now();
  }

  async _completed(data) {
    const mine = this._run;
    this._arrived();
    this._setStatus("Final image");
    let src = data.image;
    if (!src) return;
    if (src.startsWith("data:")) {  // a blob: URL: cheap to show, and to download
      try {
        src = URL.createObjectURL(await (await fetch(src)).blob());
      } catch { /* the data: URL itself then */ }
      if (mine !== this._run) { if (src.startsWith("blob:")) URL.revokeObjectURL(src); return; }
      if (src.startsWith("blob:")) this._blobUrl = src;
    }
    // Bounded: a final given as a URL that never answers would hold `end` back for as
    // long as the browser's own network timeout.
    const limit = this.finalTimeout;
    const late = AbortSignal.timeout(limit * 1000);
    if (!(await this._present(src, 0, this.label || "the final image", late))) {
      if (mine === this._run) {
        this._fail("The final image could not be shown", late.aborted
          ? `it did not load within ${limit} s.` : "the browser could not decode it.");
      }
      return;
    }
    this._stopClock();
    const img = this._layers[this._front];
    this.stats.finalShown = true;
    this.stats.finalShownAt = performance.now();
    this.stats.finalSize = `${img.naturalWidth}x${img.naturalHeight}`;
    this._frame.dataset.state = "done";
    this._cancelButton.hidden = true;
    this._setStatus("Done");
    const tokens = data.usage && data.usage.total_tokens;
    const parts = [dimensions(this.stats.finalSize)];
    if (tokens) parts.push(`${tokens.toLocaleString("en")} tokens`);
    this._meta.textContent = parts.join(" · ");
    this._elapsed.textContent = `in ${seconds(this.stats.finalShownAt - this._startedAt)}`;
    if (this.stats.firstPreviewAt !== null) {
      this._elapsed.textContent += ` · first preview ${seconds(this.stats.firstPreviewAt - this._startedAt)}`;
    }
    const link = await this._linkFor(src);
    if (mine !== this._run || link === null) return;
    this._download.querySelector("span").textContent = data.bytes ? byteSize(data.bytes) : "";
    this._download.href = link;
    const extension = String(data.output_format || "png").toLowerCase().replace(/[^a-z0-9]/g, "");
    this._download.download = `${slug(this.label)}.${extension.slice(0, 8) || "bin"}`;
    this._download.target = src.startsWith("http") ? "_blank" : "";  // another origin's: opened
    this._download.hidden = false;
  }

  // The download link's URL. A blob: or data: URL has this page's origin when opened:
  // unless it is a raster image, its bytes (an SVG may hold scripts) are linked as
  // application/octet-stream, which a click or a new tab saves, never runs.
  async _linkFor(src) {
    if (!/^(blob|data):/i.test(src)) return src;
    try {
      const blob = await (await fetch(src)).blob();
      if (RASTER.has(blob.type)) return src;
      if (this._linkUrl) URL.revokeObjectURL(this._linkUrl);
      this._linkUrl = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
      return this._linkUrl;
    } catch {
      return null;  // no link rather than one that could run
    }
  }

  _reconnecting(data) {
    if (data.scope === "api") {
      this._apiLost = true;
      this._notice(data.regenerating
        ? `API connection lost · starting over (attempt ${data.attempt})`
        : `API connection lost · resuming (attempt ${data.attempt})`, "tts-warn");
    } else {
      this._notice("Reconnecting…", "tts-warn");
    }
  }

  _ended(data) {
    this._cancelButton.hidden = true;
    if (data.cancelled) {
      this.stats.cancelled = true;
      this._stopClock();
      this._hideNotice();
      this._frame.dataset.state = "cancelled";
      this._setStatus("Cancelled");
    }
    this._live = null;
  }

  // The page's own words in the status line (e.g. before the first generation).
  showStatus(text) {
    this._setStatus(text);
  }

  // Shows an error of the page's own (e.g. "Could not start") the element's way.
  showError(title, text) {
    this._fail(title, text);
  }

  _fail(title, text) {
    this._stopClock();
    this._hideNotice();
    this._cancelButton.hidden = true;
    this._frame.dataset.state = "error";
    this._errorCard.querySelector("strong").textContent = title;
    this._errorCard.querySelector("p").textContent = sentence(text);
    this._errorCard.hidden = false;
    this._status.textContent = "Failed";
    this._status.classList.add("tts-failed");
    this.stats.errors.push(text);
  }

  _setStatus(text) {
    this._status.textContent = text;
    this._status.classList.remove("tts-failed");
  }

  _notice(text, kind, hideAfter = 0) {
    clearTimeout(this._badgeTimer);
    this._badge.textContent = text;
    this._badge.className = `tts-badge ${kind}`;
    this._badge.hidden = false;
    this.stats.notices.push(text);
    if (hideAfter) this._badgeTimer = setTimeout(() => { this._badge.hidden = true; }, hideAfter);
  }

  _hideNotice() {
    clearTimeout(this._badgeTimer);
    this._badge.hidden = true;
  }

  _startClock() {
    this._stopClock();
    this._startedAt = performance.now();
    const tick = () => {
      const text = seconds(performance.now() - this._startedAt);
      this._elapsed.textContent = text;
      const clock = this.querySelector(".tts-clock");  // the big one, before the first preview
      if (clock) clock.textContent = text;
    };
    tick();
    this._ticker = setInterval(tick, 100);
  }

  _stopClock() {
    clearInterval(this._ticker);
    this._ticker = null;
  }

  _stop() {
    this._stopClock();
    clearTimeout(this._badgeTimer);
    if (this._live) this._live.close();
    this._live = null;
  }

  // Gives up the image being loaded underneath, if any: its _present resolves false
  // (Chromium leaves decode() pending when the src is removed, e.g. of a URL that never
  // answers).
  _dropLoading() {
    const drop = this._dropping;
    this._dropping = null;
    if (drop) drop();
  }

  // The new image is decoded on the layer underneath, then crossfades over the old one
  // (and sharpens: previews are drawn slightly blurred, less so as they improve). An
  // image the browser cannot decode is never shown: the last good one stays. When
  // `signal` aborts first, the image being loaded (this one, or one before it still in
  // the way) is given up, and this one is not shown.
  _present(src, blur, alt, signal = null) {
    const mine = this._run;
    const fade = parseFloat(getComputedStyle(this).getPropertyValue("--tts-fade")) || 0;
    const giveUp = () => { if (mine === this._run) this._dropLoading(); };
    signal?.addEventListener("abort", giveUp, { once: true });
    this._shown = this._shown.then(async () => {
      if (mine !== this._run || signal?.aborted) return false;
      const back = this._layers[1 - this._front];
      const old = this._layers[this._front];
      clearTimeout(back.cleanup);
      back.src = src;
      try {
        await new Promise((resolve, reject) => {
          this._dropping = reject;
          back.decode().then(resolve, reject);
        });
      } catch {
        back.removeAttribute("src");
        return false;
      } finally {
        this._dropping = null;
        signal?.removeEventListener("abort", giveUp);
      }
      if (mine !== this._run) return false;
      back.style.setProperty("--blur", `${blur}px`);
      back.alt = alt;
      back.classList.add("tts-shown");
      old.classList.remove("tts-shown");
      this._front = 1 - this._front;
      old.cleanup = setTimeout(() => { old.removeAttribute("src"); old.alt = ""; }, fade + 100);
      this._frame.classList.add("tts-has-image");
      if (this._frame.dataset.state === "waiting") this._frame.dataset.state = "showing";
      return true;
    });
    return this._shown.then((ok) => ok === true && mine === this._run);
  }
}

if (!customElements.get("ttstream-preview")) {
  customElements.define("ttstream-preview", TTStreamPreview);
}
