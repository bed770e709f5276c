package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// logSink receives progress/output lines for one resource operation.
type logSink interface {
	Status(msg string) // ephemeral info line shown next to the resource
}

type nopSink struct{}

func (nopSink) Status(string) {}

// ---- logging mode ----

type loggingMode string

func (m loggingMode) stdout() bool {
	return m == "" || m == "stdout" || m == "stdoutAndStderr"
}

func (m loggingMode) stderr() bool {
	return m == "" || m == "stderr" || m == "stdoutAndStderr"
}

// ---- secret redaction ----

const minRedactLen = 4

// redactor replaces known secret strings by "[secret]" in anything we log or put in an error message.
type redactor struct{ secrets []string }

func newRedactor(secrets []string) *redactor {
	seen := map[string]bool{}
	var list []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		if len(s) >= minRedactLen && !seen[s] {
			seen[s] = true
			list = append(list, s)
		}
	}
	for _, s := range secrets {
		add(s)
		if strings.Contains(s, "\n") { // multi-line secrets (keys, certificates) show up line by line
			for _, line := range strings.Split(s, "\n") {
				add(line)
			}
		}
	}
	// Longest first, so that a secret containing another is replaced as a whole.
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	return &redactor{secrets: list}
}

func (r *redactor) apply(s string) string {
	if r == nil {
		return s
	}
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[secret]")
		}
	}
	return s
}

// ---- line streaming ----

// lineWriter forwards complete lines to emit; Flush emits a trailing partial line.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func(string)
}

const maxLogLine = 16 * 1024

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) > maxLogLine {
				w.emit(string(w.buf))
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.emit(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// asyncSink decouples the command's output streams from the engine round trips: lines are queued (in order,
// none dropped) and sent by one goroutine.
type asyncSink struct {
	ch   chan string
	done chan struct{}
}

func newAsyncSink(sink logSink) *asyncSink {
	a := &asyncSink{ch: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for m := range a.ch {
			sink.Status(m)
		}
	}()
	return a
}

func (a *asyncSink) Status(m string) { a.ch <- m }

// Close sends the queued lines and stops the goroutine.
func (a *asyncSink) Close() {
	close(a.ch)
	<-a.done
}

// capture collects stdout and stderr of one command and streams them to the sink, honouring the logging mode.
type capture struct {
	stdout, stderr       syncBuffer
	stdoutLog, stderrLog *lineWriter
	async                *asyncSink
}

func newCapture(mode loggingMode, sink logSink, red *redactor) *capture {
	c := &capture{}
	if sink == nil || !(mode.stdout() || mode.stderr()) {
		return c
	}
	c.async = newAsyncSink(sink)
	emit := func(l string) { c.async.Status(red.apply(l)) }
	if mode.stdout() {
		c.stdoutLog = &lineWriter{emit: emit}
	}
	if mode.stderr() {
		c.stderrLog = &lineWriter{emit: emit}
	}
	return c
}

type multiW struct {
	a *syncBuffer
	b *lineWriter
}

func (m multiW) Write(p []byte) (int, error) {
	n, err := m.a.Write(p)
	if m.b != nil {
		_, _ = m.b.Write(p)
	}
	return n, err
}

func (c *capture) StdoutWriter() multiW { return multiW{&c.stdout, c.stdoutLog} }
func (c *capture) StderrWriter() multiW { return multiW{&c.stderr, c.stderrLog} }

// Flush emits partial last lines and waits until everything was sent; call it once, when the command is done.
func (c *capture) Flush() {
	if c.stdoutLog != nil {
		c.stdoutLog.Flush()
	}
	if c.stderrLog != nil {
		c.stderrLog.Flush()
	}
	if c.async != nil {
		c.async.Close()
		c.async = nil
	}
}

// Results returns stdout and stderr as stored in the outputs: valid UTF-8, one trailing newline trimmed.
func (c *capture) Results() (string, string) {
	return cleanOutput(c.stdout.String()), cleanOutput(c.stderr.String())
}

func cleanOutput(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// ---- errors ----

const (
	tailLines = 60
	tailBytes = 8192
)

// tail returns the last lines of s (bounded in lines and bytes).
func tail(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > tailBytes {
		s = s[len(s)-tailBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = "…" + s
	}
	lines := strings.Split(s, "\n")
	if len(lines) > tailLines {
		lines = append([]string{"…"}, lines[len(lines)-tailLines:]...)
	}
	return strings.Join(lines, "\n")
}

// describeExit turns the error of a finished command into "exit status N" & co.
func describeExit(err error) string {
	var sshExit *ssh.ExitError
	var sshMissing *ssh.ExitMissingError
	var execExit *exec.ExitError
	switch {
	case errors.As(err, &sshExit):
		if sig := sshExit.Signal(); sig != "" {
			return fmt.Sprintf("killed by signal %s", sig)
		}
		return fmt.Sprintf("exit status %d", sshExit.ExitStatus())
	case errors.As(err, &sshMissing):
		return "the remote command exited without reporting an exit status (connection lost?)"
	case errors.As(err, &execExit):
		if ws, ok := execExit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("killed by signal %s", ws.Signal())
		}
		return fmt.Sprintf("exit status %d", execExit.ExitCode())
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return err.Error()
}

// commandError builds the error for a failed command: its exit status plus the tail of the streams that the
// logging mode allows to be shown, with known secrets redacted.
func commandError(what string, err error, c *capture, mode loggingMode, red *redactor) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed: %s", what, describeExit(err))
	stdout, stderr := c.stdout.String(), c.stderr.String()
	if mode.stderr() && strings.TrimSpace(stderr) != "" {
		fmt.Fprintf(&b, "\nstderr:\n%s", tail(strings.ToValidUTF8(stderr, "\uFFFD")))
	}
	if mode.stdout() && strings.TrimSpace(stdout) != "" {
		fmt.Fprintf(&b, "\nstdout:\n%s", tail(strings.ToValidUTF8(stdout, "\uFFFD")))
	}
	return errors.New(red.apply(b.String()))
}
