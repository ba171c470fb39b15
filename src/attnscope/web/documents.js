// Documents as input: the "Open a document" button and a file dropped onto the prompt. The file goes
// to POST /api/documents as it is (its name in ?name=); the server answers its text (.txt and .md as
// written, the text layer of a .pdf, the paragraphs and tables of a .docx — attnscope.documents), which
// replaces the prompt; the line beside the button says the file's name and how many characters it gave.
// A refused file (too large, scanned, encrypted, not UTF-8, unknown type) leaves the prompt as it was.
import { ApiError } from "./api.js";
import { $, count } from "./dom.js";
import { onLanguage, strings, t } from "./i18n.js";

strings({
  en: {
    "documents.upload": "Open a document…",
    "documents.upload.title": ".txt, .md, .pdf (its text layer; no OCR) or .docx, at most 8 MB and 1,000,000 characters; or drop a file onto the text box",
    "documents.reading": "reading {name}…",
    "documents.read": "{name}: {chars} characters",
    "documents.read.pages": "{name}: {chars} characters from {pages} pages",
    "documents.failed": "{name}: {detail}",
    "documents.too_large": "{name} is {size} bytes; the limit is {limit}",
  },
  "zh-CN": {
    "documents.upload": "打开文档…",
    "documents.upload.title": "支持 .txt、.md、.pdf（读取文字层，不做 OCR）和 .docx，文件不超过 8 MB、文字不超过 1,000,000 个字符；也可以把文件拖到文本框里",
    "documents.reading": "正在读取 {name}…",
    "documents.read": "{name}：{chars} 个字符",
    "documents.read.pages": "{name}：{chars} 个字符，共 {pages} 页",
    "documents.failed": "{name}：{detail}",
    "documents.too_large": "{name} 有 {size} 字节，上限为 {limit}",
  },
});

export const MAX_DOCUMENT_BYTES = 8_000_000; // attnscope.documents.MAX_DOCUMENT_BYTES (= the request limit)

const number = (n) => n.toLocaleString("en-US");

// The text of `file` (a File or Blob with a name), from the server; throws an ApiError when refused.
export async function readDocument(file) {
  if (file.size > MAX_DOCUMENT_BYTES) { // refused here: the body would be refused unread anyway
    throw new ApiError(t("documents.too_large", { name: file.name, size: number(file.size), limit: number(MAX_DOCUMENT_BYTES) }),
      { status: 413, code: "too_large" });
  }
  const response = await fetch(`/api/documents?name=${encodeURIComponent(file.name)}`, {
    method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(body.detail || `${response.status} ${response.statusText}`, { status: response.status, code: body.code || "" });
  }
  return body;
}

// prompt: the textarea; showError: the page's error line (""; clears it)
export function wireDocuments({ prompt, showError }) {
  const button = $("upload-document");
  const input = $("document-file");
  const status = $("document-status");
  let shown = null; // the last answer: its line is re-worded after a language switch

  const say = () => {
    if (!shown) return;
    const { name, chars, pages } = shown;
    status.textContent = t(pages ? "documents.read.pages" : "documents.read", { name, chars: number(chars), pages });
    status.dataset.chars = String(chars);
    status.dataset.name = name;
    status.hidden = false;
  };

  async function open(file) {
    if (!file) return;
    showError("");
    shown = null;
    status.hidden = false;
    status.textContent = t("documents.reading", { name: file.name });
    delete status.dataset.chars;
    button.disabled = true;
    try {
      const body = await readDocument(file);
      prompt.value = body.text;
      prompt.dispatchEvent(new Event("input", { bubbles: true }));
      shown = body;
      say();
    } catch (error) {
      status.hidden = true;
      showError(error instanceof ApiError && !error.message.includes(file.name)
        ? t("documents.failed", { name: file.name, detail: error.message }) : error.message);
    } finally {
      button.disabled = false;
      input.value = ""; // the same file chosen again is read again
      count("documents"); // lets tests (and other tools) wait
    }
  }

  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => open(input.files[0]));
  prompt.addEventListener("dragover", (event) => {
    if (![...event.dataTransfer.types].includes("Files")) return; // dragged text is the textarea's own business
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    prompt.classList.add("dropping");
  });
  prompt.addEventListener("dragleave", () => prompt.classList.remove("dropping"));
  prompt.addEventListener("drop", (event) => {
    prompt.classList.remove("dropping");
    if (!event.dataTransfer.files.length) return;
    event.preventDefault();
    open(event.dataTransfer.files[0]);
  });
  prompt.addEventListener("input", (event) => { // typing after a document: the line no longer describes the text
    if (shown && event.isTrusted) { shown = null; status.hidden = true; }
  });
  onLanguage(say);
}
