// The desk's browser (issue 13) end to end in headless Chromium.
//
//   node browser.mjs URL
//
// URL is the one line a fresh `pola desk` printed. Run by
// crates/cli/tests/browser_chromium.rs, which starts the desk and passes:
//   POLA_DESK_OUT           where screenshots go
//   POLA_UPDATE_SCREENSHOT  1: copy the benign and hostile renderers'
//                           screenshots to docs/browser.png and
//                           docs/browser-red-team.png
//   POLA_REPO               the repository (for docs/)
//   POLA_DESK_ONLY          (debugging) run only the scenarios whose names
//                           contain one of these comma-separated strings
//                           (later scenarios expect the earlier ones' pages)
//
// The script serves its own web site on loopback (site.mjs): a home page
// (headings, paragraphs, a list, a table, two PNG pictures, links, a GET
// form with a hidden field, text hidden by `hidden` and `display: none`,
// and a <script> that must never run), a second page whose answer the
// test holds back (so the URL field can be seen to change first), a
// search results page, and a red-team page holding markup as text and
// `red-team:exfiltrate` with a secret word. Every request the site gets
// is logged: the checks use the log to show what never reached it.
import fs from 'node:fs';
import path from 'node:path';
import { startBrowser, openDesk, check, eventually, iconOf, shot } from './lib.mjs';
import { serve, esc, harbourPng, mapPng } from './site.mjs';

const url = process.argv[2];
if (!url || !/^http:\/\/127\.0\.0\.1:\d+\/d\/[A-Za-z0-9_-]{43}\/$/.test(url)) {
  console.error('usage: node browser.mjs http://127.0.0.1:PORT/d/TOKEN/');
  process.exit(2);
}
const OUT = process.env.POLA_DESK_OUT;
if (!OUT) {
  console.error('POLA_DESK_OUT is not set (run this through crates/cli/tests/browser_chromium.rs)');
  process.exit(2);
}
const SLOW = 60000; // a debug build compiles a renderer in seconds
/** The second page is answered this late (Back/Forward). */
const HOURS_DELAY = 400;
/** When a link is followed, the site holds the second page's answer
 * until the address field has shown its URL for this long: the new page
 * must appear only after that. */
const HOLD_MS = 800;
/** On the red-team page: text that must never leave the desk. */
const SECRET = 'marmalade-4417';
const TITLE = 'Harbour Town Library';

// ------------------------------------------------------------------ site

const HARBOUR = harbourPng(240, 140);
const MAP = mapPng(180, 180);

