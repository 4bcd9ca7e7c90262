// Package termclient is a terminal client for chatd's classic TCP protocol:
// the client of `chatd client HOST[:PORT]`, for people without nc.
//
// It does the NAME handshake (with a nickname from the configuration, or
// asked of the user, again after a refusal), then sends each line the user
// types and shows each line the server sends: chat lines plain, notices,
// history frames, joins and errors distinctly (in colour when asked),
// always stripped of control characters. Its own messages start with
// "-!- ", which the server never sends. When the connection drops it
// reconnects by itself with backoff, and handshakes again with the same
// nickname; first, when the server's last line before closing was its
// shutdown notice naming other servers, to those.
//
// Run drives everything from one goroutine; the user's input and the
// server's lines each come from a reader goroutine over a channel.
package termclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// Dialer opens the TCP connection to a chat server; *net.Dialer is one.
// With Config.TLS set, the client runs TLS over the connection it returns.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config is what Run needs. Start from DefaultConfig: the zero Config never
// reconnects (its Retries is 0); zero durations take their defaults.
type Config struct {
	// Addr is the server: HOST, HOST:PORT, or an IPv6 address; the port
	// defaults to DefaultPort.
	Addr string
	// Nick is the nickname to use; empty asks the user. A refused nickname
	// is always asked of the user again.
	Nick string
	// TLS, when set, makes the client speak TLS to the server (a TLS chat
	// port). Its ServerName, when empty, is the host being dialled.
	TLS *tls.Config
	// Dialer opens connections; nil uses a net.Dialer with TCP keep-alive.
	Dialer Dialer

	// Retries bounds the reconnect attempts in a row (after losing the
	// connection, until a handshake succeeds again): negative is no limit,
	// 0 never reconnects.
	Retries int
	// MinBackoff is the wait before the first reconnect attempt; it doubles
	// with each failed attempt up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds connecting, TLS included.
	DialTimeout time.Duration
	// NameTimeout bounds the wait for the server's NAME after connecting.
	NameTimeout time.Duration
	// QuitTimeout bounds the wait for the server to close after /quit.
	QuitTimeout time.Duration
	// WriteTimeout bounds sending one line to the server.
	WriteTimeout time.Duration

	// Terminal says that in and out are a terminal in raw mode: the user
	// gets a prompt with line editing and history (x/term's Terminal), and
	// lines from the server are printed above it. Otherwise input and
	// output are plain lines.
	Terminal bool
	// TermSize, with Terminal, reports the terminal's width and height; it
	// is polled so that editing wraps right after a resize.
	TermSize func() (width, height int, err error)
	// Resume asks the server for positions and, after a reconnect, for
	// the lines missed meanwhile (resume.go). A server without the
	// extension is spoken to without it.
	Resume bool

	// Color styles lines with ANSI colours: notices, frames and errors
	// apart from chat, own lines highlighted. The caller decides (a
	// terminal, and NO_COLOR not set).
	Color bool
}

// DefaultConfig is the configuration of `chatd client` before its flags.
func DefaultConfig() Config {
	return Config{
		Retries:      -1,
		MinBackoff:   time.Second,
		MaxBackoff:   30 * time.Second,
		DialTimeout:  10 * time.Second,
		NameTimeout:  10 * time.Second,
		QuitTimeout:  3 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.MinBackoff, &d.MinBackoff}, {&c.MaxBackoff, &d.MaxBackoff},
		{&c.DialTimeout, &d.DialTimeout}, {&c.NameTimeout, &d.NameTimeout},
		{&c.QuitTimeout, &d.QuitTimeout}, {&c.WriteTimeout, &d.WriteTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 15 * time.Second}
	}
	return c
}

// ErrNoNickname is returned when the input ends while a nickname is asked.
var ErrNoNickname = errors.New("no nickname given")

// errQuit ends Run without an error: the user quit.
var errQuit = errors.New("quit")

