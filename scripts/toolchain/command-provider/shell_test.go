package main

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	"golang.org/x/crypto/ssh"
)

var nasty = []string{
	"", "plain", "it's", "'", "''", `"double" $HOME $(id) ` + "`id`", "back\\slash", "new\nline",
	"tab\tand spaces  ", "*?[glob]", "-n", "ünïcödé ✓", "; rm -rf / #", "a'b'c'", "$'x'",
}

func TestShellQuoteRoundTrip(t *testing.T) {
	for _, s := range nasty {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+shellQuote(s)).Output()
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if string(out) != s {
			t.Fatalf("round trip of %q gave %q", s, out)
		}
	}
}

func TestRemoteScriptExports(t *testing.T) {
	var env []envEntry
	for i, s := range nasty {
		env = append(env, envEntry{Key: "V" + string(rune('A'+i)), Value: s})
	}
	var cmd strings.Builder
	for i := range nasty {
		cmd.WriteString(`printf '%s\0' "$V` + string(rune('A'+i)) + `"` + "\n")
	}
	script := remoteScript(env, cmd.String())
	// The script is what the remote login shell gets as `-c` argument.
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(nasty) {
		t.Fatalf("got %d values: %q", len(got), got)
	}
	for i := range nasty {
		if got[i] != nasty[i] {
			t.Fatalf("value %d: got %q want %q", i, got[i], nasty[i])
		}
	}
	if remoteScript(nil, "echo x") != "echo x" {
		t.Fatal("without env the command must be sent unchanged")
	}
	// Exported variables reach child processes.
	out, err = exec.Command("/bin/sh", "-c", remoteScript([]envEntry{{"FOO", "bar"}}, "sh -c 'echo $FOO'")).Output()
	if err != nil || string(out) != "bar\n" {
		t.Fatalf("child env: %q %v", out, err)
	}
}

