// Requests to the API with the key the person gave (kept in sessionStorage: this tab only, gone when it closes).
const KEY_ITEM = "booknlp-api-key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function savedKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

export function saveKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

export function authHeaders(extra = {}) {
  const key = savedKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

// fetch() with the key; a non-2xx answer becomes an ApiError carrying the service's error code and message.
export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function apiJson(path, options = {}) {
  return (await api(path, options)).json();
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // not the service's error shape (a proxy's page, say): the status line says enough
  }
  return new ApiError(response.status, code, message);
}

// A response saved as a file: fetch() carried the key, which a plain link cannot; the blob: URL lets the
// browser save what was fetched.
export async function saveResponse(response, filename) {
  const url = URL.createObjectURL(await response.blob());
  const link = el("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function show(element, visible) {
  element.hidden = !visible;
}

export function showError(element, error) {
  element.textContent = error ? String(error.message || error) : "";
  show(element, Boolean(error));
}

// An element with text content only: a book's words never become markup.
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
