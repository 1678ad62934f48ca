// Every tenant on the platform, for the global owner.

import { h } from '../dom.js';
import { get } from '../api.js';
import { dateTime } from '../format.js';
import { pageHead, card, badge, table, csvButton } from '../ui.js';

export async function page(root, { ctx }) {
  root.append(pageHead('Admin: all tenants', { sub: 'Platform-wide view for the global owner.' }));
  if (!ctx.me.user.is_global_owner) {
    root.append(h('div.callout.warn', h('p', 'Only the platform\'s global owner can see this page.')));
    return;
  }
  const { tenants } = await get('/api/admin/tenants');
  const columns = [
    { label: 'Tenant', value: (t) => t.name },
    { label: 'ID', value: (t) => t.id, render: (t) => h('code', t.id) },
    { label: 'Created', value: (t) => dateTime(t.created_at) },
    { label: 'Members', value: (t) => t.members, num: true },
    { label: 'AWS connection', value: (t) => t.connection_status ?? 'not connected', render: (t) => badge(t.connection_status ?? 'not connected', t.connection_status ?? 'not_connected') },
  ];
  root.append(card(`${tenants.length} tenants`, table(columns, tenants, { caption: 'Tenants' }), { actions: [csvButton('cloudspend-tenants.csv', columns, tenants)] }));
}
