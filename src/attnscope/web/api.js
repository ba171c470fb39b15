// Talking to the attnscope server: JSON for metadata, compact binary for attention arrays.
// Every refusal is {"detail": "<one line>", "code": "<code>"}; it becomes an ApiError with both.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "" } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function checked(response) {
  if (response.ok) return response;
  let detail = `${response.status} ${response.statusText}`;
  let code = "";
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") detail = body.detail;
    if (body && typeof body.code === "string") code = body.code;
  } catch (_) { /* not JSON: keep the status line */ }
  throw new ApiError(detail, { status: response.status, code });
}

export async function getJSON(url) {
  return (await checked(await fetch(url))).json();
}

export async function deleteJSON(url) {
  return (await checked(await fetch(url, { method: "DELETE" }))).json();
}

export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await checked(response)).json();
}

export function float16ToFloat32(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

// [u32 header length][JSON header][payload] -> {header, values: Float32Array}
export async function getArray(url) {
  const buffer = await (await checked(await fetch(url))).arrayBuffer();
  const view = new DataView(buffer);
  const headerLength = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
  const offset = 4 + headerLength;
  const count = header.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  if (header.dtype === "uint8") {
    const bytes = new Uint8Array(buffer, offset, count);
    for (let i = 0; i < count; i++) values[i] = (bytes[i] / 255) * header.scale;
  } else {
    for (let i = 0; i < count; i++) values[i] = float16ToFloat32(view.getUint16(offset + 2 * i, true));
  }
  return { header, values };
}
