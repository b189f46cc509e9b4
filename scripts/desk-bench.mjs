// The desk's speed, measured in headless Chromium (issue 12, section 8).
//
//   node scripts/desk-bench.mjs URL PACKAGE.polapkg [DESK_PID]
//
// URL: what a *scratch* `pola desk` printed (start one with
//   `pola desk --state /tmp/bench-desk --port 0`; a release build is what
//   the figures mean). The bench installs apps and leaves them there.
// PACKAGE: a small app package with one file request (the editor's, made
//   with `pola caplet pack`, e.g. from caplets/desk-editor/manifest.toml and
//   the module crates/desk/apps builds); it is padded to 1 MiB with a
//   WebAssembly custom section for the install figure, and installed as is
//   to fill the desk with 50 windows.
// DESK_PID: the desk's process, for its memory (else found from the port
//   with `ss`, when possible).
//
// Needs `npm ci` in crates/desk/tests/e2e (playwright-core) and
// /usr/bin/chromium, like the browser tests. Not run in CI. Prints a table:
//   launch: click on an icon -> the app's first view painted (30 launches);
//   event: click in a pane -> the app's new view painted (100 clicks in
//     Notes, Add and Delete in turn: a storage write and a new view each);
//   install 1 MiB: upload + checks + review shown, and install clicked ->
//     the app on the desk (5 installs);
//   50 windows: the page's JS heap, the desk's RSS, and the event round
//     trip again.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { startBrowser, iconOf, windowOf } = await import(path.join(here, '../crates/desk/tests/e2e/lib.mjs'));

const [url, pkgPath, pidArg] = process.argv.slice(2);
if (!url || !pkgPath) {
  console.error('usage: node scripts/desk-bench.mjs URL PACKAGE.polapkg [DESK_PID]');
  process.exit(2);
}
const origin = new URL(url).origin;
const pkg = fs.readFileSync(pkgPath);

// ---------------------------------------------------------------- helpers

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: q(0.5), p95: q(0.95), min: s[0], max: s[s.length - 1] };
}

function leb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

/** The package with its module grown to about `size` bytes by a custom
 * section (valid WebAssembly: custom sections may follow any section).
 * A package ends with its module as a Syrup byte string `LEN:BYTES>`. */
function padded(bytes, size) {
  const magic = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const at = bytes.lastIndexOf(Buffer.concat([Buffer.from(':'), magic]));
  if (at < 0 || bytes[bytes.length - 1] !== 0x3e) throw new Error('not a package whose last field is a module');
  let start = at;
  while (start > 0 && bytes[start - 1] >= 0x30 && bytes[start - 1] <= 0x39) start--;
  const len = Number(bytes.subarray(start, at).toString('latin1'));
  const wasm = bytes.subarray(at + 1, at + 1 + len);
  if (at + 1 + len !== bytes.length - 1) throw new Error('the module is not the package\'s last field');
  const name = Buffer.from('pola-bench-padding');
  const payloadLen = Math.max(0, size - bytes.length - 16);
  const body = Buffer.concat([leb(name.length), name, Buffer.alloc(payloadLen, 0x2a)]);
  const section = Buffer.concat([Buffer.from([0]), leb(body.length), body]);
  const grown = Buffer.concat([wasm, section]);
  return Buffer.concat([bytes.subarray(0, start), Buffer.from(`${grown.length}:`), grown, Buffer.from('>')]);
}

