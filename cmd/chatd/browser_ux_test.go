package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatd/chatd/cluster/clustertest"
)

// The page on a phone, from a keyboard, through a reconnect, and with
// alerts. Keys go through the DevTools protocol's Input.dispatchKeyEvent,
// as a keyboard's would; the accessibility tree is the browser's own.

// checkNoErrorsBut is checkNoErrors, but for errors that contain what.
func (b *browser) checkNoErrorsBut(what string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		if !strings.Contains(e, what) {
			b.t.Errorf("page error: %s", e)
		}
	}
}

// viewport sets the page's size in CSS pixels.
func (b *browser) viewport(w, h int64) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(w, h))
}

// key presses one key (kb.Tab, kb.Enter, kb.Escape, or a character), with
// Shift if asked.
func (b *browser) key(k string, shift bool) {
	b.t.Helper()
	var opts []chromedp.KeyOption
	if shift {
		opts = append(opts, chromedp.KeyModifiers(chromedp.ModifierShift))
	}
	b.do(chromedp.KeyEvent(k, opts...))
}

// typeText types text into the focused element, key by key.
func (b *browser) typeText(text string) {
	b.t.Helper()
	b.do(chromedp.KeyEvent(text))
}

// tabTo presses Tab (or Shift+Tab) until the focused element matches the
// JavaScript expression cond (with el bound to document.activeElement),
// and fails after max presses: what cannot be reached that way cannot be
// reached from the keyboard.
func (b *browser) tabTo(desc, cond string, shift bool, max int) {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => { const el = document.activeElement; return !!(el && (%s)); })()`, cond)
	var path []string
	for i := 0; i <= max; i++ {
		if eval[bool](b, expr) {
			return
		}
		path = append(path, eval[string](b, `(() => { const e = document.activeElement; return e ? e.tagName + '#' + e.id + '[' + (e.getAttribute('aria-label') || e.textContent).slice(0, 30) + ']' : 'none'; })()`))
		b.key(kb.Tab, shift)
	}
	b.t.Fatalf("keyboard: %s not reached in %d Tab presses; focus went %s", desc, max, strings.Join(path, " → "))
}

// focusVisible checks that the focused element shows a focus ring.
func (b *browser) focusVisible(desc string) {
	b.t.Helper()
	ring := eval[string](b, `(() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth; })()`)
	if strings.HasPrefix(ring, "none") || strings.HasSuffix(ring, " 0px") {
		b.t.Errorf("%s: focused without a visible focus ring (outline %q)", desc, ring)
	}
}

// interactiveRoles are the accessibility roles a person operates, which
// must have a name.
var interactiveRoles = map[string]bool{
	"button": true, "textbox": true, "searchbox": true, "link": true, "checkbox": true,
	"radio": true, "switch": true, "combobox": true, "listbox": true, "option": true,
	"menuitem": true, "tab": true, "slider": true, "spinbutton": true, "treeitem": true,
}

// unnamedControls lists the controls of the page's accessibility tree
// (those of interactiveRoles, and any other focusable node) that have no
// accessible name.
func (b *browser) unnamedControls() []string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		b.t.Fatalf("accessibility tree: %v", err)
	}
	str := func(v *accessibility.Value) string {
		if v == nil {
			return ""
		}
		s := strings.Trim(string(v.Value), `"`)
		return strings.TrimSpace(s)
	}
	var bad []string
	controls := 0
	for _, n := range tree.Nodes {
		if n.Ignored {
			continue
		}
		role := str(n.Role)
		focusable := false
		for _, p := range n.Properties {
			if p.Name == accessibility.PropertyNameFocusable && str(p.Value) == "true" {
				focusable = true
			}
		}
		if !interactiveRoles[role] && !(focusable && role != "RootWebArea") {
			continue
		}
		controls++
		switch from := nameSource(n); {
		case str(n.Name) == "":
			bad = append(bad, fmt.Sprintf("%s (DOM node %d)", role, n.BackendDOMNodeID))
		case from != "":
			bad = append(bad, fmt.Sprintf("%s %q (DOM node %d), named only by its %s", role, str(n.Name), n.BackendDOMNodeID, from))
		}
	}
	if controls == 0 {
		b.t.Fatal("accessibility tree: no controls at all")
	}
	return bad
}

