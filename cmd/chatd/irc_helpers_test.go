package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// ircClient is a raw-socket IRC client: the nc client, speaking CRLF
// lines, with expectations on lines without their CR.
type ircClient struct {
	*client
}

func ircDial(t testing.TB, m *Main) *ircClient {
	t.Helper()
	return &ircClient{dial(t, m.IRCAddr().String())}
}

// ircRegister connects and registers as nick, asking for caps (may be
// none), and reads up to the end of the MOTD.
func ircRegister(t testing.TB, m *Main, nick string, caps ...string) *ircClient {
	t.Helper()
	c := ircDial(t, m)
	c.Nick = nick
	c.sendf("CAP LS 302")
	c.sendf("NICK %s", nick)
	c.sendf("USER %s 0 * :%s real", nick, nick)
	if len(caps) > 0 {
		c.sendf("CAP REQ :%s", strings.Join(caps, " "))
		c.expectLine(":chatd CAP * ACK :" + strings.Join(caps, " "))
	}
	c.sendf("CAP END")
	c.expectLine(":chatd 001 " + nick + " :Welcome to the chatd chat, " + nick + "; rooms are channels: /join #lobby")
	c.expectLine(":chatd 376 " + nick + " :End of /MOTD command")
	return c
}

func (c *ircClient) sendf(format string, args ...any) {
	c.T.Helper()
	c.Send(fmt.Sprintf(format, args...) + "\r\n")
}

// expectLine reads lines until one is want (without its CR).
func (c *ircClient) expectLine(want string) []string {
	c.T.Helper()
	return c.ExpectFunc(want, func(s string) bool { return strings.TrimSuffix(s, "\r") == want })
}

// expectSuffix reads lines until one, tags left out, is want; it returns
// the line with its tags.
func (c *ircClient) expectUntagged(want string) string {
	c.T.Helper()
	var got string
	c.ExpectFunc(want+" (any tags)", func(s string) bool {
		got = strings.TrimSuffix(s, "\r")
		return untag(got) == want
	})
	return got
}

// expectUntaggedAll reads lines until each of wants, tags left out, has
// come, in any order: lines of different channels reach a client through
// different room subscriptions, so only each channel's own order holds.
func (c *ircClient) expectUntaggedAll(wants ...string) {
	c.T.Helper()
	left := slices.Clone(wants)
	c.ExpectFunc(strings.Join(wants, " and ")+" (any order, any tags)", func(s string) bool {
		if i := slices.Index(left, untag(strings.TrimSuffix(s, "\r"))); i >= 0 {
			left = slices.Delete(left, i, i+1)
		}
		return len(left) == 0
	})
}

var timeTagRE = regexp.MustCompile(`^@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z $`)

func untag(line string) string {
	if strings.HasPrefix(line, "@") {
		if _, rest, ok := strings.Cut(line, " "); ok {
			return rest
		}
	}
	return line
}

// ircSync pings the server and returns the lines before the PONG, without
// their CR.
func (c *ircClient) ircSync() []string {
	c.T.Helper()
	c.sendf("PING :sync")
	lines := c.expectLine(":chatd PONG chatd :sync")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	return lines
}
