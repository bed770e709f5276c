// Command pulumi-language-nodejs is a small Node.js language host for the Pulumi CLI.
//
// Why it exists: the official host lives in its own Go module
// (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3), which the Go module proxy
// reachable from this workplace does not serve, and the official installer is unreachable. This
// host implements the part of the LanguageRuntime protocol that `pulumi preview/up/destroy/refresh`
// use: it runs the program with the run script that ships in the @pulumi/pulumi npm package, exactly
// as the official host does, and reports the resource plugins the program's npm dependencies need.
// Users with the official Pulumi CLI never run this: the CLI brings its own host.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/grpc"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is stamped at build time (-X main.version=...).
var version = "3.259.0"

// exitAfterUserMessage is the exit code @pulumi/pulumi's run script uses when it has already
// printed an actionable error: the engine should stop without adding its own message.
const exitAfterUserMessage = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
}

func main() {
	h := &host{}
	// The CLI starts us as `pulumi-language-nodejs [flags] ENGINE_ADDRESS`; flags we don't use
	// (-root, -tracing, logging flags) are ignored.
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-") {
			h.engineAddress = a
		}
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "could not start the language host: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port) // the CLI reads our port from the first line of stdout
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "language host stopped: %v\n", err)
		os.Exit(1)
	}
}

func (h *host) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// GetRequiredPackages lists the resource plugins named by the program's direct npm dependencies
// (a package.json with "pulumi": {"resource": true, "name", "version"}).
func (h *host) GetRequiredPackages(_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := resourcePlugins(req.GetInfo().GetProgramDirectory())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := resourcePlugins(req.GetInfo().GetProgramDirectory())
	if err != nil {
		return nil, err
	}
	var plugins []*pulumirpc.PluginDependency
	for _, d := range deps {
		plugins = append(plugins, &pulumirpc.PluginDependency{Name: d.Name, Kind: d.Kind, Version: d.Version})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

type packageJSON struct {
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
	Pulumi          struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

func readPackageJSON(path string) (*packageJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p packageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// nearestPackageDir is dir or the closest parent with a package.json (a program may live in a
// sub-folder of its npm project).
func nearestPackageDir(dir string) (string, bool) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "package.json")); err == nil {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

func resourcePlugins(programDir string) ([]*pulumirpc.PackageDependency, error) {
	dir, ok := nearestPackageDir(programDir)
	if !ok {
		return nil, nil
	}
	root, err := readPackageJSON(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the program's package.json: %w", err)
	}
	names := make([]string, 0, len(root.Dependencies)+len(root.DevDependencies))
	for n := range root.Dependencies {
		names = append(names, n)
	}
	for n := range root.DevDependencies {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*pulumirpc.PackageDependency
	for _, n := range names {
		p, err := readPackageJSON(filepath.Join(dir, "node_modules", n, "package.json"))
		if errors.Is(err, os.ErrNotExist) {
			continue // not installed: `npm ci` will tell the user
		} else if err != nil {
			return nil, err
		}
		if !p.Pulumi.Resource || p.Pulumi.Name == "" {
			continue
		}
		out = append(out, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Pulumi.Name, Version: strings.TrimPrefix(p.Pulumi.Version, "v"),
			Server: p.Pulumi.Server,
		})
	}
	return out, nil
}

// Run executes the program: `node <@pulumi/pulumi>/cmd/run --monitor ADDR ... ENTRYPOINT`, with
// config passed in the environment, like the official host.
func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	dir := info.GetProgramDirectory()
	if dir == "" {
		dir = req.GetPwd()
	}
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	opts := info.GetOptions().AsMap()

	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on the PATH: " + err.Error()}, nil
	}
	locate := exec.CommandContext(ctx, nodeBin, "-e", "process.stdout.write(require.resolve('@pulumi/pulumi/cmd/run'))")
	locate.Dir = dir
	runPath, err := locate.Output()
	if err != nil {
		return &pulumirpc.RunResponse{Error: "the Pulumi SDK is not installed in " + dir + ": run `npm ci` first"}, nil
	}

	args := []string{}
	if s, ok := opts["nodeargs"].(string); ok && s != "" {
		args = append(args, strings.Fields(s)...)
	}
	args = append(args, string(runPath), "--monitor", req.GetMonitorAddress())
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("engine", h.engineAddress)
	add("organization", req.GetOrganization())
	add("project", req.GetProject())
	add("root-directory", info.GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", dir)
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	cfg, err := configJSON(req.GetConfig())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	secretKeys, _ := json.Marshal(append([]string{}, req.GetConfigSecretKeys()...))
	env := append(os.Environ(), "PULUMI_CONFIG="+cfg, "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if ts, ok := opts["typescript"].(bool); !ok || ts {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if p, ok := opts["tsconfig"].(string); ok && p != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+p)
	}

	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	// Wrap the writers: node may switch the blocking mode of file descriptors it is handed directly.
	cmd.Stdout = struct{ *os.File }{os.Stdout}
	cmd.Stderr = struct{ *os.File }{os.Stderr}
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: "could not run node: " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// configJSON renders config in the <package>:config:<name> form the Node.js SDK reads.
func configJSON(in map[string]string) (string, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		key, err := config.ParseKey(k)
		if err != nil {
			return "", err
		}
		out[key.Namespace()+":config:"+key.Name()] = v
	}
	b, err := json.Marshal(out)
	return string(b), err
}
