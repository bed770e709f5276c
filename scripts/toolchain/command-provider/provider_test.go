package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

func mustArchive(t *testing.T, p string) resource.PropertyValue {
	t.Helper()
	a, err := archive.FromPath(p)
	must(t, err)
	return resource.NewArchiveProperty(a)
}

func resourceArchive(a *archive.Archive) resource.PropertyValue {
	return resource.NewArchiveProperty(a)
}

func wire(t *testing.T, m resource.PropertyMap) *structpb.Struct {
	t.Helper()
	s, err := marshalProps(m)
	must(t, err)
	return s
}

func unwire(t *testing.T, s *structpb.Struct) resource.PropertyMap {
	t.Helper()
	m, err := unmarshalProps(s)
	must(t, err)
	return m
}

const localURN = "urn:pulumi:dev::proj::command:local:Command::c1"

// recordingSink collects log lines.
type recordingSink struct {
	mu    sync.Mutex
	lines []string
}

func (r *recordingSink) Status(m string) { r.mu.Lock(); r.lines = append(r.lines, m); r.mu.Unlock() }
func (r *recordingSink) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func TestProviderBasics(t *testing.T) {
	p := newProvider(nil)
	ctx := context.Background()
	info, err := p.GetPluginInfo(ctx, &emptypb.Empty{})
	must(t, err)
	if info.Version != "1.2.1" {
		t.Fatal(info.Version)
	}
	sch, err := p.GetSchema(ctx, &pulumirpc.GetSchemaRequest{})
	must(t, err)
	var parsed map[string]any
	must(t, jsonUnmarshal(sch.Schema, &parsed))
	if parsed["name"] != "command" || parsed["version"] != "1.2.1" {
		t.Fatal("bad schema header")
	}
	res := parsed["resources"].(map[string]any)
	for _, tok := range []string{tokRemoteCommand, tokCopyToRemote, tokLocalCommand, tokCopyFile} {
		if _, ok := res[tok]; !ok {
			t.Fatalf("schema lacks %s", tok)
		}
	}
	conf, err := p.Configure(ctx, &pulumirpc.ConfigureRequest{})
	must(t, err)
	if !conf.AcceptSecrets || !conf.AcceptResources || !conf.SupportsPreview {
		t.Fatal("bad configure response")
	}

	// Check reports a failure for a missing host and returns defaulted inputs.
	resp, err := p.Check(ctx, &pulumirpc.CheckRequest{
		Urn:  "urn:pulumi:dev::proj::command:remote:Command::r",
		News: wire(t, resource.PropertyMap{"connection": secret(obj(resource.PropertyMap{"user": str("u")}))}),
	})
	must(t, err)
	if len(resp.Failures) != 1 || resp.Failures[0].Property != "connection.host" {
		t.Fatalf("failures %v", resp.Failures)
	}
	in := unwire(t, resp.Inputs)
	if !in["connection"].IsSecret() || !in["addPreviousOutputInEnv"].BoolValue() {
		t.Fatalf("inputs %v", in)
	}
	if _, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: "urn:pulumi:dev::proj::command:remote:Nope::r"}); err == nil {
		t.Fatal("unknown type accepted")
	}
}

