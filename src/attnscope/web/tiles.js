// A zoomable, pannable heatmap of a long attention map, drawn from 256x256 tiles.
// Level 0 tiles are the weights; a level-l tile covers 256·2^l tokens per side, each pixel the max
// of its 2^l x 2^l block (server side). Only the visible tiles of the level that matches the zoom
// are fetched (uint8, decoded to pixels in a Web Worker); coarser cached tiles fill in meanwhile.
// The canvas is at most 4096 device pixels wide or high.

import { PALETTE, PREDICTION, attentionLUT, css } from "./palette.js";

const TILE = 256;
const MAX_CANVAS = 4096;
const MAX_BITMAPS = 240; // client-side tile cache (LRU)
const REQUEST_DELAY = 80; // ms
const MAX_WAIT = 250; // ms

export class TiledHeatmap {
  constructor(canvas, { onHover, onClick }) {
    this.canvas = canvas;
    this.onHover = onHover;
    this.onClick = onClick;
    this.active = false;
    this.bitmaps = new Map(); // key -> ImageBitmap (insertion order = LRU order)
    this.inflight = new Set();
    this.bytes = 0; // bytes fetched since open()
    this.worker = new Worker("/static/tile-worker.js");
    this.jobs = new Map();
    this.nextJob = 0;
    this.worker.onmessage = (event) => {
      const job = this.jobs.get(event.data.id);
      this.jobs.delete(event.data.id);
      if (job) job(event.data);
    };
    this.frame = null;
    this.wanted = new Map();
    this.requestTimer = null;
    this.firstWant = null;
    this.wire();
  }