// runCopyScriptLocally executes the CopyToRemote script with /bin/sh in a fake $HOME, like sshd would.
func runCopyScriptLocally(t *testing.T, home string, src *copySource, remotePath string) (string, error) {
	t.Helper()
	data, err := src.open()
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	cmd := exec.Command("/bin/sh", "-c", "sh -c "+shellQuote(copyScript(src, remotePath)))
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Stdin = data
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	return stderr.String(), err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCopyScripts(t *testing.T) {
	local := t.TempDir()
	home := t.TempDir()
	// Source file (executable) and source directory with nested files, a symlink and an odd name.
	f := filepath.Join(local, "run me.sh")
	if err := os.WriteFile(f, []byte("#!/bin/sh\necho hi\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(local, "pay'load")
	must(t, os.MkdirAll(filepath.Join(d, "sub", "deeper"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "a.txt"), []byte("A"), 0o644))
	must(t, os.WriteFile(filepath.Join(d, "sub", "deeper", "b.txt"), []byte("B"), 0o600))
	must(t, os.Symlink("a.txt", filepath.Join(d, "link.txt")))
	must(t, os.Symlink(".", filepath.Join(d, "sub", "loop")))

	fileSrc, err := fileSource(f)
	must(t, err)

	// 1. File to a new path with missing parents.
	if msg, err := runCopyScriptLocally(t, home, fileSrc, "x/y/z.sh"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if got := readFile(t, filepath.Join(home, "x/y/z.sh")); got != "#!/bin/sh\necho hi\n" {
		t.Fatalf("content %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(home, "x/y/z.sh")); fi.Mode().Perm() != 0o750 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// 2. File into an existing directory, via ~/.
	must(t, os.MkdirAll(filepath.Join(home, "dir with space"), 0o755))
	if msg, err := runCopyScriptLocally(t, home, fileSrc, "~/dir with space"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	readFile(t, filepath.Join(home, "dir with space", "run me.sh"))
	// 3. Overwriting an existing file keeps its mode.
	must(t, os.WriteFile(filepath.Join(home, "keep.sh"), []byte("old"), 0o600))
	if msg, err := runCopyScriptLocally(t, home, fileSrc, filepath.Join(home, "keep.sh")); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if fi, _ := os.Stat(filepath.Join(home, "keep.sh")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode changed to %v", fi.Mode())
	}
	// 4. String asset.
	text := "line1\n'quoted' $x\n"
	strSrc := &copySource{kind: copyFile, desc: "string asset", text: &text}
	if msg, err := runCopyScriptLocally(t, home, strSrc, "etc/conf"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if got := readFile(t, filepath.Join(home, "etc/conf")); got != text {
		t.Fatalf("string asset %q", got)
	}
	if msg, err := runCopyScriptLocally(t, home, strSrc, "etc"); err == nil || !strings.Contains(msg, "is a directory") {
		t.Fatalf("string asset onto a directory must fail, got %v %q", err, msg)
	}
	// 5. Directory to a new path: the path becomes the copy.
	a := mustArchive(t, d)
	dirSrc, err := sourceFromValue(a)
	must(t, err)
	if dirSrc.kind != copyDir || dirSrc.name != "pay'load" {
		t.Fatalf("unexpected source %+v", dirSrc)
	}
	if msg, err := runCopyScriptLocally(t, home, dirSrc, "new/app"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if readFile(t, filepath.Join(home, "new/app/a.txt")) != "A" ||
		readFile(t, filepath.Join(home, "new/app/sub/deeper/b.txt")) != "B" ||
		readFile(t, filepath.Join(home, "new/app/link.txt")) != "A" {
		t.Fatal("directory copy incomplete")
	}
	if fi, _ := os.Stat(filepath.Join(home, "new/app/sub/deeper/b.txt")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// 6. Directory into an existing directory: copied below it under its own name.
	if msg, err := runCopyScriptLocally(t, home, dirSrc, "new"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	readFile(t, filepath.Join(home, "new/pay'load/sub/deeper/b.txt"))
	// 7. Directory onto a file fails.
	if msg, err := runCopyScriptLocally(t, home, dirSrc, "keep.sh"); err == nil || !strings.Contains(msg, "not a directory") {
		t.Fatalf("dir onto file must fail, got %v %q", err, msg)
	}
	// 8. Asset archive: members extracted below the path.
	t1, _ := asset.FromText("one")
	t2, _ := asset.FromText("two")
	aa, err := archive.FromAssets(map[string]any{"x/1.txt": t1, "2.txt": t2})
	must(t, err)
	aaSrc, err := sourceFromValue(resourceArchive(aa))
	must(t, err)
	if msg, err := runCopyScriptLocally(t, home, aaSrc, "bundle"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	if readFile(t, filepath.Join(home, "bundle/x/1.txt")) != "one" || readFile(t, filepath.Join(home, "bundle/2.txt")) != "two" {
		t.Fatal("asset archive copy incomplete")
	}
	// 9. A .tar FileArchive is copied as a file, not unpacked.
	tarPath := filepath.Join(local, "b.tar")
	tf, err := os.Create(tarPath)
	must(t, err)
	must(t, writeDirTar(tf, d))
	tf.Close()
	tarSrc, err := sourceFromValue(mustArchive(t, tarPath))
	must(t, err)
	if tarSrc.kind != copyFile {
		t.Fatalf("tar archive should be copied as a file: %+v", tarSrc)
	}
	if msg, err := runCopyScriptLocally(t, home, tarSrc, "bundle"); err != nil {
		t.Fatalf("%v: %s", err, msg)
	}
	readFile(t, filepath.Join(home, "bundle/b.tar"))
}

func TestWriteDirTarNames(t *testing.T) {
	d := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(d, "s"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "s", "f"), []byte("x"), 0o644))
	var buf bytes.Buffer
	must(t, writeDirTar(&buf, d))
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Fatalf("ownership leaked into tar: %+v", h)
		}
	}
	if strings.Join(names, ",") != "s/,s/f" {
		t.Fatalf("names %v", names)
	}
}

func TestParseHostKeys(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	edKey, err := ssh.NewPublicKey(pub)
	must(t, err)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(edKey)))
	b64 := base64.StdEncoding.EncodeToString(edKey.Marshal())
	for _, in := range []string{
		line,
		line + " root@server",
		"  " + line + "  \n",
		"[127.0.0.1]:2222 " + line,
		"server.example,10.0.0.1 " + line + " comment",
		"|1|abcdefghijklmnopqrstuvwxyz0=|abcdefghijklmnopqrstuvwxyz0= " + line,
		b64,
	} {
		keys, err := parseHostKeys(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if len(keys) != 1 || !bytes.Equal(keys[0].Marshal(), edKey.Marshal()) {
			t.Fatalf("%q: wrong key", in)
		}
	}
	if _, err := parseHostKeys("ssh-ed25519 not-base64!"); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := parseHostKeys("\n# only a comment\n"); err == nil {
		t.Fatal("empty accepted")
	}

	// Mismatch error names host:port and both fingerprints.
	pub2, _, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewPublicKey(pub2)
	cb := hostKeyCallback("10.0.0.1:22", []ssh.PublicKey{edKey})
	if err := cb("x", nil, edKey); err != nil {
		t.Fatal(err)
	}
	err = cb("x", nil, other)
	want := "host key mismatch for 10.0.0.1:22: expected " + ssh.FingerprintSHA256(edKey) + ", got " + ssh.FingerprintSHA256(other)
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}

	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	rsaKey, _ := ssh.NewPublicKey(&rsaPriv.PublicKey)
	algos := hostKeyAlgorithms([]ssh.PublicKey{rsaKey, edKey})
	if strings.Join(algos, ",") != "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-ed25519" {
		t.Fatalf("algos %v", algos)
	}
}

func TestGlobs(t *testing.T) {
	d := t.TempDir()
	for _, f := range []string{"assets/logos/logo.svg", "src/index.js", "src/secret.js", "src/lib/x.js", "top.txt", "b.txt"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(d, f)), 0o755))
		must(t, os.WriteFile(filepath.Join(d, f), []byte(f), 0o644))
	}
	check := func(patterns []string, want string) {
		t.Helper()
		got, err := matchGlobs(d, patterns)
		must(t, err)
		sort.Strings(got)
		if strings.Join(got, ",") != want {
			t.Fatalf("%v: got %v want %s", patterns, got, want)
		}
	}
	// The example from the upstream documentation.
	check([]string{"assets/**", "src/**.js", "!**secret.*"}, "assets/logos/logo.svg,src/index.js,src/lib/x.js")
	check([]string{"*.txt"}, "b.txt,top.txt")
	check([]string{"src/*.js"}, "src/index.js,src/secret.js")
	check([]string{"{top,b}.txt"}, "b.txt,top.txt")
	check([]string{"[tb]*.txt", "!b*"}, "top.txt")
	check([]string{"!top.txt", "top.txt"}, "top.txt") // order matters
	check([]string{"**"}, "assets/logos/logo.svg,b.txt,src/index.js,src/lib/x.js,src/secret.js,top.txt")
	check(nil, "")
	if _, err := matchGlobs(d, []string{"[abc"}); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

func TestTailAndErrors(t *testing.T) {
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, strings.Repeat("x", 10))
	}
	got := tail(strings.Join(lines, "\n") + "\n")
	if n := len(strings.Split(got, "\n")); n != tailLines+1 {
		t.Fatalf("tail has %d lines", n)
	}
	if len(tail(strings.Repeat("y", 100000))) > tailBytes+10 {
		t.Fatal("tail not bounded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
