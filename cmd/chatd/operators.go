package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/gateway"
)

// Operators and moderation: the operators file (--operators), `chatd
// passwd`, and the adapter that gives the gateway the bus's moderation.

// operList is the operators file, replaced whole on reload: one operator a
// line, "NAME HASH", the hash a bcrypt one as `chatd passwd` prints.
type operList struct {
	file   string
	hashes atomic.Pointer[map[string][]byte] // lower-cased name → hash
}

// load reads the file.
func (o *operList) load() (int, error) {
	f, err := os.Open(o.file)
	if err != nil {
		return 0, fmt.Errorf("operators: %w", err)
	}
	defer f.Close()
	list := make(map[string][]byte)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return 0, fmt.Errorf("operators: %s:%d: want NAME HASH (the hash from chatd passwd)", o.file, n)
		}
		name, hash := fields[0], []byte(fields[1])
		if !gateway.ValidNickname(name) {
			return 0, fmt.Errorf("operators: %s:%d: %q is not a valid name (nickname rules)", o.file, n, name)
		}
		if _, err := bcrypt.Cost(hash); err != nil {
			return 0, fmt.Errorf("operators: %s:%d: the hash of %s is not a bcrypt hash (make one with chatd passwd): %v", o.file, n, name, err)
		}
		list[strings.ToLower(name)] = hash
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("operators: %w", err)
	}
	o.hashes.Store(&list)
	return len(list), nil
}

// dummyHash is compared against when the name is unknown, so that the
// answer takes as long as for a known name.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not an operator"), bcrypt.MinCost)

// check reports whether password is name's. Safe for concurrent use.
func (o *operList) check(name, password string) bool {
	list := o.hashes.Load()
	hash, ok := []byte(nil), false
	if list != nil {
		hash, ok = (*list)[strings.ToLower(name)]
	}
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// runPasswd is `chatd passwd`: read a password (twice, without echo, from
// a terminal; else the first line of stdin) and print its bcrypt hash, for
// the operators file.
func runPasswd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chatd passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", 12, "bcrypt cost (10-16)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chatd passwd [--cost N] < password, or at the prompt\n\nPrints the bcrypt hash of a password, for a line \"NAME HASH\" of the --operators file.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *cost < 10 || *cost > 16 {
		fmt.Fprintln(stderr, "chatd passwd: --cost must be 10 to 16")
		return 2
	}
	var pw []byte
	if fd := int(stdin.Fd()); term.IsTerminal(fd) {
		fmt.Fprint(stderr, "password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintln(stderr, "chatd passwd:", err)
			return 1
		}
		fmt.Fprint(stderr, "again: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil || subtle.ConstantTimeCompare(p1, p2) != 1 {
			fmt.Fprintln(stderr, "chatd passwd: the passwords differ")
			return 1
		}
		pw = p1
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "chatd passwd:", err)
			return 1
		}
		pw = []byte(strings.TrimRight(line, "\r\n"))
	}
	if len(pw) < 8 || len(pw) > 72 {
		fmt.Fprintln(stderr, "chatd passwd: a password must be 8 to 72 bytes")
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword(pw, *cost)
	if err != nil {
		fmt.Fprintln(stderr, "chatd passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}

// modBus gives the gateway the bus's moderation (gateway.Moderation),
// converting between the two packages' types.
type modBus struct{ c *bus.Conn }

var _ gateway.Moderation = modBus{}

func (m modBus) SetOper(ctx context.Context, nick string, on bool) error {
	return m.c.SetOper(ctx, nick, on)
}
func (m modBus) Opers(ctx context.Context) ([]string, error) { return m.c.Opers(ctx) }
func (m modBus) PutBan(ctx context.Context, b gateway.Ban) error {
	return m.c.PutBan(ctx, bus.Ban(b))
}
func (m modBus) DeleteBan(ctx context.Context, b gateway.Ban) (bool, error) {
	return m.c.DeleteBan(ctx, bus.Ban(b))
}
func (m modBus) Bans() []gateway.Ban {
	bans := m.c.Bans()
	out := make([]gateway.Ban, len(bans))
	for i, b := range bans {
		out[i] = gateway.Ban(b)
	}
	return out
}
func (m modBus) PutMute(ctx context.Context, mu gateway.Mute) error {
	return m.c.PutMute(ctx, bus.Mute(mu))
}
func (m modBus) DeleteMute(ctx context.Context, nick string) (bool, error) {
	return m.c.DeleteMute(ctx, nick)
}
func (m modBus) Mutes() []gateway.Mute {
	mutes := m.c.Mutes()
	out := make([]gateway.Mute, len(mutes))
	for i, mu := range mutes {
		out[i] = gateway.Mute(mu)
	}
	return out
}
func (m modBus) SetTopic(ctx context.Context, room string, t gateway.Topic) error {
	return m.c.SetTopic(ctx, room, bus.Topic(t))
}
func (m modBus) Topic(room string) (gateway.Topic, bool) {
	t, ok := m.c.Topic(room)
	return gateway.Topic(t), ok
}
func (m modBus) Kick(ctx context.Context, room, nick, by, reason string) (bool, error) {
	return m.c.Kick(ctx, room, nick, by, reason)
}
func (m modBus) ReceiveKicks(kick func(room, nick, by, reason string) bool) (func(), error) {
	return m.c.ReceiveKicks(kick)
}
func (m modBus) PartKicked(ctx context.Context, room, nick, by, reason string) error {
	return m.c.PartKicked(ctx, room, nick, by, reason)
}

// nickCost is the bcrypt cost of registered nicknames' passwords.
const nickCost = 10

func (m modBus) Registered(nick string) bool {
	_, ok := m.c.Reg(nick)
	return ok
}

func (m modBus) CheckNick(nick, password string) bool {
	hash, ok := m.c.Reg(nick)
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

func (m modBus) Register(ctx context.Context, nick, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), nickCost)
	if err != nil {
		return err
	}
	return m.c.PutReg(ctx, nick, string(hash))
}

func (m modBus) Drop(ctx context.Context, nick string) (bool, error) {
	return m.c.DeleteReg(ctx, nick)
}