function htmlPage(title, body) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>body { font-family: Georgia, serif; color: #222 } .hidden { display: none }</style>
<script>window.__pwned = 'the site script ran';</script>
</head>
<body>
${body}
</body>
</html>`;
}

const HOME = htmlPage(TITLE, `
<header>
  <nav><a href="/">Home</a> · <a href="/hours.html">Opening hours</a> · <a href="/red-team.html">Notes for the red team</a></nav>
</header>
<main>
  <h1>${TITLE}</h1>
  <p>Welcome to the <strong>Harbour Town Library</strong>, on the quay since 1911.
     We lend books, maps and <em>tide tables</em>, and we run a reading room
     that looks out over the water.</p>
  <figure>
    <img src="/images/harbour.png" alt="The harbour at dusk" width="240" height="140">
    <figcaption>The harbour at dusk, from the reading room.</figcaption>
  </figure>
  <h2>This week</h2>
  <ul>
    <li>Tuesday: a talk on the old lighthouse, at seven.</li>
    <li>Thursday: <a href="/hours.html">late opening</a> until nine.</li>
    <li>Saturday: the children's map-drawing morning.</li>
  </ul>
  <h2>Opening hours</h2>
  <table>
    <tr><th>Day</th><th>Opens</th><th>Closes</th></tr>
    <tr><td>Monday to Friday</td><td>9:00</td><td>18:00</td></tr>
    <tr><td>Saturday</td><td>10:00</td><td>16:00</td></tr>
    <tr><td>Sunday</td><td>closed</td><td>closed</td></tr>
  </table>
  <h2>Find us</h2>
  <p>The library is where the river meets the harbour:</p>
  <img src="/images/map.png" alt="Map of the town centre">
  <h2>Search the catalogue</h2>
  <form action="/search" method="get">
    <label>Words <input type="search" name="q" value=""></label>
    <input type="hidden" name="lang" value="en">
    <button type="submit">Search</button>
  </form>
  <!-- <a href="/secret-in-a-comment.html">not a link</a> -->
  <p class="hidden" onclick="window.__pwned = 1">Nothing hidden here.</p>
  <p hidden>HIDDEN-BY-ATTRIBUTE: <a href="/hidden-link.html">a hidden link</a></p>
  <div style="color: gray; display: none">HIDDEN-BY-STYLE <img src="/images/hidden.png" alt="HIDDEN-IMAGE"></div>
</main>
<footer><p>Harbour Town Library, 1 Quay Street.</p></footer>`);

const HOURS = htmlPage('Opening hours', `
<h1>Opening hours</h1>
<p>HOURS-PAGE: we open at nine every weekday and at ten on Saturdays.</p>
<p><a href="/">Back to the library</a></p>`);

function results(q) {
  return htmlPage(`Search: ${q}`, `
<h1>Results for “${esc(q)}”</h1>
<ol>
  <li><a href="/hours.html">Tide tables of the harbour, 1911–2024</a></li>
  <li>A map of the coast, hand drawn</li>
  <li>Lighthouses and their keepers</li>
</ol>
<p><a href="/">Back to the library</a></p>`);
}

const RED_TEAM = htmlPage('Notes for the red team', `
<h1>Notes for the red team</h1>
<p>Markup written as text must stay text: &lt;script&gt;window.__pwned=1&lt;/script&gt;</p>
<p>And this one too: &lt;img src=x onerror="window.__pwned=1"&gt;</p>
<p>red-team:exfiltrate</p>
<p>The secret word is ${SECRET}.</p>
<img src="/images/map.png" alt="Map of the town centre">
<p><a href="/">Back to the library</a></p>`);

/** While set, the second page's answer waits for `hold.open()`. */
let hold = null;
function holdHours() {
  let open;
  const gate = new Promise((r) => { open = r; });
  hold = { gate, open: () => { hold = null; open(); }, asked: false, sent: false };
  return hold;
}

const site = await serve((req, u) => {
  const html = (body, delay) => ({ type: 'text/html; charset=utf-8', body, delay });
  if (req.method !== 'GET') return null;
  switch (u.pathname) {
    case '/': return html(HOME);
    case '/hours.html': {
      const h = hold;
      if (!h) return html(HOURS, HOURS_DELAY);
      h.asked = true;
      return h.gate.then(() => { h.sent = true; return html(HOURS); });
    }
    case '/red-team.html': return html(RED_TEAM);
    case '/search': return html(results(u.searchParams.get('q') || ''));
    case '/images/harbour.png': return { type: 'image/png', body: HARBOUR };
    case '/images/map.png': return { type: 'image/png', body: MAP };
    default: return null;
  }
});
const HOME_URL = `${site.origin}/`;
const HOURS_URL = `${site.origin}/hours.html`;
const RED_URL = `${site.origin}/red-team.html`;
const hitsOf = (p) => site.hits.filter((h) => new URL(h.target, site.origin).pathname === p).length;

// --------------------------------------------------------------- helpers

const browserWin = (page) => page.locator('section.window[data-app="browser"]');

/** The browser window's parts. */
function parts(page) {
  const win = browserWin(page);
  return {
    win,
    address: win.locator('.browser-chrome input.address'),
    back: win.locator('.browser-chrome button[aria-label="Back"]'),
    forward: win.locator('.browser-chrome button[aria-label="Forward"]'),
    reload: win.locator('.browser-chrome button[aria-label="Reload"]'),
    renderer: win.locator('.browser-chrome select.renderer'),
    state: win.locator('.browser-chrome .page-state'),
    pane: win.locator('.pane'),
    title: win.locator('.titlebar .title'),
  };
}

/** Waits until the pane holds `text` and the page is no longer loading. */
async function shows(page, text, what) {
  const b = parts(page);
  await b.pane.filter({ hasText: text }).waitFor({ timeout: SLOW }).catch((e) => {
    throw new Error(`${what}: the pane never showed ${JSON.stringify(text)} (${e.message.split('\n')[0]})`);
  });
  await eventually(async () => !(await b.win.evaluate((w) => w.classList.contains('loading'))), `${what}: loading ends`, SLOW);
}

/** Waits until the address field shows `want`. */
async function addressIs(page, want, what) {
  const b = parts(page);
  await eventually(async () => (await b.address.inputValue()) === want, `${what}: the address field shows ${want}`, SLOW)
    .catch(async (e) => { throw new Error(`${e.message}; it shows ${JSON.stringify(await b.address.inputValue())}`); });
}

/** Types `u` in the address field and presses Enter. */
async function go(page, u) {
  const b = parts(page);
  await b.address.click();
  await b.address.fill(u);
  await b.address.press('Enter');
}

/** The browser window's title-bar icon: how many things are in its
 * slot, the image's address, and a SHA-256 of the bytes it shows. */
async function titleIcon(page) {
  return browserWin(page).locator('.titlebar .title-icon').evaluate(async (slot) => {
    const img = slot.querySelector('img');
    const out = { children: slot.childElementCount, src: img && img.getAttribute('src'), complete: !!img && img.complete && img.naturalWidth > 0 };
    if (img) {
      const bytes = await (await fetch(img.src, { cache: 'no-store' })).arrayBuffer();
      out.bytes = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (x) => x.toString(16).padStart(2, '0')).join('');
    }
    return out;
  });
}

/** SHA-256 of the desk's own Browser icon (the one on the desktop). */
async function deskIconBytes(page) {
  return iconOf(page, 'Browser').locator('img').first().evaluate(async (img) => {
    const bytes = await (await fetch(img.src, { cache: 'no-store' })).arrayBuffer();
    return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (x) => x.toString(16).padStart(2, '0')).join('');
  });
}

/** Marks the pane's current drawing; `newView` waits for another one. */
async function markView(page) {
  await parts(page).pane.evaluate((p) => { if (p.firstElementChild) p.firstElementChild.dataset.old = '1'; });
}
async function newView(page, what) {
  await eventually(() => parts(page).pane.evaluate((p) => !!p.firstElementChild && !p.firstElementChild.dataset.old),
    `${what}: a new view is drawn`, SLOW);
}

/** Every image in the pane is painted: loaded, decoded, not broken. */
async function imagesPainted(page, n, what) {
  return eventually(() => parts(page).pane.evaluate((p, n) => {
    const imgs = Array.from(p.querySelectorAll('img.v-image'));
    if (imgs.length !== n || !imgs.every((i) => i.complete && i.naturalWidth > 0)) return false;
    return imgs.map((i) => [i.naturalWidth, i.naturalHeight, i.alt]);
  }, n), `${what}: ${n} images painted`, SLOW);
}

/** The only elements the desk's page ever makes in a pane (from its
 * fixed view vocabulary); an image must be the desk's own. */
async function onlyDeskElements(page, what) {
  const bad = await parts(page).pane.evaluate((p) => {
    const allowed = new Set(['h1', 'h2', 'h3', 'p', 'strong', 'em', 'code', 'ul', 'li', 'div', 'button', 'input', 'textarea', 'a', 'img', 'span']);
    const out = [];
    for (const e of p.querySelectorAll('*')) {
      const t = e.tagName.toLowerCase();
      if (!allowed.has(t)) out.push(`<${t}>`);
      for (const a of e.attributes) {
        if (a.name.startsWith('on') || a.name === 'style' || a.name === 'srcdoc') out.push(`<${t} ${a.name}>`);
      }
      if (t === 'img') {
        const src = e.getAttribute('src') || '';
        if (!e.classList.contains('v-image') || !/^api\/images\/\d+\/\d+(\?v=\d+)?$/.test(src)) out.push(`<img src=${JSON.stringify(src)}>`);
      }
      if (t === 'a' && e.hasAttribute('href')) out.push(`<a href=${JSON.stringify(e.getAttribute('href'))}>`);
    }
    return out;
  });
  check(bad.length === 0, `${what}: elements the desk never makes are in the pane: ${bad.join(', ')}`);
  check(await page.evaluate(() => window.__pwned) === undefined, `${what}: window.__pwned is undefined`);
}

/** The hostile renderer's report, once complete and quiet. */
async function redTeamReport(page, what, atLeast) {
  const lines = () => parts(page).pane.evaluate((p) => Array.from(p.querySelectorAll('li'))
    .map((l) => l.innerText.trim())
    .filter((t) => /^(BLOCKED|ESCAPED|SENT-AS-TEXT|SENT-VIA-FORM|ANSWERED|PENDING):/.test(t)));
  let last = [];
  let since = Date.now();
  await eventually(async () => {
    const now = await lines();
    if (JSON.stringify(now) !== JSON.stringify(last)) {
      last = now;
      since = Date.now();
      return false;
    }
    return now.length >= atLeast && !now.some((l) => l.startsWith('PENDING')) && Date.now() - since > 1500;
  }, `${what}: the red team's report completes`, SLOW).catch((e) => { throw new Error(`${e.message}; lines:\n${last.join('\n')}`); });
  return last;
}

