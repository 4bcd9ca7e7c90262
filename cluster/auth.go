package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
)

// MinSecretLen is the shortest cluster secret accepted, in bytes.
const MinSecretLen = 16

// SecretUser is the NATS user name that clients present on a bus guarded by
// a cluster secret (see SecretCredentials).
const SecretUser = "chatd-cluster"

// routeUser is the user name routes present to each other with a secret.
const routeUser = "chatd-route"

// SecretCredentials returns the NATS user and password a client (a
// gateway) presents to nodes that share secret: SecretUser and the
// hex-encoded HMAC-SHA256 of "chatd bus client v1" keyed with the secret.
// Routes use another pair derived the same way from "chatd bus route v1",
// so neither the secret nor one pair gives away the other.
func SecretCredentials(secret string) (user, password string) {
	return SecretUser, derive(secret, "chatd bus client v1")
}

// routeCredentials is the route user and password derived from secret.
func routeCredentials(secret string) (user, password string) {
	return routeUser, derive(secret, "chatd bus route v1")
}

func derive(secret, purpose string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(purpose))
	return hex.EncodeToString(mac.Sum(nil))
}

// IsLoopback reports whether a listener on host accepts connections from
// this machine only: an address in 127.0.0.0/8, ::1, or the name
// localhost. The empty host (every interface), the unspecified addresses
// (0.0.0.0, ::), any other address and any other name are not loopback: a
// name could resolve to anything.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// clientAuth reports whether NATS clients must authenticate: a user with a
// password, a secret, or verified client certificates.
func (c *Config) clientAuth() bool {
	return (c.User != "" && c.Password != "") || c.Secret != "" ||
		(c.TLS != nil && c.TLS.ClientAuth == tls.RequireAndVerifyClientCert)
}

// routeAuth reports whether routes must authenticate.
func (c *Config) routeAuth() bool {
	return (c.User != "" && c.Password != "") || c.Secret != ""
}

// OpenListeners lists the listeners of c that accept connections from
// beyond loopback without authentication, as "clients on HOST:PORT" and
// "routes on HOST:PORT". New refuses such a config unless InsecureOpen is
// set; it is empty for the single-node default (in-process only).
func (c *Config) OpenListeners() []string {
	var open []string
	if c.ClientListen != "" && !c.clientAuth() && !loopbackListen(c.ClientListen) {
		open = append(open, "clients on "+c.ClientListen)
	}
	if c.ClusterListen != "" && !c.routeAuth() && !loopbackListen(c.ClusterListen) {
		open = append(open, "routes on "+c.ClusterListen)
	}
	return open
}

func loopbackListen(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && IsLoopback(host)
}
