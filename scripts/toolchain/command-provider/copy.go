package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
)

type copyKind int

const (
	copyFile   copyKind = iota // a single file (FileAsset, StringAsset, FileArchive of a file, CopyFile)
	copyDir                    // a local directory (FileArchive of a directory), copied recursively
	copyAssets                 // an AssetArchive: its members are extracted below remotePath
)

// copySource is what CopyToRemote/CopyFile upload.
type copySource struct {
	kind   copyKind
	desc   string // for messages
	name   string // base name, used when the remote path is an existing directory ("" for StringAsset)
	mode   os.FileMode
	text   *string          // StringAsset contents
	path   string           // local file or directory
	assets *archive.Archive // AssetArchive
}

// fileURIPath returns the local path of a file:// URI.
func fileURIPath(uri string) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", false
	}
	return u.Path, true
}

// sourceFromValue interprets the `source` input (an asset or an archive).
func sourceFromValue(v resource.PropertyValue) (*copySource, error) {
	v = unsecret(v)
	switch {
	case v.IsAsset():
		a := v.AssetValue()
		switch {
		case a.IsPath():
			return fileSource(a.Path)
		case a.IsURI():
			if p, ok := fileURIPath(a.URI); ok {
				return fileSource(p)
			}
			return nil, fmt.Errorf("source: remote assets (%s) are not supported; use a FileAsset or StringAsset", a.URI)
		default:
			text := a.Text
			return &copySource{kind: copyFile, desc: "string asset", text: &text}, nil
		}
	case v.IsArchive():
		a := v.ArchiveValue()
		p := ""
		switch {
		case a.IsPath():
			p = a.Path
		case a.IsURI():
			var ok bool
			if p, ok = fileURIPath(a.URI); !ok {
				return nil, fmt.Errorf("source: remote archives (%s) are not supported; use a FileArchive", a.URI)
			}
		default:
			return &copySource{kind: copyAssets, desc: "asset archive", assets: a}, nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		if fi.IsDir() {
			return &copySource{kind: copyDir, desc: p, name: filepath.Base(filepath.Clean(p)), path: p}, nil
		}
		// Archive files (.tgz, .zip, …) are copied as they are, not unpacked (upstream semantics).
		return fileSource(p)
	}
	return nil, fmt.Errorf("source must be an asset or an archive, got %s", typeName(v))
}

func fileSource(p string) (*copySource, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("source: %s is a directory; use a FileArchive to copy a directory", p)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("source: %s is not a regular file", p)
	}
	return &copySource{kind: copyFile, desc: p, name: filepath.Base(p), mode: fi.Mode().Perm(), path: p}, nil
}

// remotePathExpr renders a remote path for the shell: quoted, with a leading "~/" expanded to $HOME and a
// leading "-" neutralised.
func remotePathExpr(p string) string {
	switch {
	case p == "~":
		return `"$HOME"`
	case strings.HasPrefix(p, "~/"):
		return `"$HOME"/` + shellQuote(strings.TrimPrefix(p, "~/"))
	case strings.HasPrefix(p, "-"):
		return shellQuote("./" + p)
	}
	return shellQuote(p)
}

// copyScript is the POSIX sh script run remotely (via `sh -c`) that receives the data on stdin. It is a single
// line so that it survives any login shell's quoting rules.
func copyScript(src *copySource, remotePath string) string {
	dst := "dst=" + remotePathExpr(remotePath)
	switch src.kind {
	case copyDir:
		return dst + `; if [ -d "$dst" ]; then dst="$dst"/` + shellQuote(src.name) + `; ` +
			`elif [ -e "$dst" ]; then echo "cannot copy a directory to $dst: it exists and is not a directory" >&2; exit 1; fi; ` +
			`mkdir -p "$dst" && tar -x -f - -C "$dst"`
	case copyAssets:
		return dst + `; mkdir -p "$dst" && tar -x -f - -C "$dst"`
	}
	var into string
	if src.name != "" {
		into = `dst="$dst"/` + shellQuote(src.name) + `; `
	} else {
		into = `echo "cannot write a string asset to $dst: it is a directory" >&2; exit 1; `
	}
	write := `cat > "$dst"`
	if src.mode != 0 {
		// New files get the local file's permissions; existing files keep theirs.
		write = fmt.Sprintf(`if [ -e "$dst" ]; then cat > "$dst"; else cat > "$dst" && chmod %04o "$dst"; fi`, src.mode)
	}
	return dst + `; if [ -d "$dst" ]; then ` + into + `else mkdir -p "$(dirname "$dst")" || exit 1; fi; ` + write
}

