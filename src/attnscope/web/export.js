// The export menu beside the view: the figure of the view shown, made by the server with matplotlib
// (POST /api/export: PNG at least 1600 px wide, SVG, PDF, with title, axes, colour bar and a provenance
// footer), its numbers (CSV, JSON), and the whole trace as one offline HTML file. The attention views
// are drawn from the trace the server holds at the page's layer, head, query and stack; the token view
// coloured by a method sends that method's answer (the PNG shows the method, not attention); the other
// views send the answer they show. The client-side PNG of the canvas and the page's JSON stay beside it.
import { ApiError } from "./api.js";
import { $, count, download, el } from "./dom.js";
import { language, strings, t } from "./i18n.js";
import { VIEWS } from "./views/index.js";

strings({
  en: {
    "export.menu": "Export…",
    "export.menu.title": "the view as a publication figure (made on the server), its numbers, or an offline HTML page",
    "export.figure": "Figure",
    "export.numbers": "Numbers",
    "export.png": "PNG (≥ 1600 px)",
    "export.svg": "SVG",
    "export.pdf": "PDF",
    "export.csv": "CSV",
    "export.json": "JSON",
    "export.html": "HTML page (offline)",
    "export.none": "analyse a text first",
    "export.dp": "with DP ε set, only the noised token view leaves the page: exports are off",
    "export.empty": "this view shows nothing to export yet",
    "export.running": "exporting {format} …",
    "export.timeline": "Generation timeline",
    "export.steps": "Step attribution",
  },
  "zh-CN": {
    "export.menu": "导出…",
    "export.menu.title": "把当前视图导出为出版用图（服务器绘制）、数值或离线 HTML 页面",
    "export.figure": "图",
    "export.numbers": "数值",
    "export.png": "PNG（≥ 1600 像素）",
    "export.svg": "SVG",
    "export.pdf": "PDF",
    "export.csv": "CSV",
    "export.json": "JSON",
    "export.html": "HTML 页面（离线）",
    "export.none": "请先分析一段文本",
    "export.dp": "已设置差分隐私 ε：只有加噪的词元视图可离开页面，导出已关闭",
    "export.empty": "此视图还没有可导出的内容",
    "export.running": "正在导出 {format} …",
    "export.timeline": "生成时间线",
    "export.steps": "逐步归因",
  },
});

const TRACE_VIEWS = new Set(["tokens", "heatmap", "grid", "model", "lines", "graph", "sankey"]);
const GROUPS = [["export.figure", ["png", "svg", "pdf"]], ["export.numbers", ["csv", "json"]], [null, ["html"]]];

// The request body for the view shown: where its numbers come from and the page's controls.
export function exportBody(state, viewId, format) {
  const result = state.result;
  if (!result) throw new Error(t("export.none"));
  if (result.dp) throw new Error(t("export.dp"));
  const controls = { layer: state.layer, head: state.head, query: state.query, stack: state.stack ?? undefined };
  if (format === "html") return { view: "tokens", format, trace_id: result.trace_id, language: language() };
  if (viewId === "tokens" && state.attribution) {
    return { view: "tokens", format, answer: state.attribution.body, text: state.text };
  }
  const view = VIEWS.find((v) => v.id === viewId);
  const shown = view && view.exportData ? view.exportData() : null;
  if (TRACE_VIEWS.has(viewId)) {
    const data = (shown && shown.data) || {};
    const picked = (names) => Object.fromEntries(names.filter((n) => typeof data[n] === "number").map((n) => [n, data[n]]));
    const options = viewId === "graph" ? picked(["threshold", "max_edges"]) : viewId === "sankey" ? picked(["top", "residual"]) : {};
    return { view: viewId, format, trace_id: result.trace_id, ...controls, method_options: options };
  }
  if (!shown || !shown.data) {
    if (viewId === "metrics") return { view: "metrics", format, trace_id: result.trace_id, stack: controls.stack };
    throw new Error(t("export.empty"));
  }
  return { view: viewId, format, answer: shown.data, text: state.text };
}