// nameSource returns "placeholder" or "tooltip" when that is where a
// node's accessible name comes from, and "" otherwise. Sources are listed
// by priority; the first with a value, not superseded, is the name's.
func nameSource(n *accessibility.Node) string {
	if n.Name == nil {
		return ""
	}
	for _, src := range n.Name.Sources {
		if src.Superseded || src.Invalid || src.Value == nil || strings.Trim(string(src.Value.Value), `" `) == "" {
			continue
		}
		switch {
		case src.Type == accessibility.ValueSourceTypePlaceholder || src.Attribute == "placeholder" || src.Attribute == "aria-placeholder":
			return "placeholder"
		case src.Attribute == "title":
			return "tooltip"
		}
		return ""
	}
	return ""
}

func (b *browser) checkNamed(when string) {
	b.t.Helper()
	if bad := b.unnamedControls(); len(bad) > 0 {
		b.t.Errorf("%s: controls without an accessible name: %s", when, strings.Join(bad, ", "))
	}
}

// The page can be used from the keyboard alone, at desktop size: log in,
// join a room with the join box, switch rooms from the room list, choose a
// member for a private message, send; every control has a name and a
// visible focus ring.
func TestBrowserKeyboard(t *testing.T) {
	b := newBrowser(t)
	b.viewport(1280, 800)
	m := mustRunMain(t, "--rate", "100", "--burst", "100")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	dev := join(t, m.ChatAddr().String(), "devuser")
	dev.Send("/join dev\n")
	dev.Expect("devuser joined!")

	b.do(chromedp.Navigate("http://"+m.HTTPAddr().String()+"/"), chromedp.WaitVisible(chromedp.ID("nick")))
	b.waitJS("the nickname box has the focus", `document.activeElement === document.getElementById('nick')`)
	b.checkNamed("login")
	b.typeText("webuser")
	b.key(kb.Enter, false)
	b.waitJS("connected", `document.body.dataset.state === 'connected'`)
	nc.Expect("webuser joined!")
	b.waitJS("the message box has the focus", `document.activeElement === document.getElementById('line')`)
	b.waitJS("rooms listed", `document.querySelector('#rooms li[data-room="dev"] button') !== null`)
	b.waitJS("members listed", `document.querySelector('#who li[data-nick="ncuser"] button') !== null`)
	b.checkNamed("chat")

	// Send with Enter.
	b.typeText("typed, not clicked")
	b.key(kb.Enter, false)
	nc.Expect("webuser: typed, not clicked")

	// Tab to the join box, type a room, Enter.
	b.tabTo("the join box", `el.id === 'join-room'`, false, 10)
	b.focusVisible("the join box")
	b.typeText("ops")
	b.key(kb.Enter, false)
	nc.Expect("webuser left!")
	b.waitJS("in #ops", `document.getElementById('room-name').textContent === '#ops'`)

	// Tab to #dev in the room list, Enter.
	b.waitJS("dev listed", `document.querySelector('#rooms li[data-room="dev"] button') !== null`)
	b.do(chromedp.Focus(chromedp.ID("line")))
	b.tabTo("#dev in the room list", `el.closest('li') && el.closest('li').dataset.room === 'dev'`, false, 15)
	b.focusVisible("a room")
	b.key(kb.Enter, false)
	dev.Expect("webuser joined!")
	b.waitJS("in #dev", `document.getElementById('room-name').textContent === '#dev'`)
	b.waitJS("the message box has the focus again", `document.activeElement === document.getElementById('line')`)

	// Tab to devuser in the member list, Enter: a private message.
	b.waitJS("devuser listed", `document.querySelector('#who li[data-nick="devuser"] button') !== null`)
	b.tabTo("devuser in the member list", `el.closest('li') && el.closest('li').dataset.nick === 'devuser'`, false, 20)
	b.focusVisible("a member")
	// The list changes under the focus: the focus stays on devuser.
	nc.Send("/join dev\n")
	b.waitJS("ncuser listed", `document.querySelector('#who li[data-nick="ncuser"] button') !== null`)
	b.waitJS("the focus kept", `document.activeElement.closest('li') && document.activeElement.closest('li').dataset.nick === 'devuser'`)
	b.key(kb.Enter, false)
	b.waitJS("the message box prefilled and focused", `document.activeElement === document.getElementById('line') && document.getElementById('line').value === '/msg devuser '`)
	b.typeText("psst, by keyboard")
	b.key(kb.Enter, false)
	dev.Expect("*** private from webuser: psst, by keyboard")

	// Back with Shift+Tab from the message box to the log, which scrolls
	// from the keyboard.
	b.tabTo("the log", `el.id === 'log'`, true, 5)
	b.focusVisible("the log")
	b.tabTo("the notifications switch", `el.id === 'notify'`, false, 25)
	b.focusVisible("the notifications switch")
	b.checkNamed("after a round of the page")
	b.screenshot("browser-desktop-1280x800.png")
	b.checkNoErrors()
}

