// Canvas drawing: one pixel per matrix cell, scaled up by CSS; bounded element counts.

const RED = [220, 38, 38];

function colour(value) { // white -> red
  const v = Math.min(1, Math.max(0, value));
  return [255 - (255 - RED[0]) * v, 255 - (255 - RED[1]) * v, 255 - (255 - RED[2]) * v];
}

export function drawHeatmap(canvas, values, rows, cols, { scale = "raw", query = null, highlight = null } = {}) {
  canvas.width = cols;
  canvas.height = rows;
  const cssSize = Math.min(720, Math.max(240, cols * 8));
  canvas.style.width = `${cssSize}px`;
  canvas.style.height = `${Math.round((cssSize * rows) / cols)}px`;
  let max = 0;
  for (const v of values) if (v > max) max = v;
  const divisor = scale === "minmax" && max > 0 ? max : 1;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  for (let i = 0; i < rows * cols; i++) {
    const [r, g, b] = colour(values[i] / divisor);
    image.data[4 * i] = r; image.data[4 * i + 1] = g; image.data[4 * i + 2] = b; image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  ctx.fillStyle = "rgba(37, 99, 235, 0.18)";
  if (query !== null && query >= 0 && query < rows) ctx.fillRect(0, query, cols, 1);
  if (highlight) {
    ctx.fillStyle = "rgba(0, 0, 0, 0.12)";
    ctx.fillRect(0, highlight.row, cols, 1);
    ctx.fillRect(highlight.col, 0, 1, rows);
  }
}

export function drawGridRow(canvas, row, scale = "raw") {
  canvas.width = row.length;
  canvas.height = 1;
  let max = 0;
  for (const v of row) if (v > max) max = v;
  const divisor = scale === "minmax" && max > 0 ? max : 1;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(row.length, 1);
  for (let i = 0; i < row.length; i++) {
    const [r, g, b] = colour(row[i] / divisor);
    image.data[4 * i] = r; image.data[4 * i + 1] = g; image.data[4 * i + 2] = b; image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

const MAX_LINES = 256;

export function drawLines(canvas, queryToken, keyTokens, weights) {
  const rowHeight = 18;
  const shown = Math.min(keyTokens.length, 400);
  const height = Math.max(60, shown * rowHeight + 20);
  const width = 560;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "13px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  const queryY = height / 2;
  ctx.fillStyle = "#1f2328";
  ctx.textAlign = "right";
  ctx.fillText(JSON.stringify(queryToken.text), 150, queryY);
  const order = [...weights.keys()].slice(0, shown).sort((a, b) => weights[b] - weights[a]).slice(0, MAX_LINES);
  for (const k of order) {
    const y = 10 + k * rowHeight + rowHeight / 2;
    ctx.strokeStyle = `rgba(220, 38, 38, ${Math.min(1, 0.1 + weights[k])})`;
    ctx.lineWidth = Math.max(0.5, weights[k] * 12);
    ctx.beginPath();
    ctx.moveTo(158, queryY);
    ctx.bezierCurveTo(280, queryY, 280, y, 392, y);
    ctx.stroke();
  }
  ctx.textAlign = "left";
  for (let k = 0; k < shown; k++) {
    const y = 10 + k * rowHeight + rowHeight / 2;
    ctx.fillStyle = `rgba(220, 38, 38, ${Math.min(1, weights[k])})`;
    ctx.fillRect(398, y - rowHeight / 2 + 2, 150, rowHeight - 4);
    ctx.fillStyle = "#1f2328";
    ctx.fillText(`${k} ${JSON.stringify(keyTokens[k].text)}`, 402, y);
  }
}

// The token view as an image (for PNG export): tokens wrapped into lines, backgrounds by colour.
export function tokensToCanvas(tokens, colours, prediction) {
  const width = 1000, pad = 16, lineHeight = 34;
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = "20px system-ui, 'Noto Sans CJK SC', sans-serif";
  const boxes = [];
  let x = pad, y = pad;
  const place = (label, fill, textColour) => {
    const w = Math.max(6, measure.measureText(label).width + 2);
    if (x + w > width - pad) { x = pad; y += lineHeight; }
    boxes.push({ label, x, y, w, fill, textColour });
    x += w;
  };
  tokens.forEach((t, i) => place(t.text.replace(/\n/g, "↵"), `rgba(220, 38, 38, ${colours[i]})`, "#1f2328"));
  if (prediction) { x += 8; place(`${prediction.token} ${(prediction.prob * 100).toFixed(1)}%`, "rgba(37, 99, 235, 0.15)", "#2563eb"); }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = y + lineHeight + pad;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = measure.font;
  ctx.textBaseline = "top";
  for (const b of boxes) {
    ctx.fillStyle = b.fill;
    ctx.fillRect(b.x, b.y, b.w, lineHeight - 6);
    ctx.fillStyle = b.textColour;
    ctx.fillText(b.label, b.x + 1, b.y + 4);
  }
  return canvas;
}

// All layers x heads rows as one image (for PNG export of the grid view).
export function gridToCanvas(header, values, scale = "raw") {
  const [layers, heads, keys] = header.shape;
  const cellWidth = Math.max(48, keys * 4), cellHeight = 14, gap = 4, labelWidth = 40;
  const canvas = document.createElement("canvas");
  canvas.width = labelWidth + heads * (cellWidth + gap);
  canvas.height = 20 + layers * (cellHeight + gap);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7280";
  for (let h = 0; h < heads; h++) ctx.fillText(`H${h}`, labelWidth + h * (cellWidth + gap), 12);
  const strip = document.createElement("canvas");
  for (let l = 0; l < layers; l++) {
    const y = 20 + l * (cellHeight + gap);
    ctx.fillStyle = "#6b7280";
    ctx.fillText(`L${header.layers[l]}`, 2, y + 11);
    for (let h = 0; h < heads; h++) {
      drawGridRow(strip, values.subarray((l * heads + h) * keys, (l * heads + h + 1) * keys), scale);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(strip, labelWidth + h * (cellWidth + gap), y, cellWidth, cellHeight);
    }
  }
  return canvas;
}
