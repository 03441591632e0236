// Barri web chat client. Plain ES2020, no build step, no dependencies.
// Protocol: see ../PROTOCOL.md. Message text is only ever set with textContent.
'use strict';

(() => {
  const SESSION_KEY = 'barri.session';
  const TRANSCRIPT_KEY = 'barri.transcript';
  const TRANSCRIPT_MAX = 100;
  const BACKOFF_MS = [1000, 2000, 5000, 10000];
  const PHOTO_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
  const COUNTER_FROM = 500; // show the counter when this many characters (or fewer) are left
  const TYPING_TIMEOUT_MS = 30000;

  const root = document.documentElement;
  const $ = (id) => document.getElementById(id);
  const messages = $('messages');
  const composer = $('composer');
  const input = $('message-input');
  const sendButton = $('send-button');
  const photoButton = $('photo-button');
  const photoInput = $('photo-input');
  const locationButton = $('location-button');
  const statusEl = $('status');
  const activityEl = $('activity');
  const typingEl = $('typing');
  const typingLabel = typingEl ? typingEl.querySelector('.typing-label') : null;
  const counter = $('char-counter');
  const emptyHint = $('empty-hint');

  if (!messages || !composer || !input) return;

  const cfg = {
    wsUrl: root.dataset.wsUrl || '/webchat/ws',
    uploadUrl: root.dataset.uploadUrl || '/webchat/upload',
    maxPhotoBytes: Number(root.dataset.maxPhotoBytes) || 10 * 1024 * 1024,
    maxText: Number(input.getAttribute('maxlength')) || Number(root.dataset.maxTextLength) || 4000,
  };

  // English fallbacks, used only if the template did not provide a translated string.
  const FALLBACK = {
    you: 'You said:',
    bot: 'Barri said:',
    quickReplies: 'Quick replies',
    connecting: 'Connecting…',
    reconnecting: 'Connection lost. Reconnecting…',
    connected: 'Connected.',
    offline: 'You are offline. Your message was not sent.',
    typing: 'Barri is typing…',
    charsLeft: 'Characters left: {count}',
    locationShared: 'Location shared',
    locating: 'Getting your location…',
    locationDenied: 'You did not allow access to your location.',
    locationUnavailable: 'Your location could not be found.',
    photoTooBig: 'This photo is too big. The maximum size is {size} MB.',
    photoType: 'This file type is not accepted. Please send a JPEG, PNG or WebP photo.',
    sendingPhoto: 'Sending photo…',
    photoSent: 'Photo sent',
    photoFailed: 'The photo could not be sent. Please try again.',
    forgotten: 'Your data has been erased. You can start a new conversation.',
    conversationGone: 'Your earlier conversation is no longer kept. You can start a new one.',
  };

  /** Translated string from data-i18n-* on <html>, with {name} placeholders filled in. */
  function t(key, vars) {
    const attr = 'i18n' + key.charAt(0).toUpperCase() + key.slice(1);
    let s = root.dataset[attr] || FALLBACK[key] || key;
    if (vars) {
      for (const [name, value] of Object.entries(vars)) s = s.split('{' + name + '}').join(String(value));
    }
    return s;
  }

  const reducedMotion = window.matchMedia
    ? window.matchMedia('(prefers-reduced-motion: reduce)')
    : { matches: false };

  // ---------------------------------------------------------------- storage

  function storageGet(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (_) {
      return null;
    }
  }

  function storageSet(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (_) {
      /* private mode or quota: the chat still works, it just won't survive a reload */
    }
  }

  function storageRemove(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (_) {
      /* ignore */
    }
  }

  function getSession() {
    const s = storageGet(SESSION_KEY);
    return s ? s : null;
  }

  // ---------------------------------------------------------------- transcript
  // Each entry: {id, kind: "bot"|"user"|"notice", text, buttons: [{title, payload, disabled, chosen}], photo?}

  let transcript = [];
  let nextId = 1;
  const objectUrlFor = new Map(); // entry id -> blob: URL of a photo thumbnail

  function cleanButtons(buttons, keepState) {
    if (!Array.isArray(buttons)) return [];
    const out = [];
    for (const b of buttons) {
      if (!b || typeof b !== 'object') continue;
      const payload = typeof b.payload === 'string' ? b.payload : '';
      const title = typeof b.title === 'string' && b.title !== '' ? b.title : payload;
      if (!title) continue;
      const clean = { title, payload: payload || title, disabled: false };
      if (keepState) {
        clean.disabled = b.disabled === true;
        if (b.chosen === true) clean.chosen = true;
      }
      out.push(clean);
    }
    return out;
  }

  function loadTranscript() {
    const raw = storageGet(TRANSCRIPT_KEY);
    if (!raw) return [];
    try {
      const data = JSON.parse(raw);
      if (!Array.isArray(data)) return [];
      const out = [];
      for (const e of data.slice(-TRANSCRIPT_MAX)) {
        if (!e || !['bot', 'user', 'notice'].includes(e.kind)) continue;
        const entry = {
          id: nextId++,
          kind: e.kind,
          text: typeof e.text === 'string' ? e.text : '',
          buttons: cleanButtons(e.buttons, true),
        };
        if (e.photo === true) entry.photo = true;
        out.push(entry);
      }
      return out;
    } catch (_) {
      return [];
    }
  }

  function saveTranscript() {
    if (transcript.length > TRANSCRIPT_MAX) transcript = transcript.slice(-TRANSCRIPT_MAX);
    const data = transcript.map((e) => {
      const o = { kind: e.kind, text: e.text, buttons: e.buttons };
      if (e.photo) o.photo = true;
      return o;
    });
    storageSet(TRANSCRIPT_KEY, JSON.stringify(data));
  }

  // ---------------------------------------------------------------- rendering

  function nearBottom() {
    return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 120;
  }

  function scrollToBottom() {
    const top = messages.scrollHeight;
    if (typeof messages.scrollTo === 'function') {
      messages.scrollTo({ top, behavior: reducedMotion.matches ? 'auto' : 'smooth' });
    } else {
      messages.scrollTop = top;
    }
  }

  function updateEmptyHint() {
    if (emptyHint) emptyHint.hidden = messages.childElementCount > 0;
  }

  function renderEntry(entry, opts = {}) {
    const wrap = document.createElement('div');
    wrap.className = 'entry entry-' + entry.kind;
    wrap.dataset.entryId = String(entry.id);
    if (opts.animate && !reducedMotion.matches) wrap.classList.add('is-new');

    if (entry.kind === 'bot' || entry.kind === 'user') {
      // Read by screen readers before the bubble: "Barri said: …" / "You said: …".
      const who = document.createElement('span');
      who.className = 'visually-hidden';
      who.textContent = t(entry.kind === 'bot' ? 'bot' : 'you') + ' ';
      wrap.appendChild(who);
    }

    if (entry.text !== '' || entry.photo) {
      const bubble = document.createElement('div');
      bubble.className = 'msg ' + entry.kind;
      if (entry.photo && opts.objectUrl) {
        bubble.classList.add('photo');
        const img = document.createElement('img');
        img.src = opts.objectUrl;
        img.alt = entry.text;
        objectUrlFor.set(entry.id, opts.objectUrl);
        img.decoding = 'async';
        img.addEventListener('load', () => {
          if (opts.stick !== false) scrollToBottom();
        });
        bubble.appendChild(img);
      } else {
        // A photo re-rendered from the stored transcript: the image itself is never stored.
        bubble.textContent = entry.photo ? '📷 ' + entry.text : entry.text;
      }
      wrap.appendChild(bubble);
    }

    if (entry.buttons.length) {
      const group = document.createElement('div');
      group.className = 'quick-replies';
      group.setAttribute('role', 'group');
      group.setAttribute('aria-label', t('quickReplies'));
      entry.buttons.forEach((b, index) => {
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.className = 'quick-reply';
        btn.textContent = b.title;
        btn.dataset.index = String(index);
        btn.disabled = b.disabled;
        if (b.chosen) btn.classList.add('chosen');
        group.appendChild(btn);
      });
      wrap.appendChild(group);
    }

    messages.appendChild(wrap);
    updateEmptyHint();
    return wrap;
  }

  /** Add a bubble to the log and to the stored transcript. */
  function addEntry(kind, text, extra = {}) {
    const entry = {
      id: nextId++,
      kind,
      text: typeof text === 'string' ? text : String(text ?? ''),
      buttons: cleanButtons(extra.buttons, false),
    };
    if (extra.photo) entry.photo = true;
    if (entry.text === '' && !entry.photo && !entry.buttons.length) return null;
    const stick = kind !== 'bot' || nearBottom();
    const el = renderEntry(entry, { animate: true, objectUrl: extra.objectUrl, stick });
    transcript.push(entry);
    saveTranscript();
    if (stick) scrollToBottom();
    return el;
  }

  function notice(text) {
    if (text) addEntry('notice', text);
  }

  function renderTranscript() {
    for (const entry of transcript) renderEntry(entry, { animate: false });
    messages.scrollTop = messages.scrollHeight;
    updateEmptyHint();
  }

  function clearLog() {
    transcript = [];
    messages.textContent = '';
    for (const url of objectUrlFor.values()) URL.revokeObjectURL(url);
    objectUrlFor.clear();
    updateEmptyHint();
  }

  function findEntry(el) {
    const wrap = el.closest('.entry');
    if (!wrap) return null;
    const id = Number(wrap.dataset.entryId);
    return { wrap, entry: transcript.find((e) => e.id === id) || null };
  }

  /** Disable one quick-reply group (or all open ones) in the DOM and in the transcript. */
  function disableGroup(wrap, entry, chosenIndex) {
    if (entry) {
      entry.buttons.forEach((b, i) => {
        b.disabled = true;
        if (i === chosenIndex) b.chosen = true;
      });
    }
    wrap.querySelectorAll('.quick-reply').forEach((btn, i) => {
      btn.disabled = true;
      if (i === chosenIndex) btn.classList.add('chosen');
    });
  }

  function disableOpenQuickReplies() {
    let changed = false;
    messages.querySelectorAll('.quick-replies').forEach((group) => {
      if (!group.querySelector('.quick-reply:not(:disabled)')) return;
      const found = findEntry(group);
      if (found) disableGroup(found.wrap, found.entry, -1);
      changed = true;
    });
    if (changed) saveTranscript();
  }

  // ---------------------------------------------------------------- status, typing, activity

  let statusTimer = null;

  function setStatus(text, ok = false) {
    clearTimeout(statusTimer);
    statusEl.classList.toggle('ok', ok);
    if (statusEl.textContent !== text) statusEl.textContent = text;
    if (ok && text) {
      statusTimer = setTimeout(() => {
        statusEl.textContent = '';
        statusEl.classList.remove('ok');
      }, 3000);
    }
  }

  let typingTimer = null;

  function setTyping(on) {
    if (!typingEl) return;
    clearTimeout(typingTimer);
    typingEl.classList.toggle('on', on);
    if (typingLabel) typingLabel.textContent = on ? t('typing') : '';
    if (on) {
      typingTimer = setTimeout(() => setTyping(false), TYPING_TIMEOUT_MS);
      if (nearBottom()) scrollToBottom();
    }
  }

  const activities = new Set();

  function setActivity(key, on) {
    if (on) activities.add(key);
    else activities.delete(key);
    const last = Array.from(activities).pop();
    activityEl.textContent = last ? t(last) : '';
  }

  function setRequested(request) {
    locationButton.classList.toggle('requested', request === 'location');
    photoButton.classList.toggle('requested', request === 'photo');
  }

  // ---------------------------------------------------------------- connection

  let ws = null;
  let online = false;
  let attempt = 0;
  let everConnected = false;
  let reconnectTimer = null;
  let locating = false;
  let uploading = false;

  function updateControls() {
    sendButton.disabled = !online;
    locationButton.disabled = !online || locating;
    photoButton.disabled = !online || uploading;
    root.classList.toggle('is-offline', !online);
  }

  function setOnline(value) {
    online = value;
    updateControls();
  }

  function socketUrl() {
    const url = new URL(cfg.wsUrl, window.location.href);
    if (url.protocol === 'https:') url.protocol = 'wss:';
    else if (url.protocol === 'http:') url.protocol = 'ws:';
    return url.href;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ws) return;
    let socket;
    try {
      socket = new WebSocket(socketUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    ws = socket;

    socket.addEventListener('open', () => {
      if (ws !== socket) return;
      socket.send(
        JSON.stringify({ type: 'hello', session: getSession(), locale: navigator.language || null })
      );
    });

    socket.addEventListener('message', (event) => {
      if (ws !== socket || typeof event.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (frame && typeof frame === 'object') handleFrame(frame);
    });

    socket.addEventListener('close', () => {
      if (ws !== socket) return;
      ws = null;
      setOnline(false);
      setTyping(false);
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    setStatus(everConnected ? t('reconnecting') : t('connecting'));
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  /** Drop the current socket (without triggering a reconnect from its close event) and open a new one. */
  function reconnectNow() {
    const old = ws;
    ws = null;
    setOnline(false);
    if (old) {
      try {
        old.close(1000);
      } catch (_) {
        /* ignore */
      }
    }
    attempt = 0;
    connect();
  }

  function send(frame) {
    if (!online || !ws || ws.readyState !== WebSocket.OPEN) {
      notice(t('offline'));
      return false;
    }
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (_) {
      notice(t('offline'));
      return false;
    }
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case 'welcome': {
        const previous = getSession();
        if (typeof frame.session === 'string' && frame.session) {
          storageSet(SESSION_KEY, frame.session);
          // Every welcome renews the token; only another sender id (before the first '.') is a new
          // conversation (e.g. the old one expired), and a welcome saying the server no longer keeps
          // this one's conversation (retention erased it): this device must not keep a copy either.
          if (previous && (previous.split('.')[0] !== frame.session.split('.')[0] || frame.conversation === false)) {
            forgetOldConversation();
          }
        }
        const wasReconnect = everConnected && attempt > 0;
        everConnected = true;
        attempt = 0;
        setOnline(true);
        setStatus(wasReconnect ? t('connected') : '', wasReconnect);
        break;
      }
      case 'message': {
        setTyping(false);
        const text = typeof frame.text === 'string' ? frame.text : '';
        addEntry('bot', text, { buttons: frame.buttons });
        setRequested(frame.request === 'location' || frame.request === 'photo' ? frame.request : null);
        break;
      }
      case 'typing':
        setTyping(frame.on === true);
        break;
      case 'error':
        setTyping(false);
        if (typeof frame.text === 'string') notice(frame.text);
        break;
      case 'forget':
        forget();
        break;
      default:
        break; // unknown frames are ignored so the server can add new ones
    }
  }

  function forgetOldConversation() {
    const hadAny = transcript.some((entry) => entry.kind !== 'notice'); // said once, not at every visit
    storageRemove(TRANSCRIPT_KEY);
    clearLog();
    setRequested(null);
    if (hadAny) notice(t('conversationGone'));
  }

  function forget() {
    storageRemove(SESSION_KEY);
    storageRemove(TRANSCRIPT_KEY);
    clearLog();
    setTyping(false);
    setRequested(null);
    input.value = '';
    updateCounter();
    notice(t('forgotten'));
    reconnectNow();
  }

  // ---------------------------------------------------------------- composer

  function updateCounter() {
    const left = cfg.maxText - input.value.length;
    if (left <= COUNTER_FROM) {
      counter.hidden = false;
      counter.textContent = t('charsLeft', { count: Math.max(left, 0) });
      counter.classList.toggle('at-limit', left <= 0);
    } else if (!counter.hidden) {
      counter.hidden = true;
      counter.textContent = '';
    }
  }

  const autoSize =
    window.CSS && CSS.supports && CSS.supports('field-sizing', 'content')
      ? () => {}
      : () => {
          input.style.height = 'auto';
          input.style.height = input.scrollHeight + 4 + 'px';
        };

  function submitText() {
    const text = input.value.trim().slice(0, cfg.maxText);
    if (!text) {
      input.focus();
      return;
    }
    if (send({ type: 'text', text })) {
      disableOpenQuickReplies();
      addEntry('user', text);
      input.value = '';
      updateCounter();
      autoSize();
    }
    input.focus();
  }

  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    submitText();
  });

  input.addEventListener('keydown', (event) => {
    // Enter sends, Shift+Enter adds a new line; never while an IME is composing.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submitText();
    }
  });

  input.addEventListener('input', () => {
    updateCounter();
    autoSize();
  });

  // Quick replies (event delegation: works for live and re-rendered bubbles).
  messages.addEventListener('click', (event) => {
    const btn = event.target.closest('button.quick-reply');
    if (!btn || btn.disabled || !messages.contains(btn)) return;
    const found = findEntry(btn);
    if (!found) return;
    const index = Number(btn.dataset.index);
    const button = found.entry ? found.entry.buttons[index] : null;
    const title = button ? button.title : btn.textContent;
    const payload = button ? button.payload : title;
    if (!send({ type: 'button', payload, title })) return;
    disableGroup(found.wrap, found.entry, index);
    disableOpenQuickReplies();
    addEntry('user', title);
    input.focus();
  });

  // ---------------------------------------------------------------- location

  locationButton.addEventListener('click', () => {
    if (!online) {
      notice(t('offline'));
      return;
    }
    if (!('geolocation' in navigator)) {
      notice(t('locationUnavailable'));
      return;
    }
    locating = true;
    locationButton.setAttribute('aria-busy', 'true');
    updateControls();
    setActivity('locating', true);
    const done = () => {
      locating = false;
      locationButton.removeAttribute('aria-busy');
      updateControls();
      setActivity('locating', false);
    };
    navigator.geolocation.getCurrentPosition(
      (position) => {
        done();
        const { latitude, longitude } = position.coords;
        if (send({ type: 'location', latitude, longitude })) {
          disableOpenQuickReplies();
          setRequested(null);
          addEntry('user', '📍 ' + t('locationShared'));
        }
        input.focus();
      },
      (error) => {
        done();
        notice(error && error.code === 1 ? t('locationDenied') : t('locationUnavailable'));
        locationButton.focus();
      },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 60000 }
    );
  });

  // ---------------------------------------------------------------- photo

  photoButton.addEventListener('click', () => {
    if (!online) {
      notice(t('offline'));
      return;
    }
    photoInput.click();
  });

  function formatMegabytes(bytes) {
    const mb = bytes / (1024 * 1024);
    try {
      return new Intl.NumberFormat(root.lang || undefined, { maximumFractionDigits: 1 }).format(mb);
    } catch (_) {
      return String(Math.round(mb * 10) / 10);
    }
  }

  photoInput.addEventListener('change', () => {
    const file = photoInput.files && photoInput.files[0];
    photoInput.value = ''; // so that picking the same file again fires "change" again
    if (!file) return;
    if (!PHOTO_TYPES.includes(file.type)) {
      notice(t('photoType'));
      photoButton.focus();
      return;
    }
    if (file.size > cfg.maxPhotoBytes) {
      notice(t('photoTooBig', { size: formatMegabytes(cfg.maxPhotoBytes) }));
      photoButton.focus();
      return;
    }
    uploadPhoto(file);
  });

  async function uploadPhoto(file) {
    const session = getSession();
    if (!session || !online) {
      notice(t('offline'));
      return;
    }
    uploading = true;
    photoButton.setAttribute('aria-busy', 'true');
    updateControls();
    setActivity('sendingPhoto', true);

    // The thumbnail is shown at once (dimmed) and confirmed on 200: the server may send the
    // bot's answer to the photo over the WebSocket before the upload response arrives, and
    // the citizen's photo must stay above that answer.
    disableOpenQuickReplies();
    setRequested(null);
    const url = URL.createObjectURL(file);
    const entry = { id: nextId++, kind: 'user', text: t('photoSent'), buttons: [], photo: true };
    const wrap = renderEntry(entry, { animate: true, objectUrl: url });
    const bubble = wrap.querySelector('.msg');
    bubble.classList.add('pending');
    wrap.setAttribute('aria-busy', 'true');
    scrollToBottom();

    let errorText = null;
    try {
      const body = new FormData();
      body.append('photo', file, file.name || 'photo');
      const response = await fetch(cfg.uploadUrl, {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + session },
        body,
        credentials: 'same-origin',
      });
      let data = null;
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
      if (!wrap.isConnected) {
        // the log was cleared meanwhile (forget): nothing to confirm
      } else if (response.status === 200 && !(data && data.ok === false)) {
        bubble.classList.remove('pending');
        wrap.removeAttribute('aria-busy');
        // Keep the transcript in display order (entries that arrived meanwhile have larger ids).
        const at = transcript.findIndex((e) => e.id > entry.id);
        transcript.splice(at === -1 ? transcript.length : at, 0, entry);
        saveTranscript();
      } else if (data && typeof data.error === 'string' && data.error) {
        errorText = data.error;
      } else if (response.status === 413) {
        errorText = t('photoTooBig', { size: formatMegabytes(cfg.maxPhotoBytes) });
      } else {
        errorText = t('photoFailed');
      }
    } catch (_) {
      errorText = t('photoFailed');
    } finally {
      if (wrap.isConnected && (errorText !== null || !transcript.includes(entry))) {
        errorText = errorText || t('photoFailed');
        wrap.remove();
        objectUrlFor.delete(entry.id);
        URL.revokeObjectURL(url);
        updateEmptyHint();
      }
      uploading = false;
      photoButton.removeAttribute('aria-busy');
      updateControls();
      setActivity('sendingPhoto', false);
    }
    if (errorText) notice(errorText);
    input.focus();
  }

  // ---------------------------------------------------------------- start

  window.addEventListener('online', () => {
    if (!ws) {
      attempt = 0;
      connect();
    }
  });

  // Another tab erased the data (forget) or continued the conversation: follow it.
  window.addEventListener('storage', (event) => {
    if (event.key === SESSION_KEY && event.newValue === null && event.oldValue) {
      clearLog();
      reconnectNow();
    }
  });

  transcript = loadTranscript();
  renderTranscript();
  updateCounter();
  updateControls();
  setStatus(t('connecting'));
  connect();
})();
