package main

// End-to-end tests against a real sshd on 127.0.0.1. They only run with FDEPLOY_SSH_TEST=1; see
// testdata/ssh-test.sh, which starts a throw-away sshd and sets the variables below:
//
//	FDEPLOY_SSH_PORT        port of the sshd on 127.0.0.1 (user root)
//	FDEPLOY_SSH_KEY         path of a private key authorised for root
//	FDEPLOY_SSH_HOST_PUB    path of the server's ed25519 host public key
//	FDEPLOY_SSH_PASSWORD    (optional) root's password on that sshd
//	FDEPLOY_SSH_ENC_KEY     (optional) path of an authorised, passphrase-protected key ...
//	FDEPLOY_SSH_ENC_KEY_PASS            ... and its passphrase

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

const sshTestHost = "127.0.0.1" // never anything else

type sshEnv struct {
	port    int
	key     string
	hostPub string
}

func sshTestEnv(t *testing.T) sshEnv {
	t.Helper()
	if os.Getenv("FDEPLOY_SSH_TEST") != "1" {
		t.Skip("set FDEPLOY_SSH_TEST=1 (see testdata/ssh-test.sh) to run tests against a loopback sshd")
	}
	port, err := strconv.Atoi(os.Getenv("FDEPLOY_SSH_PORT"))
	if err != nil {
		t.Fatal("FDEPLOY_SSH_PORT not set")
	}
	key, err := os.ReadFile(os.Getenv("FDEPLOY_SSH_KEY"))
	must(t, err)
	hostPub, err := os.ReadFile(os.Getenv("FDEPLOY_SSH_HOST_PUB"))
	must(t, err)
	// Keep retries fast in tests.
	old := retryDelay
	retryDelay = func(int) time.Duration { return 50 * time.Millisecond }
	t.Cleanup(func() { retryDelay = old })
	return sshEnv{port: port, key: string(key), hostPub: strings.TrimSpace(string(hostPub))}
}

func (e sshEnv) conn() *connSpec {
	return &connSpec{Host: sshTestHost, Port: e.port, User: "root", PrivateKey: e.key, HostKey: e.hostPub,
		DialErrorLimit: 3, PerDialTimeout: 5}
}

func (e sshEnv) connProps() resource.PropertyValue {
	return secret(obj(resource.PropertyMap{
		"host":       str(sshTestHost),
		"port":       num(float64(e.port)),
		"user":       str("root"),
		"privateKey": secret(str(e.key)),
		"hostKey":    str(e.hostPub),
	}))
}

