package bus

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/chatd/chatd/internal/busctx"
	"github.com/nats-io/nats.go/jetstream"
)

// Concurrent History calls of one room share reads, and each caller gets a
// read that started after it called: callers that come while a read is
// under way wait for the next one, which answers all of them at once.
func TestHistoryReadsShared(t *testing.T) {
	var h historyReads
	var started atomic.Int32
	release := make(chan struct{})
	fetch := func(context.Context) ([]Envelope, error) {
		k := started.Add(1)
		<-release
		return []Envelope{{Text: fmt.Sprint(k)}}, nil
	}
	first := make(chan []Envelope, 1)
	go func() {
		lines, _ := h.read(context.Background(), "r", 5, fetch)
		first <- lines
	}()
	waitUntil(t, func() bool { return started.Load() == 1 })

	// Ten callers while read 1 is under way: none may get read 1.
	const n = 10
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines, err := h.read(context.Background(), "r", 5, fetch)
			if err != nil || len(lines) != 1 {
				t.Errorf("read: %v %v", lines, err)
				return
			}
			got[i] = lines[0].Text
		}()
	}
	waitUntil(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		next := h.rooms[historyKey{"r", 5}].next
		return next != nil && next.callers == n
	})
	close(release)
	if l := <-first; l[0].Text != "1" {
		t.Fatalf("first caller got read %s", l[0].Text)
	}
	wg.Wait()
	for i, g := range got {
		if g == "1" {
			t.Errorf("caller %d got the read that started before it called", i)
		}
	}
	if k := started.Load(); k != 2 {
		t.Errorf("%d reads for 11 callers; want 2", k)
	}
	h.mu.Lock()
	left := len(h.rooms)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("%d rooms left in the table after the reads", left)
	}

	// A caller that has received the room's live lines since before the
	// read under way started shares that read; one that has not, waits.
	release3 := make(chan struct{})
	var third atomic.Int32
	fetch3 := func(context.Context) ([]Envelope, error) {
		k := third.Add(1)
		<-release3
		return []Envelope{{Text: fmt.Sprint(k)}}, nil
	}
	before := time.Now()
	go func() { _, _ = h.read(context.Background(), "t", 5, fetch3) }()
	waitUntil(t, func() bool { return third.Load() == 1 })
	shared := make(chan string, 1)
	go func() {
		lines, _ := h.read(busctx.WithLiveSince(context.Background(), before), "t", 5, fetch3)
		shared <- lines[0].Text
	}()
	later := make(chan string, 1)
	go func() {
		lines, _ := h.read(busctx.WithLiveSince(context.Background(), time.Now()), "t", 5, fetch3)
		later <- lines[0].Text
	}()
	waitUntil(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		r := h.rooms[historyKey{"t", 5}]
		return r.running.callers == 2 && r.next != nil && r.next.callers == 1
	})
	close(release3)
	if got := <-shared; got != "1" {
		t.Errorf("a caller live since before the read got read %s, want 1", got)
	}
	if got := <-later; got != "2" {
		t.Errorf("a caller live only since after the read started got read %s, want 2", got)
	}

	// A caller whose context ends stops waiting; the read goes on.
	release2 := make(chan struct{})
	slow := func(context.Context) ([]Envelope, error) { <-release2; return nil, nil }
	go func() { _, _ = h.read(context.Background(), "s", 5, slow) }()
	waitUntil(t, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.rooms[historyKey{"s", 5}] != nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.read(ctx, "s", 5, slow); err == nil {
		t.Error("a caller whose context ended got no error")
	}
	close(release2)
}

// Many joins reading one room's history at once all get the same, right
// lines from the real stream.
func TestHistoryConcurrent(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{StoreDir: t.TempDir()})
	c := mustConnect(t, s, func(c *Config) { c.History, c.Retain = 3, 0 })
	for i := range 5 {
		if err := publishAny(c, "busy", KindSay, "bob", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"say:bob:2", "say:bob:3", "say:bob:4"}
	checkFor(t, 5*time.Second, func() error {
		if got := texts(history(t, c, "busy", 3)); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("History = %v, want %v", got, want)
		}
		return nil
	})
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r recorder
			if err := c.History(context.Background(), "busy", 3, r.deliver); err != nil {
				t.Error(err)
				return
			}
			if got := texts(r.get()); !reflect.DeepEqual(got, want) {
				t.Errorf("History = %v, want %v", got, want)
			}
		}()
	}
	wg.Wait()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Once the stream holds a room's lines, every History read returns all it
// asked for: a fetch that returns fewer than the stream holds (a new
// consumer's first no-wait fetch takes what it has ready) is not the end.
func TestHistoryWholeEveryTime(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, func(c *Config) { c.History = 20 })
	for i := range 30 {
		if err := c.Publish("whole", KindSay, "bob", fmt.Sprint("line ", i)); err != nil {
			t.Fatal(err)
		}
	}
	subject, _ := historySubject("whole")
	checkFor(t, 5*time.Second, func() error {
		info, err := c.history.Info(context.Background(), jetstream.WithSubjectFilter(subject))
		if err != nil {
			return err
		}
		if n := info.State.Subjects[subject]; n != 30 {
			return fmt.Errorf("%d lines stored", n)
		}
		return nil
	})
	// Many at once, as in a join storm: each its own read (n differs).
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := range 10 {
				n := 20 - g
				if got := history(t, c, "whole", n); len(got) != n || got[n-1].text != "line 29" {
					t.Errorf("reader %d, read %d: %d lines, want the last %d: %v", g, try, len(got), n, texts(got))
					return
				}
			}
		}()
	}
	wg.Wait()
}
