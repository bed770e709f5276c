package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// connSpec is a parsed `connection` (or `connection.proxy`) input.
type connSpec struct {
	Host               string
	Port               int
	User               string
	Password           string
	PrivateKey         string
	PrivateKeyPassword string
	HostKey            string
	AgentSocketPath    string
	DialErrorLimit     int // -1 = unlimited
	PerDialTimeout     int // seconds, 0 = no limit
	Proxy              *connSpec
}

func (c *connSpec) addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// parseConn reads a (validated) connection object; secrets are stripped on read.
func parseConn(m resource.PropertyMap) *connSpec {
	c := &connSpec{
		Host:               getString(m, "host"),
		Port:               getInt(m, "port", 22),
		User:               getString(m, "user"),
		Password:           getString(m, "password"),
		PrivateKey:         getString(m, "privateKey"),
		PrivateKeyPassword: getString(m, "privateKeyPassword"),
		HostKey:            getString(m, "hostKey"),
		AgentSocketPath:    getString(m, "agentSocketPath"),
		DialErrorLimit:     getInt(m, "dialErrorLimit", 10),
		PerDialTimeout:     getInt(m, "perDialTimeout", 15),
	}
	if c.User == "" {
		c.User = "root"
	}
	if p, ok := getObject(m, "proxy"); ok {
		c.Proxy = parseConn(p)
	}
	return c
}

func connFromInputs(inputs resource.PropertyMap) (*connSpec, error) {
	obj, ok := getObject(inputs, "connection")
	if !ok {
		return nil, errors.New("missing required property 'connection'")
	}
	c := parseConn(obj)
	if c.Host == "" {
		return nil, errors.New("missing required property 'connection.host'")
	}
	return c, nil
}

// ---- host keys ----

// parseHostKeys accepts, one per line: an authorized_keys style "type base64 [comment]", a known_hosts line
// "host[,host] type base64 [comment]" (markers and hashed hosts included), or a bare base64 wire-format key.
func parseHostKeys(s string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			keys = append(keys, k)
			continue
		}
		if _, _, k, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil {
			keys = append(keys, k)
			continue
		}
		if raw, err := base64.StdEncoding.DecodeString(line); err == nil {
			if k, err := ssh.ParsePublicKey(raw); err == nil {
				keys = append(keys, k)
				continue
			}
		}
		return nil, fmt.Errorf("cannot parse hostKey %q: expected \"<type> <base64> [comment]\" "+
			"(e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub) or a known_hosts line", abbreviate(line, 60))
	}
	if len(keys) == 0 {
		return nil, errors.New("hostKey is set but contains no key")
	}
	return keys, nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// hostKeyMismatchError is permanent: retrying won't help and must not be attempted with credentials.
type hostKeyMismatchError struct {
	addr     string
	expected []string
	got      string
}

func (e *hostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key mismatch for %s: expected %s, got %s", e.addr, strings.Join(e.expected, " or "), e.got)
}

func hostKeyCallback(addr string, expected []ssh.PublicKey) ssh.HostKeyCallback {
	if len(expected) == 0 {
		return ssh.InsecureIgnoreHostKey() // upstream behaviour when hostKey is not set
	}
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		got := key.Marshal()
		for _, k := range expected {
			if bytes.Equal(k.Marshal(), got) {
				return nil
			}
		}
		fps := make([]string, len(expected))
		for i, k := range expected {
			fps[i] = ssh.FingerprintSHA256(k)
		}
		return &hostKeyMismatchError{addr: addr, expected: fps, got: ssh.FingerprintSHA256(key)}
	}
}

// hostKeyAlgorithms makes the server present a key of the expected type(s) (otherwise it might offer e.g. its
// ed25519 key while we hold its RSA key, which would be reported as a mismatch).
func hostKeyAlgorithms(keys []ssh.PublicKey) []string {
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range keys {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(k.Type())
	}
	return algos
}

// ---- authentication ----

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// clientConfig builds the ssh client configuration; the returned closer releases an agent connection.
func (c *connSpec) clientConfig() (*ssh.ClientConfig, io.Closer, error) {
	cfg := &ssh.ClientConfig{User: c.User}
	var closer io.Closer = io.NopCloser(nil)

	if c.HostKey != "" {
		keys, err := parseHostKeys(c.HostKey)
		if err != nil {
			return nil, nil, permanentError{err}
		}
		cfg.HostKeyCallback = hostKeyCallback(c.addr(), keys)
		cfg.HostKeyAlgorithms = hostKeyAlgorithms(keys)
	} else {
		cfg.HostKeyCallback = hostKeyCallback(c.addr(), nil)
	}

	var signers []ssh.Signer
	if c.PrivateKey != "" {
		var s ssh.Signer
		var err error
		if c.PrivateKeyPassword != "" {
			s, err = ssh.ParsePrivateKeyWithPassphrase([]byte(c.PrivateKey), []byte(c.PrivateKeyPassword))
		} else {
			s, err = ssh.ParsePrivateKey([]byte(c.PrivateKey))
		}
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, nil, permanentError{errors.New("the private key is encrypted: set privateKeyPassword")}
			}
			// Don't wrap err verbatim: some parse errors quote key material.
			return nil, nil, permanentError{fmt.Errorf("cannot parse privateKey (%s)", safeKeyError(err))}
		}
		signers = append(signers, s)
	}

	var agentSigners func() ([]ssh.Signer, error)
	sock := c.AgentSocketPath
	explicitAgent := sock != ""
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			if explicitAgent {
				return nil, nil, fmt.Errorf("cannot connect to ssh agent at %s: %w", sock, err)
			}
		} else {
			closer = conn
			agentSigners = agent.NewClient(conn).Signers
		}
	}

	if len(signers) > 0 || agentSigners != nil {
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			all := append([]ssh.Signer(nil), signers...)
			if agentSigners != nil {
				if as, err := agentSigners(); err == nil {
					all = append(all, as...)
				}
			}
			return all, nil
		}))
	}
	if c.Password != "" {
		pw := c.Password
		cfg.Auth = append(cfg.Auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if len(cfg.Auth) == 0 {
		_ = closer.Close()
		return nil, nil, permanentError{fmt.Errorf("no ssh authentication method for %s: set connection.privateKey, "+
			"connection.password or connection.agentSocketPath (or SSH_AUTH_SOCK)", c.addr())}
	}
	return cfg, closer, nil
}

func safeKeyError(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "BEGIN") || len(msg) > 120 {
		return "unrecognised key format"
	}
	return msg
}

