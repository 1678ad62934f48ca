// A modal dialog on the native <dialog> element: showModal() makes the rest of the page inert
// and traps focus, Escape closes it (the `cancel` event), and focus goes back to whatever
// opened it. The body is replaced as a flow moves on (ask → confirm → done), and the heading
// names the dialog for screen readers.

import { h, clear } from './dom.js';

let counter = 0;

/**
 * Opens a dialog. Returns {el, body, setTitle, setBody, close, closed} where `closed` resolves
 * when it closes (button, Escape or close()). `onClose` runs once, after it closed.
 */
export function openDialog(title, { onClose, testid, describedBy = true } = {}) {
  const id = `dialog-${++counter}`;
  const opener = document.activeElement;
  const heading = h('h2', { id: `${id}-title` }, title);
  const body = h('div.dialog-body', { id: `${id}-body` });
  const closeButton = h('button.btn.btn-quiet.btn-small.dialog-x', { type: 'button', 'aria-label': 'Close' }, '×');
  const el = h('dialog.dialog', {
    'aria-labelledby': `${id}-title`,
    'aria-describedby': describedBy ? `${id}-body` : null,
    'data-testid': testid,
  }, h('div.dialog-head', heading, closeButton), body);
  let resolveClosed;
  const closed = new Promise((resolve) => { resolveClosed = resolve; });
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    el.remove();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    else document.getElementById('main')?.focus({ preventScroll: true });
    onClose?.();
    resolveClosed();
  };
  closeButton.addEventListener('click', () => el.close());
  el.addEventListener('close', finish);
  // A click on the backdrop (the dialog element itself, outside its box) closes it too.
  el.addEventListener('click', (event) => {
    if (event.target !== el) return;
    const r = el.getBoundingClientRect();
    const inside = event.clientX >= r.left && event.clientX <= r.right && event.clientY >= r.top && event.clientY <= r.bottom;
    if (!inside) el.close();
  });
  document.body.append(el);
  el.showModal();

  const api = {
    el,
    body,
    closed,
    setTitle(text) { heading.textContent = text; },
    /** Replaces the body; focuses the element marked data-autofocus, else the first control. */
    setBody(...children) {
      clear(body).append(...children.flat().filter(Boolean));
      const target = body.querySelector('[data-autofocus]:not([disabled])') || body.querySelector('button:not([disabled]), [href], input, select, textarea');
      (target || closeButton).focus();
    },
    close() { if (el.open) el.close(); else finish(); },
  };
  return api;
}

/** The footer row of dialog buttons. */
export function dialogActions(...buttons) {
  return h('div.dialog-actions', ...buttons);
}
