package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	sdkprovider "github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	providerName    = "command"
	providerVersion = "1.2.1"

	tokRemoteCommand = "command:remote:Command"
	tokCopyToRemote  = "command:remote:CopyToRemote"
	tokCopyFile      = "command:remote:CopyFile"
	tokLocalCommand  = "command:local:Command"
	tokLocalRun      = "command:local:run"
)

// commandProvider implements the pulumirpc.ResourceProvider service of pulumi-command 1.x.
type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer

	mu   sync.Mutex
	host *sdkprovider.HostClient

	cancelCtx context.Context
	cancelAll context.CancelFunc
}

func newProvider(host *sdkprovider.HostClient) *commandProvider {
	ctx, cancel := context.WithCancel(context.Background())
	return &commandProvider{host: host, cancelCtx: ctx, cancelAll: cancel}
}

// ---- plumbing ----

func (p *commandProvider) getHost() *sdkprovider.HostClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.host
}

// hostSink sends log lines to the engine, attached to a resource.
type hostSink struct {
	p   *commandProvider
	ctx context.Context
	urn resource.URN
}

// Status sends an ephemeral info message (shown next to the resource while it is being worked on).
func (s hostSink) Status(msg string) {
	host := s.p.getHost()
	if host == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 10*time.Second)
	defer cancel()
	_ = host.LogStatus(ctx, diag.Info, s.urn, msg)
}

func (p *commandProvider) sink(ctx context.Context, urn string) logSink {
	return hostSink{p: p, ctx: ctx, urn: resource.URN(urn)}
}

// opContext derives the context of one operation: cancelled by the request, by Cancel, or by the custom timeout.
func (p *commandProvider) opContext(ctx context.Context, timeoutSeconds float64) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.cancelCtx, cancel)
	if timeoutSeconds > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, time.Duration(timeoutSeconds*float64(time.Second)))
		return ctx, func() { cancelT(); stop(); cancel() }
	}
	return ctx, func() { stop(); cancel() }
}

func resourceType(urn, typ string) string {
	if typ != "" {
		return typ
	}
	u := resource.URN(urn)
	if u.IsValid() {
		return string(u.Type())
	}
	return ""
}

func resourceName(urn, name string) string {
	if name != "" {
		return name
	}
	u := resource.URN(urn)
	if u.IsValid() {
		return u.Name()
	}
	return "command"
}

func checkType(typ string) error {
	switch typ {
	case tokRemoteCommand, tokCopyToRemote, tokCopyFile, tokLocalCommand:
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "unknown resource type %q", typ)
}

// ---- provider-level RPCs ----

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: providerVersion}, nil
}

func (p *commandProvider) GetSchema(_ context.Context, req *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	if req.GetSubpackageName() != "" {
		return nil, status.Errorf(codes.NotFound, "no subpackage %q", req.GetSubpackageName())
	}
	return &pulumirpc.GetSchemaResponse{Schema: schemaJSON}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *commandProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, AcceptResources: true, SupportsPreview: true}, nil
}

func (p *commandProvider) Attach(_ context.Context, req *pulumirpc.PluginAttach) (*emptypb.Empty, error) {
	host, err := sdkprovider.NewHostClient(req.GetAddress())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	old := p.host
	p.host = host
	p.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	p.cancelAll()
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) GetMapping(context.Context, *pulumirpc.GetMappingRequest) (*pulumirpc.GetMappingResponse, error) {
	return &pulumirpc.GetMappingResponse{}, nil
}

func (p *commandProvider) GetMappings(context.Context, *pulumirpc.GetMappingsRequest) (*pulumirpc.GetMappingsResponse, error) {
	return &pulumirpc.GetMappingsResponse{}, nil
}

// ---- resource RPCs ----

func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	typ := resourceType(req.GetUrn(), req.GetType())
	if err := checkType(typ); err != nil {
		return nil, err
	}
	news, err := unmarshalProps(req.GetNews())
	if err != nil {
		return nil, err
	}
	fails := validateProps(typ, news)
	inputs, err := marshalProps(applyDefaults(typ, news))
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.CheckResponse{Inputs: inputs}
	for _, f := range fails {
		resp.Failures = append(resp.Failures, &pulumirpc.CheckFailure{Property: f.Property, Reason: f.Reason})
	}
	return resp, nil
}

func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	typ := resourceType(req.GetUrn(), req.GetType())
	if err := checkType(typ); err != nil {
		return nil, err
	}
	oldStruct := req.GetOldInputs()
	if oldStruct == nil {
		oldStruct = req.GetOlds()
	}
	olds, err := unmarshalProps(oldStruct)
	if err != nil {
		return nil, err
	}
	news, err := unmarshalProps(req.GetNews())
	if err != nil {
		return nil, err
	}
	return computeDiff(typ, olds, news), nil
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	typ := resourceType(req.GetUrn(), req.GetType())
	if err := checkType(typ); err != nil {
		return nil, err
	}
	inputs, err := unmarshalProps(req.GetProperties())
	if err != nil {
		return nil, err
	}
	props, err := p.apply(ctx, req.GetUrn(), req.GetTimeout(), typ, opCreate, inputs, nil, req.GetPreview())
	if err != nil {
		return nil, err
	}
	id := ""
	if !req.GetPreview() {
		if id, err = resource.NewUniqueHex(resourceName(req.GetUrn(), req.GetName()), 8, 0); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: props}, nil
}