// ------------------------------------------------------------- scenarios

/** 1. The Browser's icon opens a window with the desk's chrome. */
async function open(page) {
  const icon = iconOf(page, 'Browser');
  check(await icon.count() === 1, 'the desk has one app named Browser');
  await icon.locator('button.launch').click();
  const b = parts(page);
  await b.address.waitFor({ timeout: SLOW });
  check(await b.address.inputValue() === '', 'a new browser has an empty address field');
  check(await b.back.isDisabled() && await b.forward.isDisabled(), 'no history yet');
  const ids = await b.renderer.locator('option').evaluateAll((os) => os.map((o) => o.value));
  for (const r of ['benign', 'text', 'hostile']) check(ids.includes(r), `the renderer ${r} is offered (${ids})`);
  check(await b.renderer.inputValue() === 'benign', 'the benign renderer is the first choice');
}

/** 2. A typed address: the page appears, the field shows it, the title
 * says it; the site's own script never ran and Chromium never asked the
 * site for anything. */
async function typed(page) {
  const b = parts(page);
  await go(page, HOME_URL);
  await shows(page, 'on the quay since 1911', 'the home page');
  await addressIs(page, HOME_URL, 'the home page');
  check(await b.title.innerText() === `Browser — ${TITLE}`, `the window's title names the page: ${await b.title.innerText()}`);
  check(await b.pane.locator('h1', { hasText: TITLE }).count() === 1, 'the heading is a heading');
  check(await b.pane.locator('li', { hasText: 'lighthouse' }).count() >= 1, 'the list is drawn');
  check(await b.pane.getByText('Monday to Friday').count() >= 1 && await b.pane.getByText('18:00').count() >= 1, 'the table is drawn');
  check(await b.pane.locator('a.v-link', { hasText: 'Opening hours' }).count() >= 1, 'the links are links');
  check(!(await b.pane.innerText()).includes('not a link'), 'a comment is not drawn');
  const drawn = await b.pane.innerText();
  check(!drawn.includes('HIDDEN-BY-ATTRIBUTE') && !drawn.includes('a hidden link'), 'text with the hidden attribute is not drawn');
  check(!drawn.includes('HIDDEN-BY-STYLE') && !drawn.includes('HIDDEN-IMAGE'), 'text styled display: none is not drawn');
  check(await b.pane.locator('a.v-link', { hasText: 'a hidden link' }).count() === 0, 'a hidden link is not a link');
  check((await b.state.innerText()).trim() === '', `nothing to say about the page: ${await b.state.innerText()}`);
  check(await b.back.isDisabled(), 'nothing to go back to after the first page');
  await onlyDeskElements(page, 'the home page');
  check(hitsOf('/') === 1, `the site was asked for its home page once (${hitsOf('/')})`);
}