async function post(p, body, type = 'application/json') {
  const res = await fetch(new URL(p, url), {
    method: 'POST',
    headers: { Origin: origin, 'Content-Type': type },
    body: type === 'application/json' ? JSON.stringify(body) : body,
  });
  const j = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${p}: ${res.status} ${j.error || ''}`);
  return j;
}

async function get(p) {
  const res = await fetch(new URL(p, url));
  if (!res.ok) throw new Error(`${p}: ${res.status}`);
  return res.json();
}

/** Installs `bytes` as `pet`, granting every request as suggested. */
async function installDirect(bytes, pet) {
  const r = await post('api/packages', bytes, 'application/octet-stream');
  const decisions = r.requests.map((q) => {
    if (q.kind === 'file' || q.kind === 'folder') {
      const p = q.path && !q.path.startsWith('/') && !q.path.startsWith('~') ? q.path : null;
      return p === null ? { name: q.name, grant: false } : { name: q.name, grant: true, path: p };
    }
    if (q.kind === 'web' || q.kind === 'object') return { name: q.name, grant: false };
    return { name: q.name, grant: true };
  });
  return (await post(`api/reviews/${r.id}/install`, { pet, decisions })).app;
}

function deskPid() {
  if (pidArg) return Number(pidArg);
  try {
    const out = execFileSync('ss', ['-ltnpH', `sport = :${new URL(url).port}`], { encoding: 'utf8' });
    const m = out.match(/pid=(\d+)/);
    return m ? Number(m[1]) : null;
  } catch (_) {
    return null;
  }
}

function rss(pid) {
  if (!pid) return null;
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : null;
  } catch (_) {
    return null;
  }
}

const fmtMs = (x) => (x === undefined || x === null ? 'n/a' : `${x.toFixed(1)} ms`);
const fmtMiB = (x) => (x === null || x === undefined ? 'n/a' : `${(x / 1048576).toFixed(1)} MiB`);

// ------------------------------------------------------- in-page timers

/** Clicks `click` in the page and resolves with the ms until the pane
 * `pane` shows a view (`mode` 'first': it has an h1; 'new': its tree is
 * not the one marked old), two frames later (painted). */
async function timedClick(page, click, pane, mode, timeout = 20000) {
  return page.evaluate(async ([click, pane, mode, timeout]) => {
    const done = () => {
      const p = document.querySelector(pane);
      if (!p || !p.firstChild) return false;
      return mode === 'first' ? !!p.querySelector('h1') : !p.firstChild.dataset.old;
    };
    const el = document.querySelector(click);
    if (!el) throw new Error(`no ${click}`);
    const t0 = performance.now();
    el.click();
    await new Promise((resolve, reject) => {
      const obs = new MutationObserver(() => {
        if (done()) { obs.disconnect(); clearTimeout(stop); resolve(); }
      });
      const stop = setTimeout(() => { obs.disconnect(); reject(new Error('timed out')); }, timeout);
      obs.observe(document.body, { childList: true, subtree: true, characterData: true });
    });
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0;
  }, [click, pane, mode, timeout]);
}

// ------------------------------------------------------------------ run

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'pola-desk-bench-'));
const b = await startBrowser(out);
const page = await b.context.newPage();
await page.goto(url);
await page.waitForSelector('#app-icons li.app');
const rows = [];
const row = (k, v) => { rows.push([k, v]); console.error(`  ${k}: ${v}`); };
const state = await get('api/state');
const clock = state.apps.find((a) => a.calls_itself === 'Clock');
const notes = state.apps.find((a) => a.calls_itself === 'Notes' && a.pet === 'Notes');
if (!clock || !notes) throw new Error('a fresh desk with the stock Clock and Notes is needed');
for (const w of state.windows) await post(`api/windows/${w.id}/close`, {});
await page.reload();
await page.waitForSelector('#app-icons li.app');

// 1. Launch -> first view painted.
{
  const times = [];
  const sel = `#app-icons li.app[data-app="${notes.id}"] button.launch`;
  const pane = `section.window[data-app="${notes.id}"] .pane`;
  for (let i = 0; i < 30; i++) {
    times.push(await timedClick(page, sel, pane, 'first', 60000));
    await windowOf(page, 'Notes').locator('button.close').click();
    await windowOf(page, 'Notes').waitFor({ state: 'detached' });
  }
  const s = stats(times);
  row('launch click -> first view painted', `${fmtMs(s.median)} median, ${fmtMs(s.p95)} p95 (n=${s.n})`);
}

