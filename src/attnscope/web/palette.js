// The one palette of the page, read from palette.json (the HTML report reads the same file through
// attnscope.render.palette). Importing this module also installs the colour variables of style.css:
// the inks of the light and the dark theme (a stylesheet keyed by <html data-theme>, the system's
// prefers-color-scheme for "system") and the chosen palette's --attention, --positive, --negative.
// ATTENTION, POSITIVE and NEGATIVE are live: setPalette() changes them in place, and PALETTE.ink
// reads the CSS variables when asked, so every canvas drawn after a change takes the new colours.

import { language } from "./i18n.js";

export const PALETTE = await (await fetch(new URL("./palette.json", import.meta.url))).json();

const CHOICES = PALETTE.palettes;
export const PALETTES = Object.keys(CHOICES).filter((name) => typeof CHOICES[name] === "object");
export const THEMES = ["system", "light", "dark"];
const INK = { light: { ...PALETTE.ink, ...extra(0) }, dark: { ...PALETTE.ink_dark, ...extra(1) } };

function extra(which) { // palette.json's ink_extra: {name: [light, dark]}
  return Object.fromEntries(Object.entries(PALETTE.ink_extra).filter(([, v]) => Array.isArray(v)).map(([k, v]) => [k, v[which]]));
}

export const ATTENTION = [...PALETTE.attention.rgb]; // the chosen palette's single colour (lines, outlines)
export const POSITIVE = [...PALETTE.diverging.positive];
export const NEGATIVE = [...PALETTE.diverging.negative];
export const PREDICTION = PALETTE.prediction.rgb;
export const STOPS = PALETTE.sequential.stops;
export const LABELS = PALETTE.labels;

// The inks, read from the CSS variables at the moment they are used (the theme may have changed).
const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim();
const staticInk = PALETTE.ink;
PALETTE.ink = {};
for (const name of Object.keys(staticInk)) {
  Object.defineProperty(PALETTE.ink, name, { enumerable: true, get: () => cssVar(name) || staticInk[name] });
}

const clamp01 = (t) => Math.min(1, Math.max(0, t));
const hexRGB = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

let paletteName = CHOICES.default;
let background = [255, 255, 255]; // the page background now (attention ramps start from it)

function between(stops, t) {
  const x = clamp01(t) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + (stops[i + 1][k] - c) * f));
}

// Sequential colormap (head metrics): t in [0, 1] -> [r, g, b], linear between the stops.
export const sequential = (t) => between(STOPS, t);

// `rgb` drawn at opacity `alpha` over the page background: the colour the eye sees.
export const blend = (rgb, alpha, base = background) => rgb.map((c, k) => Math.round(base[k] + (c - base[k]) * clamp01(alpha)));

// Attention weight w in [0, 1] -> [r, g, b]: the chosen palette's ramp from the page background
// (white in the light theme: the report's colours) or its perceptually uniform stops.
export function attentionRGB(weight) {
  const scheme = CHOICES[paletteName].attention;
  return scheme.stops ? between(scheme.stops, weight) : blend(ATTENTION, weight);
}

// 256 colours of attentionRGB (the tile worker colours bytes with it).
export const attentionLUT = () => Array.from({ length: 256 }, (_, i) => attentionRGB(i / 255));

// A score on the page background: POSITIVE for positive, NEGATIVE for negative, opacity
// |value| / scale (display scaling only). The default palette gives the same string as
// attnscope.render.palette.colour(value, scale).
export function scoreColour(value, scale) {
  if (value === null || value === undefined || !Number.isFinite(value) || !(scale > 0)) return "transparent";
  const [r, g, b] = value >= 0 ? POSITIVE : NEGATIVE;
  return `rgba(${r},${g},${b},${Math.min(1, Math.abs(value) / scale).toFixed(3)})`;
}

export const css = (rgb, alpha = 1) => `rgba(${rgb.join(",")},${alpha})`;

// ---- text on coloured cells: black or white, whichever has the higher WCAG contrast (always ≥ 4.58) ----
const linear = (c) => { const s = c / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; };
export const luminance = ([r, g, b]) => 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
export function contrastRatio(a, b) {
  const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (high + 0.05) / (low + 0.05);
}
export const readableInk = (rgb) => (contrastRatio(rgb, [0, 0, 0]) >= contrastRatio(rgb, [255, 255, 255]) ? "#000000" : "#ffffff");

// Text colour on an attention cell of weight `alpha` (or on `rgb` drawn at `alpha`).
export const inkOnAlpha = (alpha, rgb = null) => readableInk(rgb ? blend(rgb, alpha) : attentionRGB(alpha));

