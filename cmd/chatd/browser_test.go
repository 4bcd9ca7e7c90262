package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chatd/cluster/clustertest"
)

// These tests drive the chat page in a real headless Chromium (Debian's
// chromium package; .ci/run installs it) through the DevTools protocol with
// chromedp. Nothing is downloaded: the binary comes from $CHATD_CHROMIUM or
// the PATH; without one the tests skip, unless $CHATD_REQUIRE_BROWSER is set
// (as .ci/run does). Screenshots go to $CHATD_SCREENSHOT_DIR, or out/ at the top of
// the repository (ignored by git).

// chromiumPath finds a Chromium or Chrome binary, or returns "".
func chromiumPath() string {
	if p := os.Getenv("CHATD_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t   testing.TB
	ctx context.Context

	mu     sync.Mutex
	errors []string // uncaught exceptions and console errors of the page
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CHATD_REQUIRE_BROWSER") != "" {
			t.Fatal("no chromium binary found, and CHATD_REQUIRE_BROWSER is set")
		}
		t.Skip("no chromium binary found: apt-get install chromium (or set CHATD_CHROMIUM); .ci/run installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1180, 760),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start %s: %v", path, err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// waitJS waits until the JavaScript expression is true.
func (b *browser) waitJS(desc, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		status, _ := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.ID("status")))
		log, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#log > *')].slice(-15).map(e => e.textContent).join('\n')`))
		b.t.Fatalf("browser: waiting for %s: %v\nstatus: %s\nlog:\n%s", desc, err, status, log)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// say types a line into the page and sends it.
func (b *browser) say(text string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.ID("line"), text), chromedp.Click(chromedp.CSS("#send-form button")))
}

// login opens the page at url and joins as nick.
func (b *browser) login(url, nick string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("nick")),
		chromedp.SendKeys(chromedp.ID("nick"), nick),
		chromedp.Click(chromedp.CSS("#login-form button")))
	b.waitJS("connected", `document.body.dataset.state === 'connected'`)
}

// shows reports, as a JS expression, whether the log has a message of kind
// from nick whose text is exactly text.
func shows(kind, nick, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#log .msg')].some(d => d.dataset.kind === %s && d.dataset.nick === %s && d.querySelector('.text') && d.querySelector('.text').textContent === %s)`,
		jsString(kind), jsString(nick), jsString(text))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshot saves a PNG of the page for people to look at.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitFor)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("CHATD_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	b.t.Logf("screenshot: %s", abs)
}

func (b *browser) checkNoErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("page error: %s", e)
	}
}

