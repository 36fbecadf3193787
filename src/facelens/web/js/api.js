// The server's /v1 API: every request with this tab's key, every refusal as an ApiError with
// the server's own words (or plain ones when it said none).

import { askForKey, storedKey } from "./keys.js";

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const PLAIN = {
  0: "The server cannot be reached. Is facelens running?",
  401: "The server needs a valid API key.",
  413: "The photo is too large for this server.",
  429: "Too many requests; wait a moment and try again.",
  503: "The server is busy or starting; try again in a few seconds.",
};

/** The ApiError a refused ``response`` stands for. */
export async function errorOf(response) {
  let code = "http_" + response.status;
  let message = PLAIN[response.status] || `The server answered ${response.status}.`;
  try {
    const body = await response.json();
    const detail = body.error || body;
    if (detail.message) message = detail.message;
    if (detail.code) code = detail.code;
  } catch {
    // not JSON: keep the plain words
  }
  return new ApiError(response.status, code, message);
}

/** fetch, with the key if this tab holds one. */
export function fetchWithKey(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const key = storedKey();
  if (key) headers.set("X-API-Key", key);
  return fetch(path, { ...init, headers });
}

/** One API call: its JSON answer (or a Blob with ``blob``); on a 401 the key is asked for
 * once and the call made again. Options: ``json``, or ``body`` and ``headers``. */
export async function api(method, path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers(options.headers || {});
    let body = options.body;
    if (options.json !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetchWithKey(path, { method, headers, body });
    } catch {
      throw new ApiError(0, "unreachable", PLAIN[0]);
    }
    if (response.status === 401 && attempt === 0 && (await askForKey(true))) continue;
    if (!response.ok) throw await errorOf(response);
    return options.blob ? response.blob() : response.json();
  }
}

/** The path of a person. */
export const person = (name) => "/v1/people/" + encodeURIComponent(name);

/** A photo as the whole request body, of its own type. */
export function imageBody(file) {
  return { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } };
}
