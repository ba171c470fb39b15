// Talking to the attnscope server: JSON for metadata, compact binary for attention arrays.

export class ApiError extends Error {}

async function checked(response) {
  if (response.ok) return response;
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (_) { /* not JSON */ }
  throw new ApiError(detail);
}

export async function getJSON(url) {
  return (await checked(await fetch(url))).json();
}

export async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await checked(response)).json();
}

function float16ToFloat32(bits) {
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
