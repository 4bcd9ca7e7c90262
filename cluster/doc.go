// Package cluster owns chatd's embedded NATS server (single node, or one
// routed node of a broker cluster, with JetStream) and the choice of the
// address that clients are told to dial (go-sockaddr). It never opens a
// NATS port beyond loopback without authentication unless told to
// (Config.InsecureOpen); a shared Config.Secret derives client and route
// credentials.
//
// A Node's methods are safe for concurrent use; Close is idempotent. Callers
// must not call Shutdown on the *server.Server returned by Node.Server (use
// Close), and must not import gateway or bus from here: cmd wires them.
package cluster
