package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
)

// Errors returned by this package. Callers test for them with errors.Is;
// most are wrapped with the offending value or operation.
var (
	// ErrInvalidRoom: a room name is not 1–32 bytes of [a-z0-9_-].
	ErrInvalidRoom = errors.New("bus: invalid room name")
	// ErrInvalidToken: a subject token is empty or contains '.', '*', '>'
	// or white space.
	ErrInvalidToken = errors.New("bus: invalid subject token")
	// ErrInvalidNick: a nickname is empty, longer than MaxNickLen bytes or
	// not valid UTF-8.
	ErrInvalidNick = errors.New("bus: invalid nickname")
	// ErrInvalidKind: Publish was given a kind that is not a room event kind.
	ErrInvalidKind = errors.New("bus: invalid event kind")
	// ErrUnknownVersion: an envelope's "v" is not Version.
	ErrUnknownVersion = errors.New("bus: unknown envelope version")
	// ErrMalformed: an envelope is not a JSON object of the expected shape.
	ErrMalformed = errors.New("bus: malformed envelope")
	// ErrConfig: Connect was given an unusable Config.
	ErrConfig = errors.New("bus: invalid config")
	// ErrNoJetStream: the NATS server has no JetStream, which the bus
	// needs (nicknames, presence, leases and history live in it).
	ErrNoJetStream = errors.New("bus: the NATS server has no JetStream, which chatd needs: start it with `nats-server -js`, or run `chatd broker`")
	// ErrClosed: the Conn has been closed.
	ErrClosed = errors.New("bus: connection closed")
)

// IsFatalConnectError reports whether err, from Connect, is one that
// retrying cannot mend: the server has no JetStream, the servers refused
// the credentials, or their certificate is not trusted. Other errors (no
// server up yet, JetStream without a majority) may pass as the cluster
// comes up.
func IsFatalConnectError(err error) bool {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	return errors.Is(err, ErrNoJetStream) || errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.As(err, &unknownCA) || errors.As(err, &verify) ||
		strings.Contains(err.Error(), "authorization violation")
}