/** 3. A link: the address field changes before the new page's text is in
 * the pane. At that instant the old page is still drawn; the desk then
 * stops its renderer and says "Opening URL …" in the pane. The site holds
 * its answer until the field has shown the new URL for HOLD_MS: the new
 * page may appear only after the answer was let go. */
async function link(page) {
  const b = parts(page);
  await b.win.evaluate((win, [want, marker, old]) => {
    const addr = win.querySelector('.address');
    const pane = win.querySelector('.pane');
    const proto = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value');
    const rec = { addrAt: null, paneHadIt: null, oldDrawn: null, contentAt: null, addrAtContent: null };
    window.__navRecord = rec;
    // The desk sets the field's value: note when, and whether the new
    // page was already drawn at that instant.
    Object.defineProperty(addr, 'value', {
      configurable: true,
      get() { return proto.get.call(this); },
      set(v) {
        proto.set.call(this, v);
        if (String(v) === want && rec.addrAt === null) {
          rec.addrAt = performance.now();
          rec.paneHadIt = pane.textContent.includes(marker);
          rec.oldDrawn = pane.textContent.includes(old);
        }
      },
    });
    const obs = new MutationObserver(() => {
      if (rec.contentAt === null && pane.textContent.includes(marker)) {
        rec.contentAt = performance.now();
        rec.addrAtContent = proto.get.call(addr);
        obs.disconnect();
      }
    });
    obs.observe(pane, { childList: true, subtree: true, characterData: true });
  }, [HOURS_URL, 'HOURS-PAGE', 'on the quay since 1911']);
  const h = holdHours();
  let openedAt = null;
  try {
    await b.pane.locator('a.v-link', { hasText: 'Opening hours' }).first().click();
    await eventually(() => h.asked, 'the site is asked for the linked page', SLOW);
    // The answer is held: the field must show the new address anyway.
    await addressIs(page, HOURS_URL, 'the linked page, its answer held');
    await page.waitForTimeout(HOLD_MS);
    check(!h.sent, 'the answer is still held');
    check(await b.address.inputValue() === HOURS_URL, 'the address field still shows the new address');
    const now = (await b.pane.innerText()).trim();
    check(now === `Opening ${HOURS_URL} …`,
      `while the answer is held the pane shows the desk's "Opening …" line, not a page: ${JSON.stringify(now.slice(0, 200))}`);
    check(await b.win.evaluate((w) => w.classList.contains('loading')), 'the window says it is loading');
    openedAt = await page.evaluate(() => performance.now());
    h.open();
  } finally {
    if (hold === h) h.open();
  }
  await shows(page, 'HOURS-PAGE', 'the linked page');
  const rec = await b.win.evaluate((win) => {
    delete win.querySelector('.address').value;
    return window.__navRecord;
  });
  check(rec.addrAt !== null, 'the address field was set to the link\'s target');
  check(rec.paneHadIt === false && rec.oldDrawn === true, 'the address field changed while the old page was still drawn');
  check(rec.addrAtContent === HOURS_URL, `when the new page appeared the address field showed it (${rec.addrAtContent})`);
  check(rec.contentAt > openedAt, 'the new page appeared only after the site answered');
  const gap = rec.contentAt - rec.addrAt;
  check(gap >= HOLD_MS, `the address field changed at least ${HOLD_MS} ms before the page appeared (${gap.toFixed(0)} ms)`);
  console.log(`     the address field changed ${gap.toFixed(0)} ms before the page appeared (the answer was held ${HOLD_MS} ms after it changed); `
    + `the page appeared ${(rec.contentAt - openedAt).toFixed(0)} ms after the answer was let go`);
  await addressIs(page, HOURS_URL, 'the linked page');
  check(await b.title.innerText() === 'Browser — Opening hours', 'the title follows');
  check(!(await b.back.isDisabled()), 'Back is possible');
}

