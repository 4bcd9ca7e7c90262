package gateway

import "errors"

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("gateway: server closed")

// CloseReason says why a session ended. It is logged once per session and
// is meant as a metric label.
type CloseReason int

const (
	ReasonNone             CloseReason = iota
	ReasonQuit                         // the client sent /quit
	ReasonClientClosed                 // the client closed or reset the connection
	ReasonReadError                    // reading failed (e.g. keep-alive probes unanswered)
	ReasonWriteError                   // a write failed or timed out
	ReasonSlowConsumer                 // the outbound queue overflowed
	ReasonFlood                        // paced without a break for too long (Config.FloodTimeout)
	ReasonHandshakeTimeout             // no acceptable nickname in time
	ReasonHandshakeFailed              // too many refused nicknames
	ReasonBusError                     // the bus failed a call the session needed
	ReasonShutdown                     // the server is shutting down
	ReasonProtocolError                // WebSocket: too many bad messages, or one too big
	ReasonBanned                       // the address was banned (a reloaded ban list)
	ReasonThrottled                    // too many wrong passwords from the address
	ReasonKicked                       // an operator kicked the user out of its room
)

var reasonNames = [...]string{
	ReasonNone:             "none",
	ReasonQuit:             "quit",
	ReasonClientClosed:     "client_closed",
	ReasonReadError:        "read_error",
	ReasonWriteError:       "write_error",
	ReasonSlowConsumer:     "slow_consumer",
	ReasonFlood:            "flood",
	ReasonHandshakeTimeout: "handshake_timeout",
	ReasonHandshakeFailed:  "handshake_failed",
	ReasonBusError:         "bus_error",
	ReasonShutdown:         "shutdown",
	ReasonProtocolError:    "protocol_error",
	ReasonBanned:           "banned",
	ReasonThrottled:        "throttled",
	ReasonKicked:           "kicked",
}

func (r CloseReason) String() string {
	if r < 0 || int(r) >= len(reasonNames) {
		return "unknown"
	}
	return reasonNames[r]
}

// quitText is what a session's rooms are told when it ends for r: the
// reason of a departure on the bus (KindLeave), shown to IRC users as their
// QUIT message and to WebSocket users beside "left".
func (r CloseReason) quitText() string {
	switch r {
	case ReasonQuit:
		return "Quit"
	case ReasonReadError:
		return "Ping timeout"
	case ReasonWriteError:
		return "Write error"
	case ReasonSlowConsumer:
		return "Slow consumer"
	case ReasonFlood:
		return "Excess flood"
	case ReasonBusError:
		return "Chat unavailable"
	case ReasonShutdown:
		return "Server shutting down"
	case ReasonBanned:
		return "Banned"
	case ReasonKicked:
		return "Kicked"
	}
	return "Connection closed"
}