// maxServerLine bounds a line shown from the server; the rest is dropped.
const maxServerLine = 64 << 10

// Run connects to cfg.Addr and chats until the user quits (/quit, or the
// end of the input: Ctrl-D or Ctrl-C on a terminal), ctx is done, or the
// connection cannot be had: at the first connection, any failure is
// returned; later, the client reconnects (cfg.Retries). It returns nil when
// the user quit and ctx.Err() when ctx ended it.
//
// Run reads in from a goroutine of its own, which stays blocked in a Read
// after Run returns until in yields data or ends; callers that go on
// running close in (or exit).
func Run(ctx context.Context, cfg Config, in io.Reader, out io.Writer) error {
	cfg = cfg.withDefaults()
	addr, err := NormalizeAddr(cfg.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	c := &client{cfg: cfg, nick: strings.TrimSpace(cfg.Nick), addrs: []string{addr}}
	if cfg.Terminal {
		tc := newTermConsole(in, out, "> ")
		c.con = tc
		if cfg.TermSize != nil {
			go watchSize(ctx, tc, cfg.TermSize)
		}
		defer tc.clearPrompt()
	} else {
		c.con = newPlainConsole(in, out)
	}
	lines := make(chan string)
	c.input = lines
	go readInput(ctx, c.con, lines)

	err = c.run(ctx)
	if errors.Is(err, errQuit) {
		return nil
	}
	return err
}

// watchSize keeps the terminal's idea of its size current.
func watchSize(ctx context.Context, tc *termConsole, size func() (int, int, error)) {
	var w0, h0 int
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		if w, h, err := size(); err == nil && (w != w0 || h != h0) {
			tc.SetSize(w, h)
			w0, h0 = w, h
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readInput sends the user's lines to lines, and closes it when the input
// ends.
func readInput(ctx context.Context, con console, lines chan<- string) {
	defer close(lines)
	for {
		line, err := con.ReadLine()
		if err != nil {
			return
		}
		select {
		case lines <- line:
		case <-ctx.Done():
			return
		}
	}
}

type client struct {
	cfg Config
	con console

	nick    string   // the nickname to use, or in use; "" asks
	askNick bool     // ask the user at the next NAME (the last one was refused)
	addrs   []string // where to connect, in order of preference

	input   <-chan string // the user's lines; closed at the end of the input
	pending []string      // lines typed and not yet used
	eof     bool          // the input has ended

	redirect  []string // addresses from the server's shutdown notice, when it closed right after
	connected bool     // a handshake has succeeded at least once
	retry     int      // reconnect attempts since the last handshake

	typed  []string // echoes of lines typed and sent, still on the screen as typed (screen.go)
	screen screen   // the room's lines shown (screen.go)
	replay *replay  // a history replay being read (screen.go)

	pos     position // where we are in our room (resume.go)
	sentExt bool     // the last nickname line carried the resume extension
	noExt   bool     // the server refused it: go on without
}

// run connects, chats, and reconnects until the user quits or it cannot go
// on.
func (c *client) run(ctx context.Context) error {
	first, skipWait := true, false
	for {
		if !first {
			c.retry++
			if c.cfg.Retries >= 0 && c.retry > c.cfg.Retries {
				if c.cfg.Retries == 0 {
					return errors.New("connection lost")
				}
				return fmt.Errorf("connection lost; gave up after %d attempts to reconnect", c.cfg.Retries)
			}
			c.con.SetPrompt("(offline) ")
			if !skipWait {
				d := c.backoff(c.retry)
				attempt := fmt.Sprint(c.retry)
				if c.cfg.Retries > 0 {
					attempt += fmt.Sprintf(" of %d", c.cfg.Retries)
				}
				c.tell("reconnecting in %v (attempt %s; /quit or Ctrl-C to stop)", d, attempt)
				if err := c.wait(ctx, d); err != nil {
					return err
				}
			}
			skipWait = false
		}
		conn, addr, err := c.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if first {
				return err
			}
			c.tell("cannot connect: %v", err)
			continue
		}
		first = false
		how := ""
		if c.cfg.TLS != nil {
			how = " (TLS)"
		}
		c.tell("connected to %s%s", addr, how)
		c.redirect = nil
		if err := c.session(ctx, conn, addr); err != nil {
			return err
		}
		if len(c.redirect) > 0 {
			c.addrs = prepend(c.redirect, c.addrs)
			c.tell("the server is shutting down; trying %s", strings.Join(c.redirect, ", then "))
			skipWait = true
		}
	}
}

// backoff is the wait before reconnect attempt n (from 1).
func (c *client) backoff(n int) time.Duration {
	d := c.cfg.MinBackoff
	for i := 1; i < n && d < c.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.cfg.MaxBackoff)
}

// wait waits d while offline. Lines typed meanwhile are kept for after the
// reconnection; /quit or the end of the input ends the client.
func (c *client) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if c.eof {
			if n := len(c.pending); n > 0 {
				c.tell("the input ended while offline; %d line(s) not sent", n)
			}
			return errQuit
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case line, ok := <-c.input:
			switch {
			case !ok:
				c.eof = true
			case isQuit(line):
				return errQuit
			case strings.TrimSpace(line) != "":
				c.pending = append(c.pending, line)
				c.tell("not connected: this line will be sent after reconnecting")
			}
		}
	}
}

