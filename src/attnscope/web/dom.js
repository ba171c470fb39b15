// Small DOM helpers shared by the shell and the views: elements, tables, selects, the tooltip,
// downloads and the counters tests wait on (document.body.dataset.<name>).
import { format } from "./format.js";

export const $ = (id) => document.getElementById(id);
export const quoted = (s) => JSON.stringify(s);

// A token's text in a bordered chip (no quotes to confuse with CJK punctuation such as "，"):
// spaces, tabs and line breaks shown as ␣ ⇥ ↵, the exact JSON-quoted text in the title.
export function tokenChip(text) {
  const shown = text.replace(/ /g, "␣").replace(/\t/g, "⇥").replace(/\r?\n/g, "↵");
  const chip = el("code", { className: "token-chip", title: quoted(text), dataset: { text } }, shown || "∅");
  if (!text) chip.classList.add("empty");
  return chip;
}

// el("p", {className: "muted", dataset: {x: "1"}, testid: "y"}, "text", node, ...)
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "testid") node.setAttribute("data-testid", value);
    else if (name === "style") Object.assign(node.style, value);
    else node[name] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// A table of text (or DOM node) cells, with an optional header row.
export function table(rows, header) {
  const t = document.createElement("table");
  if (header) {
    const tr = t.createTHead().insertRow();
    header.forEach((h) => tr.append(el("th", {}, h)));
  }
  const body = t.createTBody();
  rows.forEach((cells) => {
    const tr = body.insertRow();
    cells.forEach((c) => {
      const td = tr.insertCell();
      if (c instanceof Node) td.append(c); else td.textContent = c;
    });
  });
  return t;
}

export function fillSelect(select, options, value) {
  select.replaceChildren(...options.map(([v, label]) => new Option(label, String(v))));
  select.value = String(value);
}

export function count(name) {
  document.body.dataset[name] = String(Number(document.body.dataset[name] || 0) + 1);
}

export function download(name, url) {
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

// The one tooltip of the page (fixed position, next to the pointer).
export function showTip(event, ...content) {
  const tip = $("tooltip");
  tip.replaceChildren(...content);
  tip.hidden = false;
  const x = Math.min(event.clientX + 12, window.innerWidth - tip.offsetWidth - 8);
  tip.style.left = `${Math.max(4, x)}px`;
  tip.style.top = `${event.clientY + 16}px`;
}

export function hideTip() {
  $("tooltip").hidden = true;
}

// A colour bar with its end values (in the house number format) and a caption: [low] ▭▭▭ [high] caption
export function scaleLegend(bar, low, high, caption = "") {
  return el("span", { className: "scale", testid: "colour-bar" },
    el("span", { className: "tick", dataset: { value: String(low) } }, format(low)), bar,
    el("span", { className: "tick", dataset: { value: String(high) } }, format(high)),
    caption ? el("span", { className: "muted" }, ` ${caption}`) : null);
}
