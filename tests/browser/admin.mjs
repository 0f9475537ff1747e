// The admin's pages, run by the e2e test dashboard::admin: rules (a bad condition's message at
// its field, a good rule replayed with its spans drawn, disable, edit, delete, the replay
// shaded on the device's charts), provisioning (a
// secret shown once, the shown curl, mosquitto_pub and Python examples run as shown, the
// points stored), users and tokens (a viewer created and her password reset, a token shown
// once and revoked, vic scoped to site=plant-a), the system page (storage, retention saved, broker clients, the audit
// log); then the viewer, at a phone's width, sees none of the admin pages or edit controls and
// the API refuses her anyway; she makes a personal token (no role above hers), reads with it
// and revokes it.
import { execFileSync } from 'node:child_process';
import { assert, credentials, guard, launch, ready, scrollsSideways, shot, signIn, url } from './lib.mjs';

const [device] = credentials('SENTIO_DEVICE');
const viewerPassword = 'vic-first-password';
const viewerReset = 'vic-second-password';
const browser = await launch();
// At a phone's width: no sideways scroll, tap targets of 24 px at least, and a screenshot.
async function phoneCheck(page, name) {
  await page.setViewportSize({ width: 375, height: 800 });
  assert.equal(await scrollsSideways(page), false, `${name}: no horizontal scroll at 375 px`);
  for (const b of await page.locator('main :is(button, select, input, textarea):visible').all()) {
    const box = await b.boundingBox();
    assert.ok(box.height >= 24 && box.width >= 24, `${name}: a tap target of ${box.width}×${box.height} px`);
  }
  await shot(page, `${name}-phone`);
  await page.setViewportSize({ width: 1280, height: 800 });
}
const has = (cmd) => { try { execFileSync('sh', ['-c', `command -v ${cmd}`]); return true; } catch { return false; } };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('dialog', (d) => d.accept());
  // 400/403/422: the refusals this test provokes (shown on the page).
  const seen = guard(page, [400, 401, 403, 422]);
  await page.goto(url);
  await signIn(page, credentials('SENTIO_ADMIN'));
  await ready(page, 'fleet');
  assert.equal(await page.locator('nav a:visible').count(), 7, 'an admin sees every page');

  // ---- rules ----
  await page.click('nav a[href="#/rules"]');
  await ready(page, 'rules');
  const form = page.locator('form.rule-form');
  // A new rule on the pumps' temp, submitted.
  async function newRule(id, name, condition) {
    await page.click('button:text-is("New rule")');
    for (const [k, v] of [['id', id], ['name', name], ['kind', 'pump'], ['metrics', 'temp']]) await form.locator(`input[name=${k}]`).fill(v);
    await form.locator('textarea[name=condition]').fill(condition);
    await form.locator('button:text-is("Create rule")').click();
  }
  await newRule('hot', 'Hot pump', 'temp >>> 90');
  await page.waitForFunction(() => /condition: .*\(line 1, column 7\)/.test(document.querySelector('form.rule-form [data-field=condition]').textContent));
  assert.equal(await form.locator('[data-field=condition] pre.caret').innerText(), 'temp >>> 90\n      ^', 'the caret under column 7');
  console.log('bad condition:', await form.locator('[data-field=condition]').innerText());
  await shot(page, 'rule-bad-condition-desktop');
  await form.locator('textarea[name=condition]').fill('temp > 90');
  await form.locator('input[name=for]').fill('ten');
  await form.locator('button:text-is("Create rule")').click();
  await page.waitForFunction(() => /^for: /.test(document.querySelector('form.rule-form [data-field=for]').textContent));
  assert.equal(await form.locator('[data-field=condition]').innerText(), '', 'the fixed field is cleared');
  await form.locator('input[name=for]').fill('');
  await form.locator('button:text-is("Create rule")').click();
  const rule = page.locator('tr[data-rule=hot]');
  await rule.waitFor();
  assert.equal(await rule.locator('[data-status]').getAttribute('data-status'), 'ok');
  // Would it have fired over the last 6 hours: once, on pump-1; the span drawn on its chart.
  await page.selectOption('select[aria-label="replay range"]', { label: 'last 6h' });
  await rule.locator('button:text-is("Would it have fired?")').click();
  await page.waitForFunction(() => /^Yes: 1 time on 1 of 1 devices/.test(document.getElementById('replay-summary')?.textContent));
  const fig = page.locator(`figure[data-replay="${device}"]`);
  await fig.locator('svg.chart[data-points]').waitFor();
  assert.ok(Number(await fig.locator('svg.chart').getAttribute('data-points')) >= 30, 'the metric drawn');
  assert.equal(await fig.locator('rect.mark').count(), 1, 'one open/resolve span drawn');
  assert.match(await fig.locator('li.episode').innerText(), /Opened .*temp = 95.*resolved /);
  await shot(page, 'rule-replay-desktop');
  await phoneCheck(page, 'rules');
  // Disable, enable, edit; a second rule deleted.
  await rule.locator('button:text-is("Disable")').click();
  await page.waitForSelector('tr[data-rule=hot] [data-status=disabled]');
  await page.locator('tr[data-rule=hot] button:text-is("Enable")').click();
  await page.waitForSelector('tr[data-rule=hot] [data-status=ok]');
  await page.locator('tr[data-rule=hot] button:text-is("Edit")').click();
  assert.notEqual(await form.locator('input[name=id]').getAttribute('readonly'), null, 'the id stays');
  assert.equal(await form.locator('textarea[name=condition]').inputValue(), 'temp > 90');
  await form.locator('input[name=name]').fill('Hot pump, edited');
  await form.locator('button:text-is("Save rule")').click();
  await page.waitForFunction(() => /Hot pump, edited/.test(document.querySelector('tr[data-rule=hot]')?.textContent));
  // A rule whose evaluation fails (the twin has no such member) shows failing, with why.
  await newRule('twin-check', 'Valve reported', 'twin.reported.valve == "open" && temp > 40');
  await page.locator('tr[data-rule=twin-check]').waitFor();
  const sent = await fetch(`${url}/api/v1/devices/${device}/telemetry`, { method: 'POST', body: '{"temp": 51}', headers: { Authorization: `Basic ${Buffer.from(process.env.SENTIO_DEVICE).toString('base64')}` } });
  assert.equal(sent.status, 200);
  for (let i = 0; ; i++) {
    await page.click('nav a[href="#/rules"]'); // the page shown, loaded afresh
    await ready(page, 'rules');
    if (await page.locator('tr[data-rule=twin-check] [data-status=failing]').count()) break;
    assert.ok(i < 40, 'the failing rule shows failing');
    await page.waitForTimeout(250);
  }
  assert.match(await page.locator('tr[data-rule=twin-check] [data-status]').innerText(), new RegExp(`failing\\s+${device}: .*valve`));
  await page.locator('tr[data-rule=twin-check] button:text-is("Delete")').click();
  await page.waitForSelector('tr[data-rule=twin-check]', { state: 'detached' });
  await newRule('gone', 'To delete', 'temp > 1000');
  await page.locator('tr[data-rule=gone] button:text-is("Delete")').click();
  await page.waitForSelector('tr[data-rule=gone]', { state: 'detached' });

  // The replay on the device's own charts: the rules that select it offered, the chosen one's
  // fired span shaded on each chart of the window.
  await page.goto(`${url}/#/device/${device}`);
  await ready(page, 'device');
  assert.deepEqual(await page.locator('select[aria-label="rule replay"] option').allInnerTexts(), ['no rule replayed', 'would Hot pump, edited have fired?']);
  await page.selectOption('select[aria-label="rule replay"]', 'hot');
  await page.waitForFunction(() => /hot would have fired 1 time here/.test(document.querySelector('main [role=status]')?.textContent));
  await page.waitForFunction(() => document.querySelectorAll('svg.chart[aria-label="temp chart"] rect.fired').length === 1);
  await shot(page, 'device-rule-replay-desktop');
  await page.selectOption('select[aria-label="rule replay"]', '');
  await page.waitForFunction(() => !document.querySelector('svg.chart rect.fired'));

  // ---- provisioning ----
  await page.click('nav a[href="#/provision"]');
  await ready(page, 'provision');
  await page.fill('input[aria-label="device id"]', 'boiler-1');
  await page.fill('input[aria-label="device kind"]', 'boiler');
  await page.fill('input[aria-label="device labels"]', 'site=plant-a, floor=2');
  await page.click('button:text-is("Add device")');
  await page.waitForSelector('#secret pre[data-example="Secret"]');
  const secret = await page.locator('#secret pre[data-example="Secret"]').innerText();
  assert.match(secret, /^\S{20,}$/);
  assert.match(await page.locator('tr[data-device="boiler-1"]').innerText(), /boiler[\s\S]*site=plant-a[\s\S]*floor=2/);
  await shot(page, 'provision-secret-desktop');
  await phoneCheck(page, 'provision');
  // Each example runs as shown (where its tool is installed) and stores its reading.
  const example = (what) => page.locator(`#secret pre[data-example="${what}"]`).innerText();
  const curl = await example('HTTP (curl)');
  assert.ok(curl.includes(secret), 'the example carries the secret');
  console.log('shown curl:', curl.replace(secret, '<secret>'));
  execFileSync('bash', ['-c', curl], { stdio: 'pipe' });
  let ran = 1;
  if (has('mosquitto_pub')) { execFileSync('bash', ['-c', await example('MQTT (mosquitto_pub)')], { stdio: 'pipe' }); ran++; } else console.log('SKIPPED: mosquitto_pub example (not installed)');
  let python = false;
  try { execFileSync('python3', ['-c', 'import paho.mqtt.client'], { stdio: 'pipe' }); python = true; } catch { console.log('SKIPPED: Python example (paho-mqtt not installed)'); }
  if (python) { execFileSync('python3', ['-'], { input: await example('Python (paho-mqtt 2)'), stdio: ['pipe', 'pipe', 'pipe'] }); ran++; }
  const stored = await page.evaluate(() => fetch('/api/v1/devices/boiler-1/series/temperature').then((r) => r.json()));
  assert.equal(stored.points.length, ran, `${ran} examples ran: ${JSON.stringify(stored)}`);
  assert.ok(stored.points.every(([, v]) => v === 21.5));
  // Shown once: hidden, then gone from the page and from any new visit.
  await page.click('button:text-is("Done: hide the secret")');
  assert.equal((await page.content()).includes(secret), false, 'the secret left the page');
  await page.reload();
  await ready(page, 'provision');
  assert.equal((await page.content()).includes(secret), false, 'no page shows it again');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);

  // ---- users and tokens ----
  await page.click('nav a[href="#/users"]');
  await ready(page, 'users');
  await page.fill('input[aria-label="new user name"]', 'vic');
  await page.selectOption('select[aria-label="new user role"]', 'viewer');
  await page.fill('input[aria-label="new user password"]', viewerPassword);
  await page.click('button:text-is("Add user")');
  const vic = page.locator('tr[data-user=vic]');
  await vic.waitFor();
  assert.equal(await vic.locator('select').inputValue(), 'viewer');
  await page.selectOption('select[aria-label="role of vic"]', 'operator');
  await page.waitForFunction(() => /vic is now operator/.test(document.querySelector('main [role=status]').textContent));
  await page.selectOption('select[aria-label="role of vic"]', 'viewer');
  await page.waitForFunction(() => /vic is now viewer/.test(document.querySelector('main [role=status]').textContent));
  await vic.locator('input[type=password]').fill(viewerReset);
  await vic.locator('button:text-is("Reset password")').click();
  await page.waitForFunction(() => /vic's password reset/.test(document.querySelector('main [role=status]').textContent));
  await page.fill('input[aria-label="scope of vic"]', 'site=plant-a');
  await vic.locator('button:text-is("Set scope")').click();
  await page.waitForFunction(() => /vic now sees site=plant-a/.test(document.querySelector('main [role=status]').textContent));
  assert.equal(await page.locator(`tr[data-user="${credentials('SENTIO_ADMIN')[0]}"] button`).count(), 1, 'one neither disables nor removes oneself');
  // Disabled (she could not sign in), then enabled again.
  await vic.locator('button:text-is("Disable")').click();
  await page.waitForSelector('tr[data-user=vic] .bad:text-is("disabled")');
  const login = (password) => page.evaluate((password) => fetch('/api/v1/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'vic', password }) }).then((r) => r.status), password);
  assert.equal(await login(viewerReset), 401, 'a disabled user cannot sign in');
  await page.locator('tr[data-user=vic] button:text-is("Enable")').click();
  await page.waitForSelector('tr[data-user=vic] button:text-is("Disable")');
  assert.equal(await page.locator('tr[data-user=vic] .bad').count(), 0);
  await page.fill('input[aria-label="token name"]', 'grafana');
  await page.fill('input[aria-label="token topic filter"]', 'devices/#');
  await page.check('input[aria-label="token may read /metrics"]');
  await page.click('button:text-is("Create token")');
  await page.waitForSelector('#token-once pre');
  const tokenPassword = await page.locator('#token-once pre').innerText();
  const tokenRow = page.locator('tr[data-token]');
  await tokenRow.waitFor();
  const tokenUser = (await tokenRow.locator('div.mute').innerText()).trim();
  const metrics = (who) => fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${who}` } }).then((r) => r.status);
  assert.equal(await metrics(`${tokenUser}:${tokenPassword}`), 200, 'the token shown reads /metrics');
  await shot(page, 'users-desktop');
  await phoneCheck(page, 'users');
  await page.click('button:text-is("Done: hide it")');
  assert.equal((await page.content()).includes(tokenPassword), false);
  await tokenRow.locator('button:text-is("Revoke")').click();
  await tokenRow.waitFor({ state: 'detached' });
  assert.equal(await metrics(`${tokenUser}:${tokenPassword}`), 401, 'revoked');

  // ---- system ----
  await page.click('nav a[href="#/system"]');
  await ready(page, 'system');
  assert.match(await page.locator('#storage').innerText(), /On disk\s+\d[\s\S]*· the database\s+\d[\s\S]*· the broker's sessions and queues\s+\d/);
  assert.match(await page.locator('#clients h2').innerText(), /Broker clients \(\d+\)/);
  const audit = await page.locator('#audit').innerText();
  for (const a of ['rule.create', 'rule.update', 'rule.delete', 'device.create', 'user.create', 'user.role', 'user.password', 'user.scope', 'user.disable', 'user.enable', 'token.create', 'token.revoke']) assert.ok(audit.includes(a), `${a} in the audit log`);
  assert.equal(audit.includes(viewerReset), false, 'no password in the audit log');
  await page.fill('input[aria-label="audit action"]', 'user.role');
  await page.press('input[aria-label="audit action"]', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('#audit tr[data-audit]').length === 2);
  await page.fill('input[aria-label="raw retention"]', '14d');
  await page.click('button:text-is("Save retention")');
  await page.waitForFunction(() => /Retention saved/.test(document.querySelector('#retention [role=status]').textContent));
  assert.equal((await page.evaluate(() => fetch('/api/v1/retention').then((r) => r.json()))).global, '14d');
  await page.fill('input[aria-label="raw retention"]', '10m');
  await page.click('button:text-is("Save retention")');
  await page.waitForFunction(() => /below the floor/.test(document.querySelector('#retention .err')?.textContent));
  await shot(page, 'system-desktop');
  await phoneCheck(page, 'system');
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])');
  seen.check();

  // ---- the viewer, on a phone ----
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const seenPhone = guard(phone, [401, 403]);
  await phone.goto(url);
  await phone.fill('#name', 'vic');
  await phone.fill('#password', viewerPassword);
  await phone.click('#login button');
  await phone.waitForFunction(() => /./.test(document.getElementById('loginerr').textContent));
  await signIn(phone, ['vic', viewerReset]);
  await ready(phone, 'fleet');
  assert.equal(await phone.locator('nav a:visible').count(), 3, 'a viewer sees fleet, alerts and her tokens only');
  for (const p of ['rules', 'provision', 'users', 'system']) {
    await phone.evaluate((p) => { delete document.body.dataset.ready; location.hash = `#/${p}`; }, p);
    await ready(phone, 'error');
    assert.match(await phone.locator('#view p.err[role=alert]').innerText(), /admin/i);
    assert.equal(await phone.locator('#view button, #view input, #view select, #view textarea').count(), 0, `${p}: no controls for a viewer`);
  }
  await shot(phone, 'viewer-admin-page-phone');
  const refused = await phone.evaluate(() => Promise.all([
    ['POST', '/api/v1/rules', { id: 'mine', name: 'mine', condition: 'temp > 1' }],
    ['POST', '/api/v1/devices', { id: 'mine' }],
    ['POST', '/api/v1/users', { name: 'eve', role: 'admin', password: 'eve-long-password' }],
    ['PUT', '/api/v1/retention', { global: '1d' }],
  ].map(([method, path, body]) => fetch(path, { method, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf } }).then((r) => r.status)))); // eslint-disable-line no-undef
  assert.deepEqual(refused, [403, 403, 403, 403], 'the API refuses a viewer anyway');
  // ---- her own API token: no role above hers, shown once, revoked ----
  phone.on('dialog', (d) => d.accept());
  await phone.click('nav a[href="#/me"]');
  await ready(phone, 'me');
  assert.deepEqual(await phone.locator('select[aria-label="my token role"] option').allInnerTexts(), ['viewer'], 'no role above hers');
  await phone.fill('input[aria-label="my token name"]', 'script');
  await phone.fill('input[aria-label="my token lifetime"]', '30d');
  await phone.click('button:text-is("Create my token")');
  await phone.waitForSelector('#my-token-once pre');
  const bearer = await phone.locator('#my-token-once pre').innerText();
  const devices = (b) => fetch(`${url}/api/v1/devices`, { headers: { Authorization: `Bearer ${b}` } }).then((r) => r.status);
  assert.equal(await devices(bearer), 200, 'the token reads as her');
  await phoneCheck(phone, 'my-tokens');
  await phone.locator('tr[data-my-token] button:text-is("Revoke")').click();
  await phone.locator('tr[data-my-token]').waitFor({ state: 'detached' });
  assert.equal(await devices(bearer), 401, 'revoked');
  assert.equal((await phone.content()).includes(bearer), false, 'shown once');
  seenPhone.check();
  console.log('admin pages: ok');
} finally {
  await browser.close();
}
