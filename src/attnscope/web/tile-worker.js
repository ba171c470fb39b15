// Decodes heatmap tiles off the main thread: [u32 header length][JSON header][uint8 payload]
// -> RGBA pixels (white -> the palette's attention colour, sent with each job) and the header.
// Colour: value / divisor, where the divisor is the map's maximum ("scaled to the map maximum") or
// 1 (raw probability).

self.onmessage = (event) => {
  const { id, buffer, divisor, colour } = event.data;
  const view = new DataView(buffer);
  const headerLength = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLength)));
  const [rows, cols] = header.shape;
  const bytes = new Uint8Array(buffer, 4 + headerLength, rows * cols);
  const pixels = new Uint8ClampedArray(rows * cols * 4);
  const unit = header.scale / 255 / (divisor || 1);
  for (let i = 0; i < rows * cols; i++) {
    const v = Math.min(1, bytes[i] * unit);
    pixels[4 * i] = Math.round(255 - (255 - colour[0]) * v);
    pixels[4 * i + 1] = Math.round(255 - (255 - colour[1]) * v);
    pixels[4 * i + 2] = Math.round(255 - (255 - colour[2]) * v);
    pixels[4 * i + 3] = 255;
  }
  self.postMessage({ id, header, pixels, bytes: buffer.byteLength }, [pixels.buffer]);
};
