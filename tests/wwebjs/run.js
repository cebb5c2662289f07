// Drives the unmodified whatsapp-web.js client against the simulator.
//   MODE=fresh:   qr -> scan -> authenticated -> ready -> incoming message -> sendMessage -> getState -> destroy
//   MODE=restore: restores from the LocalAuth profile without a QR -> ready -> getState -> logout
//   MODE=hold:    qr -> scan -> ready, then stays up (benchmarks measure it against the driver)
// Environment: SIM_ADDR (host:port), CONTROL_URL, CHROMIUM, DATA_PATH, PHONE, PUSHNAME, MODE,
// and optionally CHROMIUM_ARGS (a JSON array replacing the default switches).
// Prints one JSON line per step ("step") and exits 0 only when every check held.
'use strict';
const { Client, LocalAuth } = require('whatsapp-web.js');

const { SIM_ADDR, CONTROL_URL, CHROMIUM, DATA_PATH, PHONE, PUSHNAME, MODE } = process.env;
const SENDER = '34699000111';
const step = (name, data) => console.log(JSON.stringify(Object.assign({ step: name }, data || {})));
const fail = (message) => { step('fail', { message }); process.exit(1); };
const control = async (method, path, body) => {
  const res = await fetch(CONTROL_URL + path, {
    method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) fail(method + ' ' + path + ' -> ' + res.status + ' ' + JSON.stringify(json));
  return json;
};
const waitFor = (emitter, event, ms) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no ' + event + ' within ' + ms + ' ms')), ms);
  emitter.once(event, (...args) => { clearTimeout(timer); resolve(args); });
});

async function main() {
  const client = new Client({
    authStrategy: new LocalAuth({ dataPath: DATA_PATH }),
    webVersionCache: { type: 'none' },
    puppeteer: {
      executablePath: CHROMIUM,
      args: [
        ...(process.env.CHROMIUM_ARGS ? JSON.parse(process.env.CHROMIUM_ARGS) : [
          '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
          '--disable-component-update', '--disable-sync', '--no-first-run',
        ]),
        `--host-resolver-rules=MAP web.whatsapp.com ${SIM_ADDR}`, '--ignore-certificate-errors',
      ],
    },
  });
  let qrs = 0;
  client.on('qr', async (qr) => {
    qrs += 1;
    step('qr', { qr });
    if (MODE === 'restore') fail('a QR was asked for although the profile was linked');
    if (qrs === 1) await control('POST', '/scan', { qr, phone: PHONE, pushname: PUSHNAME });
  });
  const authenticated = waitFor(client, 'authenticated', 60000);
  const ready = waitFor(client, 'ready', 60000);
  await client.initialize();
  await authenticated;
  step('authenticated');
  await ready;
  step('ready', { user: client.info.wid.user, pushname: client.info.pushname });
  if (client.info.wid.user !== PHONE) fail('ready with the wrong number ' + client.info.wid.user);
  if (client.info.pushname !== PUSHNAME) fail('ready with the wrong push name ' + client.info.pushname);

  if (MODE === 'fresh') {
    const incoming = waitFor(client, 'message', 30000);
    await control('POST', '/phones/' + PHONE + '/messages', { from: SENDER, body: 'hola desde el teléfono' });
    const [message] = await incoming;
    step('message', { from: message.from, body: message.body, fromMe: message.fromMe });
    if (message.body !== 'hola desde el teléfono' || message.from !== SENDER + '@c.us' || message.fromMe) fail('wrong message');

    const sent = await client.sendMessage(SENDER + '@c.us', 'respuesta');
    if (!sent || !sent.id || !sent.id.fromMe) fail('sendMessage returned ' + JSON.stringify(sent));
    // sendMessage resolves once the message is added locally; the server gets it a moment later.
    let found;
    for (let i = 0; i < 50 && !found; i++) {
      const list = await control('GET', '/phones/' + PHONE + '/sent');
      found = list.sent.find((m) => m.body === 'respuesta' && m.to === SENDER + '@c.us');
      if (!found) await new Promise((r) => setTimeout(r, 100));
    }
    step('sent', { id: sent.id._serialized, listed: !!found });
    if (!found || sent.id._serialized !== 'true_' + SENDER + '@c.us_' + found.id) fail('sent message not listed');
  }

  const state = await client.getState();
  step('state', { state });
  if (state !== 'CONNECTED') fail('getState gave ' + state);

  if (MODE === 'hold') {
    // For measurements: stay ready until killed.
    step('holding');
    setInterval(() => {}, 60000);
    return;
  }

  if (MODE === 'fresh') {
    if (qrs < 1) fail('no QR on a fresh profile');
    await client.destroy();
    step('destroyed');
  } else {
    await client.logout();
    const devices = await control('GET', '/devices');
    const linked = devices.devices.filter((d) => d.linked).length;
    step('logged_out', { linked });
    if (linked !== 0) fail('the device is still linked after logout');
  }
  process.exit(0);
}

main().catch((e) => fail(String(e && e.stack || e)));