// dial connects to the first address that answers.
func (c *client) dial(ctx context.Context) (net.Conn, string, error) {
	var errs []error
	for _, addr := range c.addrs {
		conn, err := c.dialOne(ctx, addr)
		if err == nil {
			c.addrs = prepend([]string{addr}, c.addrs)
			return conn, addr, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

func (c *client) dialOne(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	conn, err := c.cfg.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if c.cfg.TLS == nil {
		return conn, nil
	}
	tc := c.cfg.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tlsConn := tls.Client(conn, tc)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	return tlsConn, nil
}

// Where a session is in the handshake.
const (
	waitName   = iota // connected; the server has not said NAME yet
	askName           // asking the user for a nickname
	waitResult        // nickname sent; waiting for Connected or ERROR
	chatting          // handshake done
)

// serverEvent is what the server's reader found: NAME, a line, or the end
// of the connection.
type serverEvent struct {
	name bool
	line string
	err  error
}

// session runs one connection: the handshake, then chat. It returns nil
// when the connection was lost (the caller reconnects), errQuit when the
// user quit, and any other error when the client must stop.
func (c *client) session(ctx context.Context, conn net.Conn, addr string) error {
	events := make(chan serverEvent)
	done := make(chan struct{})
	go readServer(conn, events, done)
	defer func() {
		close(done)
		conn.Close()
	}()

	state := waitName
	nameTimer := time.NewTimer(c.cfg.NameTimeout)
	defer nameTimer.Stop()
	var quitTimer <-chan time.Time
	quitting := false
	refusal := "" // an ERROR line before NAME
	// After a drop, the server may still hold the nickname for the lost
	// connection for a moment: a refusal as taken is retried once (the
	// server asks again 150 ms later, 3 times in all) before the user is
	// asked.
	sameNickTries, sentAuto := 0, false
	// The addresses of a shutdown notice, while it is the last line the
	// server sent: followed only when the server closes right after it.
	var lastRedirect []string
	if c.connected {
		sameNickTries = 1
	}
	// Echoes of lines sent on an earlier connection do not come now (a
	// resume replays them as history).
	c.typed, c.replay = nil, nil
	// At the end of piped input, the client waits (QuitTimeout at most) for
	// the server to echo the user's last chat lines before it quits, so that
	// a script sees its lines went through. (On a terminal, Ctrl-C and
	// Ctrl-D quit at once.)
	unechoed := 0
	var drainTimer <-chan time.Time
	drained := false
	quit := func(line string) error {
		quitting = true
		quitTimer = time.After(c.cfg.QuitTimeout)
		if err := c.send(conn, line); err != nil {
			return errQuit
		}
		return nil
	}

	for {
		// Use the lines typed so far, if this is the time for them.
		for !quitting && len(c.pending) > 0 && (state == askName || state == chatting) {
			line := c.pending[0]
			c.pending = c.pending[1:]
			if state == askName {
				nick := strings.TrimSpace(line)
				if nick == "" {
					c.askForNick()
					continue
				}
				c.nick = nick
				if err := c.send(conn, c.nickLine()); err != nil {
					c.tell("connection to %s lost: %v", addr, err)
					return nil
				}
				state = waitResult
				continue
			}
			if isQuit(line) {
				if err := quit(line); err != nil {
					return err
				}
				continue
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if err := c.send(conn, line); err != nil {
				c.pending = append([]string{line}, c.pending...)
				c.tell("connection to %s lost: %v; the line will be sent after reconnecting", addr, err)
				return nil
			}
			c.typedLine(line)
			if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
				unechoed++
			}
		}
		if c.eof && len(c.pending) == 0 && !quitting {
			switch {
			case state == askName:
				return ErrNoNickname
			case state == chatting && unechoed > 0 && !drained && !c.cfg.Terminal:
				if drainTimer == nil {
					drainTimer = time.After(c.cfg.QuitTimeout)
				}
			case state == chatting:
				if err := quit("/quit"); err != nil {
					return err
				}
			}
		}

		var input <-chan string
		if !c.eof {
			input = c.input
		}
		select {
		case <-ctx.Done():
			return ctx.Err()

		case <-quitTimer:
			return errQuit

		case <-drainTimer:
			drained = true

		case <-nameTimer.C:
			if state != waitName {
				continue
			}
			err := fmt.Errorf("%s did not ask for a nickname within %v%s", addr, c.cfg.NameTimeout, c.portHint())
			if !c.connected {
				return err
			}
			c.tell("%v", err)
			return nil

		case line, ok := <-input:
			if !ok {
				c.eof = true
			} else {
				c.pending = append(c.pending, line)
			}

		case ev := <-events:
			switch {
			case ev.err != nil:
				c.endReplay(false)
				if quitting {
					return errQuit
				}
				reason := ev.err.Error()
				if errors.Is(ev.err, io.EOF) {
					reason = "closed by the server"
				}
				if closedByPeer(ev.err) {
					c.redirect = lastRedirect
				}
				if state == waitName && !c.connected {
					if refusal != "" {
						return fmt.Errorf("%s: %s", addr, refusal)
					}
					return fmt.Errorf("%s closed the connection without asking for a nickname%s", addr, c.portHint())
				}
				c.tell("connection to %s lost (%s)", addr, reason)
				return nil

			case ev.name:
				sentAuto = c.nick != "" && !c.askNick
				if sentAuto {
					if err := c.send(conn, c.nickLine()); err != nil {
						c.tell("connection to %s lost: %v", addr, err)
						return nil
					}
					state = waitResult
				} else {
					state = askName
					c.askForNick()
				}

			default:
				line, id := sanitize(ev.line), ""
				if c.sentExt {
					line, id = c.pos.take(line)
				}
				lastRedirect = parseRedirect(line)
				note := ""
				switch {
				case state == waitName && strings.HasPrefix(line, "ERROR "):
					refusal = strings.TrimPrefix(line, "ERROR ")
				case state == waitResult && strings.HasPrefix(line, "ERROR "):
					if c.sentExt && !strings.Contains(line, " is taken") && !strings.Contains(line, "closing") {
						// A server without the extension takes the
						// line for a nickname and refuses it.
						c.noExt = true
						note = "this server does not resume; going on without"
						break
					}
					if sentAuto && sameNickTries > 0 && strings.Contains(line, " is taken") && !strings.Contains(line, "closing") {
						sameNickTries--
						note = c.nick + " may still be held by the lost connection; trying it again"
						break
					}
					c.askNick = true // refused: the next NAME asks the user
				case state != chatting && line == "Connected to server!":
					state = chatting
					c.connected, c.askNick, c.retry = true, false, 0
					c.con.SetPrompt(c.nick + "> ")
				case state == chatting:
					c.notice(line)
					if unechoed > 0 && classify(line, c.nick) == kindOwn {
						unechoed--
					}
				}
				if state == chatting {
					c.display(line, id) // after any prompt change, which it shows
				} else {
					c.show(line)
				}
				if note != "" {
					c.tell("%s", note)
				}
			}
		}
	}
}

// notice follows the server's notice of the user's own nickname change.
// (Where to go when the server shuts down is read in session: only from
// the last line before the server closes.)
func (c *client) notice(line string) {
	if rest, ok := strings.CutPrefix(line, noticePrefix); ok {
		if old, nick, ok := strings.Cut(rest, " is now known as "); ok &&
			strings.EqualFold(old, c.nick) && nick != "" && !strings.ContainsAny(nick, " :") {
			c.nick = nick
			c.con.SetPrompt(c.nick + "> ")
		}
	}
}

// closedByPeer reports whether a read ended because the server closed the
// connection (rather than a timeout or a local error).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func (c *client) portHint() string {
	if c.cfg.TLS == nil {
		return " (is this a chatd chat port? a TLS port needs --tls)"
	}
	return " (is this a chatd TLS chat port?)"
}

// askForNick asks the user for a nickname. (A terminal shows a new prompt
// only when it prints a line: there is always one after SetPrompt.)
func (c *client) askForNick() {
	c.con.SetPrompt("nickname: ")
	c.tell("choose a nickname")
}

// send writes one line to the server.
func (c *client) send(conn net.Conn, line string) error {
	conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	_, err := io.WriteString(conn, line+"\n")
	return err
}

// show prints a sanitized server line, styled by its kind.
func (c *client) show(line string) {
	c.con.Println(render(classify(line, c.nick), line, c.cfg.Color))
}

// localPrefix starts the client's own messages (irssi's style): the server
// never sends a line that starts with it, so the user can tell them apart.
const localPrefix = "-!- "

// tell prints one of the client's own messages.
func (c *client) tell(format string, args ...any) {
	line := sanitize(fmt.Sprintf(localPrefix+format, args...))
	c.con.Println(render(kindLocal, line, c.cfg.Color))
}

// isQuit reports whether a typed line is the /quit command.
func isQuit(line string) bool {
	f := strings.Fields(line)
	return len(f) > 0 && strings.EqualFold(f[0], "/quit")
}

// readServer reads the server's output into events until the connection
// ends or done is closed. Before the handshake is done, a NAME at the start
// of a line is the server asking for a nickname (it has no newline).
func readServer(conn net.Conn, events chan<- serverEvent, done <-chan struct{}) {
	send := func(ev serverEvent) bool {
		select {
		case events <- ev:
			return true
		case <-done:
			return false
		}
	}
	r := bufio.NewReader(conn)
	handshake := true
	for {
		if p, _ := r.Peek(1); handshake && string(p) == "N" {
			if p, _ := r.Peek(4); string(p) == "NAME" {
				r.Discard(4)
				if !send(serverEvent{name: true}) {
					return
				}
				continue
			}
		}
		line, err := readLine(r, maxServerLine)
		if err == nil || line != "" {
			line = strings.TrimSuffix(line, "\r")
			if line == "Connected to server!" {
				handshake = false
			}
			if !send(serverEvent{line: line}) {
				return
			}
		}
		if err != nil {
			send(serverEvent{err: err})
			return
		}
	}
}
