// CloudSpend's dashboard: the shell (top bar, tenant switcher, navigation) and the routes.

import { h, clear } from './dom.js';
import { api, session, whenUnauthorized } from './api.js';
import { route, match, navigate, start } from './router.js';
import { errorBox } from './ui.js';
import * as auth from './pages/auth.js';
import * as dashboard from './pages/dashboard.js';
import * as connect from './pages/connect.js';
import * as anomalies from './pages/anomalies.js';
import * as instances from './pages/instances.js';
import * as recommendations from './pages/recommendations.js';
import * as collections from './pages/collections.js';
import * as settings from './pages/settings.js';
import * as admin from './pages/admin.js';
import * as audit from './pages/audit.js';

route('/login', auth.login, { public: true });
route('/signup', auth.signup, { public: true });
route('/logout', auth.logout, { public: true });
route('/forgot-password', auth.forgotPassword, { public: true });
route('/reset-password', auth.resetPassword, { public: true });
route('/accept-invitation', auth.acceptInvitation, { public: true });
route('/', dashboard.page);
route('/connect-aws', connect.page);
route('/anomalies', anomalies.list);
route('/anomalies/:id', anomalies.detail);
route('/instances', instances.list);
route('/instances/:id', instances.detail);
route('/recommendations', recommendations.page);
route('/collections', collections.page);
route('/settings', settings.page);
route('/admin', admin.page);
route('/audit', audit.page);

const NAV = [
  ['/', 'Dashboard'],
  ['/anomalies', 'Anomalies'],
  ['/instances', 'Instances'],
  ['/recommendations', 'Savings'],
  ['/collections', 'Collections'],
  ['/connect-aws', 'Connect AWS'],
  ['/settings', 'Settings'],
];

/** What every page may ask: who is calling and in which tenant. Reloaded on tenant switch. */
export const ctx = { me: null, openAnomalies: null };

whenUnauthorized(() => {
  session.end();
  ctx.me = null;
  const next = location.pathname + location.search;
  navigate(`/login${next && next !== '/' && !next.startsWith('/login') ? `?next=${encodeURIComponent(next)}` : ''}`, { replace: true });
});

let renderCount = 0;

async function render() {
  const current = ++renderCount;
  const main = document.getElementById('main');
  const shell = document.getElementById('shell');
  const found = match(location.pathname);
  if (!found) {
    shell.classList.remove('bare');
    clear(main).append(h('div.empty', h('h1', 'Page not found'), h('p', 'This page does not exist.'), h('a.btn', { href: '/' }, 'Go to the dashboard')));
    return;
  }
  if (found.options.public) {
    shell.classList.add('bare');
    clear(main);
    await found.handler(main, { params: found.params, ctx });
    return;
  }
  if (!session.token) {
    navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    return;
  }
  shell.classList.remove('bare');
  try {
    if (!ctx.me) ctx.me = await api('/api/me');
  } catch (err) {
    if (err.status === 401) return;
    clear(main).append(errorBox(err, { retry: render }));
    return;
  }
  if (current !== renderCount) return;
  if (!ctx.me.current_tenant && ctx.me.tenants.length) {
    session.setTenant(ctx.me.tenants[0].id);
    ctx.me = null;
    return render();
  }
  drawChrome(found);
  clear(main).append(h('p.loading', { role: 'status' }, 'Loading…'));
  const page = h('div.page', { 'data-route': location.pathname });
  try {
    await found.handler(page, { params: found.params, ctx, isCurrent: () => current === renderCount });
  } catch (err) {
    if (err.status === 401) return;
    console.error(err);
    page.append(errorBox(err, { retry: render }));
  }
  if (current !== renderCount) return;
  clear(main).append(page);
  main.focus({ preventScroll: true });
  const anchor = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (anchor) anchor.scrollIntoView({ block: 'start' }); else window.scrollTo(0, 0);
  refreshAnomalyCount();
}

function drawChrome(found) {
  const me = ctx.me;
  const top = clear(document.getElementById('topbar'));
  const nav = clear(document.getElementById('sidebar'));
  const toggle = h('button.btn.btn-quiet.btn-small.menu-toggle', {
    type: 'button', 'aria-expanded': 'false', 'aria-controls': 'sidebar',
    on: { click: () => { const open = nav.classList.toggle('open'); toggle.setAttribute('aria-expanded', String(open)); } },
  }, 'Menu');
  top.append(
    toggle,
    h('a.brand', { href: '/' }, h('img', { src: '/favicon.svg', alt: '' }), 'CloudSpend'),
  );
  if (me.tenants.length > 1) {
    const select = h('select', { id: 'tenant-switcher', on: { change: () => { session.setTenant(select.value); ctx.me = null; ctx.openAnomalies = null; navigate('/'); } } },
      me.tenants.map((t) => h('option', { value: t.id, selected: t.id === me.current_tenant?.id }, `${t.name} (${t.role})`)));
    top.append(h('label', { for: 'tenant-switcher' }, 'Tenant'), select);
  } else if (me.current_tenant) {
    top.append(h('span.who', { 'data-testid': 'tenant-name' }, me.current_tenant.name));
  }
  top.append(h('span.who', me.user.email), h('a.btn.btn-quiet.btn-small', { href: '/logout' }, 'Log out'));

  const items = [...NAV];
  if (['owner', 'admin'].includes(me.current_tenant?.role)) items.push(['/audit', 'Audit log']);
  if (me.user.is_global_owner) items.push(['/admin', 'Admin']);
  const path = location.pathname;
  nav.append(h('ul', items.map(([href, label]) => {
    const active = href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`);
    return h('li', h('a', { href, 'aria-current': active ? 'page' : null },
      h('span', label),
      href === '/anomalies' && ctx.openAnomalies ? h('span.count', { 'aria-label': `${ctx.openAnomalies} open` }, String(ctx.openAnomalies)) : null));
  })));
  nav.classList.remove('open');
  void found;
}

async function refreshAnomalyCount() {
  try {
    const data = await api('/api/anomalies?status=open');
    const count = data.anomalies.length;
    if (count !== ctx.openAnomalies) {
      ctx.openAnomalies = count;
      const link = document.querySelector('#sidebar a[href="/anomalies"]');
      if (link) {
        link.querySelector('.count')?.remove();
        if (count) link.append(h('span.count', { 'aria-label': `${count} open` }, String(count)));
      }
    }
  } catch { /* the anomalies endpoint may not exist on this server yet */ }
}

export function reloadMe() { ctx.me = null; }

start(render);