func TestLocalCommandLifecycle(t *testing.T) {
	p := newProvider(nil)
	ctx := context.Background()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")

	inputs := resource.PropertyMap{
		"create":      str(`echo "create $GREETING"; cat; echo err >&2; echo created >> log; echo out > out.txt`),
		"update":      str(`echo "update prev=[$PULUMI_COMMAND_STDOUT]"; echo updated >> log`),
		"delete":      str(`echo "delete prev=[$PULUMI_COMMAND_STDOUT]" >> log`),
		"environment": obj(resource.PropertyMap{"GREETING": str("hello")}),
		"stdin":       secret(str("from-stdin")),
		"dir":         str(dir),
		"assetPaths":  resource.NewArrayProperty([]resource.PropertyValue{str("*.txt")}),
	}
	chk, err := p.Check(ctx, &pulumirpc.CheckRequest{Urn: localURN, News: wire(t, inputs)})
	must(t, err)
	if len(chk.Failures) != 0 {
		t.Fatal(chk.Failures)
	}

	// Preview: nothing runs, outputs unknown.
	prev, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: localURN, Properties: chk.Inputs, Preview: true})
	must(t, err)
	po := unwire(t, prev.Properties)
	if !po["stdout"].IsComputed() || !po["stderr"].IsComputed() || !po["assets"].IsComputed() {
		t.Fatalf("preview outputs %v", po)
	}
	if _, err := os.Stat(log); err == nil {
		t.Fatal("preview ran the command")
	}

	cr, err := p.Create(ctx, &pulumirpc.CreateRequest{Urn: localURN, Properties: chk.Inputs})
	must(t, err)
	if !strings.HasPrefix(cr.Id, "c1") {
		t.Fatalf("id %q", cr.Id)
	}
	state := unwire(t, cr.Properties)
	if got := state["stdout"].StringValue(); got != "create hello\nfrom-stdin" {
		t.Fatalf("stdout %q", got)
	}
	if got := state["stderr"].StringValue(); got != "err" {
		t.Fatalf("stderr %q", got)
	}
	if !state["stdin"].IsSecret() {
		t.Fatal("stdin lost its secretness in the state")
	}
	assets := state["assets"].ObjectValue()
	if _, ok := assets["out.txt"]; !ok || len(assets) != 1 {
		t.Fatalf("assets %v", assets)
	}

	// Diff: change to update command => update; triggers => replace.
	news := chk.Inputs
	n2 := unwire(t, news)
	n2["update"] = str(`echo "update prev=[$PULUMI_COMMAND_STDOUT]"; echo updated >> log; true`)
	d, err := p.Diff(ctx, &pulumirpc.DiffRequest{Urn: localURN, Olds: cr.Properties, OldInputs: chk.Inputs, News: wire(t, n2)})
	must(t, err)
	if d.Changes != pulumirpc.DiffResponse_DIFF_SOME || len(d.Replaces) != 0 {
		t.Fatalf("diff %v", d)
	}
	n3 := unwire(t, news)
	n3["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{str("x")})
	d, err = p.Diff(ctx, &pulumirpc.DiffRequest{Urn: localURN, Olds: cr.Properties, OldInputs: chk.Inputs, News: wire(t, n3)})
	must(t, err)
	if len(d.Replaces) != 1 || d.Replaces[0] != "triggers" {
		t.Fatalf("diff %v", d)
	}

	up, err := p.Update(ctx, &pulumirpc.UpdateRequest{Urn: localURN, Olds: cr.Properties, News: wire(t, n2)})
	must(t, err)
	state = unwire(t, up.Properties)
	if got := state["stdout"].StringValue(); got != "update prev=[create hello\nfrom-stdin]" {
		t.Fatalf("update stdout %q", got)
	}

	_, err = p.Delete(ctx, &pulumirpc.DeleteRequest{Urn: localURN, Id: cr.Id, Properties: up.Properties})
	must(t, err)
	if got := readFile(t, log); got != "created\nupdated\ndelete prev=[update prev=[create hello\nfrom-stdin]]\n" {
		t.Fatalf("log %q", got)
	}

	// Read returns the state unchanged.
	rd, err := p.Read(ctx, &pulumirpc.ReadRequest{Urn: localURN, Id: cr.Id, Properties: up.Properties})
	must(t, err)
	if rd.Id != cr.Id || !unwire(t, rd.Properties).DeepEquals(state) {
		t.Fatal("read changed the state")
	}
	if _, ok := unwire(t, rd.Inputs)["stdout"]; ok {
		t.Fatal("derived inputs contain outputs")
	}
}

func TestLocalCommandFailure(t *testing.T) {
	ctx := context.Background()
	run := func(logging string, stdinSecret string) error {
		in := resource.PropertyMap{
			"create": str(`cat; echo "some output"; echo "bad thing happened" >&2; exit 3`),
			"stdin":  secret(str(stdinSecret)),
		}
		if logging != "" {
			in["logging"] = str(logging)
		}
		_, err := runCommandOp(ctx, tokLocalCommand, opCreate, in, nil, false, nopSink{})
		return err
	}
	err := run("", "topsecretvalue\n")
	if err == nil {
		t.Fatal("expected failure")
	}
	msg := err.Error()
	for _, want := range []string{"create command failed: exit status 3", "bad thing happened", "some output", "[secret]"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "topsecretvalue") {
		t.Fatalf("secret leaked into error: %q", msg)
	}
	msg = run("none", "x").Error()
	if msg != "create command failed: exit status 3" {
		t.Fatalf("logging none: %q", msg)
	}
	msg = run("stderr", "x").Error()
	if !strings.Contains(msg, "bad thing") || strings.Contains(msg, "some output") {
		t.Fatalf("logging stderr: %q", msg)
	}
}

