package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestIsFatalConnectError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("connect: %w", nats.ErrAuthorization), true},
		{nats.ErrAuthExpired, true},
		{fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), true},
		{&tls.CertificateVerificationError{Err: errors.New("expired")}, true},
		{errors.New("jetstream: authorization violation for account"), true},
		{fmt.Errorf("connect: %w", ErrNoJetStream), true},
		{nats.ErrNoServers, false},
		{context.DeadlineExceeded, false},
		{errors.New("nats: JetStream not enabled"), false},
	} {
		if got := IsFatalConnectError(tt.err); got != tt.want {
			t.Errorf("IsFatalConnectError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
