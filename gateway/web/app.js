// chatd web client. It speaks the WebSocket JSON protocol of docs/protocol.md.
//
// Safety rule: every text that comes from the server (chat lines, nicknames,
// room names, notices) reaches the page through textContent or as a Text
// node, never parsed as HTML. The page's Content-Security-Policy enforces
// Trusted Types, so any HTML-parsing sink would throw rather than render.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    body: document.body,
    status: $('status'),
    roomName: $('room-name'),
    whoami: $('whoami'),
    login: $('login'),
    loginForm: $('login-form'),
    nick: $('nick'),
    loginError: $('login-error'),
    chat: $('chat'),
    log: $('log'),
    sendForm: $('send-form'),
    line: $('line'),
    joinForm: $('join-form'),
    joinRoom: $('join-room'),
    rooms: $('rooms'),
    roomsRefresh: $('rooms-refresh'),
    who: $('who'),
    whoCount: $('who-count'),
  };

  const MAX_LOG = 2000; // entries kept in the log
  const PING_EVERY = 25000; // ms between pings
  const DEAD_AFTER = 60000; // ms without any message: the connection is dead
  const NICK_WAIT_TRIES = 8; // reconnects waiting for our nickname to be freed

  const st = {
    gateways: [], // WebSocket URLs, this page's own gateway first
    gw: 0, // index of the gateway in use or next to try
    maxLine: 4096,
    ws: null,
    nick: '', // our nickname as the server knows it
    room: '', // the room we are in
    welcomed: false, // the current connection has passed the handshake
    joinedOnce: false, // we have been in the chat: reconnect on loss
    wantOpen: false, // false after /quit or a refusal: do not reconnect
    rejoin: '', // after a reconnect: the room to go back to
    retry: 0, // reconnect attempts since the last welcome
    nickWait: 0, // reconnects spent waiting for our nickname
    timer: 0, // reconnect timer
    pingTimer: 0,
    lastHeard: 0, // when the server last sent anything
    autoWho: 0, // /who replies requested by the page, not shown in the log
    autoRooms: 0, // same for /rooms
    members: new Map(), // lower-case nick -> nick
    lastTs: new Map(), // room -> ts of the newest chat line shown
    pos: new Map(), // room -> { ts, last: Map gateway -> counter }: where to resume
    shownRoom: '', // the room of the last divider in the log
  };

  // ---- rendering (text only) ----

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function clock(ts) {
    const d = ts ? new Date(ts) : new Date();
    const p = (n) => String(n).padStart(2, '0');
    const now = new Date();
    const day = d.toDateString() === now.toDateString() ? '' :
      d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ';
    return day + p(d.getHours()) + ':' + p(d.getMinutes());
  }

  // add appends one entry to the log. parts are strings (added as Text
  // nodes) or elements built with span().
  function add(cls, parts, data) {
    const stick = el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 40;
    const div = document.createElement('div');
    div.className = 'msg ' + cls;
    for (const [k, v] of Object.entries(data || {})) div.dataset[k] = v;
    for (const p of parts) div.append(p);
    el.log.append(div);
    while (el.log.childElementCount > MAX_LOG) el.log.firstElementChild.remove();
    if (stick) el.log.scrollTop = el.log.scrollHeight;
    return div;
  }

  function divider(text) {
    const div = document.createElement('div');
    div.className = 'divider';
    div.textContent = text;
    el.log.append(div);
    el.log.scrollTop = el.log.scrollHeight;
  }

  function system(text) { add('system', [span('ts', clock()), text]); }
  // A notice starts with '*** ', as on TCP: an action starts with '* ' and
  // a nickname, which holds no '*', so no user can show a line that reads
  // as one (docs/protocol.md, "Line classes").
  function notice(text) { add('notice', [span('ts', clock()), '*** ' + text]); }
  function showError(text) { add('error', [span('ts', clock()), text], { kind: 'error' }); }

  function isSelf(nick) { return nick.toLowerCase() === st.nick.toLowerCase(); }

  // showEvent renders a room event (live, or replayed from history).
  function showEvent(ev, replayed) {
    const cls = (replayed ? ' history' : '') + (isSelf(ev.nick) ? ' self' : '');
    const ts = span('ts', clock(ev.ts));
    const data = { kind: ev.kind, nick: ev.nick };
    switch (ev.kind) {
      case 'say':
        add('say' + cls, [ts, span('nick', ev.nick), ': ', span('text', ev.text)], data);
        break;
      case 'me':
        add('me' + cls, [ts, '* ', span('nick', ev.nick), ' ', span('text', ev.text)], data);
        break;
      case 'join':
        add('system', [ts, span('nick', ev.nick), ' joined'], data);
        break;
      case 'leave':
        add('system', [ts, span('nick', ev.nick), ' left' + (ev.text ? ' (' + ev.text + ')' : '')], data);
        break;
      case 'nick':
        add('system', [ts, span('nick', ev.nick), ' is now known as ', span('nick', ev.text)], data);
        break;
      default:
        return; // a kind this page does not know
    }
    if ((ev.kind === 'say' || ev.kind === 'me') && ev.ts > (st.lastTs.get(ev.room) || 0)) {
      st.lastTs.set(ev.room, ev.ts);
    }
    see(ev);
  }

  // see records an event's position (docs/protocol.md, "Resume"): the
  // newest time and, per gateway, the highest counter of the ids seen in
  // the room; the 32 gateways heard from last are kept.
  function see(ev) {
    const id = String(ev.id || '');
    const dot = id.lastIndexOf('.');
    if (dot <= 0 || !ev.room) return;
    const gw = id.slice(0, dot);
    const n = Number(id.slice(dot + 1));
    if (!Number.isSafeInteger(n)) return;
    let p = st.pos.get(ev.room);
    if (!p) {
      p = { ts: 0, last: new Map() };
      st.pos.set(ev.room, p);
    }
    p.ts = Math.max(p.ts, ev.ts || 0);
    const prev = p.last.get(gw) || 0;
    p.last.delete(gw);
    p.last.set(gw, Math.max(prev, n));
    if (p.last.size > 32) p.last.delete(p.last.keys().next().value);
  }

  // resumeToken is "<room>:<ms>:<gw>.<n>,..." for the room we are in, or ''.
  function resumeToken() {
    const p = st.joinedOnce && st.room ? st.pos.get(st.room) : null;
    if (!p || !p.ts) return '';
    const ids = [];
    for (const [gw, n] of p.last) ids.push(gw + '.' + n);
    return st.room + ':' + p.ts + ':' + ids.join(',');
  }

  function setStatus(text, state) {
    el.status.textContent = text;
    if (state) el.body.dataset.state = state;
  }

  function renderMembers() {
    const nicks = [...st.members.values()].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
    el.who.replaceChildren(...nicks.map((n) => {
      const li = document.createElement('li');
      li.textContent = n;
      li.title = isSelf(n) ? 'you' : 'Send ' + n + ' a private message';
      if (isSelf(n)) li.className = 'self';
      li.addEventListener('click', () => {
        if (isSelf(n)) return;
        el.line.value = '/msg ' + n + ' ';
        el.line.focus();
      });
      return li;
    }));
    el.whoCount.textContent = '(' + nicks.length + ')';
  }

  function renderRooms(list) {
    el.rooms.replaceChildren(...list.map((r) => {
      const li = document.createElement('li');
      li.textContent = '#' + r.room + ' (' + r.count + ')';
      if (r.room === st.room) li.className = 'current';
      li.addEventListener('click', () => { if (r.room !== st.room) sendLine('/join ' + r.room); });
      return li;
    }));
  }

  function showRoom() {
    el.roomName.textContent = st.room ? '#' + st.room : '';
    el.whoami.textContent = st.nick ? 'as ' + st.nick : '';
    for (const li of el.rooms.children) {
      li.classList.toggle('current', li.textContent.startsWith('#' + st.room + ' '));
    }
  }

  // ---- connection ----

  function send(msg) {
    if (!st.ws || st.ws.readyState !== WebSocket.OPEN) return false;
    st.ws.send(JSON.stringify(msg));
    return true;
  }

  function sendLine(text) {
    if (!st.welcomed || !send({ type: 'line', text })) {
      showError('not connected: your message was not sent');
      return false;
    }
    return true;
  }

  function connect() {
    clearTimeout(st.timer);
    const url = st.gateways[st.gw % st.gateways.length];
    setStatus('connecting to ' + url + ' …', st.joinedOnce ? 'reconnecting' : 'login');
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      scheduleReconnect('cannot open ' + url);
      return;
    }
    st.ws = ws;
    st.welcomed = false;
    st.lastHeard = Date.now();
    ws.onopen = () => {
      const hello = { type: 'hello', v: 1, nick: st.nick };
      const resume = resumeToken();
      if (resume) hello.resume = resume;
      send(hello);
    };
    ws.onmessage = (e) => {
      if (st.ws !== ws) return;
      st.lastHeard = Date.now();
      let m;
      try {
        m = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      for (const one of Array.isArray(m) ? m : [m]) {
        if (one && typeof one === 'object') handle(one);
      }
    };
    ws.onclose = (e) => {
      if (st.ws !== ws) return;
      st.ws = null;
      st.welcomed = false;
      stopPing();
      closed(e.code, e.reason, url);
    };
  }

  function closed(code, reason, url) {
    const why = reason ? ' (' + reason + ')' : '';
    if (!st.wantOpen) {
      setStatus('disconnected', 'closed');
      return;
    }
    if (code === 1008 || code === 1009) {
      // The server closed us on purpose: flood, bad input, refused
      // nicknames. Do not hammer it; let the person decide.
      st.wantOpen = false;
      if (st.joinedOnce) showError('disconnected by the server' + why);
      toLogin('disconnected by the server' + why);
      return;
    }
    if (st.joinedOnce) system('connection to ' + url + ' lost' + why);
    scheduleReconnect('connection lost' + why);
  }

  // scheduleReconnect tries the next gateway after a growing delay.
  function scheduleReconnect(why) {
    clearTimeout(st.timer);
    if (!st.joinedOnce && st.retry >= st.gateways.length * 2) {
      toLogin('cannot reach the chat server; try again later');
      st.wantOpen = false;
      return;
    }
    st.gw = (st.gw + 1) % st.gateways.length;
    const delay = Math.min(10000, 400 * 2 ** Math.min(st.retry, 5)) + Math.floor(Math.random() * 300);
    st.retry++;
    setStatus(why + '; reconnecting in ' + Math.ceil(delay / 1000) + ' s …', 'reconnecting');
    st.timer = setTimeout(connect, delay);
  }

  function startPing() {
    stopPing();
    st.pingTimer = setInterval(() => {
      if (Date.now() - st.lastHeard > DEAD_AFTER) {
        // No pong: the connection is half-open. Drop it and reconnect.
        const ws = st.ws;
        st.ws = null;
        st.welcomed = false;
        stopPing();
        if (ws) { ws.onclose = null; ws.close(); }
        closed(1006, 'no answer', st.gateways[st.gw % st.gateways.length]);
        return;
      }
      send({ type: 'ping' });
    }, PING_EVERY);
  }

  function stopPing() { clearInterval(st.pingTimer); }

  function toLogin(error) {
    el.loginError.textContent = error || '';
    el.chat.hidden = true;
    el.login.hidden = false;
    el.nick.value = st.nick || el.nick.value;
    el.body.dataset.state = 'login';
    el.nick.focus();
  }

  // ---- server messages ----

  function handle(m) {
    switch (m.type) {
      case 'welcome': return welcome(m);
      case 'history': return history(m);
      case 'event': return liveEvent(m);
      case 'notice': return serverNotice(m);
      case 'error': return serverError(m);
      case 'private': return privateMsg(m);
      case 'pong': return undefined;
      default: return undefined; // a newer server's message: ignore it
    }
  }

  function welcome(m) {
    st.welcomed = true;
    st.retry = 0;
    st.nickWait = 0;
    st.nick = String(m.nick || st.nick);
    if (m.max_line) st.maxLine = m.max_line;
    const url = st.gateways[st.gw % st.gateways.length];
    if (st.joinedOnce && st.room && st.room !== m.room) st.rejoin = st.room;
    st.joinedOnce = true;
    el.login.hidden = true;
    el.chat.hidden = false;
    el.loginError.textContent = '';
    setStatus('connected to ' + url, 'connected');
    system('connected to ' + url + ' as ' + st.nick);
    startPing();
    showRoom();
    el.line.focus();
  }

  function history(m) {
    if (st.rejoin && m.room !== st.rejoin) {
      // Back after a reconnect: we land in the default room, then go back
      // to the room we were in. Skip the detour.
      st.room = m.room;
      sendLine('/join ' + st.rejoin);
      return;
    }
    st.rejoin = '';
    st.room = m.room;
    st.members.clear();
    renderMembers();
    showRoom();
    if (st.shownRoom !== m.room) divider('#' + m.room);
    st.shownRoom = m.room;
    if (m.missed) {
      // We resumed: the server sends exactly what we missed.
      const evs = m.events || [];
      let head = evs.length + (evs.length === 1 ? ' line' : ' lines') + ' you missed';
      if (m.skipped) head += ' (' + m.skipped + ' older ones skipped)';
      if (m.gone) head += ' (older ones are no longer stored)';
      if (evs.length > 0 || m.skipped || m.gone) divider(head);
      for (const ev of evs) showEvent(Object.assign({ room: m.room }, ev), true);
      if (evs.length > 0 || m.skipped || m.gone) divider('live');
    } else {
      // Lines already shown (before a reconnect or a room switch) are not
      // shown twice.
      const after = st.lastTs.get(m.room) || 0;
      const fresh = (m.events || []).filter((ev) => ev.ts > after);
      for (const ev of fresh) showEvent(Object.assign({ room: m.room }, ev), true);
      if (fresh.length > 0) divider('live');
    }
    st.autoWho++;
    st.autoRooms++;
    sendLine('/who');
    sendLine('/rooms');
  }

  function liveEvent(ev) {
    if (st.rejoin || ev.room !== st.room) return;
    switch (ev.kind) {
      case 'join':
        st.members.set(ev.nick.toLowerCase(), ev.nick);
        break;
      case 'leave':
        st.members.delete(ev.nick.toLowerCase());
        break;
      case 'nick':
        st.members.delete(ev.nick.toLowerCase());
        st.members.set(ev.text.toLowerCase(), ev.text);
        if (isSelf(ev.nick)) st.nick = ev.text;
        showRoom();
        break;
    }
    if (ev.kind === 'join' || ev.kind === 'leave' || ev.kind === 'nick') renderMembers();
    showEvent(ev, false);
  }

  function serverNotice(m) {
    if (m.cmd === 'who' && Array.isArray(m.nicks)) {
      if (m.room === st.room) {
        st.members = new Map(m.nicks.map((n) => [String(n).toLowerCase(), String(n)]));
        renderMembers();
      }
      if (st.autoWho > 0) { st.autoWho--; return; }
    }
    if (m.cmd === 'rooms' && Array.isArray(m.rooms)) {
      renderRooms(m.rooms);
      if (st.autoRooms > 0) { st.autoRooms--; return; }
    }
    if (st.welcomed) {
      notice(String(m.text));
    } else {
      el.loginError.textContent = String(m.text);
    }
  }

  function serverError(m) {
    const text = String(m.text);
    if (st.welcomed) {
      showError(text);
      return;
    }
    // Before the welcome: our hello was refused, or we were refused.
    if (st.joinedOnce && m.code === 'nick_taken' && st.nickWait < NICK_WAIT_TRIES) {
      // Our old connection may still hold the nickname (a gateway that
      // died frees it when its lease runs out). Wait and try again.
      st.nickWait++;
      const ws = st.ws;
      st.ws = null;
      if (ws) { ws.onclose = null; ws.close(); }
      scheduleReconnect('waiting for the nickname ' + st.nick + ' to be free');
      return;
    }
    if (m.code === 'refused') {
      return; // the close that follows says what to do
    }
    st.joinedOnce = false;
    st.room = '';
    toLogin(text);
  }

  function privateMsg(m) {
    const out = isSelf(String(m.from)) && !isSelf(String(m.to));
    add('private', [span('ts', clock(m.ts)),
      out ? 'private to ' : 'private from ',
      span('nick', out ? m.to : m.from), ': ', span('text', m.text)],
    { kind: 'private', nick: String(m.from) });
  }

  // ---- user input ----

  function utf8Length(s) { return new TextEncoder().encode(s).length; }

  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const nick = el.nick.value.trim();
    if (!/^[A-Za-z0-9_.[\]{}|^][A-Za-z0-9_.[\]{}|^-]{0,31}$/.test(nick)) {
      el.loginError.textContent = 'a nickname is 1-32 letters, digits and _-.[]{}|^, not starting with -';
      return;
    }
    el.loginError.textContent = '';
    st.nick = nick;
    st.wantOpen = true;
    st.retry = 0;
    if (st.ws && st.ws.readyState === WebSocket.OPEN && !st.welcomed) {
      send({ type: 'hello', v: 1, nick }); // another try on the same connection
    } else if (!st.ws) {
      connect();
    }
  });

  el.sendForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.line.value;
    if (text.trim() === '') return;
    if (utf8Length(text) > st.maxLine) {
      showError('your line is too long (limit ' + st.maxLine + ' bytes)');
      return;
    }
    if (/^\/quit\b/i.test(text.trim())) st.wantOpen = false;
    if (sendLine(text)) el.line.value = '';
  });

  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = el.joinRoom.value.trim();
    if (room === '') return;
    if (sendLine('/join ' + room)) el.joinRoom.value = '';
  });

  el.roomsRefresh.addEventListener('click', () => {
    st.autoRooms++;
    sendLine('/rooms');
  });

  // ---- start ----

  async function start() {
    let cfg = {};
    try {
      const r = await fetch('config.json', { cache: 'no-store' });
      if (r.ok) cfg = await r.json();
    } catch (e) {
      // no settings: use this page's own gateway only
    }
    const own = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + (cfg.ws_path || '/ws');
    st.gateways = [own];
    for (const g of Array.isArray(cfg.gateways) ? cfg.gateways : []) {
      if (typeof g === 'string' && !st.gateways.includes(g)) st.gateways.push(g);
    }
    if (cfg.max_line) st.maxLine = cfg.max_line;
    const wanted = new URLSearchParams(location.search).get('nick');
    if (wanted) el.nick.value = wanted;
    setStatus('not connected', 'login');
  }

  start();
})();