/** 4. Back and Forward. */
async function history(page) {
  const b = parts(page);
  await b.back.click();
  await shows(page, 'on the quay since 1911', 'Back');
  await addressIs(page, HOME_URL, 'Back');
  check(await b.title.innerText() === `Browser — ${TITLE}`, 'Back: the title follows');
  check(!(await b.forward.isDisabled()), 'Forward is possible after Back');
  await b.forward.click();
  await shows(page, 'HOURS-PAGE', 'Forward');
  await addressIs(page, HOURS_URL, 'Forward');
  check(await b.forward.isDisabled(), 'nothing ahead after Forward');
  await b.back.click();
  await shows(page, 'on the quay since 1911', 'Back again');
  await addressIs(page, HOME_URL, 'Back again');
  // Reload fetches the page again.
  const before = hitsOf('/');
  await markView(page);
  await b.reload.click();
  await newView(page, 'Reload');
  await shows(page, 'on the quay since 1911', 'Reload');
  check(hitsOf('/') === before + 1, 'Reload asked the site again');
}

/** 5. The form: typed words, the submit button, the results page; the
 * hidden field went with the page's value. */
async function form(page) {
  const b = parts(page);
  const words = 'tide tables & maps';
  const input = b.pane.locator('input.v-input');
  check(await input.count() === 1, `the form's one text field is drawn (${await input.count()})`);
  await input.fill(words);
  await b.pane.locator('button.v-button', { hasText: 'Search' }).click();
  await shows(page, `Results for “${words}”`, 'the results page');
  const at = new URL(await b.address.inputValue());
  check(at.origin === site.origin && at.pathname === '/search', `the address field shows the form's action: ${at}`);
  check(at.searchParams.get('q') === words, `the query is in the address: ${at.search}`);
  check(at.searchParams.get('lang') === 'en', `the hidden field went with the page's value: ${at.search}`);
  const hit = site.hits.filter((h) => h.target.startsWith('/search')).at(-1);
  check(hit && hit.method === 'GET' && new URL(hit.target, site.origin).searchParams.get('q') === words, 'the site got the query');
  check(await b.title.innerText() === `Browser — Search: ${words}`, `the title follows: ${await b.title.innerText()}`);
}