// ---- dialing ----

// sshConn is an established connection (possibly through a proxy).
type sshConn struct {
	*ssh.Client
	closers []io.Closer
	stop    chan struct{}
	once    sync.Once
}

func (s *sshConn) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		err = s.Client.Close()
		for i := len(s.closers) - 1; i >= 0; i-- {
			_ = s.closers[i].Close()
		}
	})
	return err
}

func newSSHConn(c *ssh.Client, closers ...io.Closer) *sshConn {
	s := &sshConn{Client: c, closers: closers, stop: make(chan struct{})}
	go func() { // keepalives stop idle NAT/firewall timeouts during long, silent commands
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				_, _, _ = c.SendRequest("keepalive@openssh.com", true, nil)
			}
		}
	}()
	return s
}

// dialer abstracts "open a TCP connection to addr" (direct, or through a proxy's ssh client).
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

func directDial(timeout time.Duration) dialFunc {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
		return d.DialContext(ctx, "tcp", addr)
	}
}

// retryDelay is the pause after the n-th failed dial (1 s, doubling, at most 8 s).
var retryDelay = func(n int) time.Duration {
	d := time.Second << (n - 1)
	if n > 4 || d > 8*time.Second {
		d = 8 * time.Second
	}
	return d
}

// handshake performs one connection attempt: TCP connect + ssh handshake + auth, bounded by perDialTimeout.
func (c *connSpec) handshake(ctx context.Context, dial dialFunc) (*ssh.Client, error) {
	cfg, closer, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(c.PerDialTimeout) * time.Second
	attemptCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		attemptCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()

	conn, err := dial(attemptCtx, c.addr())
	if err != nil {
		_ = closer.Close()
		return nil, err
	}
	// Bound the ssh handshake too: closing the connection aborts NewClientConn.
	done := make(chan struct{})
	go func() {
		select {
		case <-attemptCtx.Done():
			_ = conn.Close()
		case <-done:
		}
	}()
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.addr(), cfg)
	close(done)
	if err != nil {
		_ = conn.Close()
		_ = closer.Close()
		if attemptCtx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("timed out after %v (perDialTimeout)", timeout)
		}
		return nil, err
	}
	client := ssh.NewClient(sc, chans, reqs)
	go func() { // release the agent connection with the client
		_ = client.Wait()
		_ = closer.Close()
	}()
	return client, nil
}

// connect dials c (through its proxy if any) with retries, returning an established connection.
func (c *connSpec) connect(ctx context.Context, sink logSink) (*sshConn, error) {
	if sink == nil {
		sink = nopSink{}
	}
	var proxy *sshConn
	closeProxy := func() {
		if proxy != nil {
			_ = proxy.Close()
			proxy = nil
		}
	}
	attempts := 0
	limit := c.DialErrorLimit
	if limit == 0 {
		limit = 1
	}
	for {
		var dial dialFunc
		var err error
		if c.Proxy != nil && proxy == nil {
			proxy, err = c.Proxy.connect(ctx, sink)
			if err != nil {
				return nil, fmt.Errorf("connecting to proxy: %w", err)
			}
		}
		if proxy != nil {
			p := proxy
			dial = func(ctx context.Context, addr string) (net.Conn, error) { return p.DialContext(ctx, "tcp", addr) }
		} else {
			dial = directDial(time.Duration(c.PerDialTimeout) * time.Second)
		}

		client, err := c.handshake(ctx, dial)
		if err == nil {
			if proxy != nil {
				return newSSHConn(client, proxy), nil
			}
			return newSSHConn(client), nil
		}
		attempts++
		if ctxErr := ctx.Err(); ctxErr != nil {
			closeProxy()
			return nil, fmt.Errorf("dialing %s: %w", c.addr(), ctxErr)
		}
		var mismatch *hostKeyMismatchError
		var perm permanentError
		if errors.As(err, &mismatch) || errors.As(err, &perm) {
			closeProxy()
			if mismatch != nil {
				return nil, mismatch
			}
			return nil, fmt.Errorf("dialing %s: %w", c.addr(), err)
		}
		if limit > 0 && attempts >= limit {
			closeProxy()
			return nil, fmt.Errorf("failed to dial %s after %d attempt(s): %w", c.addr(), attempts, err)
		}
		delay := retryDelay(attempts)
		limitDesc := strconv.Itoa(limit)
		if limit < 0 {
			limitDesc = "unlimited"
		}
		sink.Status(fmt.Sprintf("dialing %s failed (attempt %d/%s): %v; retrying in %v",
			c.addr(), attempts, limitDesc, err, delay))
		// A proxy that died is re-established on the next attempt.
		if proxy != nil {
			if _, _, perr := proxy.SendRequest("keepalive@openssh.com", true, nil); perr != nil {
				closeProxy()
			}
		}
		select {
		case <-ctx.Done():
			closeProxy()
			return nil, fmt.Errorf("dialing %s: %w (last error: %v)", c.addr(), ctx.Err(), err)
		case <-time.After(delay):
		}
	}
}
