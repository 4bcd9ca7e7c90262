package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Config holds a gateway's settings. Start from DefaultConfig; New fills any
// zero field with its default.
type Config struct {
	// Logger receives structured logs; raw chat text only at debug level.
	Logger *slog.Logger
	// Now is the clock, replaceable in tests.
	Now func() time.Time

	// DefaultRoom is where a client lands after the handshake.
	DefaultRoom string
	// History is how many recent lines of a room are replayed on joining it;
	// zero turns replay off (the one field New does not default).
	History int
	// ResumeLines is the most lines replayed to a client that resumes
	// (resume.go); older missed lines are skipped, and the client is told
	// how many. ResumeAge is the oldest position a client may resume
	// from; an older one gets a normal join.
	ResumeLines int
	ResumeAge   time.Duration

	// MaxLine is the longest line a client may send, in bytes.
	MaxLine int
	// LinePause ends a line that has no newline: the classic client sends
	// its nickname and messages without one.
	LinePause time.Duration
	// HandshakeTimeout bounds the wait for an acceptable nickname.
	HandshakeTimeout time.Duration
	// NickAttempts is how many refused nicknames close the connection.
	NickAttempts int
	// RetryDelay separates an ERROR line from the next NAME, so a client
	// that compares whole reads with "NAME" sees it alone.
	RetryDelay time.Duration

	// Banned, if set, is asked about every new connection's address; a
	// banned address gets one ERROR line and is closed. It must be fast and
	// safe for concurrent use.
	Banned func(ip netip.Addr) bool

	// Mod, if set, is the cluster's moderation (moderation.go): operators,
	// kicks, bans, mutes and topics. Without it those commands are refused.
	Mod Moderation
	// Operators, if set, judges an operator's name and password (/oper,
	// IRC OPER). It must be safe for concurrent use; it may be slow (a
	// password hash), and runs on the session's reader.
	Operators func(name, password string) bool

	// Password, when set, is asked of every client before its nickname is
	// accepted: a private server. TCP clients send it as the line after
	// their nickname; WebSocket clients in their hello.
	Password string
	// AuthDelay and AuthDelayMax throttle password guessing per address
	// (AddrKey), over every transport: after a wrong password the next
	// verdict for that address comes AuthDelay later, doubling with each
	// further wrong password up to AuthDelayMax; an address whose attempts
	// wait in line for more than AuthDelayMax is refused without a verdict.
	// An address is forgotten AuthForget after its last wrong password, and
	// at most AuthMaxAddrs addresses are remembered (guard.go).
	AuthDelay    time.Duration
	AuthDelayMax time.Duration
	AuthForget   time.Duration
	AuthMaxAddrs int

	// MaxConns and MaxConnsPerIP bound concurrent connections; "per IP"
	// is per AddrKey: an IPv4 address, or an IPv6 /64.
	MaxConns      int
	MaxConnsPerIP int

	// Rate is the sustained number of lines per second one client may send,
	// with bursts of Burst lines. Lines over it are paced, not dropped: the
	// client's reader waits for the budget, so the rest wait in its socket.
	// A client paced without a break for FloodTimeout is disconnected.
	Rate         float64
	Burst        int
	FloodTimeout time.Duration

	// UnreadRooms bounds the rooms of one WebSocket "unread" query (each
	// costs a history read); 0 turns unread counts off. A client may ask
	// once per UnreadEvery.
	UnreadRooms int
	UnreadEvery time.Duration

	// MaxPending bounds the bytes queued for one client; past it the client
	// is disconnected as a slow consumer.
	MaxPending int
	// SendBuffer is the kernel send buffer (SO_SNDBUF) of every client
	// connection, at most MaxPending: what a client that stops reading can
	// hold in the kernel besides its queue (the kernel doubles it for its
	// bookkeeping). Negative: the kernel's default, autotuned up to
	// net.ipv4.tcp_wmem's maximum (4 MiB on most systems).
	SendBuffer int
	// WriteTimeout bounds one write to a client.
	WriteTimeout time.Duration
	// KeepAlive is the TCP keep-alive idle time; a peer that stops answering
	// probes is reaped about KeepAlive + 3*KeepAlive/3 later.
	KeepAlive time.Duration
	// BusTimeout bounds each call a session makes to the bus.
	BusTimeout time.Duration

	// IRCPing: an IRC client silent for this long is sent a PING, and is
	// closed if it is silent for as long again.
	IRCPing time.Duration

	// QuietRoomSize: in a room with more than this many members on this
	// gateway, join and leave notices go only to the member they are about
	// (see quiet.go). Zero means the default; negative, never quiet.
	QuietRoomSize int

	// ReleaseAfter: when the gateway has been quiet this long (no session
	// started or ended, no line from a client, no room event) after its
	// heap grew by ReleaseGrowth bytes or more, it collects and returns
	// free memory to the system, once, and once more if the quiet lasts
	// three times as long (release.go). Zero means the default; negative,
	// never.
	ReleaseAfter time.Duration
	// ReleaseGrowth is the least growth of the heap held from the system,
	// since the last release, that a quiet spell releases. Zero means the
	// default.
	ReleaseGrowth int

	// WebGateways lists the WebSocket URLs (ws:// or wss://, such as
	// ws://chat2.lan:8080/ws) of the cluster's gateways as a browser reaches
	// them. The page tries them in turn when its connection is lost; pages
	// served by those hosts may open this gateway's WebSocket (origin
	// check), and this gateway's page may connect to them (its
	// Content-Security-Policy). Empty: the page uses only the gateway that
	// served it.
	WebGateways []string
	// WebHosts are the host names, besides IP addresses, localhost and the
	// hosts of WebGateways, under which browsers reach this gateway's web
	// listener (a reverse proxy's name, the machine's name). A WebSocket
	// request whose Host header is another name is refused: a page of a
	// foreign name that resolves to this gateway (DNS rebinding) cannot open
	// the chat. "*" allows any name.
	WebHosts []string
}

