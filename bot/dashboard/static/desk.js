/* Barri dispatch desk: live queue (server-sent events), relative ages, case form helpers.
   Case data is only ever written with textContent and checked attribute values: never as HTML. */
(function () {
  "use strict";

  var PRIORITIES = { urgent: 0, high: 1, normal: 2 };
  var STATUSES = ["new", "acknowledged", "in_progress", "resolved", "closed", "rejected", "duplicate"];
  var REF = /^[0-9A-Z]{3}-[0-9A-Z]{3}$/;
  var clockOffset = 0; // server time minus browser time, in ms
  // The page's words in the reader's language, written by the server (base.html).
  var TEXTS = { ages: {} };
  try { TEXTS = JSON.parse(document.body.getAttribute("data-texts")) || TEXTS; } catch (error) { /* keep */ }

  function say(key, values) {
    var text = String((key.indexOf("ages.") === 0 ? TEXTS.ages[key.slice(5)] : TEXTS[key]) || "");
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  function ageText(seconds) {
    var minutes = Math.floor(Math.max(seconds, 0) / 60);
    if (minutes < 1) return say("ages.now");
    if (minutes < 60) return say("ages.minutes", { m: minutes });
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 24) return say("ages.hours", { h: hours, mm: (minutes < 10 ? "0" : "") + minutes });
    return say("ages.days", { d: Math.floor(hours / 24), h: hours % 24 });
  }

  function refreshAges() {
    var now = Date.now() + clockOffset;
    document.querySelectorAll("time.age[datetime]").forEach(function (element) {
      var created = Date.parse(element.getAttribute("datetime"));
      if (!isNaN(created)) element.textContent = ageText((now - created) / 1000);
    });
  }

  function oneOf(value, allowed, fallback) {
    return Object.prototype.hasOwnProperty.call(allowed, value) ? value : fallback;
  }

  function setText(root, selector, value) {
    var element = root.querySelector(selector);
    if (element) element.textContent = value == null ? "" : String(value);
  }

  /* ------------------------------------------------------------ live queue */

  function setupQueue(section) {
    var body = document.getElementById("queue-body");
    var template = document.getElementById("row-template");
    var live = document.getElementById("live-status");
    var empty = document.getElementById("queue-empty");
    var baseTitle = document.title;
    var unseen = 0;
    var statusSet = {};
    STATUSES.forEach(function (s) { statusSet[s] = true; });

    var serverNow = Date.parse(section.getAttribute("data-server-now"));
    if (!isNaN(serverNow)) clockOffset = serverNow - Date.now();

    function setLive(state, text) {
      live.setAttribute("data-state", state);
      setText(live, ".live-text", text);
    }

    function rank(priority) {
      return PRIORITIES[oneOf(priority, PRIORITIES, "normal")];
    }

    function comesBefore(priority, created, row) {
      var a = rank(priority), b = rank(row.getAttribute("data-priority"));
      if (a !== b) return a < b;
      return created > Date.parse(row.getAttribute("data-created"));  // newest first
    }

    function updateCounts() {
      var rows = body.querySelectorAll("tr.case-row");
      var urgent = 0, handoff = 0, escalated = 0;
      rows.forEach(function (row) {
        if (row.getAttribute("data-priority") === "urgent") urgent += 1;
        var badge = row.querySelector(".badge.handoff");
        if (badge && !badge.hidden) handoff += 1;
        if (row.classList.contains("escalated")) escalated += 1;
      });
      setText(document, "#count-open", rows.length);
      setText(document, "#count-urgent", urgent);
      setText(document, "#count-handoff", handoff);
      setText(document, "#count-escalated", escalated);
      empty.hidden = rows.length > 0;
    }

    function fill(row, data) {
      var priority = oneOf(data.priority, PRIORITIES, "normal");
      var status = statusSet[data.status] ? data.status : "new";
      row.className = "case-row priority-" + priority + (data.escalated ? " escalated" : "");
      row.setAttribute("data-ref", data.ref);
      row.setAttribute("data-priority", priority);
      row.setAttribute("data-created", String(data.created_at));
      var link = row.querySelector(".c-ref a");
      link.textContent = data.ref;
      link.setAttribute("href", "/desk/cases/" + encodeURIComponent(data.ref));
      setText(row, ".c-category", data.category_label);
      setText(row, ".c-excerpt", data.excerpt);
      setText(row, ".c-neighbourhood", data.neighbourhood);
      setText(row, ".c-district", data.district);
      setText(row, ".c-assignee", data.assignee);
      var age = row.querySelector("time.age");
      age.setAttribute("datetime", String(data.created_at));
      age.textContent = String(data.age || "");
      var statusBadge = row.querySelector(".badge.status");
      statusBadge.className = "badge status status-" + status;
      statusBadge.textContent = String(data.status_label || status);
      var priorityBadge = row.querySelector(".badge.priority");
      priorityBadge.className = "badge priority priority-" + priority;
      priorityBadge.textContent = String(data.priority_label || priority);
      priorityBadge.hidden = priority === "normal";
      row.querySelector(".badge.handoff").hidden = !data.handoff;
      row.querySelector(".badge.escalated").hidden = !data.escalated;
    }

    function upsert(data) {
      if (!data || typeof data.ref !== "string" || !REF.test(data.ref)) return;
      var row = document.getElementById("case-" + data.ref);
      if (!data.open) {
        if (row) row.remove();
        updateCounts();
        return;
      }
      var isNew = !row;
      if (isNew) {
        row = template.content.firstElementChild.cloneNode(true);
        row.id = "case-" + data.ref;
      }
      fill(row, data);
      var created = Date.parse(data.created_at);
      var before = null;
      var rows = body.querySelectorAll("tr.case-row");
      for (var i = 0; i < rows.length; i += 1) {
        if (rows[i] !== row && comesBefore(data.priority, created, rows[i])) { before = rows[i]; break; }
      }
      if (before !== row.nextElementSibling || !row.parentNode) body.insertBefore(row, before);
      if (isNew) {
        row.classList.add("fresh");
        if (document.hidden) {
          unseen += 1;
          document.title = say("unseen", { n: unseen }) + " " + baseTitle;
        }
      }
      updateCounts();
      refreshAges();
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { unseen = 0; document.title = baseTitle; }
    });

    body.addEventListener("click", function (event) {
      if (event.target.closest("a") || (window.getSelection && String(window.getSelection()))) return;
      var row = event.target.closest("tr.case-row");
      var link = row && row.querySelector(".c-ref a");
      if (link) window.location.assign(link.getAttribute("href"));
    });

    if (!window.EventSource) {
      setLive("lost", say("unsupported"));
      return;
    }
    var url = new URL(section.getAttribute("data-events-url"), window.location.href);
    url.searchParams.set("since", section.getAttribute("data-since"));
    var source = new EventSource(url.toString());
    source.addEventListener("open", function () { setLive("live", say("live")); });
    source.addEventListener("ready", function () { setLive("live", say("live")); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        setLive("lost", say("lost"));
      } else {
        setLive("connecting", say("connecting"));
      }
    });
    source.addEventListener("case", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (error) { return; }
      upsert(data);
    });
    source.addEventListener("stale", function () {
      source.close();
      window.location.reload();  // away too long to catch up: start afresh
    });
    source.addEventListener("signed_out", function () {
      source.close();
      setLive("lost", say("signed_out"));
    });
    source.addEventListener("forbidden", function () {
      source.close();
      setLive("lost", "Your role no longer includes the queue: reload the page");
    });
  }

  /* ------------------------------------------------------------ case form */

  function setupCaseForm() {
    var status = document.getElementById("status");
    var duplicate = document.getElementById("duplicate-field");
    if (!status || !duplicate) return;
    function sync() { duplicate.hidden = status.value !== duplicate.getAttribute("data-show-when"); }
    status.addEventListener("change", sync);
    sync();
  }

  /* ------------------------------------------------------------ live conversation */

  // The reporter's replies (and other dispatchers' messages) appear without a reload. Citizen
  // text only ever goes in through textContent.
  function setupChat(section) {
    var log = section.querySelector("ol.chat-log");
    if (!log || !window.EventSource) return;
    var url = new URL(section.getAttribute("data-events-url"), window.location.href);
    url.searchParams.set("after", section.getAttribute("data-after"));
    var source = new EventSource(url.toString());
    source.addEventListener("chat", function (event) {
      var line;
      try { line = JSON.parse(event.data); } catch (error) { return; }
      if (log.querySelector('[data-chat-id="' + CSS.escape(line.id) + '"]')) return;
      var item = document.createElement("li");
      item.className = "chat-" + line.kind;
      item.setAttribute("data-chat-id", line.id);
      var meta = document.createElement("span");
      meta.className = "muted";
      meta.textContent = line.when + " · " + line.who;
      item.appendChild(meta);
      item.appendChild(document.createElement("br"));
      item.appendChild(document.createTextNode(line.text));
      log.appendChild(item);
      log.hidden = false;
      var empty = document.getElementById("chat-empty");
      if (empty) empty.remove();
    });
    source.addEventListener("signed_out", function () { source.close(); });
    source.addEventListener("forbidden", function () { source.close(); });
  }

  /* ------------------------------------------------------------ the desk's language */

  function setupLanguage() {
    var select = document.querySelector("select[data-autosubmit]");
    if (!select) return;
    var button = select.form.querySelector("button");
    if (button) button.hidden = true;
    select.addEventListener("change", function () { select.form.submit(); });
  }

  function start() {
    setupLanguage();
    var queue = document.getElementById("queue");
    if (queue) setupQueue(queue);
    var chat = document.getElementById("chat");
    if (chat) setupChat(chat);
    setupCaseForm();
    refreshAges();
    window.setInterval(refreshAges, 30000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
