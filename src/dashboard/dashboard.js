// The wa-supervisor dashboard: a working example of the WebSocket protocol (SPEC §4).
// No build step and no dependencies: plain DOM, one WebSocket, reconnecting with backoff.
(function () {
  'use strict';

  const STATUS_WORDS = {
    initializing: 'Starting', qr: 'Waiting for scan', authenticated: 'Linking', ready: 'Ready',
    reconnecting: 'Reconnecting', error: 'Error', stopped: 'Stopped',
  };
  const ERROR_WORDS = {
    UNAUTHORIZED: 'Your sign-in is no longer valid. Please sign in again.',
    BAD_REQUEST: 'That request was not valid.',
    UNKNOWN_EVENT: 'The server did not understand that request.',
    NOT_FOUND: 'That number is not linked to your account (it may have been removed).',
    ALREADY_EXISTS: 'That number is already running.',
    LIMIT_REACHED: 'You have reached the maximum number of WhatsApp numbers for your account.',
    RATE_LIMITED: 'Too many requests at once. Please wait a moment and try again.',
    FRAME_TOO_LARGE: 'That message is too long.',
    NOT_READY: 'This number is not connected yet. Wait until it shows Ready.',
    AUTH_FAILURE: 'WhatsApp refused the login. Link the number again.',
    QR_TIMEOUT: 'The QR code was not scanned in time. Add the number again to get a new code.',
    BROWSER_ERROR: 'The WhatsApp session stopped working. Disconnect it and link it again if this repeats.',
    INTERNAL: 'Something went wrong on the server. Please try again.',
  };
  const REASON_WORDS = {
    manual: 'Disconnected.',
    LOGOUT: 'The phone logged this device out. Link the number again to reconnect.',
    UNPAIRED: 'The phone unlinked this device. Link the number again to reconnect.',
    CONFLICT: 'WhatsApp Web was opened somewhere else, so this session was closed. Link the number again to reconnect.',
    TOS_BLOCK: 'WhatsApp blocked this number.',
    SMB_TOS_BLOCK: 'WhatsApp blocked this business number.',
    QR_TIMEOUT: ERROR_WORDS.QR_TIMEOUT,
  };

  const $ = (id) => document.getElementById(id);
  const state = { token: null, sim: false, ws: null, retry: 0, timer: null, cards: new Map(), nextRef: 1 };

  function notice(text) {
    const box = $('notice');
    box.textContent = text;
    box.hidden = !text;
  }

  function setConnection(text, on) {
    const el = $('connection');
    el.textContent = text;
    el.className = 'conn ' + (on ? 'conn-on' : 'conn-off');
  }

  function send(event, data) {
    const ref = 'r' + state.nextRef++;
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      notice('Not connected to the server right now; try again in a moment.');
      return null;
    }
    state.ws.send(JSON.stringify({ event, data: data || {}, ref }));
    return ref;
  }

  // ---------- cards ----------
  function card(sessionId) {
    let c = state.cards.get(sessionId);
    if (c) return c;
    const node = $('account-template').content.firstElementChild.cloneNode(true);
    node.dataset.session = sessionId;
    c = { node, sessionId, status: null, phone: null, qrText: null };
    const q = (sel) => node.querySelector(sel);
    Object.assign(c, {
      title: q('.title'), badge: q('.badge'), who: q('.who'), progress: q('.progress'), bar: q('progress'),
      link: q('.link'), qr: q('.qr'), code: q('.code'), chat: q('.chat'), feed: q('.feed'), sent: q('.sent'),
      scan: q('.sim-scan'), simMessage: q('.sim-message'),
    });
    c.title.textContent = 'Number';
    q('.pairing-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const phone = e.target.phone.value.trim();
      c.code.textContent = 'Asking WhatsApp for a code…';
      send('whatsapp:pairing-code', { sessionId, phoneNumber: phone });
    });
    q('.send-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const form = e.target;
      if (send('whatsapp:send', { sessionId, to: form.to.value.trim(), body: form.body.value })) {
        c.sent.textContent = 'Sending…';
        form.body.value = '';
      }
    });
    q('.destroy').addEventListener('click', () => {
      if (confirm('Disconnect this number? The phone will have to link it again.')) send('whatsapp:destroy', { sessionId });
    });
    c.scan.hidden = c.simMessage.hidden = !state.sim;
    c.scan.addEventListener('click', () => simScan(c));
    c.simMessage.addEventListener('click', () => simMessage(c));
    $('accounts').appendChild(node);
    state.cards.set(sessionId, c);
    $('empty').hidden = true;
    return c;
  }

  function setStatus(c, status) {
    c.status = status;
    c.node.dataset.status = status;
    c.badge.textContent = STATUS_WORDS[status] || status;
    c.badge.className = 'badge ' + status;
    c.link.hidden = status !== 'qr';
    c.progress.hidden = status !== 'authenticated';
    c.chat.hidden = status !== 'ready' && status !== 'reconnecting';
    if (status === 'stopped' || status === 'error') c.who.textContent = c.who.textContent || '';
  }

  function fill(account) {
    const c = card(account.session_id);
    c.title.textContent = account.name || 'Number';
    if (account.phone_number) {
      c.phone = account.phone_number;
      c.who.textContent = '+' + account.phone_number + (account.profile_name ? ' · ' + account.profile_name : '');
    }
    setStatus(c, account.status);
    if (account.status === 'error' && account.error_message) c.who.textContent = REASON_WORDS[account.error_message] || account.error_message;
  }

  // ---------- simulator buttons (demo mode) ----------
  async function sim(path, body) {
    const res = await fetch('/__sim' + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      notice('The simulator refused: ' + (err.message || res.status));
    }
  }
  function simScan(c) {
    if (!c.qrText) return notice('No QR code to scan yet.');
    const phone = '346' + String(Math.floor(10000000 + Math.random() * 89999999));
    sim('/scan', { qr: c.qrText, phone, pushname: 'Demo shop' });
  }
  function simMessage(c) {
    if (!c.phone) return notice('The number is not ready yet.');
    sim('/phones/' + c.phone + '/messages', { from: '34611222333', body: 'Hola, ¿tienen cita para mañana?' });
  }

  // ---------- protocol ----------
  function onFrame(frame) {
    const d = frame.data || {};
    const c = d.sessionId ? card(d.sessionId) : null;
    switch (frame.event) {
      case 'whatsapp:status':
        d.accounts.forEach(fill);
        $('empty').hidden = d.accounts.length > 0;
        break;
      case 'whatsapp:created':
        setStatus(c, 'initializing');
        c.title.textContent = 'New number';
        break;
      case 'whatsapp:state':
        setStatus(c, d.status);
        break;
      case 'whatsapp:qr':
        c.qr.src = d.qr;
        c.qr.alt = 'QR code ' + d.attempt + ' to link this number';
        c.qrText = d.text || null;
        setStatus(c, 'qr');
        break;
      case 'whatsapp:authenticated':
        setStatus(c, 'authenticated');
        break;
      case 'whatsapp:loading':
        c.bar.value = d.percent;
        break;
      case 'whatsapp:ready':
        c.phone = d.phoneNumber;
        c.who.textContent = '+' + d.phoneNumber + (d.profileName ? ' · ' + d.profileName : '');
        setStatus(c, 'ready');
        break;
      case 'whatsapp:message': {
        const li = document.createElement('li');
        const from = document.createElement('span');
        from.className = 'from';
        from.textContent = '+' + String(d.from).replace('@c.us', '');
        li.append(from, document.createTextNode(d.body));
        c.feed.prepend(li);
        break;
      }
      case 'whatsapp:pairing-code':
        c.code.textContent = 'Enter this code on the phone: ' + d.code;
        break;
      case 'whatsapp:sent':
        c.sent.textContent = 'Sent to +' + String(d.to).replace('@c.us', '') + ' ✓';
        break;
      case 'whatsapp:disconnected':
        if (d.reason !== 'manual') notice((REASON_WORDS[d.reason] || 'The number was disconnected (' + d.reason + ').'));
        c.who.textContent = REASON_WORDS[d.reason] || c.who.textContent;
        break;
      case 'whatsapp:error':
        notice((ERROR_WORDS[d.error] || 'Something went wrong.') + (d.error === 'BAD_REQUEST' && d.message ? ' (' + d.message + ')' : ''));
        if (c && d.error === 'QR_TIMEOUT') c.who.textContent = ERROR_WORDS.QR_TIMEOUT;
        break;
    }
  }

  function connect() {
    clearTimeout(state.timer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(proto + '//' + location.host + '/ws?access_token=' + encodeURIComponent(state.token));
    state.ws = ws;
    setConnection(state.retry ? 'Reconnecting…' : 'Connecting…', false);
    ws.onopen = () => {
      state.retry = 0;
      setConnection('Connected', true);
      notice('');
      send('whatsapp:status');
    };
    ws.onmessage = (e) => {
      try { onFrame(JSON.parse(e.data)); } catch (err) { console.error(err); }
    };
    ws.onclose = async () => {
      if (state.ws !== ws) return;
      // A refused token closes before opening: check it, and ask for a new one if needed.
      const check = await fetch('/api/whatsapp/accounts', { headers: { authorization: 'Bearer ' + state.token } }).catch(() => null);
      if (check && check.status === 401) return signOut(ERROR_WORDS.UNAUTHORIZED);
      state.retry += 1;
      const delay = Math.min(500 * Math.pow(2, state.retry - 1), 10000);
      setConnection('Reconnecting in ' + Math.ceil(delay / 1000) + ' s…', false);
      state.timer = setTimeout(connect, delay);
    };
  }

  function signIn(token) {
    state.token = token;
    localStorage.setItem('wa.token', token);
    $('signin').hidden = true;
    $('app').hidden = false;
    connect();
  }

  function signOut(message) {
    localStorage.removeItem('wa.token');
    state.token = null;
    if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
    state.cards.forEach((c) => c.node.remove());
    state.cards.clear();
    $('app').hidden = true;
    $('signin').hidden = false;
    setConnection('Not connected', false);
    notice('');
    if (message) alert(message);
    $('token').focus();
  }

  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('token').value.trim());
  });
  $('signout').addEventListener('click', () => signOut());
  $('add').addEventListener('click', () => send('whatsapp:create', { name: 'Number ' + (state.cards.size + 1) }));

  (async () => {
    const demo = await fetch('/api/demo').then((r) => (r.ok ? r.json() : null)).catch(() => null);
    if (demo && demo.token) {
      state.sim = true;
      return signIn(demo.token);
    }
    const saved = localStorage.getItem('wa.token');
    if (saved) signIn(saved);
    else { $('signin').hidden = false; $('token').focus(); }
  })();
})();
