package gateway

import (
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"
)

// outbox is the outbound side of a session: the byte-bounded queue of
// frames, the one writer goroutine that empties it, the hold on live frames
// during a history replay, the idle trim (sweep.go) and the close. Any
// goroutine may queue with deliver; it never blocks on the client. A client
// whose queued bytes pass MaxPending is closed as a slow consumer, with one
// last error frame. The Session's reader goroutine owns everything else.
type outbox struct {
	t            transport
	enc          codec
	log          *slog.Logger
	maxPending   int
	writeTimeout time.Duration

	mu        sync.Mutex // guards the fields below; see the lock order in doc.go
	queued    bool       // output goes through the queue (after the TCP handshake; always on WebSocket and IRC)
	frames    [][]byte   // waiting for the writer; shared with other sessions, never modified
	spare     [][]byte   // the writer's previous batch, reused
	bytes     int        // bytes queued, held or being written
	writing   bool       // a writer goroutine is running
	closing   bool       // flush what is queued, then close; queue nothing more
	reason    CloseReason
	replaying bool      // a history replay is being read: live frames wait in held
	held      [][]byte  // live frames that arrived during the replay
	heldIDs   []string  // their event ids, to drop them from the replay
	writeFn   func()    // o.writeLoop, bound once: starting a writer does not allocate
	idle      bool      // nothing queued since the last sweep; queueLocked clears it
	deadline  time.Time // the write deadline the writer last set (zero: none, or overridden)
	closeOnce sync.Once
	closed    chan struct{} // closed with the connection
}

func (o *outbox) init(t transport, log *slog.Logger, maxPending int, writeTimeout time.Duration) {
	o.t, o.enc, o.log = t, t, log
	o.maxPending, o.writeTimeout = maxPending, writeTimeout
	o.closed = make(chan struct{})
	o.writeFn = o.writeLoop
}

// useQueue sends every later frame through the queue and its writer (a
// TCP client after its handshake; WebSocket and IRC from the start).
func (o *outbox) useQueue() {
	o.mu.Lock()
	o.queued = true
	o.mu.Unlock()
}

// isClosing reports whether the session is closing: nothing more is
// queued.
func (o *outbox) isClosing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing
}

func (o *outbox) isQueued() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queued
}

// deliver queues one frame for the client. It never blocks: a client whose
// queue is over the limit is closed as a slow consumer. frame is shared
// with other sessions and must not be modified. id names the bus event if
// it is one a history replay may also hold (a chat line), else is empty.
func (o *outbox) deliver(frame []byte, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.deliverLocked(frame, id) {
		o.kickLocked()
	}
}

// deliverLocked is deliver but for starting the writer; it reports whether
// frame went to the queue. o.mu is held.
func (o *outbox) deliverLocked(frame []byte, id string) bool {
	if o.closing || !o.queued {
		return false
	}
	if o.bytes+len(frame) > o.maxPending {
		o.overflowLocked()
		return false
	}
	if o.replaying {
		o.bytes += len(frame)
		o.held = append(o.held, frame)
		if id != "" { // a chat line, which the replay may hold too
			o.heldIDs = append(o.heldIDs, id)
		}
		return false
	}
	o.queueLocked(frame)
	return true
}

// deliverBurst queues the events evs (chat lines and notices), whose
// frames in encoding enc joined are (room.flush), under one lock and with
// at most one writer start. joined is shared with other sessions and must not be modified.
// During a replay hold, or when joined would pass MaxPending, the lines go
// one by one as deliver queues them: the hold keeps their ids, and a
// client is closed as a slow consumer at the same line as without bursts.
func (o *outbox) deliverBurst(joined []byte, evs []event, enc int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing || !o.queued {
		return
	}
	if o.replaying || o.bytes+len(joined) > o.maxPending {
		queued := false
		for k := range evs {
			if f := evs[k].frames[enc]; f != nil && o.deliverLocked(f, evs[k].replayID()) {
				queued = true
			}
		}
		if queued {
			o.kickLocked()
		}
		return
	}
	o.queueLocked(joined)
	o.kickLocked()
}

// deliverFirst queues frame ahead of the live frames held during a
// replay (a join's welcome), unless the session is closing.
func (o *outbox) deliverFirst(frame []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closing {
		o.queueLocked(frame)
		o.kickLocked()
	}
}

// hold starts holding live frames: a history replay is being read.
func (o *outbox) hold() {
	o.mu.Lock()
	o.replaying = true
	o.mu.Unlock()
}

// release ends the hold: it queues the frames replay returns, then the live
// frames held meanwhile. replay is called under o.mu with a test of whether
// an event id came in live during the hold, so that the replay can leave
// such events out; it must not block.
func (o *outbox) release(replay func(heldLive func(id string) bool) [][]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.replaying = false
	if o.closing {
		return
	}
	for _, f := range replay(func(id string) bool { return slices.Contains(o.heldIDs, id) }) {
		o.queueLocked(f)
	}
	o.frames = append(o.frames, o.held...) // already counted in bytes
	clear(o.held)
	o.held, o.heldIDs = o.held[:0], o.heldIDs[:0]
	o.kickLocked()
}

func (o *outbox) queueLocked(frame []byte) {
	o.idle = false
	o.bytes += len(frame)
	o.frames = append(o.frames, frame)
}

// kickLocked starts a writer if none is running. Writers exist only while
// there is output, so an idle session costs no goroutine for writing.
func (o *outbox) kickLocked() {
	if !o.writing && len(o.frames) > 0 {
		o.writing = true
		go o.writeFn()
	}
}

