/* Barri's embed snippet. A city puts one tag on any page of its own site:

     <script src="https://BARRI/embed.js" defer></script>

   and gets a launcher button that opens Barri's chat page in a panel. The panel is an iframe of
   Barri's own page, so the chat keeps its own origin, Content-Security-Policy and WebSocket
   origin check; the page allows being framed only by the sites in EMBED_ORIGINS. Nothing is
   loaded from Barri until the citizen opens the panel. The chat speaks the host page's
   language (<html lang>, or data-lang on the tag). Styles live in a shadow root (a
   constructed style sheet): the host page needs no 'unsafe-inline' and its styles do not leak
   in. The strings below are filled in from Barri's catalogs when the script is served. */
(function () {
  'use strict';
  var CONFIG = __BARRI_CONFIG__;
  var script = document.currentScript;
  if (!script || window.__barriEmbedded) return;
  window.__barriEmbedded = true;

  var source = new URL(script.src, document.baseURI);
  var barriOrigin = source.origin;
  var chatBase = source.href.replace(/embed\.js([?#].*)?$/, '');

  function pageLanguage() {
    var wanted = script.getAttribute('data-lang') || document.documentElement.lang || '';
    var code = wanted.toLowerCase().split(/[-_]/)[0];
    return Object.prototype.hasOwnProperty.call(CONFIG.strings, code) ? code : null;
  }
  var lang = pageLanguage();
  var text = CONFIG.strings[lang || CONFIG.fallback];
  var chatUrl = chatBase + '?embed=1' + (lang ? '&lang=' + encodeURIComponent(lang) : '');

  var CSS = [
    ':host { all: initial; }',
    '.launcher { position: fixed; right: 16px; bottom: 16px; z-index: 2147483000; display: flex;',
    '  align-items: center; gap: 8px; min-height: 48px; padding: 12px 18px; border: 0; border-radius: 24px;',
    '  background: #0b57d0; color: #fff; font: 600 16px/1.2 system-ui, -apple-system, "Segoe UI", sans-serif;',
    '  cursor: pointer; box-shadow: 0 4px 14px rgba(0, 0, 0, .3); }',
    '.launcher:hover { background: #0842a0; }',
    '.launcher:focus-visible, .close:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }',
    '.launcher svg { width: 22px; height: 22px; fill: currentColor; flex: none; }',
    '.panel { position: fixed; right: 16px; bottom: 80px; z-index: 2147483001; display: flex;',
    '  flex-direction: column; width: 400px; height: 640px; max-height: calc(100vh - 100px);',
    '  background: #fff; border-radius: 12px; overflow: hidden; box-shadow: 0 8px 30px rgba(0, 0, 0, .35); }',
    '.panel[hidden] { display: none; }',
    '.bar { display: flex; align-items: center; justify-content: space-between; padding: 2px 2px 2px 14px;',
    '  background: #0b57d0; color: #fff; font: 600 16px/1.2 system-ui, -apple-system, "Segoe UI", sans-serif; }',
    '.close { min-width: 44px; min-height: 44px; border: 0; background: transparent; color: #fff;',
    '  font: 400 28px/1 system-ui, sans-serif; cursor: pointer; }',
    'iframe { flex: 1; width: 100%; border: 0; background: #fff; }',
    '@media (max-width: 600px) {',
    '  .panel { inset: 0; width: 100%; height: 100%; max-height: none; border-radius: 0; }',
    '}'
  ].join('\n');

  var host = document.createElement('div');
  host.setAttribute('data-barri-embed', '');
  var root = host.attachShadow({ mode: 'open' });
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function') {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement('style');
    style.textContent = CSS;
    root.appendChild(style);
  }

  var launcher = document.createElement('button');
  launcher.type = 'button';
  launcher.className = 'launcher';
  launcher.setAttribute('aria-expanded', 'false');
  launcher.setAttribute('aria-controls', 'barri-chat-panel');
  var icon = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  icon.setAttribute('viewBox', '0 0 24 24');
  icon.setAttribute('aria-hidden', 'true');
  icon.setAttribute('focusable', 'false');
  var path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z');
  icon.appendChild(path);
  var label = document.createElement('span');
  label.textContent = text.open;
  launcher.appendChild(icon);
  launcher.appendChild(label);

  var panel = document.createElement('div');
  panel.id = 'barri-chat-panel';
  panel.className = 'panel';
  panel.setAttribute('role', 'dialog');
  panel.setAttribute('aria-label', text.title);
  panel.hidden = true;
  var bar = document.createElement('div');
  bar.className = 'bar';
  var heading = document.createElement('span');
  heading.textContent = text.title;
  var closeButton = document.createElement('button');
  closeButton.type = 'button';
  closeButton.className = 'close';
  closeButton.setAttribute('aria-label', text.close);
  closeButton.textContent = '×';
  bar.appendChild(heading);
  bar.appendChild(closeButton);
  var frame = document.createElement('iframe');
  frame.title = text.title;
  frame.setAttribute('allow', 'geolocation'); // the chat's "share my location"
  frame.setAttribute('referrerpolicy', 'no-referrer');
  panel.appendChild(bar);
  panel.appendChild(frame);

  root.appendChild(launcher);
  root.appendChild(panel);

  var loaded = false;
  function focusChat() {
    frame.focus();
    if (loaded && frame.contentWindow) frame.contentWindow.postMessage({ barri: 'focus' }, barriOrigin);
  }
  frame.addEventListener('load', function () {
    loaded = true;
    if (!panel.hidden) focusChat();
  });

  function open() {
    if (!frame.getAttribute('src')) frame.setAttribute('src', chatUrl);
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    focusChat();
  }
  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    launcher.setAttribute('aria-expanded', 'false');
    launcher.focus();
  }

  launcher.addEventListener('click', function () {
    if (panel.hidden) open(); else close();
  });
  closeButton.addEventListener('click', close);
  root.addEventListener('keydown', function (event) {
    if (event.key === 'Escape' && !panel.hidden) {
      event.preventDefault();
      close();
    }
  });
  // Escape pressed inside the chat (another origin) arrives as a message from its frame
  window.addEventListener('message', function (event) {
    if (event.source === frame.contentWindow && event.origin === barriOrigin &&
        event.data && event.data.barri === 'close') {
      close();
    }
  });

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
})();
