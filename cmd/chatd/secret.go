package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/chatd/chatd/cluster"
)

// newSecret returns 32 random bytes as 43 URL-safe characters.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkSecret refuses a secret too short to guard the bus.
func checkSecret(s string) error {
	if len(s) < cluster.MinSecretLen {
		return fmt.Errorf("cluster secret is too short (%d bytes): use at least %d, e.g. one printed by chatd secret", len(s), cluster.MinSecretLen)
	}
	return nil
}

// clusterSecret is --cluster-secret, or the content of
// --cluster-secret-file without surrounding white space; "" if neither.
func (m *Main) clusterSecret() (string, error) {
	c := m.Config
	s := c.ClusterSecret
	if c.ClusterSecretFile != "" {
		if s != "" {
			return "", errors.New("cluster secret: give --cluster-secret or --cluster-secret-file, not both")
		}
		b, err := os.ReadFile(c.ClusterSecretFile)
		if err != nil {
			return "", fmt.Errorf("cluster secret: %w", err)
		}
		if s = strings.TrimSpace(string(b)); s == "" {
			return "", fmt.Errorf("cluster secret: %s is empty", c.ClusterSecretFile)
		}
	}
	if s == "" {
		return "", nil
	}
	return s, checkSecret(s)
}

// runSecret is `chatd secret`: print a new secret, or with --init FILE
// write one to FILE unless it holds one already.
func runSecret(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chatd secret", flag.ContinueOnError)
	fs.SetOutput(stderr)
	initFile := fs.String("init", "", "write a new secret to this file (mode 0600) unless it holds one already; print nothing secret")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  chatd secret               print a new random cluster secret (for CHAT_CLUSTER_SECRET)
  chatd secret --init FILE   create FILE with a new secret once (for --cluster-secret-file)

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chatd secret: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *initFile == "" {
		fmt.Fprintln(stdout, newSecret())
		return 0
	}
	created, err := initSecret(*initFile)
	if err != nil {
		fmt.Fprintln(stderr, "chatd secret:", err)
		return 1
	}
	if created {
		fmt.Fprintf(stdout, "chatd secret: a new cluster secret is in %s\n", *initFile)
	} else {
		fmt.Fprintf(stdout, "chatd secret: %s holds a cluster secret already; kept\n", *initFile)
	}
	return 0
}

// initSecret creates file with a new secret, atomically: a concurrent
// init, or one that crashed, never leaves a partial file. A file that
// exists is kept if it holds a valid secret, and an error otherwise.
func initSecret(file string) (created bool, err error) {
	if b, err := os.ReadFile(file); err == nil {
		if s := strings.TrimSpace(string(b)); s == "" {
			return false, fmt.Errorf("%s exists and is empty: remove it to make a new secret", file)
		} else if err := checkSecret(s); err != nil {
			return false, fmt.Errorf("%s: %w", file, err)
		}
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".secret-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, newSecret()+"\n"); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// CreateTemp makes the file 0600; Link fails if another init won.
	if err := os.Link(tmp.Name(), file); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return initSecret(file)
		}
		return false, err
	}
	return true, nil
}