// Text colour on scoreColour(value, scale).
export function inkOnScore(value, scale) {
  if (value === null || value === undefined || !Number.isFinite(value) || !(scale > 0)) return PALETTE.ink.text;
  return readableInk(blend(value >= 0 ? POSITIVE : NEGATIVE, Math.min(1, Math.abs(value) / scale)));
}

// Text colour on a CSS colour "rgba(r,g,b,a)" / "rgb(r,g,b)" drawn over the page ("transparent": the page).
export function inkOnCss(colour) {
  const parts = /rgba?\(([^)]*)\)/.exec(colour || "");
  if (!parts) return readableInk(background);
  const [r, g, b, a = 1] = parts[1].split(",").map(Number);
  return readableInk(blend([r, g, b], a));
}

// Text colour readable on a label colour "#rrggbb".
export const inkOn = (hex) => readableInk(hexRGB(hex));

// A horizontal colour bar: `colourAt(t)` for t from 0 (left) to 1 (right), drawn on a canvas.
export function colourBar(colourAt, width = 160, height = 10) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = 1;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.className = "colour-bar";
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, 1);
  for (let x = 0; x < width; x++) {
    const [r, g, b] = colourAt(x / (width - 1));
    image.data.set([r, g, b, 255], 4 * x);
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

// ---- theme and palette --------------------------------------------------------------------------------
const listeners = [];
export const onColours = (listener) => listeners.push(listener); // after a theme or palette change
const dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

export const theme = () => document.documentElement.dataset.theme || "system";
export const palette = () => paletteName;
// The theme in effect: "light" or "dark" ("system" follows prefers-color-scheme).
export const shownTheme = () => (theme() === "system" ? (dark && dark.matches ? "dark" : "light") : theme());

function changed() {
  background = hexRGB(INK[shownTheme()].background);
  for (const listener of listeners) listener();
}

// The chosen palette's colour `role` in words, in the page's language (palette.json's names):
// "attention" (the whole attention scale), "high" (weight 1), "positive", "negative", "positive_more";
// "ink" is the text colour of the theme shown. Legends take them through t() parameters.
export function colourName(role) {
  const words = role === "ink" ? PALETTE.ink_names : CHOICES[paletteName].names[role];
  if (!words) throw new Error(`unknown colour role ${role}`);
  const text = words[language()] ?? words.en;
  return Array.isArray(text) ? text[shownTheme() === "dark" ? 1 : 0] : text;
}

// Every colour word as t() parameters: {high}, {positive}, …, and {High}, {Positive}, … to begin a sentence.
export function colourWords() {
  const words = {};
  for (const role of ["attention", "high", "positive", "negative", "positive_more", "ink"]) {
    const text = colourName(role);
    const camel = role.replace(/_(\w)/g, (_, c) => c.toUpperCase());
    words[camel] = text;
    words[camel[0].toUpperCase() + camel.slice(1)] = text[0].toUpperCase() + text.slice(1);
  }
  return words;
}

export function setTheme(name) {
  if (!THEMES.includes(name)) throw new Error(`unknown theme ${name}`);
  document.documentElement.dataset.theme = name;
  changed();
}

export function setPalette(name) {
  if (!PALETTES.includes(name)) throw new Error(`unknown palette ${name}`);
  paletteName = name;
  const chosen = CHOICES[name];
  ATTENTION.splice(0, 3, ...(chosen.attention.ramp || chosen.accent));
  POSITIVE.splice(0, 3, ...chosen.positive);
  NEGATIVE.splice(0, 3, ...chosen.negative);
  const root = document.documentElement.style;
  for (const [variable, rgb] of [["attention", ATTENTION], ["positive", POSITIVE], ["negative", NEGATIVE]]) {
    root.setProperty(`--${variable}`, rgb.join(", "));
  }
  changed();
}

const declarations = (ink, scheme) => `color-scheme: ${scheme}; ${Object.entries(ink).map(([k, v]) => `--${k}: ${v};`).join(" ")}`;
const sheet = document.createElement("style");
sheet.id = "theme-inks";
sheet.textContent = `:root { ${declarations(INK.light, "light")} }\n` +
  `:root[data-theme="dark"] { ${declarations(INK.dark, "dark")} }\n` +
  `@media (prefers-color-scheme: dark) { :root:not([data-theme="light"]) { ${declarations(INK.dark, "dark")} } }\n`;
document.head.prepend(sheet); // before style.css, which only reads the variables

const root = document.documentElement.style;
root.setProperty("--prediction", PREDICTION.join(", "));
for (const [name, rgb] of Object.entries(PALETTE.severity)) if (Array.isArray(rgb)) root.setProperty(`--severity-${name}`, rgb.join(", "));
if (dark) dark.addEventListener("change", () => { if (theme() === "system") changed(); });
setPalette(paletteName);
