/* Loaded by the chat page only when it is framed by the embed snippet (?embed=1): Escape closes
   the panel (the keys reach this document, not the host page), and the snippet can move the
   focus to the message box when it opens the panel. */
(function () {
  'use strict';
  if (window.parent === window) return;
  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape' && !event.defaultPrevented) {
      // carries nothing but the request: any framing page may read it
      window.parent.postMessage({ barri: 'close' }, '*');
    }
  });
  window.addEventListener('message', function (event) {
    if (event.source !== window.parent || !event.data || event.data.barri !== 'focus') return;
    var input = document.getElementById('message-input');
    if (input) input.focus();
  });
})();