func TestLocalLoggingAndInterpreter(t *testing.T) {
	ctx := context.Background()
	sink := &recordingSink{}
	in := resource.PropertyMap{
		"create":      str(`print("py-out"); import sys; print("py-err", file=sys.stderr)`),
		"interpreter": resource.NewArrayProperty([]resource.PropertyValue{str("python3"), str("-c")}),
		"logging":     str("stdout"),
	}
	outs, err := runCommandOp(ctx, tokLocalCommand, opCreate, in, nil, false, sink)
	if err != nil {
		t.Skipf("python3 not available: %v", err)
	}
	if outs["stdout"].StringValue() != "py-out" || outs["stderr"].StringValue() != "py-err" {
		t.Fatalf("outs %v", outs)
	}
	if got := sink.all(); got != "py-out" {
		t.Fatalf("logged %q", got)
	}

	// An update with neither update nor create keeps the old outputs.
	olds := resource.PropertyMap{"stdout": str("old"), "stderr": str("olderr")}
	outs, err = runCommandOp(ctx, tokLocalCommand, opUpdate, resource.PropertyMap{"delete": str("x")}, olds, false, sink)
	must(t, err)
	if outs["stdout"].StringValue() != "old" {
		t.Fatalf("outs %v", outs)
	}
	// addPreviousOutputInEnv=false hides the previous output.
	outs, err = runCommandOp(ctx, tokLocalCommand, opUpdate, resource.PropertyMap{
		"create":                 str(`echo "[${PULUMI_COMMAND_STDOUT-unset}]"`),
		"addPreviousOutputInEnv": resource.NewBoolProperty(false),
	}, olds, false, sink)
	must(t, err)
	if outs["stdout"].StringValue() != "[unset]" {
		t.Fatalf("outs %v", outs)
	}
}

func TestLocalStartErrors(t *testing.T) {
	_, _, err := runLocal(context.Background(), nil, "/nonexistent-dir", execRequest{What: "create", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "create command: dir: stat /nonexistent-dir") {
		t.Fatalf("got %v", err)
	}
	_, _, err = runLocal(context.Background(), []string{"no-such-interpreter", "-c"}, "", execRequest{What: "update", Command: "true"})
	if err == nil || !strings.Contains(err.Error(), "update command: cannot start no-such-interpreter") {
		t.Fatalf("got %v", err)
	}
}

func TestLocalRunInvoke(t *testing.T) {
	p := newProvider(nil)
	resp, err := p.Invoke(context.Background(), &pulumirpc.InvokeRequest{
		Tok:  tokLocalRun,
		Args: wire(t, resource.PropertyMap{"command": str("echo $X"), "environment": obj(resource.PropertyMap{"X": str("42")})}),
	})
	must(t, err)
	if got := unwire(t, resp.Return)["stdout"].StringValue(); got != "42" {
		t.Fatalf("stdout %q", got)
	}
	resp, err = p.Invoke(context.Background(), &pulumirpc.InvokeRequest{Tok: tokLocalRun, Args: wire(t, resource.PropertyMap{})})
	must(t, err)
	if len(resp.Failures) != 1 {
		t.Fatal("missing command not reported")
	}
}

func TestCancelStopsLocalCommand(t *testing.T) {
	p := newProvider(nil)
	ctx, cancel := p.opContext(context.Background(), 0.5) // custom timeout 0.5 s
	defer cancel()
	_, _, err := runLocal(ctx, nil, "", execRequest{What: "create", Command: "sleep 30"})
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("got %v", err)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func TestLocalBackgroundProcessDoesNotHang(t *testing.T) {
	if testing.Short() {
		t.Skip("takes WaitDelay (10 s)")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Cleanup(func() { // stop the background process started below
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	stdout, _, err := runLocal(context.Background(), nil, "", execRequest{What: "create",
		Command: "sleep 60 & echo $! > " + shellQuote(pidFile) + "; echo started"})
	if err != nil || stdout != "started" {
		t.Fatalf("%q %v", stdout, err)
	}
}