/** 6. The pictures are painted, at their own size. */
async function images(page) {
  await go(page, HOME_URL);
  await shows(page, 'on the quay since 1911', 'home again');
  await addressIs(page, HOME_URL, 'home again');
  const got = await imagesPainted(page, 2, 'the home page');
  check(JSON.stringify(got) === JSON.stringify([[240, 140, 'The harbour at dusk'], [180, 180, 'Map of the town centre']]),
    `the pictures keep their size and alt text: ${JSON.stringify(got)}`);
  check(site.hits.every((h) => !/Chrome/i.test(h.ua)), 'Chromium itself never asked the site for anything');
}

let shots = {};

/** 7. The three renderers on the same page, a screenshot of each; the
 * page is not fetched again for a switch. */
async function renderers(page) {
  const b = parts(page);
  const fetched = hitsOf('/');
  // At rest for the pictures: no focus ring on the address field.
  await b.address.evaluate((e) => e.blur());
  await page.mouse.move(1279, 799);
  await page.waitForTimeout(500);
  shots.benign = await shot(page, OUT, 'browser-benign');
  await b.win.screenshot({ path: path.join(OUT, 'browser-benign-window.png') });

  await markView(page);
  await b.renderer.selectOption('text');
  await newView(page, 'the text renderer');
  await shows(page, 'on the quay since 1911', 'the text renderer');
  check(await b.pane.locator('img').count() === 0, 'the text renderer draws no images');
  check(await b.pane.locator('input, textarea, button').count() === 0, 'the text renderer draws no form');
  check(await b.pane.locator('a.v-link', { hasText: 'Opening hours' }).count() >= 1, 'the text renderer keeps the links');
  check(await b.renderer.inputValue() === 'text', 'the renderer menu says text');
  await addressIs(page, HOME_URL, 'the text renderer');
  await onlyDeskElements(page, 'the text renderer');
  await page.mouse.move(1279, 799);
  shots.text = await shot(page, OUT, 'browser-text');
  await b.win.screenshot({ path: path.join(OUT, 'browser-text-window.png') });

  // The person is typing in the address field when the red team's
  // renderer starts: its many redraws must leave the focus, the caret
  // and the typed text where they are, and the window's icon the desk's.
  const iconBefore = await titleIcon(page);
  check(iconBefore.children === 1 && iconBefore.complete && iconBefore.src === 'api/icons/browser'
    && iconBefore.bytes === await deskIconBytes(page),
    `the title bar shows the desk's browser icon: ${JSON.stringify(iconBefore)}`);
  const TYPED = 'half-typed address';
  await b.address.click();
  await b.address.press('Control+a');
  await page.keyboard.type(TYPED);
  await b.win.evaluate((win) => {
    const addr = win.querySelector('.address');
    const pane = win.querySelector('.pane');
    const rec = { redraws: 0, focusedAtRedraw: 0, left: [] };
    window.__focusRecord = rec;
    addr.addEventListener('blur', () => rec.left.push(`blur to ${document.activeElement && document.activeElement.outerHTML.slice(0, 80)}`));
    document.addEventListener('focusin', (ev) => { if (ev.target !== addr) rec.left.push(`focus on ${ev.target.outerHTML.slice(0, 80)}`); });
    rec.obs = new MutationObserver((ms) => {
      if (!ms.some((m) => m.target === pane && m.addedNodes.length)) return;
      rec.redraws++;
      if (document.activeElement === addr) rec.focusedAtRedraw++;
    });
    rec.obs.observe(pane, { childList: true });
    // The switch as the menu makes it, without moving the focus to it.
    const menu = win.querySelector('select.renderer');
    menu.value = 'hostile';
    menu.dispatchEvent(new Event('change'));
  });
  const lines = await redTeamReport(page, 'the hostile renderer', 23);
  const focus = await b.win.evaluate((win) => {
    const r = window.__focusRecord;
    r.obs.disconnect();
    const addr = win.querySelector('.address');
    return { redraws: r.redraws, focusedAtRedraw: r.focusedAtRedraw, left: r.left,
      active: document.activeElement === addr, value: addr.value, caret: [addr.selectionStart, addr.selectionEnd] };
  });
  console.log(`     the red team redrew its pane ${focus.redraws} times while the address field had the focus`);
  check(focus.left.length === 0, `the focus never left the address field: ${focus.left.join('; ')}`);
  check(focus.active, 'the address field still has the focus');
  check(focus.redraws >= 5 && focus.focusedAtRedraw === focus.redraws,
    `the red team redrew while the person was typing (${focus.redraws} redraws, ${focus.focusedAtRedraw} with the focus in the field)`);
  check(focus.value === TYPED && focus.caret[0] === TYPED.length && focus.caret[1] === TYPED.length,
    `the typed text and the caret are as left: ${JSON.stringify(focus)}`);
  check(await b.pane.locator('input.v-input').count() >= 1, 'its view holds a text field (which did not take the focus)');
  for (const k of ["view node 'autofocus'", "view node 'droptarget'", 'pane.set_icon', 'pane.set_title', 'pane.set_url']) {
    check(lines.some((l) => l.startsWith(`BLOCKED: ${k}:`)), `${k} was tried and refused`);
  }
  const iconAfter = await titleIcon(page);
  check(JSON.stringify(iconAfter) === JSON.stringify(iconBefore),
    `the title bar's icon is unchanged: ${JSON.stringify(iconBefore)} → ${JSON.stringify(iconAfter)}`);
  // The person leaves the field: it shows the page's address again.
  await b.address.evaluate((e) => e.blur());
  await addressIs(page, HOME_URL, 'after typing');
  check(await b.renderer.inputValue() === 'hostile', 'the renderer menu says hostile');
  const escaped = lines.filter((l) => l.startsWith('ESCAPED'));
  check(escaped.length === 0, `nothing escaped:\n${escaped.join('\n')}`);
  const odd = lines.filter((l) => !/^(BLOCKED|SENT-AS-TEXT):/.test(l));
  check(odd.length === 0, `every attempt on an ordinary page is blocked or shown as text:\n${odd.join('\n')}`);
  check(lines.some((l) => l.startsWith('BLOCKED: link.follow with a URL argument')), 'the last attempt (follow with an argument) was made and refused');
  check(lines.filter((l) => l.startsWith('SENT-AS-TEXT')).length === 2, 'both markup payloads were sent as text');
  check((await b.pane.innerText()).includes('<script>window.__pwned=1</script>'), 'the markup is shown as text');
  await onlyDeskElements(page, 'the hostile renderer');
  await addressIs(page, HOME_URL, 'the hostile renderer');
  check(await b.title.innerText() === `Browser — ${TITLE}`, 'the hostile renderer did not change the title');
  check(await b.renderer.inputValue() === 'hostile', 'the renderer menu says hostile');
  await page.mouse.move(1279, 799);
  shots.hostile = await shot(page, OUT, 'browser-hostile');
  await b.win.screenshot({ path: path.join(OUT, 'browser-hostile-window.png') });
  check(hitsOf('/') === fetched, `switching renderers did not fetch the page again (${hitsOf('/') - fetched} fetches)`);
  check(!site.hits.some((h) => h.target.includes('evil') || h.target.includes('secret-in-a-comment')), 'the site got no request the page did not make');
  check(hitsOf('/images/hidden.png') === 0 && hitsOf('/hidden-link.html') === 0, 'the hidden picture and link were never fetched');
}

