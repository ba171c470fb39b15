// The Report button: POST /api/report runs every method on the analysed text (progress and Cancel
// as for any long request) and downloads the zip — report.html, report.json and, with "signed",
// report.intoto.json signed with the server's key (attnscope verify checks it anywhere). With DP ε
// set, every method's scores in the report are noised (the report says so at its top).
import { ApiError } from "./api.js";
import { $, count, download } from "./dom.js";
import { track } from "./jobs.js";
import { language, t } from "./i18n.js";
import "./locales/shell.js";

// objective(): the method controls' {objective, target} (objective.js), which the report uses and states
export function wireReport({ text, privacy, fail, objective = () => ({}) }) {
  $("report").addEventListener("click", async () => {
    const body = text();
    if (!body) return;
    $("report").disabled = true;
    try {
      const dp = privacy();
      const explained = objective();
      const blob = await track(t("shell.report.job"), async (id) => {
        const response = await fetch("/api/report", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ text: body, sign: $("report-sign").checked, progress_id: id, language: language(), ...explained, ...dp }),
        });
        if (!response.ok) {
          const answer = await response.json().catch(() => ({}));
          throw new ApiError(answer.detail || `${response.status} ${response.statusText}`,
            { status: response.status, code: answer.code || "" });
        }
        return response.blob();
      }, { progress: true });
      download("attnscope-report.zip", URL.createObjectURL(blob));
    } catch (error) {
      fail(error);
    } finally {
      $("report").disabled = false;
      count("reports");
    }
  });
}