// 2. Event round trip: in Notes, Add (a note typed beforehand) and
// Delete, alternately: each click changes the view (a view equal to the
// last may not be sent again).
async function roundTrips(n) {
  const win = windowOf(page, 'Notes');
  if (await win.count() === 0) {
    await iconOf(page, 'Notes').locator('button.launch').click();
    await win.locator('.pane input[data-id="new"]').waitFor({ timeout: 60000 });
  }
  const wid = await win.getAttribute('data-window');
  const pane = `section.window[data-window="${wid}"] .pane`;
  const input = win.locator('.pane input[data-id="new"]');
  const times = [];
  for (let i = 0; i < n; i++) {
    const add = i % 2 === 0;
    if (add) {
      await input.fill(`bench note ${i}`);
      await input.press('Enter'); // sends the text now, not in the timed click
      await page.waitForTimeout(30);
    }
    // Mark the current tree; a new view replaces it.
    await page.evaluate((p) => { document.querySelector(p).firstChild.dataset.old = '1'; }, pane);
    const click = add ? `${pane} button[data-id="add"]` : `${pane} button[data-id="delete-0"]`;
    times.push(await timedClick(page, click, pane, 'new'));
    // The desk shows at most 30 views a second per window: stay under it.
    await page.waitForTimeout(40);
  }
  return stats(times);
}
{
  const s = await roundTrips(100);
  row('event round trip (click -> new view painted)', `${fmtMs(s.median)} median, ${fmtMs(s.p95)} p95 (n=${s.n})`);
}

// 3. Install of a 1 MiB package through the page.
{
  const big = padded(pkg, 1024 * 1024);
  const file = path.join(out, 'big.polapkg');
  fs.writeFileSync(file, big);
  const review = [];
  const install = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await page.setInputFiles('#install-file', file);
    await page.locator('.dialog.install .requests').waitFor({ timeout: 60000 }).catch(async (e) => {
      throw new Error(`no review: ${await page.locator('.dialog').innerText().catch(() => 'no dialog')} (${e.message})`);
    });
    const t1 = performance.now();
    await page.locator('#pet-name').fill(`Big ${i + 1}`);
    await page.locator('.dialog.install button.install-go').click();
    await iconOf(page, `Big ${i + 1}`).waitFor({ timeout: 60000 });
    const t2 = performance.now();
    review.push(t1 - t0);
    install.push(t2 - t0);
  }
  const r = stats(review);
  const a = stats(install);
  row(`install ${(big.length / 1048576).toFixed(2)} MiB: upload + checks -> review shown`, `${fmtMs(r.median)} median (n=${r.n})`);
  row('install 1 MiB: all, to the icon on the desk', `${fmtMs(a.median)} median (n=${a.n})`);
}

// 4. Fifty windows.
{
  const pid = deskPid();
  const rssBefore = rss(pid);
  let s0 = await get('api/state');
  let k = 0;
  while (s0.apps.length < 50) {
    await installDirect(pkg, `Filler ${++k}`);
    s0 = await get('api/state');
  }
  const t0 = performance.now();
  for (const a of s0.apps.slice(0, 50)) {
    if (!a.running) await post(`api/apps/${a.id}/launch`, {});
  }
  const launchAll = performance.now() - t0;
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('section.window').length >= 50, null, { timeout: 120000 });
  const cdp = await b.context.newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  const windows = await page.locator('section.window').count();
  const s = await roundTrips(50);
  row(`${windows} windows: the page's JS heap`, fmtMiB(heap.usedSize));
  row(`${windows} windows: the desk's RSS`, `${fmtMiB(rss(pid))} (before: ${fmtMiB(rssBefore)}; pid ${pid ?? 'not found'})`);
  row(`${windows} windows: launching them (API, serial)`, `${fmtMs(launchAll)}`);
  row(`${windows} windows: event round trip`, `${fmtMs(s.median)} median, ${fmtMs(s.p95)} p95 (n=${s.n})`);
}

await b.done();
fs.rmSync(out, { recursive: true, force: true });
const w = Math.max(...rows.map((r) => r[0].length));
console.log(`pola desk bench: ${new Date().toISOString()}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`);
for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
