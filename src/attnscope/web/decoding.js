// The Generate row's decoding controls: greedy, seeded sampling or beam search, as /api/generate
// settings.
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import "./locales/shell.js";

export function wireDecoding() {
  $("decoding").addEventListener("change", () => {
    $("seed-box").hidden = $("decoding").value !== "sample";
    $("beams-box").hidden = $("decoding").value !== "beams";
  });
}

// The chosen decoding as /api/generate settings (greedy: none); throws on an invalid number.
export function decodingSettings() {
  const mode = $("decoding").value;
  if (mode === "sample") {
    const seed = Number($("seed").value);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(t("shell.seed.invalid"));
    return { do_sample: true, seed };
  }
  if (mode === "beams") {
    const beams = Number($("beams").value);
    if (!Number.isInteger(beams) || beams < 2 || beams > 16) throw new Error(t("shell.beams.invalid"));
    return { num_beams: beams };
  }
  return {};
}