// layout is how the page sits in its window.
type layout struct {
	HeaderH     float64 `json:"headerH"`
	HeaderWrap  bool    `json:"headerWrap"`
	HeaderText  string  `json:"headerText"`
	PageScrollX bool    `json:"pageScrollX"`
	SideShown   bool    `json:"sideShown"`
	MenuShown   bool    `json:"menuShown"`
	StatusWhole bool    `json:"statusWhole"` // the status shown, not cut
}

// measure measures a layout.
const measure = `(() => {
	const h = document.querySelector('header');
	const kids = [...h.children].filter((e) => e.getClientRects().length > 0);
	const tops = kids.map((e) => Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2));
	const side = document.getElementById('side').getBoundingClientRect();
	return {
		headerH: h.getBoundingClientRect().height,
		headerWrap: h.scrollWidth > h.clientWidth || Math.max(...tops) - Math.min(...tops) > 4,
		headerText: h.innerText,
		pageScrollX: document.documentElement.scrollWidth > window.innerWidth,
		sideShown: getComputedStyle(document.getElementById('side')).visibility === 'visible' && side.left < window.innerWidth && side.right > 0,
		menuShown: document.getElementById('menu').getClientRects().length > 0,
		statusWhole: (() => { const s = document.getElementById('status'); return s.clientWidth > 0 && s.scrollWidth <= s.clientWidth; })(),
	};
})()`

