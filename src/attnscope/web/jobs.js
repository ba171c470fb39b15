// Requests in flight, shown in the busy area. A long request names a progress id: its progress is
// streamed by the server (server-sent events, GET /api/progress/{id}) into a progress bar with the
// stage, and Cancel asks the server to stop it (POST /api/jobs/{id}/cancel); the request then
// answers 409 {"code": "cancelled"}, which becomes a Cancelled error and the status "cancelled".
import { t } from "./i18n.js";
import "./locales/shell.js";

const $ = (id) => document.getElementById(id);
const active = new Map(); // serial -> {id, label, done, total, stage, cancelling, source}
let serial = 0;

export class Cancelled extends Error {}

function jobId() {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `job-${Date.now().toString(36)}-${random[0].toString(36)}${random[1].toString(36)}`;
}

function show() {
  const jobs = [...active.values()];
  const busy = $("busy");
  busy.hidden = jobs.length === 0;
  document.body.dataset.busy = jobs.length ? "1" : "0";
  if (!jobs.length) return;
  const followed = jobs.filter((job) => job.id);
  const job = followed.length ? followed[followed.length - 1] : jobs[jobs.length - 1];
  const bar = $("progress");
  const cancel = $("cancel");
  bar.hidden = !job.id;
  cancel.hidden = followed.length === 0;
  cancel.disabled = followed.every((j) => j.cancelling);
  cancel.textContent = cancel.disabled ? t("shell.cancelling") : t("shell.cancel");
  const stage = (waiting) => (job.stage.startsWith(job.label) ? job.stage : `${job.label}: ${job.stage || waiting}`);
  let text = `${job.label}…`;
  if (job.id && job.total) {
    bar.max = job.total;
    bar.value = job.done;
    text = `${stage(t("shell.job.working"))} — ${t("shell.job.of", { done: job.done, total: job.total })}`;
  } else if (job.id) {
    bar.removeAttribute("value"); // indeterminate until the first report
    text = `${stage(t("shell.job.waiting"))}…`;
  }
  if (jobs.length > 1) text += ` ${t("shell.job.more", { n: jobs.length - 1 })}`;
  $("busy-text").textContent = text;
}

export function setStatus(text) {
  const status = $("job-status");
  status.textContent = text;
  status.hidden = !text;
}

// Runs request(progressId) while the busy area shows `label`; with {progress: true} the request gets
// a progress id (else null), its progress is shown and it can be cancelled; onItems(items) receives
// what the job streams (a generation's tokens) as it comes.
export async function track(label, request, { progress = false, onItems = null } = {}) {
  const key = ++serial;
  const job = { id: progress ? jobId() : null, label, done: 0, total: 0, stage: "", cancelling: false, source: null };
  active.set(key, job);
  setStatus("");
  if (job.id) {
    job.source = new EventSource(`/api/progress/${job.id}`);
    job.source.onmessage = (event) => {
      const state = JSON.parse(event.data);
      Object.assign(job, { done: state.done, total: state.total, stage: state.stage || job.stage });
      if (onItems && state.items && state.items.length) onItems(state.items);
      if (state.finished) job.source.close();
      show();
    };
  }
  show();
  try {
    return await request(job.id);
  } catch (error) {
    if (error && error.code === "cancelled") throw new Cancelled(t("shell.job.cancelled", { label }));
    throw error;
  } finally {
    if (job.source) job.source.close();
    active.delete(key);
    show();
  }
}

export function cancelAll() {
  for (const job of active.values()) {
    if (!job.id || job.cancelling) continue;
    job.cancelling = true;
    fetch(`/api/jobs/${job.id}/cancel`, { method: "POST" }).catch(() => { /* the request answers anyway */ });
  }
  show();
}

$("cancel").addEventListener("click", cancelAll);
