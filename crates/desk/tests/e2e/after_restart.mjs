// The desk's restart test, scenario 8: run after run.mjs, once the desk
// was killed and started again on the same state folder.
//
//   node after_restart.mjs URL
//
// Same environment as run.mjs. Checks that the apps, their pet names, the
// note, the install-time grants (and the audit's record of a revoked
// grant) all outlived the restart.
import fs from 'node:fs';
import path from 'node:path';
import { startBrowser, openDesk, check, windowOf, iconOf, shot, NAMES, NOTE } from './lib.mjs';

const url = process.argv[2];
if (!url || !/^http:\/\/127\.0\.0\.1:\d+\/d\/[A-Za-z0-9_-]{43}\/$/.test(url)) {
  console.error('usage: node after_restart.mjs http://127.0.0.1:PORT/d/TOKEN/');
  process.exit(2);
}
const DOCS = process.env.POLA_DESK_DOCS;
const OUT = process.env.POLA_DESK_OUT;
if (!DOCS || !OUT) {
  console.error('POLA_DESK_DOCS and POLA_DESK_OUT must be set (run this through crates/cli/tests/desk_browser.rs)');
  process.exit(2);
}
const EDITOR = process.env.POLA_DESK_EDITOR_PKG ? NAMES.editor : 'Editor';
const SLOW = 60000;

async function launchAndWait(page, pet, text) {
  await iconOf(page, pet).locator('button.launch').click();
  const win = windowOf(page, pet);
  await win.locator('.pane', { hasText: text }).waitFor({ timeout: SLOW });
  return win;
}

async function appsAndNames(page) {
  const pets = await page.locator('#app-icons .pet').allInnerTexts();
  for (const p of ['Editor', 'Notes', 'Clock', NAMES.hostile, EDITOR]) {
    check(pets.includes(p), `${p} is on the desk after the restart (have: ${pets.join(', ')})`);
  }
  check(pets.filter((p) => p === 'Notes').length === 1, 'one app named Notes');
  check(await windowOf(page, 'Notes').count() === 0, 'no window survives a restart');
}

async function noteKept(page) {
  const win = await launchAndWait(page, 'Notes', NOTE);
  check((await win.locator('.pane li').allInnerTexts()).some((t) => t.includes(NOTE)), 'the note is kept');
}

async function grantsKept(page) {
  const saved = fs.readFileSync(path.join(DOCS, 'notes.txt'), 'utf8');
  const win = await launchAndWait(page, EDITOR, 'notes.txt');
  check((await win.locator('.pane textarea').inputValue()) === saved, 'the editor opens its install-time file');
  await win.locator('.titlebar button[aria-label="About this app"]').click();
  const info = page.locator('.dialog.info');
  await info.locator('tr.live', { hasText: 'notes.txt' }).first().waitFor({ timeout: SLOW });
  check(await info.locator('tr.revoked', { hasText: 'other.txt' }).count() >= 1, 'the revoked grant is still on record');
  await info.locator('.dialog-head button.close').click();
  await iconOf(page, NAMES.hostile).locator('button.info-button').click();
  const reach = (await page.locator('.dialog.info .reach').innerText()).toLowerCase();
  check(reach.includes('bait.txt'), `the hostile app still gets only the chosen file: ${reach}`);
  check(!/web|internet|site/.test(reach), `and still no web: ${reach}`);
  await page.locator('.dialog.info .dialog-head button.close').click();
}

const scenarios = [
  ['8. after a restart: apps and pet names', appsAndNames],
  ['8. after a restart: the note', noteKept],
  ['8. after a restart: install-time grants', grantsKept],
];

const b = await startBrowser(OUT);
let failed = 0;
let passed = 0;
try {
  const page = await openDesk(b.context, url);
  for (const [name, fn] of scenarios) {
    const t0 = Date.now();
    try {
      await fn(page);
      if (page.problems.length) throw new Error(`the page reported: ${page.problems.join(' | ')}`);
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message}`);
      await shot(page, OUT, 'failed-after-restart').catch(() => {});
      break;
    }
  }
  await shot(page, OUT, 'after-restart').catch(() => {});
} finally {
  await b.done();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