func TestSSHRemoteCommand(t *testing.T) {
	e := sshTestEnv(t)
	ctx := context.Background()
	var env []envEntry
	for i, s := range nasty {
		env = append(env, envEntry{"V" + strconv.Itoa(i), s})
	}
	var cmd strings.Builder
	for i := range nasty {
		cmd.WriteString(`printf '%s\0' "$V` + strconv.Itoa(i) + `"; `)
	}
	stdout, _, err := runRemote(ctx, e.conn(), execRequest{What: "create", Command: cmd.String(), Env: env})
	must(t, err)
	got := strings.Split(strings.TrimSuffix(stdout, "\x00"), "\x00")
	for i := range nasty {
		if i >= len(got) || got[i] != nasty[i] {
			t.Fatalf("env %d: got %q want %q", i, got, nasty[i])
		}
	}

	// stdin, stdout/stderr split, trailing newline trimmed, streamed logging.
	sink := &recordingSink{}
	in := "line one\nline 'two'\n"
	stdout, stderr, err := runRemote(ctx, e.conn(), execRequest{What: "create",
		Command: "cat; echo to-stderr >&2; echo last", Stdin: &in, Sink: sink})
	must(t, err)
	if stdout != "line one\nline 'two'\nlast" || stderr != "to-stderr" {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}
	if logs := sink.all(); !strings.Contains(logs, "line 'two'") || !strings.Contains(logs, "to-stderr") {
		t.Fatalf("logs %q", logs)
	}

	// A command ignoring a large stdin still succeeds.
	big := strings.Repeat("x", 4<<20)
	if _, _, err := runRemote(ctx, e.conn(), execRequest{What: "create", Command: "true", Stdin: &big}); err != nil {
		t.Fatal(err)
	}

	// Failures carry the exit status and the output tail, with secrets redacted.
	_, _, err = runRemote(ctx, e.conn(), execRequest{What: "update", Command: "echo ohno-hunter2 >&2; exit 7",
		Logging: "stdoutAndStderr", Redact: newRedactor([]string{"hunter2"})})
	if err == nil || !strings.Contains(err.Error(), "update command failed: exit status 7") ||
		!strings.Contains(err.Error(), "ohno-[secret]") {
		t.Fatalf("got %v", err)
	}
	_, _, err = runRemote(ctx, e.conn(), execRequest{What: "update", Command: "echo ohno >&2; exit 7", Logging: "none"})
	if err == nil || err.Error() != "update command failed: exit status 7" {
		t.Fatalf("got %v", err)
	}

	// Cancellation returns promptly. (OpenSSH refuses the "signal" request for root sessions, so the remote
	// process itself may live on; as the remote host is this machine, the test cleans it up.)
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	_, _, err = runRemote(cctx, e.conn(), execRequest{What: "create", Command: "exec sleep 7.25"})
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 5*time.Second {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
	killProcsWithArgs(t, "sleep\x007.25\x00")
}

// killProcsWithArgs kills this test's leftover processes, identified by their exact command line.
func killProcsWithArgs(t *testing.T, cmdline string) {
	want := cmdline
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil || string(b) != want {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
			t.Logf("killing leftover remote process %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestSSHHostKeys(t *testing.T) {
	e := sshTestEnv(t)
	ctx := context.Background()
	for _, hk := range []string{
		e.hostPub, // authorized_keys style with comment
		"[127.0.0.1]:" + strconv.Itoa(e.port) + " " + e.hostPub, // known_hosts line
		"", // not set: any key accepted
	} {
		c := e.conn()
		c.HostKey = hk
		if _, _, err := runRemote(ctx, c, execRequest{What: "create", Command: "true"}); err != nil {
			t.Fatalf("hostKey %q: %v", hk, err)
		}
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	wrong, _ := ssh.NewPublicKey(pub)
	c := e.conn()
	c.HostKey = string(ssh.MarshalAuthorizedKey(wrong))
	c.DialErrorLimit = 10
	start := time.Now()
	_, _, err := runRemote(ctx, c, execRequest{What: "create", Command: "true"})
	serverKey, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(e.hostPub))
	want := "host key mismatch for 127.0.0.1:" + strconv.Itoa(e.port) + ": expected " + ssh.FingerprintSHA256(wrong) +
		", got " + ssh.FingerprintSHA256(serverKey)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("a host key mismatch must not be retried")
	}
}

func TestSSHDialErrors(t *testing.T) {
	e := sshTestEnv(t)
	ctx := context.Background()

	// Nothing listens on the port: retried dialErrorLimit times, error names host:port and cause.
	l, err := net.Listen("tcp", sshTestHost+":0")
	must(t, err)
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := e.conn()
	c.Port = closedPort
	c.DialErrorLimit = 3
	sink := &recordingSink{}
	_, _, err = runRemote(ctx, c, execRequest{What: "create", Command: "true", Sink: sink})
	want := "failed to dial 127.0.0.1:" + strconv.Itoa(closedPort) + " after 3 attempt(s)"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v", err)
	}
	if n := strings.Count(sink.all(), "retrying"); n != 2 {
		t.Fatalf("%d retry messages: %s", n, sink.all())
	}

	// A server that accepts TCP but never speaks: bounded by perDialTimeout.
	silent, err := net.Listen("tcp", sshTestHost+":0")
	must(t, err)
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c = e.conn()
	c.Port = silent.Addr().(*net.TCPAddr).Port
	c.DialErrorLimit = 1
	c.PerDialTimeout = 1
	start := time.Now()
	_, _, err = runRemote(ctx, c, execRequest{What: "create", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %v", err, time.Since(start))
	}

	// Wrong credentials.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	must(t, err)
	c = e.conn()
	c.PrivateKey = string(pem.EncodeToMemory(block))
	c.DialErrorLimit = 2
	_, _, err = runRemote(ctx, c, execRequest{What: "create", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") || !strings.Contains(err.Error(), "after 2 attempt(s)") {
		t.Fatalf("got %v", err)
	}

	// Unparseable key: permanent, and the key material is not echoed.
	c = e.conn()
	c.PrivateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key-SECRETSTUFF\n-----END OPENSSH PRIVATE KEY-----\n"
	_, _, err = runRemote(ctx, c, execRequest{What: "create", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "cannot parse privateKey") || strings.Contains(err.Error(), "SECRETSTUFF") {
		t.Fatalf("got %v", err)
	}

	// No credentials at all.
	c = e.conn()
	c.PrivateKey = ""
	t.Setenv("SSH_AUTH_SOCK", "")
	_, _, err = runRemote(ctx, c, execRequest{What: "create", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "no ssh authentication method") {
		t.Fatalf("got %v", err)
	}
}

func TestSSHAuthMethods(t *testing.T) {
	e := sshTestEnv(t)
	ctx := context.Background()

	// ssh-agent on a unix socket, given explicitly.
	signer, err := ssh.ParseRawPrivateKey([]byte(e.key))
	must(t, err)
	keyring := agent.NewKeyring()
	must(t, keyring.Add(agent.AddedKey{PrivateKey: signer}))
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	must(t, err)
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, conn); conn.Close() }()
		}
	}()
	c := e.conn()
	c.PrivateKey = ""
	c.AgentSocketPath = sock
	out, _, err := runRemote(ctx, c, execRequest{What: "create", Command: "echo agent"})
	if err != nil || out != "agent" {
		t.Fatalf("agent: %q %v", out, err)
	}
	// ... and through SSH_AUTH_SOCK.
	c.AgentSocketPath = ""
	t.Setenv("SSH_AUTH_SOCK", sock)
	if out, _, err = runRemote(ctx, c, execRequest{What: "create", Command: "echo agent2"}); err != nil || out != "agent2" {
		t.Fatalf("SSH_AUTH_SOCK: %q %v", out, err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")

	if pw := os.Getenv("FDEPLOY_SSH_PASSWORD"); pw != "" {
		c := e.conn()
		c.PrivateKey = ""
		c.Password = pw
		if out, _, err := runRemote(ctx, c, execRequest{What: "create", Command: "echo pw"}); err != nil || out != "pw" {
			t.Fatalf("password: %q %v", out, err)
		}
	} else {
		t.Log("FDEPLOY_SSH_PASSWORD not set: password auth not tested")
	}

	if p := os.Getenv("FDEPLOY_SSH_ENC_KEY"); p != "" {
		k, err := os.ReadFile(p)
		must(t, err)
		c := e.conn()
		c.PrivateKey = string(k)
		c.PrivateKeyPassword = os.Getenv("FDEPLOY_SSH_ENC_KEY_PASS")
		if out, _, err := runRemote(ctx, c, execRequest{What: "create", Command: "echo enc"}); err != nil || out != "enc" {
			t.Fatalf("encrypted key: %q %v", out, err)
		}
		c.PrivateKeyPassword = ""
		if _, _, err := runRemote(ctx, c, execRequest{What: "create", Command: "true"}); err == nil ||
			!strings.Contains(err.Error(), "set privateKeyPassword") {
			t.Fatalf("missing passphrase: %v", err)
		}
	}
}

func TestSSHProxy(t *testing.T) {
	e := sshTestEnv(t)
	c := e.conn()
	c.Proxy = e.conn() // jump through the same sshd to itself
	out, _, err := runRemote(context.Background(), c, execRequest{What: "create", Command: "echo via-proxy"})
	if err != nil || out != "via-proxy" {
		t.Fatalf("%q %v", out, err)
	}
	// A broken proxy is reported as such.
	c.Proxy.Port = 1
	c.Proxy.DialErrorLimit = 1
	_, _, err = runRemote(context.Background(), c, execRequest{What: "create", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "connecting to proxy") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("got %v", err)
	}
}

func TestSSHCopyToRemote(t *testing.T) {
	e := sshTestEnv(t)
	ctx := context.Background()
	local := t.TempDir()
	remote := t.TempDir() // the "remote" host is this machine
	must(t, os.MkdirAll(filepath.Join(local, "site", "css"), 0o755))
	must(t, os.WriteFile(filepath.Join(local, "site", "index.html"), []byte("<h1>hi</h1>"), 0o644))
	must(t, os.WriteFile(filepath.Join(local, "site", "css", "a.css"), []byte("body{}"), 0o644))
	must(t, os.WriteFile(filepath.Join(local, "app.sh"), []byte("#!/bin/sh\n"), 0o755))
	big := make([]byte, 8<<20)
	_, _ = rand.Read(big)
	must(t, os.WriteFile(filepath.Join(local, "big.bin"), big, 0o644))

	fa, _ := asset.FromPath(filepath.Join(local, "app.sh"))
	sa, _ := asset.FromText("key=value\n")
	ba, _ := asset.FromPath(filepath.Join(local, "big.bin"))
	da, _ := archive.FromPath(filepath.Join(local, "site"))
	aa, _ := archive.FromAssets(map[string]any{"conf/x.conf": sa})

	p := newProvider(nil)
	urn := "urn:pulumi:dev::proj::command:remote:CopyToRemote::cp"
	for _, c := range []struct {
		src    resource.PropertyValue
		remote string
		check  string
	}{
		{resource.NewAssetProperty(fa), "bin/app.sh", "bin/app.sh"},
		{resource.NewAssetProperty(sa), "etc/app/config", "etc/app/config"},
		{resource.NewAssetProperty(ba), "big.bin", "big.bin"},
		{resource.NewArchiveProperty(da), "www", "www/css/a.css"},
		{resource.NewArchiveProperty(da), "www", "www/site/index.html"}, // existing dir: copied into it
		{resource.NewArchiveProperty(aa), "bundle", "bundle/conf/x.conf"},
	} {
		props := resource.PropertyMap{"connection": e.connProps(), "source": c.src, "remotePath": str(filepath.Join(remote, c.remote))}
		chk, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, News: wire(t, props)})
		must(t, err)
		if len(chk.Failures) > 0 {
			t.Fatal(chk.Failures)
		}
		cr, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs})
		must(t, err)
		outs := unwire(t, cr.Properties)
		if !outs["connection"].IsSecret() {
			t.Fatal("connection not secret in outputs")
		}
		if _, err := os.Stat(filepath.Join(remote, c.check)); err != nil {
			t.Fatalf("%s: %v", c.check, err)
		}
	}
	if got := readFile(t, filepath.Join(remote, "big.bin")); got != string(big) {
		t.Fatal("big file corrupted")
	}
	if fi, _ := os.Stat(filepath.Join(remote, "bin/app.sh")); fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", fi.Mode())
	}

	// Remote failure surfaces the remote stderr.
	must(t, os.WriteFile(filepath.Join(remote, "afile"), []byte("x"), 0o644))
	err := copyToRemote(ctx, e.conn(), mustSource(t, resource.NewArchiveProperty(da)), filepath.Join(remote, "afile"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "exists and is not a directory") {
		t.Fatalf("got %v", err)
	}

	// CopyFile (deprecated) works too.
	urn = "urn:pulumi:dev::proj::command:remote:CopyFile::cf"
	props := resource.PropertyMap{"connection": e.connProps(), "localPath": str(filepath.Join(local, "app.sh")),
		"remotePath": str(filepath.Join(remote, "copied.sh"))}
	chk, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, News: wire(t, props)})
	must(t, err)
	_, err = p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs})
	must(t, err)
	readFile(t, filepath.Join(remote, "copied.sh"))
}

