package gateway

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestBytesWaiting(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("not implemented on windows")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	if bytesWaiting(server) {
		t.Fatal("bytes waiting before any were sent")
	}
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !bytesWaiting(server) {
		if time.Now().After(deadline) {
			t.Fatal("sent bytes never seen as waiting")
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 3)
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("after peeking, read %q, %v", buf, err)
	}
	if bytesWaiting(server) {
		t.Fatal("bytes waiting after reading them all")
	}
	if p, _ := net.Pipe(); bytesWaiting(p) {
		t.Fatal("a pipe has no socket to peek")
	}
}