// A browser user and an nc user chat in one room, both ways; markup and
// script sent by either shows as text and runs nothing.
func TestBrowserChat(t *testing.T) {
	b := newBrowser(t)
	m := mustRunMain(t, "--rate", "100", "--burst", "100")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	nc.Send("hi, this line is history for whoever joins next\n")
	nc.Expect("ncuser: hi, this line is history for whoever joins next")

	b.login("http://"+m.HTTPAddr().String()+"/", "webuser")
	nc.Expect("webuser joined!")
	b.waitJS("history replayed", `document.querySelector('#log .msg.history') !== null && `+
		shows("say", "ncuser", "hi, this line is history for whoever joins next"))
	b.waitJS("who sidebar", `[...document.querySelectorAll('#who li')].map(l => l.textContent).join(',') === 'ncuser,webuser'`)

	b.say("hello from the browser")
	nc.Expect("webuser: hello from the browser")
	b.waitJS("own line", shows("say", "webuser", "hello from the browser"))
	nc.Send("hello from nc\n")
	b.waitJS("nc's line", shows("say", "ncuser", "hello from nc"))

	// Markup from nc, and from the browser, is text.
	payload := `<img src=x onerror="window.__pwned=1;document.title='pwned'"><script>window.__pwned=2</script><b>bold?</b>`
	nc.Send(payload + "\n")
	b.waitJS("payload from nc as text", shows("say", "ncuser", payload))
	b.say(payload + " (from the browser)")
	nc.Expect("webuser: " + payload + " (from the browser)")
	b.waitJS("own payload as text", shows("say", "webuser", payload+" (from the browser)"))
	type verdict struct {
		Elements int    `json:"elements"`
		Pwned    any    `json:"pwned"`
		Title    string `json:"title"`
	}
	safe := eval[verdict](b, `({elements: document.querySelectorAll('#log img, #log script, #log b').length, pwned: window.__pwned ?? null, title: document.title})`)
	if safe.Elements != 0 || safe.Pwned != nil || safe.Title != "chatd" {
		t.Errorf("the payload was interpreted: %+v", safe)
	}

	// /me, private messages both ways, a notice.
	nc.Send("/me waves at the browser\n")
	b.waitJS("/me", shows("me", "ncuser", "waves at the browser"))
	nc.Send("/msg webuser psst, private\n")
	b.waitJS("private from nc", shows("private", "ncuser", "psst, private"))
	b.do(chromedp.Click(chromedp.CSS(`#who li:not(.self)`)))
	prefilled := eval[string](b, `document.getElementById('line').value`)
	if prefilled != "/msg ncuser " {
		t.Errorf("clicking a name prefills %q", prefilled)
	}
	b.say(prefilled + "got it")
	nc.Expect("*** private from webuser: got it")
	nc.Send("/join dev\n")
	b.waitJS("nc left", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'leave' && d.dataset.nick === 'ncuser')`)
	nc.Send("/join lobby\n")
	b.waitJS("nc back", `[...document.querySelectorAll('#who li')].length === 2`)
	nc.Send("welcome back, everyone\n")
	b.waitJS("last line", shows("say", "ncuser", "welcome back, everyone"))
	// A notice reads as the server's, as on TCP; an action does not.
	b.say("/join lobby")
	b.waitJS("a notice", `[...document.querySelectorAll('#log .msg.notice')].some(d => d.textContent.endsWith('*** you are already in lobby'))`)
	b.screenshot("browser-chat.png")

	// Switching rooms from the page.
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "Dev"), chromedp.Click(chromedp.CSS("#join-form button")))
	nc.Expect("webuser left!")
	b.waitJS("in #dev", `document.getElementById('room-name').textContent === '#dev'`)
	b.checkNoErrors()
}

// After its gateway goes away the page reconnects by itself to the next
// gateway of the list, and goes back to the room it was in.
func TestBrowserFailover(t *testing.T) {
	b := newBrowser(t)
	ns := clustertest.Start(t, clustertest.Options{})
	a1, a2 := freeAddr(t), freeAddr(t)
	list := "ws://" + a1 + "/ws,ws://" + a2 + "/ws"
	g1 := mustRunMain(t, "--nats", ns.ClientURL(), "--http", a1, "--web-gateways", list)
	g2 := mustRunMain(t, "--nats", ns.ClientURL(), "--http", a2, "--web-gateways", list)
	nc := join(t, g2.ChatAddr().String(), "ncuser")
	nc.Send("/join dev\n")
	nc.Expect("ncuser joined!")

	b.login("http://"+a1+"/", "webuser")
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "dev"), chromedp.Click(chromedp.CSS("#join-form button")))
	nc.Expect("webuser joined!")
	b.say("before the restart")
	nc.Expect("webuser: before the restart")

	if err := g1.Close(); err != nil {
		t.Fatal(err)
	}
	nc.Expect("webuser left!")
	// Said while the page reconnects: it resumes from its position and
	// shows them once, as missed.
	for i := 1; i <= 3; i++ {
		nc.Send(fmt.Sprintf("away %d\n", i))
	}
	nc.Expect("webuser joined!") // back in dev, through the other gateway
	b.waitJS("connected to the second gateway", fmt.Sprintf(`document.body.dataset.state === 'connected' && document.getElementById('status').dataset.gateway === %s`, jsString(a2)))
	for i := 1; i <= 3; i++ {
		b.waitJS("the missed line, once", fmt.Sprintf(`[...document.querySelectorAll('#log .msg')].filter(d => d.dataset.nick === 'ncuser' && d.querySelector('.text') && d.querySelector('.text').textContent === %s).length === 1`, jsString(fmt.Sprintf("away %d", i))))
	}
	b.waitJS("the missed divider", `[...document.querySelectorAll('#log .divider')].some(d => d.textContent === '3 lines you missed')`)
	b.say("after the restart")
	nc.Expect("webuser: after the restart")
	nc.Send("welcome back\n")
	b.waitJS("nc's line after failover", shows("say", "ncuser", "welcome back"))
	b.screenshot("browser-failover.png")
	b.checkNoErrors()
}

// freeAddr returns a loopback address with a port free a moment ago, for
// servers that must know each other's address before they start.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
