package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
)

var defaultInterpreter = []string{"/bin/sh", "-c"}

// runLocal runs a command on this machine: interpreter... command, in dir, with the provider's environment plus
// req.Env.
func runLocal(ctx context.Context, interpreter []string, dir string, req execRequest) (string, string, error) {
	if len(interpreter) == 0 {
		interpreter = defaultInterpreter
	}
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return "", "", fmt.Errorf("%s command: dir: %w", req.What, err)
		} else if !fi.IsDir() {
			return "", "", fmt.Errorf("%s command: dir: %s is not a directory", req.What, dir)
		}
	}
	args := append(append([]string{}, interpreter[1:]...), req.Command)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for _, e := range req.Env {
		cmd.Env = append(cmd.Env, e.Key+"="+e.Value)
	}
	if req.Stdin != nil {
		cmd.Stdin = strings.NewReader(*req.Stdin)
	}
	c := newCapture(req.Logging, req.Sink, req.Redact)
	cmd.Stdout = c.StdoutWriter()
	cmd.Stderr = c.StderrWriter()
	// Own process group, so that cancellation reaches the command's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 10 * time.Second

	err := cmd.Run()
	c.Flush()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() && ctx.Err() == nil {
		// The command succeeded but left a background process holding its output open; don't hang on it.
		err = nil
	}
	if err != nil {
		var execErr *exec.Error
		var pathErr *fs.PathError
		if errors.As(err, &execErr) || (errors.As(err, &pathErr) && cmd.ProcessState == nil) {
			return "", "", fmt.Errorf("%s command: cannot start %s: %v", req.What, interpreter[0], err)
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return "", "", commandError(req.What+" command", err, c, req.Logging, req.Redact)
	}
	stdout, stderr := c.Results()
	return stdout, stderr, nil
}

// ---- assetPaths / archivePaths ----

// globToRegexp translates the gobwas/glob syntax used by upstream (separator '/'): `**` matches anything,
// `*` anything but '/', `?` one non-'/' character, `[...]`/`[!...]` character classes, `{a,b}` alternatives,
// `\` escapes.
func globToRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	depth := 0
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch r {
		case '*':
			if i+1 < len(rs) && rs[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			j := i + 1
			if j < len(rs) && rs[j] == '!' {
				j++
			}
			if j < len(rs) && rs[j] == ']' {
				j++
			}
			for j < len(rs) && rs[j] != ']' {
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated character class in %q", pattern)
			}
			class := string(rs[i+1 : j])
			neg := strings.HasPrefix(class, "!")
			class = strings.TrimPrefix(class, "!")
			class = strings.ReplaceAll(class, `\`, `\\`)
			class = strings.ReplaceAll(class, "[", `\[`)
			if neg {
				b.WriteString("[^/" + class + "]")
			} else {
				b.WriteString("[" + class + "]")
			}
			i = j
		case '{':
			depth++
			b.WriteString("(?:")
		case '}':
			if depth == 0 {
				b.WriteString(`\}`)
			} else {
				depth--
				b.WriteString(")")
			}
		case ',':
			if depth > 0 {
				b.WriteString("|")
			} else {
				b.WriteString(",")
			}
		case '\\':
			if i+1 < len(rs) {
				i++
				b.WriteString(regexp.QuoteMeta(string(rs[i])))
			} else {
				b.WriteString(`\\`)
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced braces in %q", pattern)
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

type globRule struct {
	exclude bool
	re      *regexp.Regexp
}

// matchGlobs returns the files (not directories) below dir, as '/'-separated relative paths, selected by the
// ordered include/!exclude rules: the last matching rule decides.
func matchGlobs(dir string, patterns []string) ([]string, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	var rules []globRule
	for _, p := range patterns {
		rule := globRule{}
		if strings.HasPrefix(p, "!") {
			rule.exclude = true
			p = p[1:]
		}
		p = strings.TrimPrefix(p, "./")
		re, err := globToRegexp(p)
		if err != nil {
			return nil, err
		}
		rule.re = re
		rules = append(rules, rule)
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return nil // broken links and links to directories are not files
		}
		include := false
		for _, r := range rules {
			if r.re.MatchString(rel) {
				include = !r.exclude
			}
		}
		if include {
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// collectAssets computes the `assets` and `archive` outputs of a local command.
func collectAssets(dir string, assetPaths, archivePaths []string, outs resource.PropertyMap) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if len(assetPaths) > 0 {
		files, err := matchGlobs(abs, assetPaths)
		if err != nil {
			return fmt.Errorf("assetPaths: %w", err)
		}
		m := resource.PropertyMap{}
		for _, f := range files {
			a, err := asset.FromPath(filepath.Join(abs, filepath.FromSlash(f)))
			if err != nil {
				return fmt.Errorf("assetPaths: %w", err)
			}
			m[resource.PropertyKey(f)] = resource.NewAssetProperty(a)
		}
		outs["assets"] = resource.NewObjectProperty(m)
	}
	if len(archivePaths) > 0 {
		files, err := matchGlobs(abs, archivePaths)
		if err != nil {
			return fmt.Errorf("archivePaths: %w", err)
		}
		members := map[string]any{}
		for _, f := range files {
			a, err := asset.FromPath(filepath.Join(abs, filepath.FromSlash(f)))
			if err != nil {
				return fmt.Errorf("archivePaths: %w", err)
			}
			members[f] = a
		}
		arch, err := archive.FromAssets(members)
		if err != nil {
			return fmt.Errorf("archivePaths: %w", err)
		}
		outs["archive"] = resource.NewArchiveProperty(arch)
	}
	return nil
}