// open returns the byte stream that the remote script expects on stdin. Local errors surface before anything
// is started remotely where possible.
func (src *copySource) open() (io.ReadCloser, error) {
	switch src.kind {
	case copyFile:
		if src.text != nil {
			return io.NopCloser(strings.NewReader(*src.text)), nil
		}
		return os.Open(src.path)
	case copyDir:
		if _, err := os.ReadDir(src.path); err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeDirTar(pw, src.path)) }()
		return pr, nil
	case copyAssets:
		rd, err := src.assets.Open()
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			defer rd.Close()
			pw.CloseWithError(writeArchiveTar(pw, rd))
		}()
		return pr, nil
	}
	return nil, errors.New("unknown source kind")
}

// writeDirTar writes the contents of root as a tar stream (names relative to root). Symbolic links are followed
// (like scp -r); directory cycles are skipped; special files are ignored.
func writeDirTar(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	visited := map[string]bool{}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		visited[real] = true
	}
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			name := path.Join(rel, e.Name())
			fi, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
			switch {
			case fi.IsDir():
				real, err := filepath.EvalSymlinks(p)
				if err != nil {
					return err
				}
				if visited[real] {
					continue
				}
				visited[real] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/",
					Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}); err != nil {
					return err
				}
				if err := walk(p, name); err != nil {
					return err
				}
			case fi.Mode().IsRegular():
				if err := writeTarFile(tw, name, p, fi); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(root, ""); err != nil {
		return err
	}
	return tw.Close()
}

func writeTarFile(tw *tar.Writer, name, p string, fi os.FileInfo) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: fi.Size(),
		Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(tw, f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if n != fi.Size() {
		return fmt.Errorf("%s changed size while being copied", p)
	}
	return nil
}

// writeArchiveTar converts the members of a Pulumi archive into a tar stream.
func writeArchiveTar(w io.Writer, rd archive.Reader) error {
	tw := tar.NewWriter(w)
	for {
		name, blob, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := writeBlob(tw, name, blob); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeBlob(tw *tar.Writer, name string, blob *asset.Blob) error {
	defer blob.Close()
	size := blob.Size()
	if size < 0 {
		data, err := io.ReadAll(blob)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644,
			Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644,
		Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := io.Copy(tw, blob)
	return err
}

// copyToRemote uploads src to remotePath over one ssh session (no sftp needed on the server).
func copyToRemote(ctx context.Context, conn *connSpec, src *copySource, remotePath string, sink logSink,
	red *redactor,
) error {
	if sink == nil {
		sink = nopSink{}
	}
	data, err := src.open()
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer data.Close()

	client, err := conn.connect(ctx, sink)
	if err != nil {
		return fmt.Errorf("copy: %s", red.apply(err.Error()))
	}
	defer client.Close()

	sink.Status(fmt.Sprintf("copying %s to %s:%s", src.desc, conn.Host, remotePath))
	var stdout, stderr syncBuffer
	err = runSession(ctx, client, "sh -c "+shellQuote(copyScript(src, remotePath)), data, &stdout, &stderr, false)
	if err != nil {
		msg := fmt.Sprintf("copying %s to %s:%s failed: %s", src.desc, conn.Host, remotePath, describeExit(err))
		if s := strings.TrimSpace(strings.ToValidUTF8(stderr.String(), "\uFFFD")); s != "" {
			msg += "\nstderr:\n" + tail(s)
		}
		return errors.New(red.apply(msg))
	}
	return nil
}