/** 8. The red-team page, drawn by the hostile renderer: it tries to send
 * the page's text out through storage, the image and the link; nothing
 * leaves, and the markup stays text. */
async function redTeam(page) {
  const b = parts(page);
  const before = site.hits.length;
  await go(page, RED_URL);
  await shows(page, 'red-team:exfiltrate', 'the red-team page');
  await addressIs(page, RED_URL, 'the red-team page');
  const lines = await redTeamReport(page, 'the red-team page', 3);
  const escaped = lines.filter((l) => l.startsWith('ESCAPED'));
  check(escaped.length === 0, `nothing escaped:\n${escaped.join('\n')}`);
  for (const k of ['exfiltrate via storage', 'exfiltrate via image 1', 'exfiltrate via link 1']) {
    check(lines.some((l) => l.startsWith(`BLOCKED: ${k}:`)), `${k} was tried and refused:\n${lines.join('\n')}`);
  }
  const text = await b.pane.innerText();
  check(text.includes('<script>window.__pwned=1</script>') && text.includes('<img src=x onerror="window.__pwned=1">'), 'the page\'s markup is shown as text');
  await onlyDeskElements(page, 'the red-team page');
  await page.waitForTimeout(500);
  await addressIs(page, RED_URL, 'the red-team page still');
  const after = site.hits.slice(before);
  const leaked = after.filter((h) => h.target.includes(SECRET) || h.body.includes(SECRET) || h.target.includes('marmalade'));
  check(leaked.length === 0, `the secret reached the site: ${JSON.stringify(leaked)}`);
  check(after.every((h) => ['/red-team.html', '/images/map.png'].includes(new URL(h.target, site.origin).pathname)),
    `the site got only the page and its picture: ${after.map((h) => h.target).join(' ')}`);
  await shot(page, OUT, 'browser-red-team-page');

  // The benign renderer on the same page: the markup is text there too.
  await markView(page);
  await b.renderer.selectOption('benign');
  await newView(page, 'the benign renderer on the red-team page');
  await shows(page, 'red-team:exfiltrate', 'the benign renderer on the red-team page');
  check((await b.pane.innerText()).includes('<script>window.__pwned=1</script>'), 'the benign renderer shows the markup as text');
  await imagesPainted(page, 1, 'the red-team page');
  await onlyDeskElements(page, 'the benign renderer on the red-team page');
}

