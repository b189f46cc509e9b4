// The pola desk's page (crates/desk/PROTOCOL.md, section 3).
//
// Everything on screen is built with document.createElement and
// textContent: no string from an app, a package or the server is ever
// parsed as markup. The page is served at /d/TOKEN/ and every URL below
// is relative to it. The Content-Security-Policy forbids inline script
// and style, so this file and desk.css are all there is.
'use strict';

(() => {
  // ---------------------------------------------------------------- helpers

  /** Makes an element: `props` sets properties (className, type, ...),
   * `on` event handlers, `data` dataset entries; children are nodes or
   * strings (as text). */
  function h(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === 'on') {
          for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
        } else if (k === 'data') {
          for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv);
        } else if (k === 'attrs') {
          for (const [ak, av] of Object.entries(v)) e.setAttribute(ak, String(av));
        } else {
          e[k] = v;
        }
      }
    }
    append(e, children);
    return e;
  }

  function append(parent, children) {
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      parent.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
  }

  const $ = (id) => document.getElementById(id);

  /** An error whose message is fit to show a person. */
  class DeskError extends Error {}

  async function readError(res) {
    const type = res.headers.get('content-type') || '';
    try {
      if (type.includes('json')) {
        const j = await res.json();
        if (j && typeof j.error === 'string') return j.error;
      } else {
        const t = (await res.text()).trim();
        if (t) return t;
      }
    } catch (_) {
      // fall through to the generic words
    }
    return `the desk answered ${res.status}`;
  }

  /** Calls the desk's API: GET when `body` is undefined, else POST JSON. */
  async function api(path, body) {
    let res;
    try {
      res = await fetch(path, body === undefined
        ? { cache: 'no-store' }
        : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    } catch (_) {
      throw new DeskError('Cannot reach the desk. Is it still running?');
    }
    if (!res.ok) throw new DeskError(await readError(res));
    try {
      return await res.json();
    } catch (_) {
      throw new DeskError('The desk sent an answer the page cannot read.');
    }
  }

  function when(ms) {
    if (ms === null || ms === undefined) return 'never';
    const d = new Date(ms);
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  }

  function sizeWords(n) {
    if (typeof n !== 'number') return '';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function joinPath(dir, name) {
    return dir ? `${dir}/${name}` : name;
  }

  let noticeTimer = 0;
  /** Shows a plain-words message under the top bar. */
  function notice(text, kind) {
    const n = $('notice');
    n.textContent = text;
    n.className = kind || 'error';
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 8000);
  }

  /** Desktop icons by app id, reused across redraws: the desk serves
   * icons with no-store, so a new element would fetch it again. */
  const iconCache = new Map();

  function iconFor(app, size) {
    if (app && app.icon) {
      const key = `${app.id}/${size}`;
      if (size === 48 && iconCache.has(key)) return iconCache.get(key);
      const img = h('img', { className: `app-icon-img s${size}`, src: `api/icons/${encodeURIComponent(app.id)}`, alt: '', draggable: false });
      if (size === 48) iconCache.set(key, img);
      return img;
    }
    const letter = app && app.pet ? Array.from(app.pet)[0].toUpperCase() : '?';
    return h('span', { className: `app-icon-img s${size} letter`, attrs: { 'aria-hidden': 'true' } }, letter);
  }

  // ------------------------------------------------------------ the state

  const desk = {
    apps: [],
    windows: new Map(), // WID -> Win
    documents: '',
  };

  function appById(id) {
    return desk.apps.find((a) => a.id === id);
  }

  let refreshing = null;
  let refreshAgain = false;
  /** Fetches api/state and redraws; calls that arrive meanwhile coalesce. */
  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      try {
        do {
          refreshAgain = false;
          const s = await api('api/state');
          applyState(s);
        } while (refreshAgain);
      } catch (e) {
        notice(e.message);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  function applyState(s) {
    // Built-in apps (the browser) first, then the installed ones.
    desk.apps = [...(Array.isArray(s.builtin) ? s.builtin : []), ...(Array.isArray(s.apps) ? s.apps : [])];
    desk.documents = typeof s.documents === 'string' ? s.documents : '';
    drawIcons();
    const seen = new Set();
    for (const w of Array.isArray(s.windows) ? s.windows : []) {
      const id = String(w.id);
      seen.add(id);
      let win = desk.windows.get(id);
      if (!win) {
        win = new Win(id, w.app);
        desk.windows.set(id, win);
      }
      win.update(w);
    }
    for (const [id, win] of desk.windows) {
      if (!seen.has(id)) {
        win.remove();
        desk.windows.delete(id);
      }
    }
    $('no-windows').hidden = desk.windows.size > 0;
    if (info && !appById(info.app)) closeDialog();
    for (const fn of onChanged) fn();
  }

  /** Things (open dialogs) that want to know when the desk changed. */
  const onChanged = new Set();

  // ------------------------------------------------------------ app icons

  function drawIcons() {
    const list = $('app-icons');
    clear(list);
    const ids = new Set(desk.apps.map((a) => `${a.id}/48`));
    for (const k of iconCache.keys()) if (!ids.has(k)) iconCache.delete(k);
    if (desk.apps.length === 0) {
      list.append(h('li', { className: 'hint' }, 'No apps yet: install one with “Install app…”.'));
    }
    for (const app of desk.apps) {
      const busy = opening.has(app.id);
      list.append(h('li', { className: 'app', data: { app: app.id } },
        h('button', {
          type: 'button',
          className: 'launch' + (app.running ? ' running' : '') + (busy ? ' opening' : ''),
          title: app.running ? `${app.pet} (open)` : `Open ${app.pet}`,
          attrs: { 'aria-busy': String(busy) },
          on: { click: () => launch(app.id) },
        }, iconFor(app, 48), h('span', { className: 'pet' }, app.pet),
        busy ? h('span', { className: 'opening-words' }, 'Opening…') : null),
        h('button', {
          type: 'button',
          className: 'info-button',
          title: `About ${app.pet}: what it holds`,
          attrs: { 'aria-label': `About ${app.pet}` },
          on: { click: () => showInfo(app.id) },
        }, 'i')));
    }
  }

  /** Apps being launched (their icons say so until the window is up). */
  const opening = new Set();

  async function launch(appId) {
    const app = appById(appId);
    if (app && app.running && desk.windows.has(String(app.running))) {
      desk.windows.get(String(app.running)).flash();
      return;
    }
    if (opening.has(appId)) return;
    opening.add(appId);
    drawIcons();
    try {
      const r = await api(`api/apps/${encodeURIComponent(appId)}/launch`, {});
      opening.delete(appId);
      await refresh();
      const win = desk.windows.get(String(r.window));
      if (win) win.flash();
    } catch (e) {
      notice(`Could not open ${app ? app.pet : 'the app'}: ${e.message}`);
    } finally {
      if (opening.delete(appId)) drawIcons();
    }
  }

  // --------------------------------------------------------------- windows

  /** A window of a running app: a frame drawn by the desk (icon, pet
   * name, close button, the powerbox's prompts) around the app's pane. */
  class Win {
    constructor(id, app) {
      this.id = id;
      this.app = app;
      this.seq = -1;
      this.promptId = null;
      this.answered = new Set();
      this.queue = Promise.resolve();
      this.title = h('span', { className: 'title' });
      this.iconSlot = h('span', { className: 'title-icon' });
      this.status = h('div', { className: 'window-status', attrs: { role: 'status' } });
      this.promptArea = h('div', { className: 'prompt-area' });
      this.stoppedArea = h('div', { className: 'stopped-area', attrs: { role: 'alert' } });
      this.pane = h('div', { className: 'pane', data: { window: id } });
      this.chrome = h('div', { className: 'browser-chrome', hidden: true });
      this.frame = h('section', { className: 'window', data: { window: id, app }, attrs: { 'aria-label': 'window' } },
        h('header', { className: 'titlebar' },
          this.iconSlot, this.title,
          h('button', {
            type: 'button', className: 'title-button', title: 'What this app holds',
            attrs: { 'aria-label': 'About this app' }, on: { click: () => showInfo(this.app) },
          }, 'i'),
          h('button', {
            type: 'button', className: 'title-button close', title: 'Close (takes back what it was given)',
            attrs: { 'aria-label': 'Close' }, on: { click: () => this.close() },
          }, '×')),
        this.chrome,
        this.promptArea,
        this.stoppedArea,
        this.pane,
        this.status);
      this.frame.addEventListener('dragover', (ev) => this.dragOver(ev));
      this.frame.addEventListener('dragleave', (ev) => {
        if (!this.frame.contains(ev.relatedTarget)) this.frame.classList.remove('drop-target');
      });
      this.frame.addEventListener('drop', (ev) => this.dropped(ev));
      // The pane's own events: clicks on buttons and links, input changes.
      this.pane.addEventListener('click', (ev) => this.clicked(ev));
      this.pane.addEventListener('change', (ev) => this.changed(ev.target));
      this.pane.addEventListener('keydown', (ev) => this.key(ev));
      $('windows').append(this.frame);
    }

    update(w) {
      this.app = w.app;
      this.frame.dataset.app = w.app;
      const pet = typeof w.pet === 'string' ? w.pet : '(uninstalled app)';
      if (this.title.textContent !== pet) this.title.textContent = pet;
      this.frame.setAttribute('aria-label', `${pet} window`);
      const app = appById(w.app);
      const iconKey = app && app.icon ? app.id : '';
      if (this.iconKey !== iconKey || !this.iconSlot.firstChild) {
        this.iconKey = iconKey;
        clear(this.iconSlot);
        this.iconSlot.append(iconFor(app || { pet }, 20));
      }
      this.pet = pet;
      if (w.browser) this.drawBrowser(w.browser);
      const seq = typeof w.seq === 'number' ? w.seq : this.seq;
      if (w.view && (seq > this.seq || this.seq < 0)) this.show(w.view, seq);
      this.drawPrompt(w.prompt || null);
      this.drawStopped(typeof w.stopped === 'string' ? w.stopped : null);
    }

    /** The app was stopped by its budget across turns: say so, in the
     * desk's words, with the way out (a fresh start; its storage stays). */
    drawStopped(why) {
      if (why === this.stoppedWhy) return;
      this.stoppedWhy = why;
      clear(this.stoppedArea);
      this.frame.classList.toggle('stopped', !!why);
      if (!why) return;
      const what = why.replace(/^this caplet was stopped: /, '').replace(/^this caplet was stopped by its host$/, 'the desk stopped it');
      this.stoppedArea.append(
        h('p', { className: 'stopped-head' },
          h('strong', {}, `${this.pet} was stopped`), `: ${what}. It no longer runs; what it shows may be out of date.`),
        h('div', { className: 'prompt-actions' },
          h('button', {
            type: 'button', className: 'primary', title: 'Close this window and open the app again, fresh (what it saved stays)',
            on: { click: () => this.restart() },
          }, 'Restart')));
    }

    async restart() {
      try {
        this.say('Restarting…');
        const r = await api(`api/windows/${this.id}/restart`, {});
        this.remove();
        desk.windows.delete(this.id);
        await refresh();
        const win = desk.windows.get(String(r.window));
        if (win) win.flash();
      } catch (e) {
        this.say(`Could not restart: ${e.message}`);
      }
    }

    remove() {
      this.frame.remove();
    }

    /** The browser's chrome: drawn by the desk from the desk's own state
     * (the URL field, title and history), never by the page's renderer. */
    drawBrowser(b) {
      if (!this.bar) {
        const go = (path, body) => api(`api/windows/${this.id}/${path}`, body || {})
          .then(() => this.say(''))
          .catch((e) => this.say(e.message));
        this.back = h('button', { type: 'button', className: 'nav-button', title: 'Back', attrs: { 'aria-label': 'Back' }, on: { click: () => go('back') } }, '←');
        this.forward = h('button', { type: 'button', className: 'nav-button', title: 'Forward', attrs: { 'aria-label': 'Forward' }, on: { click: () => go('forward') } }, '→');
        this.reload = h('button', { type: 'button', className: 'nav-button', title: 'Reload', attrs: { 'aria-label': 'Reload' }, on: { click: () => go('reload') } }, '↻');
        this.address = h('input', { type: 'text', className: 'address', spellcheck: false, attrs: { 'aria-label': 'Address', placeholder: 'Type a web address' } });
        this.address.addEventListener('keydown', (ev) => {
          if (ev.key === 'Enter') {
            ev.preventDefault();
            const typed = this.address.value;
            api(`api/windows/${this.id}/navigate`, { url: typed })
              .then(() => {
                this.say('');
                this.address.dataset.editing = '';
                // As browsers do: the page, not the address, has the focus now.
                this.address.blur();
              })
              .catch((e) => {
                // What was typed stays, with the reason right under it.
                this.address.value = typed;
                this.pageState.textContent = `Not opened: ${e.message}.`;
              });
          }
        });
        this.address.addEventListener('input', () => { this.address.dataset.editing = '1'; });
        this.address.addEventListener('blur', () => {
          this.address.dataset.editing = '';
          if (this.browser) this.address.value = this.browser.url;
        });
        this.renderer = h('select', { className: 'renderer', title: 'The renderer that draws pages', attrs: { 'aria-label': 'Renderer' } });
        this.renderer.addEventListener('change', () => go('renderer', { renderer: this.renderer.value }));
        this.pageState = h('div', { className: 'page-state', attrs: { role: 'status' } });
        this.bar = h('div', { className: 'address-bar' }, this.back, this.forward, this.reload, this.address, this.renderer);
        this.chrome.append(this.bar, this.pageState);
        this.chrome.hidden = false;
        this.frame.classList.add('browser');
      }
      this.browser = b;
      this.back.disabled = !b.back;
      this.forward.disabled = !b.forward;
      this.reload.disabled = !b.url;
      if (this.address.dataset.editing !== '1' && this.address.value !== b.url) this.address.value = String(b.url || '');
      const ids = (b.renderers || []).map((r) => r.id).join(' ');
      if (this.renderer.dataset.ids !== ids) {
        this.renderer.dataset.ids = ids;
        clear(this.renderer);
        for (const r of b.renderers || []) this.renderer.append(h('option', { value: r.id }, String(r.label)));
      }
      this.renderer.value = b.renderer;
      const title = b.title ? `${this.pet} — ${b.title}` : this.pet;
      if (this.title.textContent !== title) this.title.textContent = title;
      this.frame.classList.toggle('loading', !!b.loading);
      // Errors are said in the pane, in the desk's words; this line is for
      // the page's state.
      this.pageState.textContent = b.loading ? 'Loading…' : b.error ? ''
        : b.renderer_stopped ? `The renderer was stopped (${b.renderer_stopped.replace(/^this caplet was stopped: /, '')}): choose another renderer or reload.`
        : b.truncated ? 'This page was too large: only its beginning is shown.' : '';
    }

    flash() {
      this.frame.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
      this.frame.classList.remove('flash');
      void this.frame.offsetWidth;
      this.frame.classList.add('flash');
    }

    async close() {
      try {
        await api(`api/windows/${this.id}/close`, {});
        this.remove();
        desk.windows.delete(this.id);
        $('no-windows').hidden = desk.windows.size > 0;
        refresh();
      } catch (e) {
        this.say(`Could not close: ${e.message}`);
      }
    }

    say(text) {
      this.status.textContent = text;
    }

    /** Sends an event to the app, in order after the ones before. */
    send(ev) {
      this.queue = this.queue.then(async () => {
        try {
          await api(`api/windows/${this.id}/event`, ev);
          if (this.status.textContent) this.say('');
        } catch (e) {
          this.say(`The app did not get that: ${e.message}`);
        }
      });
      return this.queue;
    }

    /** Sends every input whose text changed since it was last sent. */
    flushInputs() {
      for (const input of this.pane.querySelectorAll('input[data-id], textarea[data-id]')) {
        this.changed(input);
      }
    }

    changed(target) {
      if (!(target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement)) return;
      if (!target.dataset.id || target.value === target.sentValue) return;
      target.sentValue = target.value;
      this.send({ type: 'input', id: target.dataset.id, value: target.value });
    }

    key(ev) {
      const t = ev.target;
      if (ev.key === 'Enter' && t instanceof HTMLInputElement) {
        this.changed(t);
      } else if ((ev.key === 'Enter' || ev.key === ' ') && t.classList && t.classList.contains('v-link')) {
        ev.preventDefault();
        t.click();
      }
    }

    clicked(ev) {
      const button = ev.target.closest('button[data-id]');
      if (button && this.pane.contains(button)) {
        this.flushInputs();
        this.send({ type: 'click', id: button.dataset.id });
        return;
      }
      const link = ev.target.closest('a.v-link');
      if (link && this.pane.contains(link)) {
        ev.preventDefault();
        this.flushInputs();
        this.send({ type: 'link', n: Number(link.dataset.n) });
      }
    }

    dragOver(ev) {
      if (!ev.dataTransfer || !Array.from(ev.dataTransfer.types).includes(DOC_TYPE)) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
      this.frame.classList.add('drop-target');
    }

    async dropped(ev) {
      this.frame.classList.remove('drop-target');
      if (!ev.dataTransfer) return;
      const path = draggedDoc;
      draggedDoc = null;
      if (!path) return;
      ev.preventDefault();
      try {
        await api(`api/windows/${this.id}/drop`, { path });
        this.say(`Gave ${this.pet} the document ${path}.`);
      } catch (e) {
        this.say(`Could not give it ${path}: ${e.message}`);
      }
    }

    /** Replaces the pane's content with `view`, keeping the focus and the
     * caret (and text not yet sent) in an input whose id is still there. */
    show(view, seq) {
      this.seq = seq;
      const active = document.activeElement;
      let keep = null;
      if (active && this.pane.contains(active) && active.dataset && active.dataset.id) {
        keep = { tag: active.tagName, id: active.dataset.id };
        if (active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement) {
          keep.start = active.selectionStart;
          keep.end = active.selectionEnd;
          if (active.value !== active.sentValue) keep.value = active.value;
        }
      }
      const scroll = this.pane.scrollTop;
      const root = renderNode(view, this, 0);
      clear(this.pane);
      this.pane.append(root);
      this.pane.scrollTop = scroll;
      if (keep) {
        const again = Array.from(this.pane.querySelectorAll(keep.tag.toLowerCase()))
          .find((e) => e.dataset.id === keep.id);
        if (again) {
          if (keep.value !== undefined) again.value = keep.value;
          again.focus({ preventScroll: true });
          if (keep.start !== undefined && typeof again.setSelectionRange === 'function') {
            try { again.setSelectionRange(keep.start, keep.end); } catch (_) { /* not a text input */ }
          }
        }
      }
    }

    drawPrompt(p) {
      // An answered prompt may still be in a state fetched before the answer.
      if (p && this.answered.has(String(p.id))) p = null;
      const id = p ? String(p.id) : null;
      if (id === this.promptId) return;
      this.promptId = id;
      clear(this.promptArea);
      this.frame.classList.toggle('asking', !!p);
      if (p) this.promptArea.append(promptBox(this, p));
    }
  }

  /** The dataTransfer type of a document dragged from the Documents panel. */
  const DOC_TYPE = 'application/x-pola-document';
  /** The document being dragged from this page's Documents panel, if any.
   * A drop gives only this one: any page can put DOC_TYPE data on a drag,
   * so what a drag carries is never trusted. */
  let draggedDoc = null;

  /** Turns one VIEWJSON node into DOM: fixed elements and text only. */
  function renderNode(n, win, depth) {
    if (!n || typeof n !== 'object' || depth > 40) return document.createTextNode('');
    const kids = (tag, props) => {
      const e = h(tag, props);
      for (const c of Array.isArray(n.c) ? n.c : []) e.append(renderNode(c, win, depth + 1));
      return e;
    };
    switch (n.k) {
      case 'text':
        return document.createTextNode(typeof n.s === 'string' ? n.s : '');
      case 'heading': {
        const level = Math.min(3, Math.max(1, Number(n.level) || 1));
        return kids(`h${level}`, { className: 'v-heading' });
      }
      case 'para': return kids('p');
      case 'strong': return kids('strong');
      case 'em': return kids('em');
      case 'code': return kids('code');
      case 'row': return kids('div', { className: 'v-row' });
      case 'column': return kids('div', { className: 'v-column' });
      case 'list': {
        const ul = h('ul', { className: 'v-list' });
        for (const c of Array.isArray(n.c) ? n.c : []) ul.append(h('li', null, renderNode(c, win, depth + 1)));
        return ul;
      }
      case 'button':
        return h('button', { type: 'button', className: 'v-button', data: { id: n.id } }, String(n.label ?? ''));
      case 'input': {
        const e = h('input', { type: 'text', className: 'v-input', data: { id: n.id }, spellcheck: false });
        e.value = String(n.value ?? '');
        e.sentValue = e.value;
        return e;
      }
      case 'textarea': {
        const e = h('textarea', { className: 'v-textarea', data: { id: n.id }, rows: 10, spellcheck: false });
        e.value = String(n.value ?? '');
        e.sentValue = e.value;
        return e;
      }
      case 'link':
        return kids('a', { className: 'v-link', tabIndex: 0, data: { n: n.n }, attrs: { role: 'link' } });
      case 'image':
        if (typeof n.n === 'number') {
          const img = h('img', { className: 'v-image', src: `api/images/${win.id}/${n.n}?v=${win.seq}`, alt: String(n.alt ?? '') });
          // A picture the desk could not fetch or read shows its alt text.
          img.addEventListener('error', () => img.replaceWith(h('span', { className: 'v-image-alt' }, String(n.alt ?? ''))));
          return img;
        }
        return h('span', { className: 'v-image-alt' }, String(n.alt ?? ''));
      default:
        return document.createTextNode('');
    }
  }

  // --------------------------------------------------------------- chooser

  /** The desk-drawn chooser over the documents folder. `kind` is 'file'
   * or 'folder'; `onPick(path)` gets the chosen path (relative to the
   * documents folder). It shows nothing outside the documents folder. */
  function chooser({ kind, start, onPick, pickLabel }) {
    let dir = start || '';
    let selected = null;
    const crumbs = h('nav', { className: 'crumbs', attrs: { 'aria-label': 'Folder' } });
    const list = h('ul', { className: 'entries', attrs: { role: 'listbox', 'aria-label': 'Documents' } });
    const chosen = h('span', { className: 'chosen' });
    const error = h('p', { className: 'error', attrs: { role: 'alert' } });
    const pick = h('button', {
      type: 'button', className: 'primary choose',
      on: {
        click: () => {
          const path = kind === 'folder' ? dir : selected;
          if (path === null) return;
          onPick(path);
        },
      },
    }, pickLabel || (kind === 'folder' ? 'Choose this folder' : 'Choose'));
    const root = h('div', { className: 'chooser', data: { kind } },
      crumbs, list, h('div', { className: 'chooser-foot' }, chosen, pick), error);

    function updateFoot() {
      if (kind === 'folder') {
        chosen.textContent = `Folder: ${dir ? `Documents/${dir}` : 'Documents'}`;
        pick.disabled = false;
      } else {
        chosen.textContent = selected === null ? 'Pick a file.' : `File: ${selected}`;
        pick.disabled = selected === null;
      }
    }

    async function go(d) {
      error.textContent = '';
      let r;
      try {
        r = await api(`api/files?dir=${encodeURIComponent(d)}`);
      } catch (e) {
        error.textContent = e.message;
        return;
      }
      dir = typeof r.dir === 'string' ? r.dir : d;
      selected = null;
      clear(crumbs);
      crumbs.append(h('button', { type: 'button', className: 'crumb', on: { click: () => go('') } }, 'Documents'));
      let acc = '';
      for (const part of dir.split('/').filter(Boolean)) {
        acc = joinPath(acc, part);
        const target = acc;
        crumbs.append(h('span', { className: 'sep', attrs: { 'aria-hidden': 'true' } }, '/'),
          h('button', { type: 'button', className: 'crumb', on: { click: () => go(target) } }, part));
      }
      clear(list);
      const entries = Array.isArray(r.entries) ? r.entries : [];
      if (entries.length === 0) list.append(h('li', { className: 'hint' }, 'This folder is empty.'));
      for (const e of entries) {
        const path = joinPath(dir, e.name);
        if (e.kind === 'folder') {
          list.append(h('li', null, h('button', {
            type: 'button', className: 'entry folder', data: { path },
            on: { click: () => go(path) },
          }, h('span', { className: 'kind-icon folder', attrs: { 'aria-hidden': 'true' } }), e.name)));
        } else {
          const b = h('button', {
            type: 'button', className: 'entry file', data: { path }, disabled: kind !== 'file',
            attrs: { role: 'option', 'aria-selected': 'false' },
            on: {
              click: () => {
                selected = path;
                for (const o of list.querySelectorAll('.entry.file')) o.setAttribute('aria-selected', String(o === b));
                updateFoot();
              },
              dblclick: () => { selected = path; updateFoot(); onPick(path); },
            },
          }, h('span', { className: 'kind-icon file', attrs: { 'aria-hidden': 'true' } }), e.name,
          h('span', { className: 'size' }, sizeWords(e.size)));
          list.append(h('li', null, b));
        }
      }
      updateFoot();
    }

    updateFoot();
    go(dir);
    return root;
  }

  // ----------------------------------------------------- powerbox prompts

  /** How long a powerbox prompt is shown before Grant counts. */
  const ARM_MS = 700;

  const KIND_WORDS = { file: 'a file', folder: 'a folder', web: 'a web site', object: 'an object' };

  function promptBox(win, p) {
    const error = h('p', { className: 'error', attrs: { role: 'alert' } });
    // A prompt appears under the pointer of someone busy with the app: a
    // grant counts only once it has been on screen for a moment, so a
    // click aimed at the app (which the app may have timed to open the
    // prompt) cannot land on Grant.
    let armed = false;
    setTimeout(() => { armed = true; }, ARM_MS);
    const answer = async (body) => {
      if (body.grant && !armed) {
        error.textContent = 'Read the request first, then choose.';
        return;
      }
      error.textContent = '';
      try {
        await api(`api/prompts/${encodeURIComponent(p.id)}/answer`, body);
        win.answered.add(String(p.id));
        win.drawPrompt(null);
        refresh();
      } catch (e) {
        error.textContent = `That did not work: ${e.message}`;
      }
    };
    const refuse = h('button', { type: 'button', className: 'refuse', on: { click: () => answer({ grant: false }) } }, 'Refuse');
    const head = h('p', { className: 'prompt-head' },
      h('strong', null, `${win.pet} asks`), ` for ${KIND_WORDS[p.kind] || 'something'}: `,
      h('span', { className: 'reason' }, String(p.reason ?? '')));
    const box = h('div', { className: 'prompt', data: { prompt: p.id, kind: p.kind }, attrs: { role: 'group', 'aria-label': `${win.pet} asks` } }, head);

    if (p.kind === 'file' || p.kind === 'folder') {
      let readOnly = null;
      if (p.access === 'read-write') {
        readOnly = h('input', { type: 'checkbox', className: 'read-only' });
        box.append(h('label', { className: 'narrow' }, readOnly, ' Let it only read (not change) what I choose'));
      } else if (p.access === 'read') {
        box.append(h('p', { className: 'hint' }, 'It will only be able to read it.'));
      }
      box.append(chooser({
        kind: p.kind,
        pickLabel: p.kind === 'folder' ? 'Grant this folder' : 'Grant',
        onPick: (path) => {
          const body = { grant: true, path };
          if (readOnly && readOnly.checked) body.access = 'read';
          answer(body);
        },
      }));
      box.append(h('div', { className: 'prompt-actions' }, refuse));
    } else if (p.kind === 'web') {
      const sites = Array.isArray(p.sites) ? p.sites : [];
      const control = siteControl(sites);
      box.append(control.el,
        h('div', { className: 'prompt-actions' },
          h('button', {
            type: 'button', className: 'primary grant',
            on: {
              click: () => {
                const site = control.value();
                if (site === false) { error.textContent = 'Type the site as http://host or https://host.'; return; }
                answer(site ? { grant: true, site } : { grant: true });
              },
            },
          }, 'Grant'), refuse));
    } else if (p.kind === 'object') {
      const offers = Array.isArray(p.offers) ? p.offers : [];
      const control = offerControl(offers, `offer-${win.id}-${p.id}`);
      box.append(control.el,
        h('div', { className: 'prompt-actions' },
          h('button', {
            type: 'button', className: 'primary grant', disabled: offers.length === 0,
            on: {
              click: () => {
                const offer = control.value();
                if (!offer) { error.textContent = 'Pick one of the offers first.'; return; }
                answer({ grant: true, offer });
              },
            },
          }, 'Grant'), refuse));
    } else {
      box.append(h('div', { className: 'prompt-actions' }, refuse));
    }
    box.append(error);
    return box;
  }

  /** A site picker: the sites asked for, or one site typed in. value()
   * is '' for "as asked", an origin, or false when the typed text is not
   * an origin. */
  function siteControl(sites) {
    const anywhere = sites.includes('*');
    const select = h('select', { className: 'site-select', attrs: { 'aria-label': 'Which site' } });
    if (anywhere) select.append(h('option', { value: '' }, 'Anywhere on the web (as asked)'));
    else if (sites.length > 1) select.append(h('option', { value: '' }, `All ${sites.length} sites asked for`));
    for (const s of sites) if (s !== '*') select.append(h('option', { value: s }, `Only ${s}`));
    select.append(h('option', { value: '?' }, 'Only one site I type…'));
    const typed = h('input', { type: 'text', className: 'site-input', placeholder: 'https://example.org', hidden: true, attrs: { 'aria-label': 'Site' } });
    select.addEventListener('change', () => {
      typed.hidden = select.value !== '?';
      if (!typed.hidden) typed.focus();
    });
    const el = h('div', { className: 'site-control' }, select, typed);
    return {
      el,
      select,
      typed,
      value() {
        if (select.value !== '?') return select.value;
        const t = typed.value.trim();
        try {
          const u = new URL(t);
          if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.pathname !== '/' || u.search || u.hash || u.username) return false;
          return u.origin;
        } catch (_) {
          return false;
        }
      },
    };
  }

  function offerControl(offers, group) {
    const el = h('div', { className: 'offers', attrs: { role: 'radiogroup', 'aria-label': 'Offers' } });
    if (offers.length === 0) el.append(h('p', { className: 'hint' }, 'No open app offers this now.'));
    for (const o of offers) {
      el.append(h('label', { className: 'offer' },
        h('input', { type: 'radio', name: group, value: String(o.id) }),
        ` from ${o.app_pet || 'an app'}`));
    }
    return {
      el,
      value() {
        const c = el.querySelector('input:checked');
        return c ? c.value : null;
      },
    };
  }

  // --------------------------------------------------------------- dialogs

  let info = null; // {app} while an app's info dialog is open

  function openDialog(title, body, opts) {
    closeDialog();
    const layer = $('dialog-layer');
    const close = h('button', {
      type: 'button', className: 'title-button close', attrs: { 'aria-label': 'Close dialog' },
      on: { click: () => (opts && opts.onClose ? opts.onClose() : closeDialog()) },
    }, '×');
    const heading = h('h2', { id: 'dialog-title' }, title);
    const dlg = h('div', {
      className: `dialog ${(opts && opts.className) || ''}`,
      attrs: { role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'dialog-title' },
    }, h('header', { className: 'dialog-head' }, heading, close), body);
    layer.append(dlg);
    layer.hidden = false;
    layer.onkeydown = (ev) => {
      if (ev.key === 'Escape') (opts && opts.onClose ? opts.onClose() : closeDialog());
    };
    const first = dlg.querySelector('input:not([type=hidden]), button.primary, button');
    if (first) first.focus();
    return dlg;
  }

  function closeDialog() {
    const layer = $('dialog-layer');
    clear(layer);
    layer.hidden = true;
    info = null;
    onChanged.clear();
  }

  // ----------------------------------------------------------- install

  function pickPackage() {
    const input = $('install-file');
    input.value = '';
    input.click();
  }

  function uploadPackage(file, progress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', 'api/packages');
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.responseType = 'text';
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable) progress(ev.loaded / ev.total);
      };
      xhr.onload = () => {
        let j = null;
        try { j = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300 && j) resolve(j);
        else if (j && typeof j.error === 'string') reject(new DeskError(j.error));
        else if (xhr.status === 413) reject(new DeskError('This package is too big: a package is at most 16 MiB.'));
        else reject(new DeskError((xhr.responseText || '').trim() || `the desk answered ${xhr.status}`));
      };
      xhr.onerror = () => reject(new DeskError('Cannot reach the desk. Is it still running?'));
      xhr.send(file);
    });
  }

  async function installFile(file) {
    const bar = h('progress', { max: 1, value: 0, className: 'upload' });
    const words = h('p', null, `Checking ${file.name} (${sizeWords(file.size)})…`);
    const body = h('div', { className: 'install-body' }, words, bar);
    openDialog('Install an app', body, { className: 'install' });
    let review;
    try {
      review = await uploadPackage(file, (f) => { bar.value = f; if (f >= 1) words.textContent = `Checking ${file.name}…`; });
    } catch (e) {
      clear(body);
      body.append(h('p', { className: 'error refused', attrs: { role: 'alert' } }, `The desk refused this package: ${e.message}`),
        h('div', { className: 'dialog-actions' }, h('button', { type: 'button', on: { click: closeDialog } }, 'Close')));
      return;
    }
    showReview(review, body);
  }

  const RULE_TITLES = {
    1: 'Looks like an app you have',
    2: 'Asks for many different things',
    3: 'Reaches outside your documents',
    4: 'Can change many things',
    5: 'Wide web access',
    6: 'Can read and send out',
  };

  function showReview(r, body) {
    clear(body);
    const requests = Array.isArray(r.requests) ? r.requests : [];
    const warnings = Array.isArray(r.warnings) ? r.warnings : [];
    const warned = new Set(warnings.flatMap((w) => (Array.isArray(w.requests) ? w.requests : [])));
    const rule1 = warnings.some((w) => w.rule === 1);
    const cancel = async () => {
      try { await api(`api/reviews/${encodeURIComponent(r.id)}/cancel`, {}); } catch (_) { /* gone anyway */ }
      closeDialog();
    };
    const dlg = body.closest('.dialog');
    dlg.querySelector('.dialog-head .close').onclick = cancel;
    $('dialog-layer').onkeydown = (ev) => { if (ev.key === 'Escape') cancel(); };

    const icon = r.icon
      ? h('img', { className: 'app-icon-img s64', src: `api/reviews/${encodeURIComponent(r.id)}/icon`, alt: '' })
      : h('span', { className: 'app-icon-img s64 letter', attrs: { 'aria-hidden': 'true' } }, '?');
    body.append(h('div', { className: 'review-head' }, icon,
      h('div', null,
        h('p', { className: 'calls-itself' }, 'This app calls itself ', h('strong', null, String(r.calls_itself ?? ''))),
        h('p', { className: 'description' }, String(r.description ?? '')))));

    if (warnings.length) {
      body.append(h('section', { className: 'warnings', attrs: { 'aria-label': 'Warnings' } },
        h('h3', null, warnings.length === 1 ? 'Think twice: 1 warning' : `Think twice: ${warnings.length} warnings`),
        h('ul', null, warnings.map((w) => h('li', { className: 'warning', data: { rule: w.rule } },
          h('span', { className: 'rule' }, `Rule ${w.rule}`),
          h('strong', null, RULE_TITLES[w.rule] || 'Warning'), ': ', String(w.text ?? ''),
          Array.isArray(w.requests) && w.requests.length
            ? h('span', { className: 'names' }, ` (about: ${w.requests.join(', ')})`) : null)))));
    } else {
      body.append(h('p', { className: 'no-warnings' }, 'No warnings: what it asks for looks ordinary.'));
    }

    const pet = h('input', { type: 'text', id: 'pet-name', className: 'pet-input', maxLength: 64, autocomplete: 'off', spellcheck: false });
    pet.value = rule1 ? '' : String(r.suggested_pet ?? '');
    body.append(h('div', { className: 'pet-field' },
      h('label', { htmlFor: 'pet-name' }, 'Your name for it'), pet,
      rule1 || !pet.value ? h('p', { className: 'hint strong' }, rule1
        ? 'Its name or icon looks like an app you already have: give it a new name of your own, so you can tell them apart.'
        : 'Give it a name of your own.') : null));

    const controls = [];
    const list = h('ol', { className: 'requests' });
    if (requests.length === 0) list.append(h('li', { className: 'hint' }, 'It asks for nothing: it will only have its own window.'));
    for (const q of requests) {
      const c = requestControl(q, warned.has(q.name), r.id);
      controls.push(c);
      list.append(c.el);
    }
    body.append(h('h3', null, requests.length ? 'What it asks for' : 'What it asks for: nothing'), list);

    const error = h('p', { className: 'error install-error', attrs: { role: 'alert' } });
    const install = h('button', {
      type: 'button', className: 'primary install-go',
      on: {
        click: async () => {
          error.textContent = '';
          const name = pet.value.trim();
          if (!name) { error.textContent = 'Give the app a name first.'; pet.focus(); return; }
          const decisions = [];
          for (const c of controls) {
            const d = c.decision();
            if (typeof d === 'string') { error.textContent = d; return; }
            decisions.push(d);
          }
          install.disabled = true;
          install.textContent = 'Installing…';
          try {
            await api(`api/reviews/${encodeURIComponent(r.id)}/install`, { pet: name, decisions });
            closeDialog();
            notice(`Installed ${name}.`, 'ok');
            refresh();
          } catch (e) {
            error.textContent = `Not installed: ${e.message}`;
            install.disabled = false;
            install.textContent = 'Install';
          }
        },
      },
    }, 'Install');
    body.append(error, h('div', { className: 'dialog-actions' },
      h('button', { type: 'button', className: 'cancel', on: { click: cancel } }, 'Cancel'), install));
    if (rule1 || !pet.value) pet.focus();
    else install.focus();
  }

  /** One request in the install dialog, with its grant / refuse choice
   * and its narrowing; decision() gives the DECISION or a plain-words
   * reason why it is not complete. */
  function requestControl(q, warned, rid) {
    const name = String(q.name);
    const group = `req-${rid}-${name}`;
    const grant = h('input', { type: 'radio', name: group, value: 'grant', checked: !warned, className: 'grant' });
    const refuse = h('input', { type: 'radio', name: group, value: 'refuse', checked: warned, className: 'refuse' });
    const details = h('div', { className: 'req-details' });
    const li = h('li', { className: `request${warned ? ' warned' : ''}`, data: { req: name, kind: q.kind } },
      h('div', { className: 'req-main' },
        h('div', { className: 'req-words' },
          h('strong', null, String(q.words ?? q.kind)),
          h('p', { className: 'reason' }, 'Why: ', String(q.reason ?? '')),
          q.path && !String(q.words ?? '').includes(q.path) ? h('p', { className: 'suggested' }, `It suggests: ${q.path}`) : null,
          Array.isArray(q.sites) && q.sites.length
            ? h('p', { className: 'suggested' }, `Sites: ${q.sites.map((s) => (s === '*' ? 'anywhere' : s)).join(', ')}`) : null),
        h('div', { className: 'decide', attrs: { role: 'radiogroup', 'aria-label': `Decide: ${name}` } },
          h('label', null, grant, ' Grant'), h('label', null, refuse, ' Refuse'))),
      details);

    let readOnly = null;
    let path = null;
    let site = null;
    let offer = null;
    const sync = () => {
      details.hidden = !grant.checked;
      li.classList.toggle('refused', !grant.checked);
    };
    grant.addEventListener('change', sync);
    refuse.addEventListener('change', sync);

    if (Array.isArray(q.narrow) && q.narrow.includes('read')) {
      readOnly = h('input', { type: 'checkbox', className: 'read-only' });
      details.append(h('label', { className: 'narrow' }, readOnly, ' Only let it read (not change) it'));
    }
    if (q.kind === 'file' || q.kind === 'folder') {
      const suggested = typeof q.path === 'string' && q.path && !q.path.startsWith('/') && !q.path.startsWith('~') && !q.path.split('/').includes('..')
        ? q.path : null;
      path = suggested;
      const shown = h('span', { className: 'chosen-path' });
      const slot = h('div', { className: 'chooser-slot' });
      const showPath = () => {
        shown.textContent = path === null ? 'Nothing chosen yet' : `Chosen: Documents${path ? `/${path}` : ''}`;
      };
      const open = () => {
        clear(slot);
        slot.append(chooser({
          kind: q.kind,
          start: '',
          onPick: (p) => { path = p; showPath(); clear(slot); },
        }));
      };
      showPath();
      details.append(h('div', { className: 'pick' }, shown,
        h('button', { type: 'button', className: 'choose-open', on: { click: open } },
          q.kind === 'folder' ? 'Choose a folder…' : 'Choose a file…')), slot);
      if (path === null) open();
    } else if (q.kind === 'web') {
      const sites = Array.isArray(q.sites) ? q.sites : [];
      if (sites.includes('*') || sites.length > 1) {
        site = siteControl(sites);
        details.append(h('div', { className: 'narrow' }, h('span', null, 'Which site: '), site.el));
      }
    } else if (q.kind === 'object') {
      offer = offerControl(Array.isArray(q.offers) ? q.offers : [], `${group}-offer`);
      details.append(offer.el);
    }
    sync();

    return {
      el: li,
      decision() {
        if (!grant.checked) return { name, grant: false };
        const d = { name, grant: true };
        if (readOnly && readOnly.checked) d.access = 'read';
        if (q.kind === 'file' || q.kind === 'folder') {
          if (path === null) return `Choose ${q.kind === 'folder' ? 'a folder' : 'a file'} for “${q.words || name}”, or refuse it.`;
          d.path = path;
        }
        if (site) {
          const v = site.value();
          if (v === false) return `The site for “${q.words || name}” should look like https://example.org.`;
          if (v) d.site = v;
        }
        if (offer) {
          const o = offer.value();
          if (!o) return `Pick which app's offer “${q.words || name}” gets, or refuse it.`;
          d.offer = o;
        }
        return d;
      },
    };
  }

  // ------------------------------------------------------ app info / audit

  const ORIGIN_WORDS = { install: 'given at install', request: 'granted when it asked', drop: 'dropped on its window' };

  async function showInfo(appId) {
    const app = appById(appId);
    const body = h('div', { className: 'info-body' }, h('p', null, 'Loading…'));
    openDialog(app ? app.pet : 'App', body, { className: 'info' });
    info = { app: appId };
    const load = async () => {
      let a;
      try {
        a = await api(`api/apps/${encodeURIComponent(appId)}/audit`);
      } catch (e) {
        clear(body);
        body.append(h('p', { className: 'error' }, e.message));
        return;
      }
      if (!info || info.app !== appId) return;
      drawInfo(body, a, appById(appId) || app);
    };
    onChanged.add(load);
    await load();
  }

  function drawInfo(body, a, app) {
    const focusedRename = document.activeElement && document.activeElement.id === 'rename-input';
    const typed = focusedRename ? document.activeElement.value : null;
    clear(body);
    const title = document.getElementById('dialog-title');
    if (title) title.textContent = a.pet;
    const error = h('p', { className: 'error', attrs: { role: 'alert' } });
    const act = async (path, body2, done) => {
      error.textContent = '';
      try {
        await api(path, body2 || {});
        if (done) done();
        refresh();
      } catch (e) {
        error.textContent = e.message;
      }
    };
    const rename = h('input', { type: 'text', id: 'rename-input', maxLength: 64, spellcheck: false });
    rename.value = typed !== null ? typed : a.pet;
    const doRename = () => act(`api/apps/${encodeURIComponent(a.app)}/rename`, { pet: rename.value.trim() });
    rename.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') doRename(); });
    const builtin = !!(app && app.builtin);
    body.append(h('div', { className: 'review-head' }, iconFor(app || { pet: a.pet }, 64),
      h('div', null,
        builtin ? h('p', { className: 'calls-itself' }, 'Built into the desk.')
          : h('div', { className: 'rename' }, h('label', { htmlFor: 'rename-input' }, 'Your name for it'), rename,
            h('button', { type: 'button', className: 'rename-go', on: { click: doRename } }, 'Rename')),
        h('p', { className: 'calls-itself' }, 'calls itself ', h('strong', null, String(a.calls_itself ?? (app && app.calls_itself) ?? ''))),
        app && app.description ? h('p', { className: 'description' }, app.description) : null)));
    if (focusedRename) rename.focus();

    const grants = Array.isArray(a.grants) ? a.grants : [];
    const live = grants.filter((g) => g.live);
    const table = h('table', { className: 'grants' },
      h('thead', null, h('tr', null, ['What', 'How', 'When', 'Uses', 'Last use', 'State', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, grants.length === 0
        ? h('tr', null, h('td', { colSpan: 7, className: 'hint' }, 'It holds nothing right now.'))
        : grants.map((g) => h('tr', { className: g.live ? 'live' : 'revoked', data: { grant: g.id, kind: g.kind } },
          h('td', null, String(g.words ?? g.kind)),
          h('td', null, ORIGIN_WORDS[g.origin] || String(g.origin ?? '')),
          h('td', null, when(g.at)),
          h('td', { className: 'uses' }, String(g.uses ?? 0)),
          h('td', null, when(g.last_use)),
          h('td', { className: 'state' }, g.live ? 'live' : 'revoked'),
          h('td', null, g.live
            ? h('button', { type: 'button', className: 'revoke danger', on: { click: () => act(`api/grants/${encodeURIComponent(g.id)}/revoke`) } }, 'Revoke')
            : null)))));
    body.append(h('h3', null, 'What it holds'), table);
    const reach = Array.isArray(a.reach) ? a.reach : [];
    body.append(h('h3', null, 'What it can reach'), h('ul', { className: 'reach' }, reach.map((l) => h('li', null, String(l)))));

    const uninstall = h('button', { type: 'button', className: 'danger uninstall' }, 'Uninstall');
    uninstall.addEventListener('click', () => {
      if (uninstall.dataset.armed !== '1') {
        uninstall.dataset.armed = '1';
        uninstall.textContent = `Really uninstall ${a.pet}? Click again`;
        return;
      }
      act(`api/apps/${encodeURIComponent(a.app)}/uninstall`, {}, () => { closeDialog(); notice(`Uninstalled ${a.pet}.`, 'ok'); });
    });
    if (builtin) {
      body.append(error);
      return;
    }
    body.append(error, h('div', { className: 'dialog-actions' },
      h('button', {
        type: 'button', className: 'danger revoke-all', disabled: live.length === 0,
        on: { click: () => act(`api/apps/${encodeURIComponent(a.app)}/revoke-all`) },
      }, 'Revoke all'),
      uninstall));
  }

  // --------------------------------------------------------------- activity

  async function showActivity() {
    const body = h('div', { className: 'activity-body' }, h('p', null, 'Loading…'));
    openDialog('Activity: what apps used', body, { className: 'activity' });
    const load = async () => {
      let t;
      try {
        t = await api('api/timeline');
      } catch (e) {
        clear(body);
        body.append(h('p', { className: 'error' }, e.message));
        return;
      }
      clear(body);
      const uses = Array.isArray(t.uses) ? t.uses : [];
      if (uses.length === 0) {
        body.append(h('p', { className: 'hint' }, 'No app has used anything it was given yet.'));
        return;
      }
      body.append(h('table', { className: 'timeline' },
        h('thead', null, h('tr', null, ['When', 'App', 'Used', 'How'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, uses.map((u) => h('tr', { data: { grant: u.grant } },
          h('td', null, when(u.at)),
          h('td', null, u.pet === null || u.pet === undefined ? '(uninstalled)' : String(u.pet)),
          h('td', null, String(u.words ?? '')),
          h('td', null, h('code', null, String(u.method ?? ''))))))));
    };
    onChanged.add(load);
    await load();
  }

  // -------------------------------------------------------------- documents

  function toggleDocuments() {
    const panel = $('documents-panel');
    const button = $('documents-button');
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    document.body.classList.toggle('with-documents', open);
    if (open) browseDocuments('');
  }

  async function browseDocuments(dir) {
    const panel = $('documents-panel');
    let r;
    try {
      r = await api(`api/files?dir=${encodeURIComponent(dir)}`);
    } catch (e) {
      clear(panel);
      panel.append(h('p', { className: 'error' }, e.message));
      return;
    }
    const here = typeof r.dir === 'string' ? r.dir : dir;
    clear(panel);
    const crumbs = h('nav', { className: 'crumbs' },
      h('button', { type: 'button', className: 'crumb', on: { click: () => browseDocuments('') } }, 'Documents'));
    let acc = '';
    for (const part of here.split('/').filter(Boolean)) {
      acc = joinPath(acc, part);
      const target = acc;
      crumbs.append(h('span', { className: 'sep' }, '/'),
        h('button', { type: 'button', className: 'crumb', on: { click: () => browseDocuments(target) } }, part));
    }
    const list = h('ul', { className: 'entries docs' });
    const entries = Array.isArray(r.entries) ? r.entries : [];
    if (entries.length === 0) list.append(h('li', { className: 'hint' }, 'This folder is empty.'));
    for (const e of entries) {
      const path = joinPath(here, e.name);
      if (e.kind === 'folder') {
        list.append(h('li', null, h('button', { type: 'button', className: 'entry folder', data: { path }, on: { click: () => browseDocuments(path) } },
          h('span', { className: 'kind-icon folder' }), e.name)));
      } else {
        const item = h('li', {
          className: 'entry file doc', draggable: true, data: { path }, title: `Drag ${e.name} onto an app's window to give it to that app`,
          on: {
            dragstart: (ev) => {
              draggedDoc = path;
              ev.dataTransfer.setData(DOC_TYPE, path);
              ev.dataTransfer.setData('text/plain', e.name);
              ev.dataTransfer.effectAllowed = 'copy';
              document.body.classList.add('dragging-doc');
            },
            dragend: () => {
              document.body.classList.remove('dragging-doc');
              setTimeout(() => { draggedDoc = null; }, 0);
            },
          },
        }, h('span', { className: 'kind-icon file' }), e.name, h('span', { className: 'size' }, sizeWords(e.size)));
        list.append(item);
      }
    }
    panel.append(h('h2', { className: 'section-title' }, 'Documents'),
      h('p', { className: 'hint' }, 'Drag a document onto an app’s window to give that app this one document.'),
      crumbs, list,
      desk.documents ? h('p', { className: 'where' }, `Folder: ${desk.documents}`) : null);
  }

  // -------------------------------------------------------------- live link

  let socket = null;
  let backoff = 250;
  let downSince = 0;
  let downTimer = 0;

  function setConnection(ok) {
    const c = $('connection');
    if (ok) {
      c.textContent = '';
      c.className = '';
      document.body.classList.remove('disconnected');
      downSince = 0;
      clearTimeout(downTimer);
      return;
    }
    if (!downSince) {
      downSince = Date.now();
      // A short drop is not worth a banner.
      downTimer = setTimeout(() => {
        c.textContent = 'Disconnected from the desk: trying again…';
        c.className = 'down';
        document.body.classList.add('disconnected');
      }, 1500);
    }
  }

  function connect() {
    let ws;
    try {
      ws = new WebSocket(new URL('api/events', location.href.replace(/^http/, 'ws')));
    } catch (_) {
      setConnection(false);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
      return;
    }
    socket = ws;
    ws.onopen = () => {
      backoff = 250;
      setConnection(true);
      refresh();
    };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      if (!m || typeof m !== 'object') return;
      if (m.type === 'view') {
        const win = desk.windows.get(String(m.window));
        const seq = typeof m.seq === 'number' ? m.seq : 0;
        if (win && m.view && seq > win.seq) win.show(m.view, seq);
        else if (!win) refresh();
      } else if (m.type === 'browser') {
        const win = desk.windows.get(String(m.window));
        if (win && m.browser) win.drawBrowser(m.browser);
        else if (!win) refresh();
      } else if (m.type === 'changed') {
        refresh();
      }
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      setConnection(false);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
    };
  }

  // ------------------------------------------------------------------ start

  function start() {
    $('install-button').addEventListener('click', pickPackage);
    $('install-file').addEventListener('change', (ev) => {
      const f = ev.target.files && ev.target.files[0];
      // Cleared at once, so that choosing the same file again (after a
      // cancel, or to install a second copy) is a change too.
      ev.target.value = '';
      if (f) installFile(f);
    });
    $('documents-button').addEventListener('click', toggleDocuments);
    $('activity-button').addEventListener('click', showActivity);
    $('dialog-layer').addEventListener('mousedown', (ev) => {
      // A click on the dimmed backdrop leaves the dialog open: a review
      // must be finished or cancelled on purpose.
      if (ev.target === $('dialog-layer')) ev.preventDefault();
    });
    refresh();
    connect();
  }

  start();
})();