func mustSource(t *testing.T, v resource.PropertyValue) *copySource {
	s, err := sourceFromValue(v)
	must(t, err)
	return s
}

func TestSSHProviderLifecycle(t *testing.T) {
	e := sshTestEnv(t)
	ctx := context.Background()
	p := newProvider(nil)
	dir := t.TempDir()
	logf := filepath.Join(dir, "ops.log")
	urn := "urn:pulumi:dev::proj::command:remote:Command::rc"
	props := resource.PropertyMap{
		"connection":  e.connProps(),
		"create":      str("echo \"create $NAME\" | tee -a " + shellQuote(logf)),
		"delete":      str("echo \"delete prev=$PULUMI_COMMAND_STDOUT\" >> " + shellQuote(logf)),
		"environment": obj(resource.PropertyMap{"NAME": secret(str("world"))}),
		"stdin":       secret(str("secret stdin")),
		"triggers":    resource.NewArrayProperty([]resource.PropertyValue{str("t1")}),
	}
	chk, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: urn, News: wire(t, props)})
	must(t, err)
	if len(chk.Failures) > 0 {
		t.Fatal(chk.Failures)
	}
	prev, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs, Preview: true})
	must(t, err)
	if !unwire(t, prev.Properties)["stdout"].IsComputed() {
		t.Fatal("preview stdout should be unknown")
	}
	cr, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: urn, Properties: chk.Inputs})
	must(t, err)
	st := unwire(t, cr.Properties)
	if st["stdout"].StringValue() != "create world" {
		t.Fatalf("stdout %v", st["stdout"])
	}
	if !st["connection"].IsSecret() || !st["stdin"].IsSecret() || !st["environment"].ObjectValue()["NAME"].IsSecret() {
		t.Fatal("secret inputs must stay secret in the state")
	}

	// Update: no update command => create runs again, with the previous output in the environment.
	n := unwire(t, chk.Inputs)
	n["create"] = str("echo \"recreate prev=$PULUMI_COMMAND_STDOUT\" | tee -a " + shellQuote(logf))
	d, err := p.Diff(ctx, &pulumirpc.DiffRequest{Urn: urn, Olds: cr.Properties, OldInputs: chk.Inputs, News: wire(t, n)})
	must(t, err)
	if d.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(d.Replaces) != 0 {
		t.Fatalf("diff %v", d)
	}
	up, err := p.Update(ctx, &pulumirpc.UpdateRequest{Urn: urn, Olds: cr.Properties, News: wire(t, n)})
	must(t, err)
	st = unwire(t, up.Properties)
	if st["stdout"].StringValue() != "recreate prev=create world" {
		t.Fatalf("stdout %v", st["stdout"])
	}
	_, err = p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: urn, Id: cr.Id, Properties: up.Properties})
	must(t, err)
	if got := readFile(t, logf); got != "create world\nrecreate prev=create world\ndelete prev=recreate prev=create world\n" {
		t.Fatalf("log %q", got)
	}
}
