package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// client is one simulated chat user: a connection that has done the
// handshake and whose reader goroutine hands every line to the scenario.
type client struct {
	id   int
	nick string
	conn net.Conn
	r    *bufio.Reader
	irc  string // IRC: the channel it is in; "": a classic client
	echo bool   // IRC: the server acknowledged echo-message (a classic server always echoes)

	// Counters the reader updates; others may read them atomically.
	lines atomic.Int64 // every line received after the handshake
	bench atomic.Int64 // bench lines received (chat lines of the scenario)

	// Owned by the reader goroutine until it has ended.
	seqs     []seqTracker  // per sender
	lat      *hist         // latency of bench lines, if recorded
	readErr  error         // why the reader stopped
	byPeer   bool          // the server ended the connection (not our close)
	goodbye  string        // the server's last ERROR line, if it sent one
	closing  atomic.Bool   // we closed it on purpose
	ended    atomic.Bool   // the reader has stopped
	readDone chan struct{} // closed when the reader has stopped
}

// handler is what a scenario does with each line a client receives; line
// excludes the newline and is valid only during the call.
type handler func(c *client, line []byte)

// connector dials and completes handshakes.
type connector struct {
	sources  []net.IP // local addresses to spread connections over; nil: any
	timeout  time.Duration
	bufSize  int
	handle   handler
	setup    func(c *client) // called before the reader starts
	readers  sync.WaitGroup  // reader goroutines
	joinHist hist            // handshake durations, ns
	irc      bool            // speak IRC (chatd's --irc port) instead of the classic protocol
	mu       sync.Mutex
}

// connect dials addr as client id with nickname nick, completes the
// handshake, moves to room (if it is not the default room), and starts the
// client's reader. It returns the number of lines the handshake skipped
// (other people's notices).
func (cn *connector) connect(ctx context.Context, id int, addr, nick, room string) (*client, error) {
	start := time.Now()
	d := net.Dialer{Timeout: cn.timeout}
	if len(cn.sources) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: cn.sources[id%len(cn.sources)]}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &client{id: id, nick: nick, conn: conn, r: bufio.NewReaderSize(conn, cn.bufSize), echo: !cn.irc}
	handshake := c.handshake
	if cn.irc {
		handshake = c.ircHandshake
	}
	if err := handshake(room, start.Add(cn.timeout)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", nick, err)
	}
	_ = conn.SetDeadline(time.Time{})
	cn.mu.Lock()
	cn.joinHist.add(int64(time.Since(start)))
	cn.mu.Unlock()
	if cn.setup != nil {
		cn.setup(c)
	}
	c.readDone = make(chan struct{})
	cn.readers.Add(1)
	go cn.read(c)
	return c, nil
}

func (c *client) handshake(room string, deadline time.Time) error {
	_ = c.conn.SetDeadline(deadline)
	var name [4]byte
	if _, err := io.ReadFull(c.r, name[:]); err != nil {
		return fmt.Errorf("waiting for NAME: %w", err)
	}
	if string(name[:]) != "NAME" {
		return fmt.Errorf("want NAME, got %q", name[:])
	}
	if _, err := io.WriteString(c.conn, c.nick+"\n"); err != nil {
		return err
	}
	joined := []byte(c.nick + " joined!")
	if err := c.waitFor(joined); err != nil {
		return err
	}
	if room == "" || room == "lobby" {
		return nil
	}
	if _, err := io.WriteString(c.conn, "/join "+room+"\n"); err != nil {
		return err
	}
	return c.waitFor(joined)
}

// ircHandshake registers over IRC, asking for echo-message (a sender
// counts its own lines as every client does), and joins #room. A server
// that does not acknowledge echo-message (ngIRCd) leaves c.echo false: its
// senders do not get their own lines.
func (c *client) ircHandshake(room string, deadline time.Time) error {
	_ = c.conn.SetDeadline(deadline)
	if room == "" {
		room = "lobby"
	}
	c.irc = "#" + room
	if _, err := io.WriteString(c.conn, "CAP REQ :echo-message\r\nNICK "+c.nick+"\r\nUSER "+c.nick+
		" 0 * :chatbench\r\nCAP END\r\nJOIN "+c.irc+"\r\n"); err != nil {
		return err
	}
	end := []byte(" 366 " + c.nick + " " + c.irc + " ")
	for {
		line, err := readLine(c.r)
		if err != nil {
			return fmt.Errorf("waiting for the end of NAMES: %w", err)
		}
		if bytes.Contains(line, end) {
			return nil
		}
		if bytes.Contains(line, []byte(" CAP ")) && bytes.Contains(line, []byte(" ACK ")) && bytes.Contains(line, []byte("echo-message")) {
			c.echo = true
		}
		if bytes.HasPrefix(line, []byte("ERROR")) || ircNumeric(line) == "433" {
			return fmt.Errorf("server said %q", line)
		}
		c.lines.Add(1)
	}
}