// DefaultConfig returns the settings chatd runs with when no flag says otherwise.
func DefaultConfig() Config {
	return Config{
		DefaultRoom:      "lobby",
		History:          20,
		ResumeLines:      500,
		ResumeAge:        time.Hour,
		MaxLine:          4096,
		LinePause:        100 * time.Millisecond,
		HandshakeTimeout: 60 * time.Second,
		NickAttempts:     3,
		RetryDelay:       150 * time.Millisecond,
		MaxConns:         10000,
		MaxConnsPerIP:    100,
		Rate:             5,
		Burst:            10,
		FloodTimeout:     30 * time.Second,
		UnreadRooms:      4,
		UnreadEvery:      5 * time.Second,
		MaxPending:       256 << 10,
		SendBuffer:       64 << 10,
		AuthDelay:        250 * time.Millisecond,
		AuthDelayMax:     4 * time.Second,
		AuthForget:       15 * time.Minute,
		AuthMaxAddrs:     10000,
		WriteTimeout:     10 * time.Second,
		KeepAlive:        30 * time.Second,
		BusTimeout:       5 * time.Second,
		QuietRoomSize:    500,
		IRCPing:          90 * time.Second,
		ReleaseAfter:     5 * time.Second,
		ReleaseGrowth:    4 << 20,
	}
}

func (c *Config) fill() error {
	d := DefaultConfig()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DefaultRoom == "" {
		c.DefaultRoom = d.DefaultRoom
	}
	name, reason := roomName(c.DefaultRoom)
	if reason != "" {
		return errors.New("gateway: default room: " + reason)
	}
	c.DefaultRoom = name
	setDefault(&c.MaxLine, d.MaxLine)
	setDefault(&c.ResumeLines, d.ResumeLines)
	setDefault(&c.ResumeAge, d.ResumeAge)
	setDefault(&c.LinePause, d.LinePause)
	setDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&c.NickAttempts, d.NickAttempts)
	setDefault(&c.RetryDelay, d.RetryDelay)
	setDefault(&c.MaxConns, d.MaxConns)
	setDefault(&c.MaxConnsPerIP, d.MaxConnsPerIP)
	setDefault(&c.Rate, d.Rate)
	setDefault(&c.Burst, d.Burst)
	setDefault(&c.FloodTimeout, d.FloodTimeout)
	setDefault(&c.UnreadEvery, d.UnreadEvery)
	if c.UnreadRooms < 0 {
		return errors.New("gateway: UnreadRooms is negative")
	}
	setDefault(&c.MaxPending, d.MaxPending)
	if c.SendBuffer == 0 {
		c.SendBuffer = d.SendBuffer
	}
	c.SendBuffer = min(c.SendBuffer, c.MaxPending)
	setDefault(&c.AuthDelay, d.AuthDelay)
	setDefault(&c.AuthDelayMax, d.AuthDelayMax)
	c.AuthDelayMax = max(c.AuthDelayMax, c.AuthDelay)
	setDefault(&c.AuthForget, d.AuthForget)
	setDefault(&c.AuthMaxAddrs, d.AuthMaxAddrs)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.KeepAlive, d.KeepAlive)
	setDefault(&c.BusTimeout, d.BusTimeout)
	setDefault(&c.IRCPing, d.IRCPing)
	if c.ReleaseAfter == 0 {
		c.ReleaseAfter = d.ReleaseAfter
	}
	setDefault(&c.ReleaseGrowth, d.ReleaseGrowth)
	if c.QuietRoomSize == 0 {
		c.QuietRoomSize = d.QuietRoomSize
	}
	if c.MaxLine < 64 {
		return errors.New("gateway: max line must be at least 64 bytes")
	}
	if c.MaxPending < c.MaxLine*2 {
		return errors.New("gateway: max pending must be at least twice max line")
	}
	for _, u := range c.WebGateways {
		if _, err := wsOrigin(u); err != nil {
			return fmt.Errorf("gateway: web gateway %q: %w", u, err)
		}
	}
	return nil
}

func setDefault[T int | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
