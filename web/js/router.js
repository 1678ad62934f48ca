// History routing: real paths (/anomalies/…), the server answers index.html for each.

const routes = [];
let renderRoute = () => {};

export function route(pattern, handler, options = {}) {
  const names = [];
  const regex = new RegExp('^' + pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return '([^/]+)'; }) + '/?$');
  routes.push({ regex, names, handler, options });
}

export function match(path) {
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (m) {
      const params = {};
      r.names.forEach((name, i) => { params[name] = decodeURIComponent(m[i + 1]); });
      return { ...r, params };
    }
  }
  return null;
}

export function navigate(path, { replace = false } = {}) {
  if (path === location.pathname + location.search + location.hash) { renderRoute(); return; }
  if (replace) history.replaceState(null, '', path); else history.pushState(null, '', path);
  renderRoute();
}

export function start(render) {
  renderRoute = render;
  window.addEventListener('popstate', () => renderRoute());
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const a = event.target.closest?.('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    if (a.pathname.startsWith('/api/')) return;
    // An in-page anchor (the skip link, a section link) is the browser's job, not a new render.
    if (a.hash && a.pathname === location.pathname && a.search === location.search) return;
    event.preventDefault();
    navigate(a.pathname + a.search + a.hash);
  });
  renderRoute();
}

export function query() {
  return new URLSearchParams(location.search);
}