// ircNumeric returns the command of a server line ":server CMD ...": a
// reply's three-digit numeric, or "".
func ircNumeric(line []byte) string {
	if len(line) == 0 || line[0] != ':' {
		return ""
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return string(f[1])
}

// appendLine appends one bench line as c sends it: as is on the classic
// protocol, as a PRIVMSG to its channel over IRC. The IRC text starts with
// ": " so that the line a receiver gets holds ": B ", as a classic one does.
func (c *client) appendLine(dst []byte, sender int, seq int64, ts int64, size int) []byte {
	if c.irc == "" {
		return appendBench(dst, sender, seq, ts, size)
	}
	dst = append(dst, "PRIVMSG "...)
	dst = append(dst, c.irc...)
	dst = append(dst, " :: "...)
	dst = appendBench(dst, sender, seq, ts, size-2)
	return append(dst[:len(dst)-1], "\r\n"...)
}

// waitFor reads lines until one equals want. An ERROR line fails it.
func (c *client) waitFor(want []byte) error {
	for {
		line, err := readLine(c.r)
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", want, err)
		}
		if bytes.Equal(line, want) {
			return nil
		}
		if bytes.HasPrefix(line, []byte("ERROR")) {
			return fmt.Errorf("server said %q", line)
		}
		c.lines.Add(1)
	}
}

// readLine reads one line without "\n"; the slice is valid until the next
// read. A line longer than the buffer is returned in pieces.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return line, nil
	}
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

func (cn *connector) read(c *client) {
	defer cn.readers.Done()
	defer close(c.readDone)
	for {
		line, err := readLine(c.r)
		if err != nil {
			c.readErr = err
			// Decided now: closeAll later closes every client, the ones
			// the server dropped too.
			c.byPeer = !c.closing.Load()
			c.ended.Store(true)
			return
		}
		c.lines.Add(1)
		if bytes.HasPrefix(line, []byte("ERROR")) {
			c.goodbye = string(bytes.TrimRight(line, "\r"))
		}
		if cn.handle != nil {
			cn.handle(c, line)
		}
	}
}

// close closes c on purpose (its reader's error is then not a failure).
func (c *client) close() {
	c.closing.Store(true)
	c.conn.Close()
}

// dropped reports whether the server ended c's connection before we closed
// it, whenever we closed it (only meaningful once its reader has ended).
func (c *client) dropped() bool {
	return c.readErr != nil && c.byPeer
}

// connectAll connects n clients, at most conc at a time, in id order of
// starting. It stops at the first error, or when ctx ends, closing what it
// connected, unless keepGoing: then failed clients are left nil and counted.
func (cn *connector) connectAll(ctx context.Context, n, conc int, keepGoing bool,
	addrOf func(i int) string, nickOf func(i int) string, roomOf func(i int) string,
	progress func(done int)) ([]*client, int, error) {
	clients := make([]*client, n)
	var (
		next, done, failed atomic.Int64
		firstErr           error
		errOnce            sync.Once
		wg                 sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range max(1, min(conc, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := cn.connect(ctx, i, addrOf(i), nickOf(i), roomOf(i))
				if err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					if !keepGoing {
						cancel()
						return
					}
					continue
				}
				clients[i] = c
				if d := done.Add(1); progress != nil {
					progress(int(d))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil && !keepGoing {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
		return nil, int(failed.Load()), firstErr
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return clients, int(failed.Load()), firstErr
}

// closeAll closes every client and waits for the readers.
func (cn *connector) closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
	cn.readers.Wait()
}

// benchTag starts the text of every line a scenario sends.
const benchTag = "B "

// appendBench appends one bench line: "B <sender> <seq> <unix ns> <pad>\n",
// padded with 'x' to size bytes of text when size allows.
func appendBench(dst []byte, sender int, seq int64, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, benchTag...)
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ts, 10)
	if pad := size - (len(dst) - start) - 1; pad > 0 {
		dst = append(dst, ' ')
		for range pad {
			dst = append(dst, 'x')
		}
	}
	return append(dst, '\n')
}

// parseBench parses a received chat line "<nick>: B <sender> <seq> <ts> ...".
func parseBench(line []byte) (sender int, seq, ts int64, ok bool) {
	i := bytes.Index(line, []byte(": "+benchTag))
	if i < 0 {
		return 0, 0, 0, false
	}
	p := line[i+2+len(benchTag):]
	var v [3]int64
	for k := range v {
		n, rest, ok := parseUint(p)
		if !ok {
			return 0, 0, 0, false
		}
		v[k] = n
		if len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		} else if k < 2 {
			return 0, 0, 0, false
		}
		p = rest
	}
	return int(v[0]), v[1], v[2], true
}

func parseUint(p []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9' && i < 19; i++ {
		n = n*10 + int64(p[i]-'0')
	}
	return n, p[i:], i > 0
}