// At 390×844 (a phone) the header stays one line with no URL, and the room
// list, the member list, the join box and private messages are in a
// drawer that opens and closes from the keyboard.
func TestBrowserPhone(t *testing.T) {
	b := newBrowser(t)
	b.viewport(390, 844)
	m := mustRunMain(t, "--rate", "100", "--burst", "100")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	b.login("http://"+m.HTTPAddr().String()+"/", "a_long_nickname_on_a_small_phone")
	nc.Expect("a_long_nickname_on_a_small_phone joined!")
	b.waitJS("members listed", `document.querySelector('#who li[data-nick="ncuser"] button') !== null`)
	nc.Send("hello phone, a line long enough to wrap on a narrow screen without scrolling sideways\n")
	b.waitJS("nc's line", shows("say", "ncuser", "hello phone, a line long enough to wrap on a narrow screen without scrolling sideways"))

	l := eval[layout](b, measure)
	if l.HeaderWrap || l.HeaderH > 56 || strings.Contains(l.HeaderText, "ws://") || !l.StatusWhole {
		t.Errorf("phone header: %+v", l)
	}
	if l.PageScrollX || l.SideShown || !l.MenuShown {
		t.Errorf("phone layout, drawer closed: %+v", l)
	}
	b.checkNamed("phone, drawer closed")
	b.screenshot("browser-phone-390x844.png")

	// The drawer from the keyboard: Tab to its button, Enter.
	b.do(chromedp.Focus(chromedp.ID("line")))
	b.tabTo("the drawer's button", `el.id === 'menu'`, true, 10)
	b.focusVisible("the drawer's button")
	b.key(kb.Enter, false)
	b.waitJS("the drawer open, focus in its join box", `document.getElementById('menu').getAttribute('aria-expanded') === 'true' && document.activeElement === document.getElementById('join-room')`)
	b.waitJS("the drawer on screen", `(() => { const r = document.getElementById('side').getBoundingClientRect(); return getComputedStyle(document.getElementById('side')).visibility === 'visible' && r.left >= 0 && r.right <= window.innerWidth + 0.5; })()`)
	b.checkNamed("phone, drawer open")
	b.screenshot("browser-phone-drawer-390x844.png")

	// Escape closes it and gives the focus back to its button.
	b.key(kb.Escape, false)
	b.waitJS("the drawer closed", `document.getElementById('menu').getAttribute('aria-expanded') === 'false' && document.activeElement === document.getElementById('menu') && getComputedStyle(document.getElementById('side')).visibility === 'hidden'`)

	// A private message from the member list, in the drawer.
	b.key(kb.Enter, false)
	b.waitJS("the drawer open again", `document.activeElement === document.getElementById('join-room')`)
	b.tabTo("ncuser in the member list", `el.closest('li') && el.closest('li').dataset.nick === 'ncuser'`, false, 15)
	b.key(kb.Enter, false)
	b.waitJS("the drawer closed, the message prefilled", `document.getElementById('menu').getAttribute('aria-expanded') === 'false' && document.activeElement === document.getElementById('line') && document.getElementById('line').value === '/msg ncuser '`)
	b.typeText("from my phone")
	b.key(kb.Enter, false)
	nc.Expect("*** private from a_long_nickname_on_a_small_phone: from my phone")

	// The join box, in the drawer.
	b.key(kb.Tab, true) // back to the log, then the drawer's button
	b.tabTo("the drawer's button", `el.id === 'menu'`, true, 5)
	b.key(kb.Enter, false)
	b.waitJS("the join box focused", `document.activeElement === document.getElementById('join-room')`)
	b.typeText("the_long_room_of_a_small_phone")
	b.key(kb.Enter, false)
	nc.Expect("a_long_nickname_on_a_small_phone left!")
	b.waitJS("in the long room, the drawer closed, the focus on the message box", `document.getElementById('room-name').textContent === '#the_long_room_of_a_small_phone' && document.getElementById('menu').getAttribute('aria-expanded') === 'false' && document.activeElement === document.getElementById('line') && getComputedStyle(document.getElementById('side')).visibility === 'hidden'`)
	l = eval[layout](b, measure)
	if l.HeaderWrap || l.HeaderH > 56 || l.PageScrollX || !l.StatusWhole {
		t.Errorf("phone header in a long room: %+v", l)
	}
	b.screenshot("browser-phone-long-room-390x844.png")
	b.checkNoErrors()
}

