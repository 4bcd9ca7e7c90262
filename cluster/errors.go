package cluster

import "errors"

// Sentinel errors returned (wrapped with context) by this package. Test with
// errors.Is.
var (
	// ErrConfig wraps every validation error returned by New.
	ErrConfig = errors.New("cluster: invalid config")

	// ErrOpenBus is returned by New when a client or route listener
	// reaches beyond loopback without authentication and
	// Config.InsecureOpen is not set. The message names the listeners.
	ErrOpenBus = errors.New("cluster: NATS would accept connections from beyond loopback without authentication")

	// ErrNotStarted is returned by methods that need a running server
	// before Start has succeeded.
	ErrNotStarted = errors.New("cluster: node not started")

	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("cluster: node already started")

	// ErrClosed is returned by Start and InProcessConn after Close.
	ErrClosed = errors.New("cluster: node closed")

	// ErrNotReady is returned by Start when the server did not accept
	// connections in time or reported a fatal error while starting.
	ErrNotReady = errors.New("cluster: NATS server not ready")

	// ErrNoAddress is returned by Advertise when an explicit template
	// yields no usable IP address.
	ErrNoAddress = errors.New("cluster: no advertise address")
)
