package main

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A client the server dropped is counted as dropped, with the server's last
// words, even though closeAll closes it again at the end of the run; a
// client only we closed is not.
func TestClientDroppedSurvivesCloseAll(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// A classic handshake: NAME, the nickname, "nick joined!".
				r := bufio.NewReader(c)
				_, _ = c.Write([]byte("NAME\n"))
				nick, err := r.ReadString('\n')
				if err != nil {
					c.Close()
					return
				}
				_, _ = c.Write([]byte(strings.TrimSpace(nick) + " joined!\n"))
				conns <- c
			}()
		}
	}()

	cn := &connector{timeout: 5 * time.Second, bufSize: 4096}
	ctx := context.Background()
	kept, err := cn.connect(ctx, 0, ln.Addr().String(), "kept", "")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := cn.connect(ctx, 1, ln.Addr().String(), "gone", "")
	if err != nil {
		t.Fatal(err)
	}
	var server []net.Conn
	for range 2 {
		server = append(server, <-conns)
	}
	defer func() {
		for _, c := range server {
			c.Close()
		}
	}()
	// The server drops "gone" as a slow consumer.
	for _, c := range server {
		if c.RemoteAddr().String() == gone.conn.LocalAddr().String() {
			_, _ = c.Write([]byte("ERROR slow consumer: you were not reading fast enough, disconnected\n"))
			c.Close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !gone.ended.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the dropped client's reader did not end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cn.closeAll([]*client{kept, gone})

	if !gone.dropped() {
		t.Error("a client the server closed is not counted as dropped after closeAll")
	}
	if want := "ERROR slow consumer: you were not reading fast enough, disconnected"; gone.goodbye != want {
		t.Errorf("goodbye = %q, want %q", gone.goodbye, want)
	}
	if kept.dropped() {
		t.Error("a client we closed is counted as dropped")
	}
}

// A nickname in use is the 433 numeric, not any line that holds " 433 "
// (ngIRCd's "Highest connection count: 433" is a 250).
func TestIRCNumeric(t *testing.T) {
	for line, want := range map[string]string{
		":bench.local 433 * bob :Nickname already in use":                                  "433",
		":bench.local 250 b_468 :Highest connection count: 433 (434 connections received)": "250",
		"PING :x": "",
		":x":      "",
	} {
		if got := ircNumeric([]byte(line)); got != want {
			t.Errorf("ircNumeric(%q) = %q, want %q", line, got, want)
		}
	}
}