// When the gateway goes away the page shows one status line that it
// updates at every retry, marks the member list as out of date, and, when
// the gateway is back, goes straight back to its room: the default room
// never hears it, even after a quiet spell longer than --resume-age.
func TestBrowserReconnectStatus(t *testing.T) {
	b := newBrowser(t)
	ns := clustertest.Start(t, clustertest.Options{})
	addr := freeAddr(t)
	const resumeAge = 3 * time.Second
	args := []string{"--nats", ns.ClientURL(), "--http", addr, "--resume-age", resumeAge.String()}
	g1 := mustRunMain(t, args...)
	// The nc users are on another gateway, which stays up.
	other := mustRunMain(t, "--nats", ns.ClientURL(), "--resume-age", resumeAge.String())
	lobby := join(t, other.ChatAddr().String(), "lobbyuser")
	devs := join(t, other.ChatAddr().String(), "devuser")
	devs.Send("/join dev\n")
	devs.Expect("devuser joined!")

	b.login("http://"+addr+"/", "webuser")
	lobby.Expect("webuser joined!")
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "dev"), chromedp.Click(chromedp.CSS("#join-form button")))
	devs.Expect("webuser joined!")
	lobby.Expect("webuser left!")
	b.waitJS("members of dev", `[...document.querySelectorAll('#who li')].map(l => l.dataset.nick).join(',') === 'devuser,webuser'`)
	// A quiet room: the page's newest line grows older than the server
	// resumes from.
	quietUntil := time.Now().Add(resumeAge + 500*time.Millisecond).UnixMilli()
	b.waitJS("a quiet spell", fmt.Sprintf(`Date.now() > %d`, quietUntil))

	if err := g1.Close(); err != nil {
		t.Fatal(err)
	}
	b.waitJS("retrying, a third time", `[...document.querySelectorAll('#log .msg.conn')].some(d => d.textContent.includes('retry 3 '))`)
	type offline struct {
		Lines  int    `json:"lines"`
		Stale  bool   `json:"stale"`
		Note   bool   `json:"note"`
		State  string `json:"state"`
		Status string `json:"status"`
	}
	const look = `({
		lines: document.querySelectorAll('#log .msg.conn').length,
		stale: document.getElementById('who').classList.contains('stale'),
		note: !document.getElementById('who-stale').hidden,
		state: document.body.dataset.state,
		status: document.getElementById('status').textContent,
	})`
	o := eval[offline](b, look)
	if o.Lines != 1 || !o.Stale || !o.Note || o.State != "reconnecting" || strings.Contains(o.Status, "ws://") {
		t.Errorf("while offline: %+v, want one status line, the member list stale", o)
	}
	b.screenshot("browser-reconnecting.png")

	// The gateway comes back on the same address.
	mustRunMain(t, args...)
	b.waitJS("connected again", `document.body.dataset.state === 'connected'`)
	devs.Expect("webuser joined!")
	b.waitJS("back in #dev", `document.getElementById('room-name').textContent === '#dev'`)
	b.waitJS("members fresh", `!document.getElementById('who').classList.contains('stale') && document.getElementById('who-stale').hidden && [...document.querySelectorAll('#who li')].map(l => l.dataset.nick).join(',') === 'devuser,webuser'`)
	o = eval[offline](b, look)
	if o.Lines != 1 || o.Status != "online" {
		t.Errorf("back online: %+v, want the one status line, status online", o)
	}
	b.waitJS("the status line says it is over", `document.querySelector('#log .msg.conn').textContent.includes('back at')`)
	b.say("back in dev")
	devs.Expect("webuser: back in dev")

	// The default room never heard the page on its way back.
	lobby2 := join(t, other.ChatAddr().String(), "lobbyuser2")
	lobby2.Send("sync\n")
	for _, l := range lobby.Expect("lobbyuser2: sync") {
		if strings.Contains(l, "webuser") {
			t.Errorf("the default room heard the page on its way back: %q", l)
		}
	}
	// The browser reports each refused connection attempt itself.
	b.checkNoErrorsBut("ERR_CONNECTION_REFUSED")
}

// Lines that name the user are marked, with the name highlighted (not
// inside a longer name); with notifications on, a mention or a private
// message while the tab is hidden becomes a notification, other lines
// only count in the title.
func TestBrowserMentions(t *testing.T) {
	b := newBrowser(t)
	m := mustRunMain(t, "--rate", "100", "--burst", "100")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	b.login("http://"+m.HTTPAddr().String()+"/", "Web")
	nc.Expect("Web joined!")

	nc.Send("hey web, look at this\n")
	b.waitJS("the mention marked", `[...document.querySelectorAll('#log .msg.mention')].some(d => d.querySelector('mark.me-mention') && d.querySelector('mark.me-mention').textContent === 'web' && d.querySelector('.text').textContent === 'hey web, look at this')`)
	nc.Send("webby and cobweb are not you\n")
	b.waitJS("the line", shows("say", "ncuser", "webby and cobweb are not you"))
	if n := eval[int](b, `[...document.querySelectorAll('#log .msg')].filter(d => d.querySelector('.text') && d.querySelector('.text').textContent.startsWith('webby')).filter(d => d.classList.contains('mention') || d.querySelector('mark')).length`); n != 0 {
		t.Errorf("a longer name was taken for a mention")
	}
	b.say("I am web")
	b.waitJS("own line", shows("say", "Web", "I am web"))
	if eval[bool](b, `document.querySelector('#log .msg.self mark') !== null`) {
		t.Errorf("own line highlighted")
	}

	// Notifications: the browser's API stands in for the desktop's, and
	// the tab is hidden.
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		window.__notes = [];
		window.Notification = class {
			constructor(title, opts) { window.__notes.push(title + ' | ' + opts.body); }
			close() {}
			static requestPermission() { window.Notification.permission = 'granted'; return Promise.resolve('granted'); }
		};
		window.Notification.permission = 'default';
		Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
	})()`))
	b.do(chromedp.Click(chromedp.ID("notify")))
	b.waitJS("notifications on", `document.getElementById('notify').checked && window.Notification.permission === 'granted'`)
	nc.Send("just chatting\n")
	nc.Send("web: are you there?\n")
	nc.Send("/msg web a secret\n")
	b.waitJS("two notifications", `window.__notes.length === 2`)
	// A private message and a room line travel on different subscriptions
	// and are not ordered with each other (docs/protocol.md).
	notes := eval[[]string](b, `window.__notes`)
	slices.Sort(notes)
	want := []string{"ncuser mentioned you in #lobby | ncuser: web: are you there?", "private message from ncuser | a secret"}
	if strings.Join(notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("notifications %q, want %q", notes, want)
	}
	if title := eval[string](b, `document.title`); title != "(3) chatd" {
		t.Errorf("title while hidden = %q, want (3) chatd", title)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
		document.dispatchEvent(new Event('visibilitychange'));
	})()`))
	b.waitJS("title reset", `document.title === 'chatd'`)
	b.screenshot("browser-mentions.png")
	b.checkNoErrors()
}