  // pyramid: /api/traces/{id}/pyramid answer; base: tile URL prefix (with layer, head, stack)
  open({ base, pyramid, divisor, query, width, height = null }) {
    this.active = true;
    this.base = base;
    this.p = pyramid;
    this.divisor = divisor;
    this.query = query;
    this.generation = (this.generation || 0) + 1;
    this.bitmaps.clear();
    this.inflight.clear();
    this.wanted = new Map();
    this.bytes = 0;
    const [rows, cols] = pyramid.shape;
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = Math.min(width, Math.floor(MAX_CANVAS / ratio));
    const cssHeight = Math.min(height ?? Math.round(cssWidth * 0.8), Math.floor(MAX_CANVAS / ratio));
    this.css = { width: cssWidth, height: cssHeight };
    this.canvas.width = Math.round(cssWidth * ratio);
    this.canvas.height = Math.round(cssHeight * ratio);
    this.canvas.style.width = `${cssWidth}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.ratio = ratio;
    this.fitScale = Math.min(cssWidth / cols, cssHeight / rows);
    this.scale = this.fitScale; // CSS pixels per token
    this.ox = 0; // token at the left edge
    this.oy = 0; // token at the top edge
    this.request(pyramid.levels - 1, 0, 0); // the overview: the background while finer tiles load
    this.schedule();
  }

  close() { this.active = false; }

  // The finest level whose tile pixels are not denser than screen pixels: a screenful of tiles is
  // about a screenful of bytes (uint8), whatever the zoom.
  level() {
    const tokensPerPixel = 1 / (this.scale * this.ratio);
    const level = Math.ceil(Math.log2(Math.max(1, tokensPerPixel)) - 1e-9);
    return Math.max(0, Math.min(this.p.levels - 1, level));
  }

  visible(level) {
    const span = TILE << level;
    const [rows, cols] = this.p.shape;
    const x0 = Math.max(0, Math.floor(this.ox / span));
    const y0 = Math.max(0, Math.floor(this.oy / span));
    const x1 = Math.min(Math.ceil(cols / span) - 1, Math.floor((this.ox + this.css.width / this.scale) / span));
    const y1 = Math.min(Math.ceil(rows / span) - 1, Math.floor((this.oy + this.css.height / this.scale) / span));
    const tiles = [];
    for (let ty = y0; ty <= y1; ty++) for (let tx = x0; tx <= x1; tx++) tiles.push([ty, tx]);
    return tiles;
  }

  schedule() {
    if (this.frame !== null) return;
    this.frame = requestAnimationFrame(() => { this.frame = null; this.draw(); });
  }

  draw() {
    if (!this.active) return;
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = PALETTE.ink.background;
    ctx.fillRect(0, 0, this.css.width, this.css.height);
    const wanted = this.level();
    let missing = 0;
    for (let level = this.p.levels - 1; level >= wanted; level--) { // coarse first, finer on top
      const span = TILE << level;
      for (const [ty, tx] of this.visible(level)) {
        const bitmap = this.bitmaps.get(`${level}/${ty}/${tx}`);
        if (!bitmap) {
          if (level === wanted) { missing++; this.want(level, ty, tx); }
          continue;
        }
        const x = (tx * span - this.ox) * this.scale;
        const y = (ty * span - this.oy) * this.scale;
        const factor = 1 << level;
        ctx.drawImage(bitmap, x, y, bitmap.width * factor * this.scale, bitmap.height * factor * this.scale);
      }
    }
    // marks drawn around cells, never over them: every cell keeps the colour of its weight
    if (this.query !== null && this.query >= 0) { // the query row: a line above and one below
      const top = (this.query - this.oy) * this.scale;
      ctx.strokeStyle = css(PREDICTION);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (const y of [top - 1, top + Math.max(1, this.scale) + 1]) { ctx.moveTo(0, y); ctx.lineTo(this.css.width, y); }
      ctx.stroke();
    }
    if (this.hover) { // the hovered cell: a box around it (at least 7 px)
      const size = Math.max(7, this.scale);
      const x = (this.hover.col - this.ox + 0.5) * this.scale - size / 2;
      const y = (this.hover.row - this.oy + 0.5) * this.scale - size / 2;
      ctx.strokeStyle = "rgba(0, 0, 0, 0.7)";
      ctx.lineWidth = 1;
      ctx.strokeRect(x - 1, y - 1, size + 2, size + 2);
    }
    const data = this.canvas.dataset;
    data.level = String(wanted);
    data.tiles = String(this.bitmaps.size);
    data.missing = String(missing);
    data.bytes = String(this.bytes);
    data.scale = String(this.scale);
  }

  // Tiles are asked for once the view has settled (REQUEST_DELAY ms without a change), so a fast
  // zoom through several levels fetches only the tiles of where it stops.
  // A continuous gesture still gets its tiles every MAX_WAIT ms.
  want(level, ty, tx) {
    this.wanted.set(`${level}/${ty}/${tx}`, [level, ty, tx]);
    const now = performance.now();
    if (this.firstWant === null) this.firstWant = now;
    clearTimeout(this.requestTimer);
    const delay = Math.max(0, Math.min(REQUEST_DELAY, this.firstWant + MAX_WAIT - now));
    this.requestTimer = setTimeout(() => {
      this.firstWant = null;
      const level0 = this.level();
      const visible = new Set(this.visible(level0).map(([y, x]) => `${level0}/${y}/${x}`));
      const list = [...this.wanted.values()];
      this.wanted.clear();
      for (const [l, y, x] of list) if (visible.has(`${l}/${y}/${x}`)) this.request(l, y, x);
    }, delay);
  }

  request(level, ty, tx) {
    const key = `${level}/${ty}/${tx}`;
    if (this.inflight.has(key) || this.bitmaps.has(key)) return;
    this.inflight.add(key);
    const generation = this.generation;
    fetch(`${this.base}&level=${level}&ty=${ty}&tx=${tx}`)
      .then((response) => {
        if (!response.ok) throw new Error(`tile ${key}: ${response.status}`);
        return response.arrayBuffer();
      })
      .then((buffer) => new Promise((resolve) => {
        const id = this.nextJob++;
        this.jobs.set(id, resolve);
        this.worker.postMessage({ id, buffer, divisor: this.divisor, lut: attentionLUT() }, [buffer]);
      }))
      .then(({ header, pixels, bytes }) => {
        const [rows, cols] = header.shape;
        return createImageBitmap(new ImageData(pixels, cols, rows)).then((bitmap) => ({ bitmap, bytes }));
      })
      .then(({ bitmap, bytes }) => {
        if (generation !== this.generation) return;
        this.bytes += bytes;
        this.bitmaps.set(key, bitmap);
        while (this.bitmaps.size > MAX_BITMAPS) {
          const oldest = this.bitmaps.keys().next().value;
          if (oldest.startsWith(`${this.p.levels - 1}/`)) { // keep the overview
            const bitmap = this.bitmaps.get(oldest);
            this.bitmaps.delete(oldest);
            this.bitmaps.set(oldest, bitmap);
            continue;
          }
          this.bitmaps.delete(oldest);
        }
        this.schedule();
      })
      .catch(() => { /* a failed tile stays blank; the next draw retries */ })
      .finally(() => this.inflight.delete(key));
  }

  cell(event) {
    const rect = this.canvas.getBoundingClientRect();
    const col = Math.floor(this.ox + (event.clientX - rect.left) / this.scale);
    const row = Math.floor(this.oy + (event.clientY - rect.top) / this.scale);
    const [rows, cols] = this.p.shape;
    if (row < 0 || col < 0 || row >= rows || col >= cols) return null;
    return { row, col };
  }

  clamp() {
    const [rows, cols] = this.p.shape;
    this.scale = Math.max(this.fitScale, Math.min(32, this.scale));
    this.ox = Math.max(0, Math.min(this.ox, cols - this.css.width / this.scale));
    this.oy = Math.max(0, Math.min(this.oy, rows - this.css.height / this.scale));
  }

  zoomAt(clientX, clientY, factor) {
    const rect = this.canvas.getBoundingClientRect();
    const px = clientX - rect.left;
    const py = clientY - rect.top;
    const tokenX = this.ox + px / this.scale;
    const tokenY = this.oy + py / this.scale;
    this.scale *= factor;
    this.clamp();
    this.ox = tokenX - px / this.scale;
    this.oy = tokenY - py / this.scale;
    this.clamp();
    this.schedule();
  }

  panBy(dx, dy) {
    this.ox -= dx / this.scale;
    this.oy -= dy / this.scale;
    this.clamp();
    this.schedule();
  }

  wire() {
    const canvas = this.canvas;
    canvas.addEventListener("wheel", (event) => {
      if (!this.active) return;
      event.preventDefault();
      this.zoomAt(event.clientX, event.clientY, Math.pow(1.0015, -event.deltaY));
    }, { passive: false });
    let drag = null;
    canvas.addEventListener("mousedown", (event) => {
      if (!this.active) return;
      drag = { x: event.clientX, y: event.clientY, moved: 0 };
    });
    window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
    canvas.addEventListener("mousemove", (event) => {
      if (!this.active) return;
      if (drag && event.buttons) {
        const dx = event.clientX - drag.x;
        const dy = event.clientY - drag.y;
        drag.moved += Math.abs(dx) + Math.abs(dy);
        drag.x = event.clientX;
        drag.y = event.clientY;
        this.panBy(dx, dy);
        return;
      }
      const cell = this.cell(event);
      this.hover = cell;
      this.schedule();
      if (cell) this.onHover(cell);
    });
    canvas.addEventListener("click", (event) => {
      if (!this.active || (drag && drag.moved > 3)) return;
      const cell = this.cell(event);
      if (cell) this.onClick(cell);
    });
  }
}