// overflowLocked drops what is queued, queues one last frame and closes.
func (o *outbox) overflowLocked() {
	o.reason = ReasonSlowConsumer
	o.closing = true
	clear(o.frames)
	clear(o.held)
	o.frames, o.held, o.heldIDs = o.frames[:0], nil, nil
	o.bytes = 0
	o.queueLocked(o.enc.errorMsg(codeSlowConsumer, "slow consumer: you were not reading fast enough, disconnected"))
	// A writer stuck on this client gives up soon; the next one gets a
	// short deadline too.
	o.deadline = time.Time{}
	o.t.setWriteDeadline(time.Now().Add(closeWriteTimeout))
	o.log.Info("slow consumer")
	o.kickLocked()
}

// kick closes for reason with one last frame. Safe from any goroutine; it
// never blocks, and the first reason wins.
func (o *outbox) kick(reason CloseReason, frame []byte) {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	if o.queued {
		o.mu.Unlock()
		o.finish(reason, frame)
		return
	}
	// A TCP client in the handshake: its reader writes to the socket
	// itself (writeEarly). A write to a net.Conn is never interleaved with
	// another, so the line arrives whole, before the close.
	o.reason = reason
	o.closing = true
	o.mu.Unlock()
	go func() {
		_ = o.t.writeEarly(frame)
		o.closeConn()
	}()
}

// finish closes for reason after flushing what is queued and one last
// frame (may be nil). Safe from any goroutine; it never blocks on the
// client, and the first reason wins.
func (o *outbox) finish(reason CloseReason, last []byte) {
	o.mu.Lock()
	if o.closing {
		o.mu.Unlock()
		return
	}
	o.reason = reason
	o.closing = true
	if !o.queued {
		o.mu.Unlock()
		o.closeConn()
		return
	}
	if last != nil {
		o.queueLocked(last)
	}
	o.deadline = time.Time{}
	o.t.setWriteDeadline(time.Now().Add(closeWriteTimeout))
	if !o.writing {
		// Even with nothing to write, the writer says goodbye and closes.
		o.writing = true
		go o.writeFn()
	}
	o.mu.Unlock()
}

// drain stops taking frames, lets the writer flush what is queued for at
// most about closeWriteTimeout, closes the connection and returns why the
// session closed.
func (o *outbox) drain() CloseReason {
	o.mu.Lock()
	o.closing = true
	reason, writing := o.reason, o.writing
	o.mu.Unlock()
	if writing {
		select {
		case <-o.closed:
		case <-time.After(closeWriteTimeout + 100*time.Millisecond):
		}
	}
	o.closeConn()
	return reason
}

// writeLoop writes queued frames, a batch at a time, until the queue is
// empty; when closing it then says goodbye and closes the connection. It
// is the only writer once the queue is in use.
func (o *outbox) writeLoop() {
	// Let the goroutine that started this writer (a fan-out loop, most
	// often) queue more before the first write: fewer, larger writes.
	runtime.Gosched()
	for {
		o.mu.Lock()
		if len(o.frames) == 0 {
			if !o.closing {
				o.writing = false
				o.mu.Unlock()
				return
			}
			reason := o.reason
			o.mu.Unlock()
			o.t.goodbye(reason)
			o.closeConn()
			o.mu.Lock()
			o.writing = false
			o.mu.Unlock()
			return
		}
		batch := o.frames
		o.frames, o.spare = o.spare[:0], nil
		// Under the lock, so that it never overrides the short deadline an
		// overflow sets (overflowLocked) between here and the write.
		o.setDeadlineLocked()
		o.mu.Unlock()

		size := 0
		for _, b := range batch {
			size += len(b)
		}
		err := o.t.writeBatch(batch)
		clear(batch)

		o.mu.Lock()
		o.spare = batch[:0]
		o.bytes -= size
		if err != nil {
			if o.reason == ReasonNone {
				o.reason = ReasonWriteError
			}
			o.closing = true
			o.writing = false
			clear(o.frames)
			o.frames = o.frames[:0]
			o.mu.Unlock()
			o.closeConn()
			return
		}
		o.mu.Unlock()
	}
}

// setDeadlineLocked bounds the coming write: by closeWriteTimeout when
// closing, else by writeTimeout. Setting a deadline costs about as much as
// a small write, so a busy writer moves its deadline only when less than
// writeTimeout is left, to writeTimeout and an eighth from now: a write
// blocked for writeTimeout to 9/8 of it fails. o.mu is held.
func (o *outbox) setDeadlineLocked() {
	now := time.Now()
	if o.closing {
		o.deadline = time.Time{}
		o.t.setWriteDeadline(now.Add(closeWriteTimeout))
		return
	}
	if o.deadline.Before(now.Add(o.writeTimeout)) {
		o.deadline = now.Add(o.writeTimeout + o.writeTimeout/8)
		o.t.setWriteDeadline(o.deadline)
	}
}

// sweepLocked marks o idle, or lets go of its queues' memory if it was
// already idle at the last sweep. o.mu is held.
func (o *outbox) sweepLocked() {
	if o.writing || o.replaying || len(o.frames) > 0 {
		o.idle = false
		return
	}
	if cap(o.frames) == 0 && cap(o.spare) == 0 && cap(o.held) == 0 && cap(o.heldIDs) == 0 {
		return
	}
	if !o.idle {
		o.idle = true // queueLocked clears it; trim at the next sweep
		return
	}
	o.frames, o.spare, o.held, o.heldIDs = nil, nil, nil, nil
	o.idle = false
}

// setReason records why the session ends, unless a reason is set.
func (o *outbox) setReason(r CloseReason) {
	o.mu.Lock()
	if o.reason == ReasonNone {
		o.reason = r
	}
	o.mu.Unlock()
}

// closeReason is why the session ends, so far.
func (o *outbox) closeReason() CloseReason {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reason
}

func (o *outbox) closeConn() {
	o.closeOnce.Do(func() {
		o.t.close()
		close(o.closed)
	})
}
