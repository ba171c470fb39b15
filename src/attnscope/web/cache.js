// Client-side caches of server answers. Every entry is keyed by the model's fingerprint (from
// /api/model or the answer's own "model" block), the text and the options of the request, so an
// answer is never shown for another model, text or option. Entries hold promises: a second request
// for the same key while the first runs waits for it instead of asking again.

const canonical = (value) => JSON.stringify(value, (_, v) => (
  v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));

export function cacheKey(fingerprint, text, options = {}) {
  return { fingerprint: fingerprint || "", text, options: canonical(options) };
}

export function sameKey(a, b) {
  return Boolean(a && b) && a.fingerprint === b.fingerprint && a.text === b.text && a.options === b.options;
}

export class Cache {
  constructor(limit = 8) {
    this.limit = limit;
    this.entries = []; // [{key, value, resolved}], most recent last
  }

  get(key) {
    const entry = this.entries.find((e) => sameKey(e.key, key));
    return entry ? entry.value : undefined;
  }

  // The answer for `key` when it has arrived (undefined while it is computed or when there is none).
  peek(key) {
    const entry = this.entries.find((e) => sameKey(e.key, key));
    return entry ? entry.resolved : undefined;
  }

  set(key, value) {
    this.delete(key);
    const entry = { key, value, resolved: value instanceof Promise ? undefined : value };
    if (value instanceof Promise) value.then((answer) => { entry.resolved = answer; }, () => {});
    this.entries.push(entry);
    while (this.entries.length > this.limit) this.entries.shift();
  }

  delete(key) {
    this.entries = this.entries.filter((e) => !sameKey(e.key, key));
  }

  // The answer for `key`, from the cache or from request(); an answer computed by another model
  // than the key's (the server switched models meanwhile) is filed under its own fingerprint.
  fetch(key, request) {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const promise = request().then((answer) => {
      const fingerprint = answer && answer.model && answer.model.fingerprint;
      if (fingerprint && fingerprint !== key.fingerprint) {
        this.delete(key);
        this.set({ ...key, fingerprint }, Promise.resolve(answer));
      }
      return answer;
    });
    this.set(key, promise);
    promise.catch(() => this.delete(key));
    return promise;
  }
}
