// The API client: bearer token and tenant from storage, JSON in and out, errors as ApiError
// carrying the `{"error": {code, message, field}}` body.

const TOKEN_KEY = 'cloudspend.token';
const TENANT_KEY = 'cloudspend.tenant';
const SESSION_KEY = 'cloudspend.session';

export const session = {
  get token() { return localStorage.getItem(TOKEN_KEY); },
  get tenant() { return localStorage.getItem(TENANT_KEY); },
  get info() {
    try { return JSON.parse(localStorage.getItem(SESSION_KEY) || 'null'); } catch { return null; }
  },
  start(reply) {
    localStorage.setItem(TOKEN_KEY, reply.token);
    localStorage.setItem(SESSION_KEY, JSON.stringify({ expires_at: reply.expires_at, email: reply.user?.email, started_at: new Date().toISOString() }));
    if (reply.tenant?.id) localStorage.setItem(TENANT_KEY, reply.tenant.id);
    else localStorage.removeItem(TENANT_KEY);
  },
  setTenant(id) {
    if (id) localStorage.setItem(TENANT_KEY, id); else localStorage.removeItem(TENANT_KEY);
  },
  end() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TENANT_KEY);
    localStorage.removeItem(SESSION_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body, path) {
    const detail = body?.error ?? {};
    super(detail.message || `${path} answered ${status}`);
    this.status = status;
    this.code = detail.code;
    this.field = detail.field;
    this.hint = detail.hint;
    this.awsCode = detail.aws_code;
    this.body = body;
  }
  /** The endpoint does not exist in this server (yet): not the same as "no such item". */
  get missingEndpoint() {
    return this.status === 404 && this.body?.error?.message === 'route not found';
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

function headers(extra = {}) {
  const out = { accept: 'application/json', ...extra };
  if (session.token) out.authorization = `Bearer ${session.token}`;
  if (session.tenant) out['x-tenant-id'] = session.tenant;
  return out;
}

export async function api(path, { method = 'GET', body, signal } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { error: { code: 'network', message: 'CloudSpend did not answer: check your connection and try again' } }, path);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { raw: text }; }
  }
  if (response.status === 401 && !path.startsWith('/api/auth/')) {
    onUnauthorized();
  }
  if (!response.ok) throw new ApiError(response.status, data, path);
  return data;
}

export const get = (path, opts) => api(path, opts);
export const post = (path, body, opts) => api(path, { ...opts, method: 'POST', body: body ?? {} });
export const put = (path, body, opts) => api(path, { ...opts, method: 'PUT', body: body ?? {} });
export const del = (path, body) => api(path, { method: 'DELETE', body });

/** Fetches a file with the bearer token and hands it to the browser as a download. */
export async function downloadFrom(path, filename) {
  const response = await fetch(path, { headers: headers({ accept: 'text/csv' }) });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, body, path);
  }
  saveBlob(await response.blob(), filename);
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
