//go:build linux

package gateway

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
)

// poller is the epoll set of parked sessions (see park.go).
type poller struct {
	epfd   int
	wake   [2]int // a pipe in the set: close writes to it to end loop
	log    *slog.Logger
	closed atomic.Bool
	done   chan struct{}

	mu     sync.Mutex
	parked map[int32]*Session // by file descriptor
}

const parkEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newPoller starts a poller, or returns nil (no parking) if epoll is not
// available.
func newPoller(log *slog.Logger) *poller {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		log.Warn("no epoll: idle readers will not be parked", "err", err)
		return nil
	}
	p := &poller{epfd: fd, log: log, done: make(chan struct{}), parked: make(map[int32]*Session)}
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

// close stops the poller; sessions still parked stay so until closed.
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

func rawConn(s *Session) syscall.RawConn {
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// park arms a one-shot read event for s's connection and records s.
func (p *poller) park(s *Session) bool {
	rc := rawConn(s)
	if rc == nil || p.closed.Load() {
		return false
	}
	ok := false
	p.mu.Lock()
	defer p.mu.Unlock()
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
		p.parked[int32(fd)] = s
		ok = true
	})
	return err == nil && ok
}

// unpark takes s out of the set if it is parked there, and reports whether
// it was: the caller then resumes it.
func (p *poller) unpark(s *Session) bool {
	rc := rawConn(s)
	if rc == nil {
		return false
	}
	found := false
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = rc.Control(func(fd uintptr) {
		if p.parked[int32(fd)] == s {
			delete(p.parked, int32(fd))
			_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			found = true
		}
	})
	return found
}

// loop resumes sessions whose connections have something to read.
func (p *poller) loop() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for !p.closed.Load() {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			p.log.Error("epoll_wait", "err", err)
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.wake[0]) {
				continue // close: the loop condition ends it
			}
			p.mu.Lock()
			s := p.parked[ev.Fd]
			delete(p.parked, ev.Fd)
			p.mu.Unlock()
			if s != nil {
				go s.read(true)
			}
		}
	}
}
