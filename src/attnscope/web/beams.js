// Beam search as branches under the timeline: every running beam after every step (the answer's
// "beam_tree"), a line from each beam to the beam it continued, the returned sequence in blue and
// finished hypotheses hollow. Steps share the timeline's x positions; hover reads a node out, a
// click chooses its step.
import { $, el } from "./dom.js";
import { format } from "./format.js";
import { PALETTE, css } from "./palette.js";
import { THUMB, backdrop } from "./timeline.js";
import { t } from "./i18n.js";
import "./locales/generation.js";

const LANE = 14; // CSS px per beam rank
const TOP = 14; // room for the caption

export class BeamTree {
  // panel: the Generation (setStep); the canvas and its legend are hidden without a tree
  constructor(panel) {
    this.panel = panel;
    this.tree = null;
    const canvas = $("beam-tree");
    canvas.addEventListener("mousemove", (event) => this.readout(this.nodeAt(event)));
    canvas.addEventListener("click", (event) => {
      const node = this.nodeAt(event);
      if (node) panel.setStep(node.step);
    });
  }

  show(tree) { // the /api/generate answer's beam_tree, or undefined
    this.tree = tree && tree.length ? tree.map((nodes, step) => nodes.map((n) => ({ ...n, step }))) : null;
    this.lanes = this.tree ? Math.max(...this.tree.map((nodes) => Math.max(...nodes.map((n) => n.rank)) + 1)) : 0;
    $("beam-tree").hidden = !this.tree;
    $("beam-legend").hidden = !this.tree;
    $("beam-readout").textContent = "";
    if (!this.tree) return;
    const canvas = $("beam-tree");
    canvas.dataset.steps = String(this.tree.length);
    canvas.dataset.lanes = String(this.lanes);
    canvas.dataset.best = this.tree.map((nodes) => (nodes.find((n) => n.best) || { rank: "" }).rank).join(",");
    $("beam-legend").replaceChildren(
      t("beams.legend"), el("span", { style: { color: css(PALETTE.prediction.rgb) } }, t("beams.blue")), t("beams.legend2"),
    );
  }

  geometry(width) {
    const steps = this.tree.length;
    const x0 = THUMB / 2;
    const x1 = width - THUMB / 2;
    return {
      x: (s) => x0 + (s / Math.max(1, steps - 1)) * (x1 - x0),
      y: (rank) => TOP + rank * LANE + LANE / 2,
    };
  }

  draw(current) {
    if (!this.tree) return;
    const height = TOP + this.lanes * LANE + 4;
    const { ctx, width } = backdrop($("beam-tree"), height, [this.tree], (ctx, width) => this.paint(ctx, width));
    const { x } = this.geometry(width);
    ctx.fillStyle = PALETTE.ink.text;
    ctx.fillRect(Math.round(x(current)) - 1, 0, 2, height);
  }

  paint(ctx, width) {
    const { x, y } = this.geometry(width);
    const blue = css(PALETTE.prediction.rgb);
    const grey = PALETTE.ink.muted;
    const room = this.tree.length > 1 ? x(1) - x(0) : width; // px per step: token labels fit from ~28 px
    const edges = (best) => {
      ctx.strokeStyle = best ? blue : grey;
      ctx.lineWidth = best ? 2.5 : 1;
      ctx.beginPath();
      this.tree.forEach((nodes, s) => {
        for (const n of nodes) {
          if (s === 0 || n.parent === null || n.best !== best) continue;
          ctx.moveTo(x(s - 1), y(n.parent));
          ctx.lineTo(x(s), y(n.rank));
        }
      });
      ctx.stroke();
    };
    edges(false);
    edges(true);
    ctx.lineWidth = 1;
    ctx.textAlign = "left";
    this.tree.forEach((nodes, s) => {
      for (const n of nodes) {
        ctx.fillStyle = ctx.strokeStyle = n.best ? blue : grey;
        ctx.beginPath();
        ctx.arc(x(s), y(n.rank), n.best ? 3.5 : 2.5, 0, 2 * Math.PI);
        if (n.finished) { ctx.fillStyle = "#fff"; ctx.fill(); ctx.stroke(); } else ctx.fill();
        if (room >= 28) {
          const text = n.token.text.replace(/ /g, "␣").replace(/\n/g, "↵");
          ctx.fillStyle = n.best ? blue : PALETTE.ink.text;
          ctx.fillText(text.length > 6 ? `${text.slice(0, 5)}…` : text, x(s) + 5, y(n.rank));
        }
      }
    });
    ctx.fillStyle = PALETTE.ink.muted;
    ctx.textAlign = "left";
    ctx.fillText(t("beams.axis", { last: this.lanes - 1 }), 0, TOP / 2);
  }

  nodeAt(event) { // the node nearest the pointer, within half a lane and half a step
    if (!this.tree) return null;
    const canvas = event.target;
    const box = canvas.getBoundingClientRect();
    const { x, y } = this.geometry(box.width);
    const px = event.clientX - box.left;
    const py = event.clientY - box.top;
    const steps = this.tree.length;
    const s = Math.max(0, Math.min(steps - 1, Math.round(((px - THUMB / 2) / Math.max(1, box.width - THUMB)) * (steps - 1))));
    const rank = Math.round((py - TOP - LANE / 2) / LANE);
    const node = this.tree[s].find((n) => n.rank === rank);
    return node && Math.abs(px - x(s)) <= Math.max(4, (x(1) - x(0)) / 2) && Math.abs(py - y(rank)) <= LANE / 2 ? node : null;
  }

  readout(node) {
    const out = $("beam-readout");
    if (!node) return;
    Object.assign(out.dataset, {
      step: String(node.step), rank: String(node.rank), tokenId: String(node.token.id), logprobCum: String(node.logprob_cum),
    });
    out.textContent = t("beams.readout", { step: node.step, rank: node.rank, returned: node.best ? t("beams.returned") : "",
      finished: node.finished ? t("beams.finished") : "", text: JSON.stringify(node.token.text), logprob: format(node.logprob),
      cumulative: format(node.logprob_cum), parent: node.parent === null ? "" : t("beams.parent", { rank: node.parent, step: node.step - 1 }) });
  }
}
