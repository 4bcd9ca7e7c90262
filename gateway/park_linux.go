//go:build linux

package gateway

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// poller is the epoll set of parked TCP readers (see park.go).
type poller struct {
	epfd   int
	wake   [2]int // a pipe in the set: close writes to it to end loop
	log    *slog.Logger
	closed atomic.Bool
	done   chan struct{}

	mu     sync.Mutex
	parked map[int32]*tcpConn // by file descriptor
}

// A parked connection is watched for input, a peer that closed or an
// error, once: its reader takes over from there.
const parkEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newPoller starts a poller, or returns nil (no parking) if epoll is not
// available.
func newPoller(log *slog.Logger) *poller {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		log.Warn("no epoll: idle readers will not be parked", "err", err)
		return nil
	}
	p := &poller{epfd: fd, log: log, done: make(chan struct{}), parked: make(map[int32]*tcpConn)}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(fd)
		log.Warn("no pipe: idle readers will not be parked", "err", err)
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.wake[0])}
	if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		syscall.Close(fd)
		syscall.Close(p.wake[0])
		syscall.Close(p.wake[1])
		log.Warn("epoll: idle readers will not be parked", "err", err)
		return nil
	}
	go p.loop()
	return p
}

// close stops the poller. Call it once no session can be parked any more.
func (p *poller) close() {
	if p == nil || p.closed.Swap(true) {
		return
	}
	_, _ = syscall.Write(p.wake[1], []byte{0})
	<-p.done
	syscall.Close(p.epfd)
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
}

// rawConn is t's socket, if it is a plain TCP connection: one wrapped in
// TLS or a PROXY header reader may hold read bytes the set cannot see.
func rawConn(t *tcpConn) syscall.RawConn {
	tc, ok := t.conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// park arms a one-shot read event for t's connection and records t, and
// reports whether it did.
func (p *poller) park(t *tcpConn) bool {
	if p == nil || p.closed.Load() {
		return false
	}
	rc := rawConn(t)
	if rc == nil {
		return false
	}
	ok := false
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.closing {
		// A connection being closed must not enter the set: closing its
		// descriptor would drop it from the set without an event.
		return false
	}
	err := rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: parkEvents, Fd: int32(fd)}
		// Re-arm a descriptor parked before; add it the first time.
		err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(err, syscall.ENOENT) {
			err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
		if err != nil {
			p.log.Debug("park", "err", err)
			return
		}
		p.parked[int32(fd)] = t
		ok = true
	})
	return err == nil && ok
}

// unpark is for closing t: it marks t so that it is never parked again,
// takes it out of the set if it is parked there, and reports whether it
// was: the caller then resumes it.
func (p *poller) unpark(t *tcpConn) bool {
	if p == nil {
		return false
	}
	rc := rawConn(t)
	if rc == nil {
		return false
	}
	found := false
	p.mu.Lock()
	defer p.mu.Unlock()
	t.closing = true
	_ = rc.Control(func(fd uintptr) {
		if p.parked[int32(fd)] == t {
			delete(p.parked, int32(fd))
			_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			found = true
		}
	})
	return found
}

// loop resumes the readers of connections that have something to read. An
// event may outlive the session it was for (its descriptor closed and
// reused): the session found under it then reads once, which is harmless.
func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for !p.closed.Load() {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			// Park no more, and hand every parked reader back its goroutine.
			p.log.Error("epoll_wait: idle readers will not be parked any more", "err", err)
			p.closed.Store(true)
			p.mu.Lock()
			for fd, t := range p.parked {
				delete(p.parked, fd)
				go t.resume()
			}
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.wake[0]) {
				continue // close: the loop condition ends it
			}
			p.mu.Lock()
			t := p.parked[ev.Fd]
			delete(p.parked, ev.Fd)
			p.mu.Unlock()
			if t != nil {
				go t.resume()
			}
		}
	}
}
