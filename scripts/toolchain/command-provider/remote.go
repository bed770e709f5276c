package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// shellQuote quotes s for a POSIX shell: 'it'\”s'.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// remoteScript prepends `export K='v'` lines to the command. Environment variables are not sent with the ssh
// "env" request because most sshd configurations only accept a few (AcceptEnv); exporting them in the command
// text works with any POSIX login shell.
func remoteScript(env []envEntry, command string) string {
	if len(env) == 0 {
		return command
	}
	var b strings.Builder
	for _, e := range env {
		b.WriteString("export ")
		b.WriteString(e.Key)
		b.WriteByte('=')
		b.WriteString(shellQuote(e.Value))
		b.WriteByte('\n')
	}
	b.WriteString(command)
	return b.String()
}

// execRequest is one command execution.
type execRequest struct {
	What    string // "create", "update", "delete" – used in error messages
	Command string
	Env     []envEntry
	Stdin   *string
	Logging loggingMode
	Sink    logSink
	Redact  *redactor
}

// runRemote runs a command on the remote host and returns its (cleaned) stdout and stderr.
func runRemote(ctx context.Context, conn *connSpec, req execRequest) (string, string, error) {
	client, err := conn.connect(ctx, req.Sink)
	if err != nil {
		return "", "", fmt.Errorf("%s: %s", req.What, req.Redact.apply(err.Error()))
	}
	defer client.Close()

	c := newCapture(req.Logging, req.Sink, req.Redact)
	var stdin io.Reader
	if req.Stdin != nil {
		stdin = strings.NewReader(*req.Stdin)
	}
	err = runSession(ctx, client, remoteScript(req.Env, req.Command), stdin, c.StdoutWriter(), c.StderrWriter(), true)
	c.Flush()
	if err != nil {
		return "", "", commandError(req.What+" command", err, c, req.Logging, req.Redact)
	}
	stdout, stderr := c.Results()
	return stdout, stderr, nil
}

// runSession runs one command in a new session of client; cancelling ctx signals and closes the session.
// With ignoreStdinErr, a failure to deliver stdin to a command that exited successfully without reading all of it
// is not an error.
func runSession(ctx context.Context, client *sshConn, command string, stdin io.Reader, stdout, stderr io.Writer,
	ignoreStdinErr bool,
) error {
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("opening ssh session: %w", err)
	}
	defer sess.Close()
	sess.Stdin = stdin
	sess.Stdout = stdout
	sess.Stderr = stderr
	if err := sess.Start(command); err != nil {
		return fmt.Errorf("starting remote command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		if err != nil && ignoreStdinErr {
			var exitErr *ssh.ExitError
			var missing *ssh.ExitMissingError
			if !errors.As(err, &exitErr) && !errors.As(err, &missing) {
				return nil // exit status 0; only the stdin copy failed
			}
		}
		return err
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		_ = sess.Close()
		_ = client.Close()
		<-done
		return ctx.Err()
	}
}
