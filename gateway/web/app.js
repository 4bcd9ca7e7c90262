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
    whoStale: $('who-stale'),
    menu: $('menu'),
    menuUnread: $('menu-unread'),
    side: $('side'),
    sideClose: $('side-close'),
    scrim: $('scrim'),
    notify: $('notify'),
    notifyNote: $('notify-note'),
  };
  const phone = window.matchMedia('(max-width: 640px)');

  const MAX_LOG = 2000; // entries kept in the log
  const PING_EVERY = 25000; // ms between pings
  const DEAD_AFTER = 60000; // ms without any message: the connection is dead
  const NICK_WAIT_TRIES = 8; // reconnects waiting for our nickname to be freed
  const LIVE_MARGIN = 30000; // ms: lines older than this before we last heard the server have reached us
  const UNREAD_EVERY = 30000; // ms between unread queries for other rooms
  const UNREAD_MIN = 5500; // ms: the server answers one query per 5 s
  const UNREAD_ROOMS = 4; // rooms per query (the server's limit)

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
    ops: new Set(), // lower-case nicks of the operators among members
    lastTs: new Map(), // room -> ts of the newest chat line shown
    pos: new Map(), // room -> { ts, last: Map gateway -> counter }: where to resume
    shownRoom: '', // the room of the last divider in the log
    host: '', // host of the gateway in use
    outage: null, // { div, text, since }: the one log line of the current outage
    skew: -Infinity, // server clock minus ours, from event stamps (a lower bound)
    liveAt: 0, // when, by our clock, a welcomed connection last heard the server
    resumeAge: 3600000, // ms: the server's --resume-age, from /config.json
    rooms: [], // the last /rooms reply
    unread: new Map(), // room -> { count, more }: lines in it we have not seen
    visited: [], // rooms we were in, the latest first
    unreadAt: 0, // when we last asked for unread counts
    unreadTimer: 0,
    unreadPending: false, // a query is on its way
    noUnread: false, // the server does not count unread lines
    notify: false, // browser notifications wanted (and allowed)
    away: 0, // lines that arrived while the tab was hidden
    clamped: false, // the resume position was older than the server keeps
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

  const NICK_CHAR = /[A-Za-z0-9_.[\]{}|^-]/;

  // mentions finds our nickname in text as a word of its own (not inside a
  // longer nickname), case-insensitively: it returns the text as Text nodes
  // with each mention in a <mark>, and whether there was one.
  function mentions(text) {
    const me = st.nick.toLowerCase();
    const low = text.toLowerCase();
    const out = [];
    let from = 0;
    let hit = false;
    if (me !== '') {
      for (let i = low.indexOf(me); i >= 0; i = low.indexOf(me, i + 1)) {
        const before = i > 0 ? text[i - 1] : '';
        const after = text[i + me.length] || '';
        if ((before && NICK_CHAR.test(before)) || (after && NICK_CHAR.test(after))) continue;
        if (i > from) out.push(document.createTextNode(text.slice(from, i)));
        const m = document.createElement('mark');
        m.className = 'me-mention';
        m.textContent = text.slice(i, i + me.length);
        out.push(m);
        from = i + me.length;
        i = from - 1;
        hit = true;
      }
    }
    if (from < text.length) out.push(document.createTextNode(text.slice(from)));
    return { nodes: out, hit };
  }

  // textSpan is the .text span of a chat line, with mentions of us marked
  // (not in our own lines).
  function textSpan(nick, text) {
    const s = document.createElement('span');
    s.className = 'text';
    if (isSelf(nick)) {
      s.textContent = text;
      return { span: s, hit: false };
    }
    const m = mentions(text);
    s.append(...m.nodes);
    return { span: s, hit: m.hit };
  }

  // showEvent renders a room event (live, or replayed from history). It
  // reports whether the line mentions us.
  function showEvent(ev, replayed) {
    let cls = (replayed ? ' history' : '') + (isSelf(ev.nick) ? ' self' : '');
    const ts = span('ts', clock(ev.ts));
    const data = { kind: ev.kind, nick: ev.nick };
    let hit = false;
    switch (ev.kind) {
      case 'say': {
        const t = textSpan(ev.nick, ev.text);
        hit = t.hit;
        if (hit) cls += ' mention';
        add('say' + cls, [ts, span('nick', ev.nick), ': ', t.span], data);
        break;
      }
      case 'me': {
        const t = textSpan(ev.nick, ev.text);
        hit = t.hit;
        if (hit) cls += ' mention';
        add('me' + cls, [ts, '* ', span('nick', ev.nick), ' ', t.span], data);
        break;
      }
      case 'join':
        add('system', [ts, span('nick', ev.nick), ' joined'], data);
        break;
      case 'leave':
        add('system', [ts, span('nick', ev.nick), ' left' + (ev.text ? ' (' + ev.text + ')' : '')], data);
        break;
      case 'nick':
        add('system', [ts, span('nick', ev.nick), ' is now known as ', span('nick', ev.text)], data);
        break;
      case 'kick':
        add('system', [ts, span('nick', ev.nick), ' was kicked by ', span('nick', String(ev.by || '')),
          ev.text ? ': ' + ev.text : ''], data);
        break;
      case 'topic':
        add('system', [ts, span('nick', ev.nick), ev.text ? ' set the topic: ' + ev.text : ' cleared the topic'], data);
        break;
      default:
        return false; // a kind this page does not know
    }
    if ((ev.kind === 'say' || ev.kind === 'me') && ev.ts > (st.lastTs.get(ev.room) || 0)) {
      st.lastTs.set(ev.room, ev.ts);
    }
    see(ev);
    return hit;
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

  // noteServerTime learns the server's clock from an event stamp: a stamp
  // is never later than the server's time when it reaches us.
  function noteServerTime(ts) {
    if (Number.isSafeInteger(ts) && ts > 0) st.skew = Math.max(st.skew, ts - Date.now());
  }

  function serverTime(local) { return local + (Number.isFinite(st.skew) ? st.skew : 0); }

  // position is a room's position as a token, or '' when we have none.
  function position(room) {
    const p = st.pos.get(room);
    if (!p || !p.ts) return '';
    const ids = [];
    for (const [gw, n] of p.last) ids.push(gw + '.' + n);
    return room + ':' + p.ts + ':' + ids.join(',');
  }

  // askUnread asks how many lines wait in the rooms we were in before
  // (docs/protocol.md, "Unread"), at most once per UNREAD_MIN.
  function askUnread() {
    clearTimeout(st.unreadTimer);
    if (st.noUnread || !st.welcomed) return;
    const wait = st.unreadAt + UNREAD_MIN - Date.now();
    if (wait > 0) {
      st.unreadTimer = setTimeout(askUnread, wait);
      return;
    }
    const rooms = st.visited.filter((r) => r !== st.room).map(position).filter((t) => t !== '').slice(0, UNREAD_ROOMS);
    if (rooms.length > 0 && send({ type: 'unread', rooms })) {
      st.unreadAt = Date.now();
      st.unreadPending = true;
    }
    st.unreadTimer = setTimeout(askUnread, UNREAD_EVERY);
  }

  function unreadReply(m) {
    st.unreadPending = false;
    for (const r of Array.isArray(m.rooms) ? m.rooms : []) {
      if (!r || typeof r.room !== 'string' || r.room === st.room) continue;
      const count = Number(r.count) || 0;
      if (count > 0) st.unread.set(r.room, { count, more: !!r.more });
      else st.unread.delete(r.room);
    }
    renderRooms();
  }

  // resumeToken is "<room>:<ms>:<gw>.<n>,..." for the room we are in, or ''.
  // The time is the newest line seen or, later, the time we were still
  // hearing the server (less a margin for lines on their way): lines from
  // gateways the token does not name, stamped before it, have reached us.
  // So a quiet room, or one with no line seen yet, resumes too, and goes
  // straight back to its room rather than by the default one. A position
  // older than the server keeps is brought within its reach (what went
  // before is too old to replay).
  function resumeToken() {
    if (!st.joinedOnce || !st.room) return '';
    const p = st.pos.get(st.room) || { ts: 0, last: new Map() };
    const now = serverTime(Date.now());
    let ts = p.ts;
    if (st.liveAt) ts = Math.max(ts, serverTime(st.liveAt) - LIVE_MARGIN);
    const oldest = now - st.resumeAge + Math.min(60000, st.resumeAge / 4);
    st.clamped = ts < oldest;
    ts = Math.min(Math.floor(Math.max(ts, oldest)), now);
    if (!(ts > 0)) return '';
    const ids = [];
    for (const [gw, n] of p.last) ids.push(gw + '.' + n);
    return st.room + ':' + ts + ':' + ids.join(',');
  }

  // setStatus sets the one status line of the header: short words, with
  // the gateway in its tooltip, never a URL that could make it wrap.
  function setStatus(text, state, detail) {
    el.status.textContent = text;
    el.status.title = detail || text;
    if (state) el.body.dataset.state = state;
  }

  function hostOf(url) {
    try {
      return new URL(url).host;
    } catch (e) {
      return url;
    }
  }

  // outage shows, in the log, the one line of the current outage, updated
  // in place at every retry rather than one line each.
  function outage(text) {
    if (!st.outage) {
      const what = span('what', '');
      const div = add('conn', [span('ts', clock()), what], { kind: 'conn' });
      st.outage = { div, text: what, since: new Date() };
    }
    st.outage.text.textContent = text;
  }

  // staleMembers marks the member list as out of date while offline.
  function staleMembers(stale) {
    el.who.classList.toggle('stale', stale);
    el.whoStale.hidden = !stale;
  }

  // keepFocus rebuilds a list; a keyboard user whose focus was on one of
  // its items finds it on the same item afterwards.
  function keepFocus(ul, key, rebuild) {
    const f = document.activeElement;
    const li = f && ul.contains(f) ? f.closest('li') : null;
    const was = li ? li.dataset[key] : undefined;
    rebuild();
    if (was === undefined) return;
    const again = [...ul.children].find((x) => x.dataset[key] === was);
    const b = again && again.querySelector('button');
    if (b) b.focus();
    else (el.body.classList.contains('drawer-open') ? el.joinRoom : el.line).focus(); // the item is gone
  }

  // Members and rooms are buttons in list items: reachable with Tab,
  // chosen with Enter or Space, each with a name of its own.
  function renderMembers() {
    keepFocus(el.who, 'nick', buildMembers);
  }

  function buildMembers() {
    const nicks = [...st.members.values()].sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
    el.who.replaceChildren(...nicks.map((n) => {
      const li = document.createElement('li');
      li.dataset.nick = n;
      const op = st.ops.has(n.toLowerCase());
      if (op) li.dataset.op = 'true';
      const shown = (op ? '@' : '') + n;
      if (isSelf(n)) {
        li.className = 'self';
        li.append(span('item', shown));
        if (op) li.title = 'operator';
        return li;
      }
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'item';
      b.textContent = shown;
      b.setAttribute('aria-label', 'Send ' + n + (op ? ', an operator,' : '') + ' a private message');
      b.addEventListener('click', () => {
        el.line.value = '/msg ' + n + ' ';
        closeDrawer(false);
        el.line.focus();
      });
      li.append(b);
      return li;
    }));
    el.whoCount.textContent = '(' + nicks.length + ')';
  }

  function renderRooms(list) {
    if (list) st.rooms = list;
    keepFocus(el.rooms, 'room', buildRooms);
  }

  function buildRooms() {
    const rooms = st.rooms.slice();
    // A room with lines we have not seen stays listed even if /rooms
    // no longer names it.
    for (const r of st.unread.keys()) {
      if (!rooms.some((x) => x.room === r)) rooms.push({ room: r, count: 0 });
    }
    el.rooms.replaceChildren(...rooms.map((r) => {
      const li = document.createElement('li');
      li.dataset.room = r.room;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'item';
      const u = st.unread.get(r.room);
      const unread = u ? u.count + (u.more ? '+' : '') : '';
      b.append(span('name', '#' + r.room), span('n', String(r.count)));
      if (unread) b.append(span('badge unread', unread));
      let label = '#' + r.room + ', ' + r.count + (r.count === 1 ? ' person' : ' people');
      if (unread) label += ', ' + unread + ' unread';
      if (r.room === st.room) {
        b.setAttribute('aria-current', 'true');
        label += ', current room';
      }
      b.setAttribute('aria-label', label);
      b.addEventListener('click', () => {
        closeDrawer(false);
        if (r.room !== st.room) sendLine('/join ' + r.room);
        el.line.focus();
      });
      li.append(b);
      return li;
    }));
    let total = 0;
    for (const u of st.unread.values()) total += u.count;
    el.menuUnread.hidden = total === 0;
    el.menuUnread.textContent = String(total);
    el.menu.setAttribute('aria-label', 'Rooms & people' + (total ? ', ' + total + ' unread in other rooms' : ''));
  }

  function showRoom() {
    el.roomName.textContent = st.room ? '#' + st.room : '';
    el.whoami.textContent = st.nick ? 'as ' + st.nick : '';
    renderRooms();
  }

  // ---- the drawer (narrow screens) ----

  function openDrawer() {
    el.body.classList.add('drawer-open');
    el.menu.setAttribute('aria-expanded', 'true');
    el.scrim.hidden = false;
    el.joinRoom.focus();
  }

  // closeDrawer closes the drawer, and gives the focus back to its button
  // when asked.
  function closeDrawer(refocus) {
    if (!el.body.classList.contains('drawer-open')) return;
    el.body.classList.remove('drawer-open');
    el.menu.setAttribute('aria-expanded', 'false');
    el.scrim.hidden = true;
    if (refocus) el.menu.focus();
  }

  el.menu.addEventListener('click', () => {
    if (el.body.classList.contains('drawer-open')) closeDrawer(true);
    else openDrawer();
  });
  el.sideClose.addEventListener('click', () => closeDrawer(true));
  el.scrim.addEventListener('click', () => closeDrawer(true));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && el.body.classList.contains('drawer-open')) {
      e.preventDefault();
      closeDrawer(true);
      return;
    }
    // Keep Tab inside the open drawer.
    if (e.key === 'Tab' && phone.matches && el.body.classList.contains('drawer-open')) {
      const f = [...el.side.querySelectorAll('button, input, [tabindex="0"]')].filter((x) => !x.disabled && x.offsetParent !== null);
      if (f.length === 0) return;
      const first = f[0];
      const last = f[f.length - 1];
      if (e.shiftKey && (document.activeElement === first || !el.side.contains(document.activeElement))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (document.activeElement === last || !el.side.contains(document.activeElement))) {
        e.preventDefault();
        first.focus();
      }
    }
  });
  phone.addEventListener('change', () => { if (!phone.matches) closeDrawer(false); });

  // ---- alerts: unread counts, the title, notifications ----

  // alert tells someone who is not looking: the tab's title counts lines
  // that arrived while it was hidden, and a mention or a private message
  // becomes a browser notification, if asked for.
  function attention(title, body, loud) {
    if (!document.hidden) return;
    st.away++;
    document.title = '(' + st.away + ') chatd';
    if (!loud || !st.notify || !('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      const n = new Notification(title, { body, tag: 'chatd' });
      n.onclick = () => { window.focus(); n.close(); };
    } catch (e) {
      // a browser that only notifies from a service worker
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      st.away = 0;
      document.title = 'chatd';
    }
  });

  function setNotify(on, why) {
    st.notify = on;
    el.notify.checked = on;
    el.notifyNote.textContent = why || '';
    try {
      localStorage.setItem('chatd.notify', on ? '1' : '');
    } catch (e) {
      // storage off: the choice lasts until the page is closed
    }
  }

  el.notify.addEventListener('change', () => {
    if (!el.notify.checked) {
      setNotify(false);
      return;
    }
    if (!('Notification' in window)) {
      setNotify(false, 'this browser cannot show notifications');
      return;
    }
    if (Notification.permission === 'granted') {
      setNotify(true);
      return;
    }
    Promise.resolve(Notification.requestPermission()).then((p) => {
      if (p === 'granted') setNotify(true);
      else setNotify(false, 'notifications are blocked for this page in the browser settings');
    }, () => setNotify(false, 'notifications could not be turned on'));
  });

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
    st.host = hostOf(url);
    if (st.joinedOnce) {
      setStatus('reconnecting…', 'reconnecting', 'trying ' + st.host);
      outage('connection lost at ' + clock(st.outage ? st.outage.since : 0) + '; trying ' + st.host + ' …');
    } else {
      setStatus('connecting…', 'login', 'trying ' + st.host);
    }
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
      if (st.welcomed) st.liveAt = st.lastHeard;
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
    if (st.joinedOnce) {
      staleMembers(true);
      if (!st.outage) outage('connection to ' + hostOf(url) + ' lost' + why);
    }
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
    const secs = Math.ceil(delay / 1000);
    setStatus('reconnecting in ' + secs + ' s', 'reconnecting', why);
    if (st.joinedOnce) {
      const extra = why.startsWith('connection lost') ? why.slice('connection lost'.length) : ' (' + why + ')';
      outage('connection lost at ' + clock(st.outage ? st.outage.since : 0) + extra + '; retry ' + st.retry +
        ' in ' + secs + ' s, to ' + hostOf(st.gateways[st.gw]));
    }
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
      case 'unread': return unreadReply(m);
      case 'pong': return undefined;
      default: return undefined; // a newer server's message: ignore it
    }
  }

  function welcome(m) {
    st.welcomed = true;
    st.unreadPending = false;
    st.retry = 0;
    st.nickWait = 0;
    st.nick = String(m.nick || st.nick);
    if (m.max_line) st.maxLine = m.max_line;
    const url = st.gateways[st.gw % st.gateways.length];
    st.host = hostOf(url);
    if (st.joinedOnce && st.room && st.room !== m.room) st.rejoin = st.room;
    const back = st.joinedOnce;
    st.joinedOnce = true;
    st.liveAt = Date.now();
    el.login.hidden = true;
    el.chat.hidden = false;
    el.loginError.textContent = '';
    el.status.dataset.gateway = st.host;
    setStatus('online', 'connected', 'connected to ' + st.host + ' as ' + st.nick);
    if (st.outage) {
      const o = st.outage;
      st.outage = null;
      o.text.textContent = 'connection lost at ' + clock(o.since) + '; back at ' + clock() + ' through ' + st.host;
      o.div.classList.add('over');
    } else {
      system('connected to ' + st.host + ' as ' + st.nick);
    }
    startPing();
    showRoom();
    if (!back) el.line.focus();
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
    st.ops.clear();
    staleMembers(false);
    renderMembers();
    st.unread.delete(m.room);
    st.visited = [m.room, ...st.visited.filter((r) => r !== m.room)].slice(0, 32);
    showRoom();
    if (st.shownRoom !== m.room) divider('#' + m.room);
    st.shownRoom = m.room;
    if (m.missed) {
      // We resumed: the server sends exactly what we missed.
      const evs = m.events || [];
      let head = evs.length + (evs.length === 1 ? ' line' : ' lines') + ' you missed';
      if (m.skipped) head += ' (' + m.skipped + ' older ones skipped)';
      if (m.gone) head += ' (older ones are no longer stored)';
      else if (st.clamped) head += ' (older ones were too old to replay)';
      const framed = evs.length > 0 || m.skipped || m.gone || st.clamped;
      st.clamped = false;
      if (framed) divider(head);
      for (const ev of evs) showEvent(Object.assign({ room: m.room }, ev), true);
      if (framed) divider('live');
    } else {
      st.clamped = false; // the position was not used
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
      case 'kick':
        st.members.delete(ev.nick.toLowerCase());
        st.ops.delete(ev.nick.toLowerCase());
        break;
      case 'nick':
        if (st.ops.delete(ev.nick.toLowerCase())) st.ops.add(ev.text.toLowerCase());
        st.members.delete(ev.nick.toLowerCase());
        st.members.set(ev.text.toLowerCase(), ev.text);
        if (isSelf(ev.nick)) st.nick = ev.text;
        showRoom();
        break;
    }
    if (ev.kind === 'join' || ev.kind === 'leave' || ev.kind === 'kick' || ev.kind === 'nick') renderMembers();
    noteServerTime(ev.ts);
    const hit = showEvent(ev, false);
    if ((ev.kind === 'say' || ev.kind === 'me') && !isSelf(ev.nick)) {
      attention(hit ? ev.nick + ' mentioned you in #' + ev.room : '#' + ev.room,
        (ev.kind === 'me' ? '* ' + ev.nick + ' ' : ev.nick + ': ') + ev.text, hit);
    }
  }

  function serverNotice(m) {
    if (m.cmd === 'who' && Array.isArray(m.nicks)) {
      if (m.room === st.room) {
        st.members = new Map(m.nicks.map((n) => [String(n).toLowerCase(), String(n)]));
        st.ops = new Set((Array.isArray(m.ops) ? m.ops : []).map((n) => String(n).toLowerCase()));
        renderMembers();
      }
      if (st.autoWho > 0) { st.autoWho--; return; }
    }
    if (m.cmd === 'rooms' && Array.isArray(m.rooms)) {
      renderRooms(m.rooms);
      askUnread();
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
    if (st.unreadPending && m.code === 'bad_message') {
      // A server from before unread counts.
      st.unreadPending = false;
      st.noUnread = true;
      return;
    }
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
    noteServerTime(m.ts);
    add('private', [span('ts', clock(m.ts)),
      out ? 'private to ' : 'private from ',
      span('nick', out ? m.to : m.from), ': ', span('text', m.text)],
    { kind: 'private', nick: String(m.from) });
    if (!out) attention('private message from ' + m.from, String(m.text), true);
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
    if (sendLine('/join ' + room)) {
      el.joinRoom.value = '';
      closeDrawer(false);
      el.line.focus();
    }
  });

  el.roomsRefresh.addEventListener('click', () => {
    st.autoRooms++;
    sendLine('/rooms'); // and, with its reply, the unread counts
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
    if (Number.isSafeInteger(cfg.resume_age_ms) && cfg.resume_age_ms > 0) st.resumeAge = cfg.resume_age_ms;
    try {
      if (localStorage.getItem('chatd.notify') && 'Notification' in window && Notification.permission === 'granted') setNotify(true);
    } catch (e) {
      // storage off
    }
    const wanted = new URLSearchParams(location.search).get('nick');
    if (wanted) el.nick.value = wanted;
    setStatus('not connected', 'login');
  }

  start();
})();
