// A virtualised token strip: tokens are grouped in blocks of BLOCK; only the blocks near the
// visible part of the scroll box are in the DOM, the rest is two spacers whose heights add up the
// unmounted blocks (measured once mounted, estimated before). So the DOM stays bounded
// (about 1 + 2 x OVERSCAN screens of tokens) whatever the length of the text.

export const BLOCK = 128;
const OVERSCAN = 0.5; // screens above and below the visible one

export function mountVirtualStrip(strip, count, makeNodes, tailNodes) {
  const blocks = Math.ceil(count / BLOCK);
  const heights = new Array(blocks).fill(0);
  let estimate = 0; // px per block before it was measured
  const mounted = new Map(); // block index -> div
  const top = document.createElement("div");
  const bottom = document.createElement("div");
  top.className = "spacer";
  bottom.className = "spacer";
  strip.classList.add("virtual");
  strip.replaceChildren(top, bottom);

  const height = (b) => heights[b] || estimate;

  function build(b) {
    const div = document.createElement("div");
    div.className = "block";
    div.dataset.block = String(b);
    const nodes = [];
    for (let i = b * BLOCK; i < Math.min(count, (b + 1) * BLOCK); i++) nodes.push(...makeNodes(i));
    if (b === blocks - 1) nodes.push(...tailNodes);
    div.append(...nodes);
    return div;
  }

  function update() {
    if (strip.offsetParent === null) return; // hidden (another tab): nothing to measure; mounted when shown
    if (!estimate) { // measure the first block to estimate the others
      const first = build(0);
      strip.insertBefore(first, bottom);
      estimate = Math.max(20, first.offsetHeight);
      heights[0] = first.offsetHeight;
      mounted.set(0, first);
    }
    const view = strip.clientHeight || 600;
    const from = strip.scrollTop - OVERSCAN * view;
    const to = strip.scrollTop + (1 + OVERSCAN) * view;
    let y = 0;
    let first = -1;
    let last = -1;
    for (let b = 0; b < blocks; b++) {
      const h = height(b);
      if (y + h >= from && y <= to) { if (first < 0) first = b; last = b; }
      y += h;
    }
    if (first < 0) { first = 0; last = 0; }
    for (const [b, div] of mounted) {
      if (b < first || b > last) { div.remove(); mounted.delete(b); }
    }
    let anchor = bottom;
    for (let b = last; b >= first; b--) { // insert in order before the following block
      let div = mounted.get(b);
      if (!div) {
        div = build(b);
        mounted.set(b, div);
      }
      if (div.nextSibling !== anchor) strip.insertBefore(div, anchor);
      anchor = div;
    }
    for (let b = first; b <= last; b++) heights[b] = mounted.get(b).offsetHeight || heights[b];
    let above = 0;
    for (let b = 0; b < first; b++) above += height(b);
    let below = 0;
    for (let b = last + 1; b < blocks; b++) below += height(b);
    top.style.height = `${above}px`;
    bottom.style.height = `${below}px`;
    strip.dataset.mountedBlocks = `${first}-${last}`;
  }

  let frame = null;
  const onScroll = () => {
    if (frame !== null) return;
    frame = requestAnimationFrame(() => { frame = null; update(); });
  };
  if (strip._virtualScroll) strip.removeEventListener("scroll", strip._virtualScroll);
  strip._virtualScroll = onScroll;
  strip.addEventListener("scroll", onScroll, { passive: true });
  update();
  return { update };
}

export function unmountVirtualStrip(strip) {
  if (strip._virtualScroll) strip.removeEventListener("scroll", strip._virtualScroll);
  strip._virtualScroll = null;
  strip.classList.remove("virtual");
  delete strip.dataset.mountedBlocks;
}