// The generation shown (its /api/generate answer), exported as its timeline or step-attribution matrix.
function generationBody(answer, view, format) {
  if (!answer) throw new Error(t("export.empty"));
  if (answer.dp) throw new Error(t("export.dp"));
  return { view, format, answer, text: answer.prompt && answer.generated ? answer.prompt.text + answer.generated.text : undefined };
}

function filename(response, fallback) {
  const header = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : fallback;
}

async function exportView(state, format, fail, generation = null) {
  const viewId = generation ? generation.view : state.view;
  const body = generation ? generationBody(generation.answer, generation.view, format) : exportBody(state, viewId, format);
  const response = await fetch("/api/export", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    throw new ApiError(answer.detail || `${response.status} ${response.statusText}`, { status: response.status, code: answer.code || "" });
  }
  const blob = await response.blob();
  download(filename(response, `attnscope-${viewId}.${format}`), URL.createObjectURL(blob));
}

// Builds the menu inside the shell's export controls. state(): the shell's state; fail(error): shows it;
// generation(): the generation shown (its answer as the server sent it), or null.
export function wireExport({ state, fail, generation = () => null }) {
  const items = el("div", { className: "export-items", role: "menu" });
  const menu = el("details", { className: "export-menu", id: "export-menu", testid: "export-menu" },
    el("summary", { dataset: { i18n: "export.menu", i18nTitle: "export.menu.title" }, title: t("export.menu.title") }, t("export.menu")),
    items);
  for (const [group, formats] of GROUPS) {
    if (group) items.append(el("span", { className: "export-group", dataset: { i18n: group } }, t(group)));
    for (const format of formats) {
      const button = el("button", { type: "button", role: "menuitem", testid: `export-${format}-server`, dataset: { i18n: `export.${format}`, format } },
        t(`export.${format}`));
      button.addEventListener("click", async () => {
        menu.open = false;
        menu.dataset.busy = "1";
        try {
          await exportView(state(), format, fail);
        } catch (error) {
          fail(error);
        } finally {
          delete menu.dataset.busy;
          count("exports");
        }
      });
      items.append(button);
    }
  }
  const generationItems = [];
  for (const [view, group] of [["timeline", "export.timeline"], ["step-attribution", "export.steps"]]) {
    const label = el("span", { className: "export-group", dataset: { i18n: group } }, t(group));
    const buttons = ["png", "pdf", "csv"].map((format) => {
      const button = el("button", { type: "button", role: "menuitem", testid: `export-${view}-${format}`, dataset: { i18n: `export.${format}`, format } },
        t(`export.${format}`));
      button.addEventListener("click", async () => {
        menu.open = false;
        menu.dataset.busy = "1";
        try {
          await exportView(state(), format, fail, { view, answer: generation() });
        } catch (error) {
          fail(error);
        } finally {
          delete menu.dataset.busy;
          count("exports");
        }
      });
      return button;
    });
    generationItems.push({ view, nodes: [label, ...buttons] });
    items.append(label, ...buttons);
  }
  const showGeneration = () => { // only while a generation is shown (step attribution: when it has one)
    const answer = generation();
    for (const { view, nodes } of generationItems) {
      const shown = Boolean(answer) && (view === "timeline" || Boolean(answer.attribution));
      for (const node of nodes) node.hidden = !shown;
    }
  };
  const place = () => { // right-aligned under the button, unless that would leave the window on the left
    if (!menu.open) return;
    const left = menu.getBoundingClientRect().right - items.offsetWidth;
    items.style.left = left < 0 ? "0" : "";
    items.style.right = left < 0 ? "auto" : "";
  };
  menu.addEventListener("toggle", () => { showGeneration(); place(); });
  showGeneration();
  $("export-png").before(menu);
}
