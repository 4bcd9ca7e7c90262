package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// This file speaks systemd's notify protocol (sd_notify(3)), so that a unit
// of Type=notify knows when chatd serves (READY=1), when it stops
// (STOPPING=1) and that it is alive (WATCHDOG=1 every half WatchdogSec).
// The protocol is one datagram of newline-separated assignments to the
// unix socket named by $NOTIFY_SOCKET: a path, or "@name" for an abstract
// socket (Go's net package maps the @ to the leading NUL byte). Without
// $NOTIFY_SOCKET every call does nothing.

// sdNotify sends state to the service manager, if there is one.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		return fmt.Errorf("NOTIFY_SOCKET %q: want a path or an @abstract name", name)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// watchdogInterval is how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC when the service manager asks this process for it
// ($WATCHDOG_PID, when set, names this process); 0 when it does not.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// watchdog sends WATCHDOG=1 every interval until stop is closed.
func watchdog(interval time.Duration, stop <-chan struct{}, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := sdNotify("WATCHDOG=1"); err != nil {
				onErr(err)
				return
			}
		}
	}
}