// apply runs a create or update of any resource type and returns its marshalled outputs.
func (p *commandProvider) apply(ctx context.Context, urn string, timeout float64, typ string, op opKind,
	news, olds resource.PropertyMap, preview bool,
) (*structpb.Struct, error) {
	ctx, cancel := p.opContext(ctx, timeout)
	defer cancel()
	sink := p.sink(ctx, urn)
	var outs resource.PropertyMap
	var err error
	switch typ {
	case tokRemoteCommand, tokLocalCommand:
		outs, err = runCommandOp(ctx, typ, op, news, olds, preview, sink)
	default:
		outs, err = runCopyOp(ctx, typ, news, preview, sink)
	}
	if err != nil {
		return nil, err
	}
	return marshalProps(outs)
}

func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	typ := resourceType(req.GetUrn(), req.GetType())
	if err := checkType(typ); err != nil {
		return nil, err
	}
	olds, err := unmarshalProps(req.GetOlds())
	if err != nil {
		return nil, err
	}
	news, err := unmarshalProps(req.GetNews())
	if err != nil {
		return nil, err
	}
	props, err := p.apply(ctx, req.GetUrn(), req.GetTimeout(), typ, opUpdate, news, olds, req.GetPreview())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: props}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	typ := resourceType(req.GetUrn(), req.GetType())
	if err := checkType(typ); err != nil {
		return nil, err
	}
	state, err := unmarshalProps(req.GetProperties())
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.opContext(ctx, req.GetTimeout())
	defer cancel()
	if typ == tokRemoteCommand || typ == tokLocalCommand {
		if _, err := runCommandOp(ctx, typ, opDelete, state, state, false, p.sink(ctx, req.GetUrn())); err != nil {
			return nil, err
		}
	}
	// CopyToRemote/CopyFile: deleting does not remove the copied files (upstream behaviour).
	return &emptypb.Empty{}, nil
}

func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	typ := resourceType(req.GetUrn(), req.GetType())
	if err := checkType(typ); err != nil {
		return nil, err
	}
	inputs := req.GetInputs()
	if inputs == nil && req.GetProperties() != nil {
		state, err := unmarshalProps(req.GetProperties())
		if err != nil {
			return nil, err
		}
		if inputs, err = marshalProps(stripOutputs(typ, state)); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: inputs}, nil
}

func (p *commandProvider) Invoke(ctx context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	if req.GetTok() != tokLocalRun {
		return nil, status.Errorf(codes.Unimplemented, "unknown function %q", req.GetTok())
	}
	args, err := unmarshalProps(req.GetArgs())
	if err != nil {
		return nil, err
	}
	if fails := validateProps(tokLocalRun, args); len(fails) > 0 {
		resp := &pulumirpc.InvokeResponse{}
		for _, f := range fails {
			resp.Failures = append(resp.Failures, &pulumirpc.CheckFailure{Property: f.Property, Reason: f.Reason})
		}
		return resp, nil
	}
	if args.ContainsUnknowns() {
		return nil, status.Error(codes.InvalidArgument, "command:local:run: arguments must be known")
	}
	ctx, cancel := p.opContext(ctx, 0)
	defer cancel()
	outs, err := runLocalInvoke(ctx, args, p.sink(ctx, ""))
	if err != nil {
		return nil, err
	}
	ret, err := marshalProps(outs)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.InvokeResponse{Return: ret}, nil
}

// ---- operations ----

type opKind string

const (
	opCreate opKind = "create"
	opUpdate opKind = "update"
	opDelete opKind = "delete"
)

// commandText picks the command for an operation: create; update (falling back to create); delete.
// unknown is set when it cannot be known yet (preview).
func commandText(op opKind, inputs resource.PropertyMap) (cmd string, unknown bool) {
	pick := func(key string) (string, bool, bool) {
		v, ok := inputs[resource.PropertyKey(key)]
		if !ok || unsecret(v).IsNull() {
			return "", false, false
		}
		if isUnknown(v) {
			return "", true, true
		}
		s := getString(inputs, key)
		return s, false, s != ""
	}
	switch op {
	case opCreate:
		cmd, unknown, _ = pick("create")
	case opUpdate:
		var set bool
		if cmd, unknown, set = pick("update"); !set {
			cmd, unknown, _ = pick("create")
		}
	case opDelete:
		cmd, unknown, _ = pick("delete")
	}
	return cmd, unknown
}

var commandOutputKeys = []resource.PropertyKey{"stdout", "stderr", "assets", "archive"}