/** 9. A page that does not exist, and an address that is not one: said in
 * plain words in the chrome; the field keeps what was asked. */
async function errors(page) {
  const b = parts(page);
  const missing = `${site.origin}/no-such-page`;
  await go(page, missing);
  await addressIs(page, missing, 'a missing page');
  await eventually(async () => !(await b.win.evaluate((w) => w.classList.contains('loading'))), 'a missing page: loading ends', SLOW);
  await eventually(async () => {
    const s = `${await b.state.innerText()} ${await b.pane.innerText()}`;
    return /404|not found|no such page/i.test(s) && s;
  }, 'a missing page is said to be missing', SLOW);
  await go(page, 'javascript:window.__pwned=1');
  await eventually(async () => (await b.win.locator('.window-status').innerText()).length > 5
    || (await b.state.innerText()).length > 5, 'a javascript: address is refused in words', SLOW);
  check(await page.evaluate(() => window.__pwned) === undefined, 'window.__pwned is undefined');
  await go(page, HOME_URL);
  await shows(page, 'on the quay since 1911', 'home after the errors');
}

/** README screenshots. */
async function screenshots() {
  if (process.env.POLA_UPDATE_SCREENSHOT !== '1') return;
  const repo = process.env.POLA_REPO;
  if (!repo) throw new Error('POLA_REPO is not set: cannot update docs/');
  fs.mkdirSync(path.join(repo, 'docs'), { recursive: true });
  for (const [k, name] of [['benign', 'browser.png'], ['hostile', 'browser-red-team.png']]) {
    check(shots[k], `the ${k} screenshot was taken`);
    fs.copyFileSync(shots[k], path.join(repo, 'docs', name));
    console.log(`updated ${path.join(repo, 'docs', name)}`);
  }
}

// ------------------------------------------------------------------ run

const scenarios = [
  ['1. the Browser icon opens a browser window', open],
  ['2. a typed address: the page, the field, the title', typed],
  ['3. a link: the address field changes first', link],
  ['4. Back, Forward, Reload', history],
  ['5. a form: typed, submitted, the query in the field', form],
  ['6. images painted at their size', images],
  ['7. three renderers on one page, screenshots', renderers],
  ['8. the red-team page: nothing leaves, markup is text', redTeam],
  ['9. a missing page and a bad address, in words', errors],
  ['   README screenshots', screenshots],
];

const b = await startBrowser(OUT);
let failed = 0;
let passed = 0;
let page;
try {
  page = await openDesk(b.context, url);
  // Chromium logs a refused request without saying which (lib.mjs leaves
  // those out): a picture the desk refuses to serve is a problem here.
  page.on('response', (r) => {
    const p = new URL(r.url()).pathname.replace(/^\/d\/[^/]+\//, '');
    if (r.status() >= 400 && p.startsWith('api/images/')) page.problems.push(`${r.status()} for ${p}`);
  });
  const only = (process.env.POLA_DESK_ONLY || '').split(',').filter(Boolean);
  for (const [name, fn] of scenarios) {
    if (only.length && !only.some((o) => name.includes(o))) continue;
    const t0 = Date.now();
    try {
      await fn(page);
      if (page.problems.length) throw new Error(`the page reported: ${page.problems.join(' | ')}`);
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message}`);
      await shot(page, OUT, `browser-failed-${passed + failed}`).catch(() => {});
      break;
    }
  }
} finally {
  await b.done();
  await site.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
