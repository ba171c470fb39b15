// Decodes heatmap tiles off the main thread: [u32 header length][JSON header][uint8 payload]
// -> RGBA pixels (lut: the palette's 256 attention colours, weight 0 to 1, sent with each job) and the header.
// Colour: value / divisor, where the divisor is the map's maximum ("scaled to the map maximum") or
// 1 (raw probability).

self.onmessage = (event) => {
  const { id, buffer, divisor, lut } = event.data;
  const view = new DataView(buffer);
  const headerLength = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
  const [rows, cols] = header.shape;
  const bytes = new Uint8Array(buffer, 4 + headerLength, rows * cols);
  const pixels = new Uint8ClampedArray(rows * cols * 4);
  const unit = header.scale / 255 / (divisor || 1);
  for (let i = 0; i < rows * cols; i++) {
    const v = Math.min(1, bytes[i] * unit);
    const [r, g, b] = lut[Math.round(v * 255)];
    pixels[4 * i] = r;
    pixels[4 * i + 1] = g;
    pixels[4 * i + 2] = b;
    pixels[4 * i + 3] = 255;
  }
  self.postMessage({ id, header, pixels, bytes: buffer.byteLength }, [pixels.buffer]);
};