// runCommandOp runs the create/update/delete command of a remote or local Command. inputs are the (new)
// inputs; olds is the previous state (update, delete). It returns the new outputs.
func runCommandOp(ctx context.Context, typ string, op opKind, inputs, olds resource.PropertyMap, preview bool,
	sink logSink,
) (resource.PropertyMap, error) {
	outs := stripOutputs(typ, inputs)
	command, unknown := commandText(op, inputs)
	wantsAssets := typ == tokLocalCommand && (present(inputs, "assetPaths") || present(inputs, "archivePaths"))

	if preview {
		if command != "" || unknown {
			outs["stdout"] = resource.MakeComputed(resource.NewStringProperty(""))
			outs["stderr"] = resource.MakeComputed(resource.NewStringProperty(""))
			if wantsAssets {
				if present(inputs, "assetPaths") {
					outs["assets"] = resource.MakeComputed(resource.NewStringProperty(""))
				}
				if present(inputs, "archivePaths") {
					outs["archive"] = resource.MakeComputed(resource.NewStringProperty(""))
				}
			}
			return outs, nil
		}
		keepOldOutputs(op, outs, olds)
		return outs, nil
	}
	if unknown {
		return nil, fmt.Errorf("the %s command is unknown", op)
	}
	if command == "" {
		keepOldOutputs(op, outs, olds)
		return outs, nil
	}

	env := getStringMap(inputs, "environment")
	if op != opCreate && getBool(inputs, "addPreviousOutputInEnv", true) {
		env = append(env,
			envEntry{"PULUMI_COMMAND_STDOUT", getString(olds, "stdout")},
			envEntry{"PULUMI_COMMAND_STDERR", getString(olds, "stderr")})
	}
	red := newRedactor(secretStrings(inputs, olds))
	req := execRequest{
		What:    string(op),
		Command: command,
		Env:     env,
		Stdin:   getStringPtr(inputs, "stdin"),
		Logging: loggingMode(getString(inputs, "logging")),
		Sink:    sink,
		Redact:  red,
	}

	var stdout, stderr string
	var err error
	if typ == tokRemoteCommand {
		conn, cerr := connFromInputs(inputs)
		if cerr != nil {
			return nil, cerr
		}
		stdout, stderr, err = runRemote(ctx, conn, req)
	} else {
		dir := getString(inputs, "dir")
		stdout, stderr, err = runLocal(ctx, getStringArray(inputs, "interpreter"), dir, req)
		if err == nil && op != opDelete {
			if dir == "" {
				dir = "."
			}
			err = collectAssets(dir, getStringArray(inputs, "assetPaths"), getStringArray(inputs, "archivePaths"), outs)
		}
	}
	if err != nil {
		return nil, err
	}
	outs["stdout"] = resource.NewStringProperty(stdout)
	outs["stderr"] = resource.NewStringProperty(stderr)
	return outs, nil
}

// keepOldOutputs: an update that runs nothing keeps the previous outputs; a create that runs nothing has empty ones.
func keepOldOutputs(op opKind, outs, olds resource.PropertyMap) {
	if op == opUpdate && olds != nil {
		for _, k := range commandOutputKeys {
			if v, ok := olds[k]; ok {
				outs[k] = v
			}
		}
	}
	if _, ok := outs["stdout"]; !ok {
		outs["stdout"] = resource.NewStringProperty("")
	}
	if _, ok := outs["stderr"]; !ok {
		outs["stderr"] = resource.NewStringProperty("")
	}
}

// runCopyOp performs CopyToRemote / CopyFile create and update: (re)copy the source.
func runCopyOp(ctx context.Context, typ string, inputs resource.PropertyMap, preview bool, sink logSink,
) (resource.PropertyMap, error) {
	outs := inputs.Copy()
	if preview {
		return outs, nil
	}
	conn, err := connFromInputs(inputs)
	if err != nil {
		return nil, err
	}
	var src *copySource
	if typ == tokCopyFile {
		src, err = fileSource(getString(inputs, "localPath"))
	} else {
		src, err = sourceFromValue(inputs["source"])
	}
	if err != nil {
		return nil, err
	}
	red := newRedactor(secretStrings(inputs))
	if err := copyToRemote(ctx, conn, src, getString(inputs, "remotePath"), sink, red); err != nil {
		return nil, err
	}
	return outs, nil
}

// runLocalInvoke implements command:local:run (always executed, also during preview).
func runLocalInvoke(ctx context.Context, args resource.PropertyMap, sink logSink) (resource.PropertyMap, error) {
	outs := args.Copy()
	req := execRequest{
		What:    "run",
		Command: getString(args, "command"),
		Env:     getStringMap(args, "environment"),
		Stdin:   getStringPtr(args, "stdin"),
		Logging: loggingMode(getString(args, "logging")),
		Sink:    sink,
		Redact:  newRedactor(secretStrings(args)),
	}
	dir := getString(args, "dir")
	stdout, stderr, err := runLocal(ctx, getStringArray(args, "interpreter"), dir, req)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		dir = "."
	}
	if err := collectAssets(dir, getStringArray(args, "assetPaths"), getStringArray(args, "archivePaths"), outs); err != nil {
		return nil, err
	}
	outs["stdout"] = resource.NewStringProperty(stdout)
	outs["stderr"] = resource.NewStringProperty(stderr)
	return outs, nil
}
