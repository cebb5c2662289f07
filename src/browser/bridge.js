// The bridge between WhatsApp Web and wa-supervisor's driver.
// Every WhatsApp Web module name the program uses is in this file (the MODULES table), so that
// following a change of the real page is a one-file change.
// Evaluated once WhatsApp Web has booted (window.Debug.VERSION exists); re-evaluated after every
// reload. Events reach the driver through the CDP binding named in BINDING; calls arrive as
// `window.__waBridge.<name>(...)` evaluations.
(() => {
  'use strict';
  const BINDING = '__waSupervisorEmit';
  if (window.__waBridge) return 'present';

  const MODULES = {
    socket: 'WAWebSocketModel',
    cmd: 'WAWebCmd',
    conn: 'WAWebConnModel',
    offline: 'WAWebOfflineHandler',
    altLinking: 'WAWebAltDeviceLinkingApi',
    base64: 'WABase64',
    regUtils: 'WAWebCompanionRegClientUtils',
    noiseInfo: 'WAWebUserPrefsInfoStore',
    signalStore: 'WAWebSignalStoreApi',
    multiDevice: 'WAWebUserPrefsMultiDevice',
    meUser: 'WAWebUserPrefsMeUser',
    collections: 'WAWebCollections',
    widFactory: 'WAWebWidFactory',
    findChat: 'WAWebFindChatAction',
    msgKey: 'WAWebMsgKey',
    ephemeral: 'WAWebGetEphemeralFieldsMsgActionsUtils',
    sendMsg: 'WAWebSendMsgChatAction',
    presence: 'WAWebPresenceChatAction',
  };
  const mod = (key) => {
    const m = window.require(MODULES[key]);
    if (!m) throw new Error('WhatsApp Web module ' + MODULES[key] + ' is missing');
    return m;
  };

  // Socket.state values after which the session is still (or again) alive.
  const TRANSIENT = ['CONNECTED', 'OPENING', 'PAIRING', 'TIMEOUT'];
  // Socket.state values of a page that has not decided yet whether it is logged in.
  const BOOTING = ['UNLAUNCHED', 'OPENING', 'PAIRING'];
  const LOGIN = ['UNPAIRED', 'UNPAIRED_IDLE'];

  const emit = (type, data) => {
    try {
      window[BINDING](JSON.stringify(Object.assign({ type }, data || {})));
    } catch (e) {
      // The binding is gone only while the browser shuts down.
    }
  };

  const Socket = mod('socket').Socket;
  const Cmd = mod('cmd').Cmd;
  const Conn = mod('conn').Conn;
  const { Msg } = mod('collections');

  let phase = 'boot'; // boot -> login -> syncing -> ready
  let lastQr = null;

  async function qrString() {
    const ref = Conn.ref;
    if (!ref) return null;
    const b64 = mod('base64');
    const noise = await mod('noiseInfo').waNoiseInfo.get();
    const reg = await mod('signalStore').waSignalStore.getRegistrationInfo();
    const adv = mod('multiDevice').getADVSecretKey();
    const platform = mod('regUtils').DEVICE_PLATFORM;
    return [ref, b64.encodeB64(noise.staticKeyPair.pubKey), b64.encodeB64(reg.identityKeyPair.pubKey), adv, platform].join(',');
  }

  async function emitQr() {
    if (phase !== 'login') return;
    const qr = await qrString();
    if (qr && qr !== lastQr) {
      lastQr = qr;
      emit('qr', { qr });
    }
  }

  function identity() {
    const me = mod('meUser').getMaybeMePnUser();
    const info = Conn.serialize ? Conn.serialize() : {};
    return { phone: me ? me.user : null, pushname: (info && info.pushname) || null };
  }

  function becomeReady() {
    if (phase === 'ready') return;
    phase = 'ready';
    emit('ready', identity());
  }

  function onSynced() {
    if (Socket.hasSynced) becomeReady();
  }

  function becomeAuthenticated() {
    if (phase === 'syncing' || phase === 'ready') return;
    phase = 'syncing';
    emit('authenticated', {});
    // Subscribe first, then read once: an event fired before the subscription is not lost.
    Socket.on('change:hasSynced', onSynced);
    onSynced();
  }

  function enterLogin(state) {
    phase = 'login';
    emitQr();
    if (state === 'UNPAIRED_IDLE') Cmd.refreshQR();
  }

  function decide(state) {
    if (BOOTING.includes(state)) return;
    if (LOGIN.includes(state)) enterLogin(state);
    else if (state === 'CONNECTED') becomeAuthenticated();
    else emit('disconnected', { reason: state });
  }

  Socket.on('change:state', (_model, state) => {
    emit('state', { state });
    if (phase === 'boot') return decide(state);
    if (phase === 'login') {
      if (state === 'CONNECTED') becomeAuthenticated();
      else if (state === 'UNPAIRED_IDLE') Cmd.refreshQR();
      else if (!TRANSIENT.includes(state) && !LOGIN.includes(state)) emit('disconnected', { reason: state });
      return;
    }
    if (!TRANSIENT.includes(state)) emit('disconnected', { reason: state });
  });

  Conn.on('change:ref', (_model, ref) => {
    if (!ref) return; // the real page clears the ref after pairing
    emitQr();
  });

  Cmd.on('offline_progress_update_from_bridge', () => {
    const percent = mod('offline').OfflineMessageHandler.getOfflineDeliveryProgress();
    emit('loading', { percent });
  });
  Cmd.on('logout', () => emit('disconnected', { reason: 'LOGOUT' }));
  Cmd.on('logout_from_bridge', () => emit('disconnected', { reason: 'LOGOUT' }));

  Msg.on('add', (m) => {
    if (!m || !m.isNewMsg || !m.id || m.id.fromMe) return;
    emit('message', {
      id: m.id._serialized,
      from: m.from && m.from._serialized,
      body: m.body,
      timestamp: m.t,
    });
  });

  window.__waBridge = {
    state: () => Socket.state,

    async sendText(to, body) {
      const chatId = to.includes('@') ? to : to + '@c.us';
      const wid = mod('widFactory').createWid(chatId);
      const Chat = mod('collections').Chat;
      const chat = Chat.get(wid) || (await mod('findChat').findOrCreateLatestChat(wid)).chat;
      const MsgKey = mod('msgKey');
      const id = await MsgKey.newId();
      const me = mod('meUser').getMaybeMePnUser();
      const key = new MsgKey({ from: me, to: chat.id, id, selfDir: 'out' });
      const message = Object.assign({
        id: key, ack: 0, body, from: me, to: chat.id, local: true, self: 'out',
        t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat',
      }, mod('ephemeral').getEphemeralFields(chat));
      const [msgPromise, sentPromise] = mod('sendMsg').addAndSendMsgToChat(chat, message);
      await msgPromise;
      // The second promise settles once WhatsApp's servers have the message; a reply after it
      // means "sent", not just "queued". Bounded: a slow server still leaves it queued.
      await Promise.race([sentPromise, new Promise((resolve) => setTimeout(resolve, 5000))]);
      return { id: key._serialized, timestamp: message.t };
    },

    async pairingCode(phone) {
      const api = mod('altLinking');
      api.setPairingType('ALT_DEVICE_LINKING');
      await api.initializeAltDeviceLinking();
      return await api.startAltLinkingFlow(phone, true);
    },

    refreshQr() {
      Cmd.refreshQR();
      return true;
    },

    markAvailable() {
      mod('presence').sendPresenceAvailable();
      return true;
    },

    async logout() {
      await Socket.logout();
      return true;
    },
  };

  decide(Socket.state);
  return 'injected';
})()