// The room list counts the lines waiting in rooms the user was in before,
// and the count goes when the user goes back there.
func TestBrowserUnread(t *testing.T) {
	b := newBrowser(t)
	m := mustRunMain(t, "--rate", "100", "--burst", "100")
	dev := join(t, m.ChatAddr().String(), "devuser")
	dev.Send("/join dev\n")
	dev.Expect("devuser joined!")
	b.login("http://"+m.HTTPAddr().String()+"/", "webuser")
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "dev"), chromedp.Click(chromedp.CSS("#join-form button")))
	dev.Expect("webuser joined!")
	b.waitJS("in #dev", `document.getElementById('room-name').textContent === '#dev'`)
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "lobby"), chromedp.Click(chromedp.CSS("#join-form button")))
	dev.Expect("webuser left!")
	b.waitJS("in #lobby", `document.getElementById('room-name').textContent === '#lobby'`)
	// The page asked with the room list of its join; the server answers
	// one query per 5 s.
	askAgain := time.Now().Add(6 * time.Second).UnixMilli()

	dev.Send("one\n")
	dev.Send("two\n")
	dev.Send("three, webuser\n")
	dev.Expect("devuser: three, webuser")
	b.waitJS("a new query allowed", fmt.Sprintf(`Date.now() > %d`, askAgain))
	b.do(chromedp.Click(chromedp.ID("rooms-refresh")))
	b.waitJS("3 unread in #dev", `(() => {
		const bt = document.querySelector('#rooms li[data-room="dev"] button');
		const badge = bt && bt.querySelector('.unread');
		return !!badge && badge.textContent === '3' && bt.getAttribute('aria-label').includes('3 unread') &&
			document.getElementById('menu-unread').textContent === '3';
	})()`)
	if eval[bool](b, `document.querySelector('#rooms li[data-room="lobby"] .unread') !== null`) {
		t.Errorf("an unread count on the room the user is in")
	}
	b.screenshot("browser-unread.png")
	b.viewport(390, 844)
	b.waitJS("the drawer's button with the count, the drawer closed", `document.getElementById('menu').getClientRects().length > 0 && !document.getElementById('menu-unread').hidden && getComputedStyle(document.getElementById('side')).visibility === 'hidden'`)
	if l := eval[layout](b, measure); l.HeaderWrap || l.HeaderH > 56 || l.PageScrollX || !l.StatusWhole {
		t.Errorf("phone header with an unread count: %+v", l)
	}
	b.screenshot("browser-phone-unread-390x844.png")
	b.viewport(1280, 800)
	b.do(chromedp.Click(chromedp.CSS(`#rooms li[data-room="dev"] button`)))
	dev.Expect("webuser joined!")
	b.waitJS("the count gone", `document.getElementById('room-name').textContent === '#dev' && document.querySelector('#rooms .unread') === null && document.getElementById('menu-unread').hidden`)
	b.checkNoErrors()
}
