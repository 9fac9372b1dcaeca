// The query API from the browser: the token (if any) from localStorage, errors as ApiError with the server's reason.

const TOKEN_KEY = "fnscope.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function apiUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(one));
  }
  return url;
}

async function failure(resp) {
  if (resp.status === 401) {
    askForToken();
    return new ApiError(401, "this fnscope needs a token");
  }
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body.detail !== undefined) message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(resp.status, message);
}

export async function api(path, params = {}, { signal } = {}) {
  const resp = await fetch(apiUrl(path, params), { headers: headers(), signal });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

// A change (POST, DELETE) with a JSON body; the answer's JSON, or an ApiError with the server's reason.
export async function apiSend(method, path, body) {
  const init = { method, headers: { ...headers(), "Content-Type": "application/json" } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(apiUrl(path), init);
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

// An NDJSON stream (the live tail): yields each object; blank lines are the server's heartbeats.
export async function* ndjson(path, params, signal) {
  const resp = await fetch(apiUrl(path, params), { headers: headers(), signal });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    const lines = buffered.split("\n");
    buffered = lines.pop();
    for (const line of lines) if (line.trim()) yield JSON.parse(line);
  }
}

let asking = false;

export function askForToken() {
  const dialog = document.getElementById("token-dialog");
  if (asking || !dialog) return;
  asking = true;
  const form = document.getElementById("token-form");
  form.addEventListener(
    "submit",
    () => {
      localStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
      asking = false;
      window.dispatchEvent(new Event("fnscope:token"));
    },
    { once: true },
  );
  dialog.showModal();
}
