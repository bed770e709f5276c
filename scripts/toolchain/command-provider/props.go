package main

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"google.golang.org/protobuf/types/known/structpb"
)

// Wire (un)marshalling. Secrets and unknowns are kept so that the values we hand back to the engine keep their
// secretness, and so that previews can carry unknowns through.
var (
	unmarshalOpts = plugin.MarshalOptions{
		Label:         "command",
		KeepUnknowns:  true,
		KeepSecrets:   true,
		KeepResources: true,
		SkipNulls:     true,
	}
	marshalOpts = plugin.MarshalOptions{
		Label:         "command",
		KeepUnknowns:  true,
		KeepSecrets:   true,
		KeepResources: true,
	}
)

func unmarshalProps(s *structpb.Struct) (resource.PropertyMap, error) {
	if s == nil {
		return resource.PropertyMap{}, nil
	}
	m, err := plugin.UnmarshalProperties(s, unmarshalOpts)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = resource.PropertyMap{}
	}
	return m, nil
}

func marshalProps(m resource.PropertyMap) (*structpb.Struct, error) {
	return plugin.MarshalProperties(m, marshalOpts)
}

// unsecret strips any number of secret wrappers from the top of a value (not from nested values).
func unsecret(v resource.PropertyValue) resource.PropertyValue {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	return v
}

// deepUnsecret strips secret wrappers everywhere inside a value.
func deepUnsecret(v resource.PropertyValue) resource.PropertyValue {
	v = unsecret(v)
	switch {
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]resource.PropertyValue, len(arr))
		for i, e := range arr {
			out[i] = deepUnsecret(e)
		}
		return resource.NewArrayProperty(out)
	case v.IsObject():
		return resource.NewObjectProperty(deepUnsecretMap(v.ObjectValue()))
	case v.IsComputed():
		return resource.MakeComputed(deepUnsecret(v.Input().Element))
	}
	return v
}

func deepUnsecretMap(m resource.PropertyMap) resource.PropertyMap {
	out := make(resource.PropertyMap, len(m))
	for k, e := range m {
		out[k] = deepUnsecret(e)
	}
	return out
}

// present reports whether a key holds a non-null value (a secret wrapping null counts as absent).
func present(m resource.PropertyMap, key string) bool {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return false
	}
	return !unsecret(v).IsNull()
}

// isUnknown reports whether a value is (or, below secrets, is wrapped around) an unknown.
func isUnknown(v resource.PropertyValue) bool {
	v = unsecret(v)
	return v.IsComputed() || (v.IsOutput() && !v.OutputValue().Known)
}

// collectSecretStrings appends every string that sits below a secret marker in v (and everything in v when
// underSecret is set). Used to redact secrets from log lines and error messages.
func collectSecretStrings(v resource.PropertyValue, underSecret bool, acc *[]string) {
	switch {
	case v.IsSecret():
		collectSecretStrings(v.SecretValue().Element, true, acc)
	case v.IsString():
		if underSecret {
			*acc = append(*acc, v.StringValue())
		}
	case v.IsArray():
		for _, e := range v.ArrayValue() {
			collectSecretStrings(e, underSecret, acc)
		}
	case v.IsObject():
		for _, e := range v.ObjectValue() {
			collectSecretStrings(e, underSecret, acc)
		}
	case v.IsComputed():
		collectSecretStrings(v.Input().Element, underSecret, acc)
	}
}

// secretStrings returns the strings to redact from logs and errors for the given inputs/state maps: values
// marked secret, except below `connection` (the SDK marks the whole connection secret, which would redact host
// and user names everywhere); for connections, the credentials are always redacted, secret-marked or not.
func secretStrings(maps ...resource.PropertyMap) []string {
	var acc []string
	for _, m := range maps {
		for k, v := range m {
			if k == "connection" {
				collectConnSecrets(v, &acc)
				continue
			}
			collectSecretStrings(v, false, &acc)
		}
	}
	return acc
}

func collectConnSecrets(v resource.PropertyValue, acc *[]string) {
	v = unsecret(v)
	if !v.IsObject() {
		return
	}
	m := v.ObjectValue()
	for _, k := range []resource.PropertyKey{"password", "privateKey", "privateKeyPassword"} {
		if e, ok := m[k]; ok {
			collectSecretStrings(e, true, acc)
		}
	}
	if p, ok := m["proxy"]; ok {
		collectConnSecrets(p, acc)
	}
}

// ---- typed getters on already-validated, secret-stripped maps ----

func getString(m resource.PropertyMap, key string) string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return ""
	}
	v = unsecret(v)
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func getStringPtr(m resource.PropertyMap, key string) *string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return nil
	}
	v = unsecret(v)
	if v.IsString() {
		s := v.StringValue()
		return &s
	}
	return nil
}

func getBool(m resource.PropertyMap, key string, def bool) bool {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return def
	}
	v = unsecret(v)
	if v.IsBool() {
		return v.BoolValue()
	}
	return def
}

func getInt(m resource.PropertyMap, key string, def int) int {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return def
	}
	v = unsecret(v)
	if v.IsNumber() {
		return int(v.NumberValue())
	}
	return def
}

func getObject(m resource.PropertyMap, key string) (resource.PropertyMap, bool) {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return nil, false
	}
	v = unsecret(v)
	if v.IsObject() {
		return v.ObjectValue(), true
	}
	return nil, false
}

func getStringArray(m resource.PropertyMap, key string) []string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return nil
	}
	v = unsecret(v)
	if !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		e = unsecret(e)
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}

// envEntry is one environment variable.
type envEntry struct{ Key, Value string }

// getStringMap returns a string map property as a key-sorted list.
func getStringMap(m resource.PropertyMap, key string) []envEntry {
	obj, ok := getObject(m, key)
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var out []envEntry
	for _, k := range keys {
		v := unsecret(obj[resource.PropertyKey(k)])
		if v.IsString() {
			out = append(out, envEntry{k, v.StringValue()})
		}
	}
	return out
}

// ---- validation (Check) ----

type fieldKind int

const (
	kString fieldKind = iota
	kBool
	kInt
	kStringMap
	kStringArray
	kAnyArray
	kConnection
	kProxy
	kLogging
	kAssetOrArchive
)

type fieldSpec struct {
	kind     fieldKind
	required bool
}

var connectionFields = map[string]fieldSpec{
	"host":               {kString, true},
	"port":               {kInt, false},
	"user":               {kString, false},
	"password":           {kString, false},
	"privateKey":         {kString, false},
	"privateKeyPassword": {kString, false},
	"hostKey":            {kString, false},
	"agentSocketPath":    {kString, false},
	"dialErrorLimit":     {kInt, false},
	"perDialTimeout":     {kInt, false},
	"proxy":              {kProxy, false},
}

var proxyFields = func() map[string]fieldSpec {
	m := map[string]fieldSpec{}
	for k, v := range connectionFields {
		if k != "proxy" {
			m[k] = v
		}
	}
	return m
}()

// fieldsOf merges field tables; later tables win.
func fieldsOf(tables ...map[string]fieldSpec) map[string]fieldSpec {
	out := map[string]fieldSpec{}
	for _, t := range tables {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

var (
	// what every command runs with, remote or local
	execFields = map[string]fieldSpec{
		"environment":            {kStringMap, false},
		"stdin":                  {kString, false},
		"addPreviousOutputInEnv": {kBool, false},
		"logging":                {kLogging, false},
	}
	// the lifecycle commands of a Command resource
	lifecycleFields = map[string]fieldSpec{
		"create":   {kString, false},
		"update":   {kString, false},
		"delete":   {kString, false},
		"triggers": {kAnyArray, false},
	}
	// only a local process has these
	localFields = map[string]fieldSpec{
		"dir":          {kString, false},
		"interpreter":  {kStringArray, false},
		"assetPaths":   {kStringArray, false},
		"archivePaths": {kStringArray, false},
	}
)

var resourceFields = map[string]map[string]fieldSpec{
	tokRemoteCommand: fieldsOf(execFields, lifecycleFields, map[string]fieldSpec{"connection": {kConnection, true}}),
	tokCopyToRemote: {
		"connection": {kConnection, true},
		"source":     {kAssetOrArchive, true},
		"remotePath": {kString, true},
		"triggers":   {kAnyArray, false},
	},
	tokCopyFile: {
		"connection": {kConnection, true},
		"localPath":  {kString, true},
		"remotePath": {kString, true},
		"triggers":   {kAnyArray, false},
	},
	tokLocalCommand: fieldsOf(execFields, lifecycleFields, localFields),
	tokLocalRun:     fieldsOf(execFields, localFields, map[string]fieldSpec{"command": {kString, true}}),
}

type checkFailure struct{ Property, Reason string }

func validateProps(typ string, news resource.PropertyMap) []checkFailure {
	spec, ok := resourceFields[typ]
	if !ok {
		return []checkFailure{{"", fmt.Sprintf("unknown resource type %q", typ)}}
	}
	var fails []checkFailure
	validateObject("", spec, news, &fails)
	if typ == tokRemoteCommand {
		// Environment variables are exported by the remote shell, so their names must be shell identifiers.
		if env, ok := news["environment"]; ok && !isUnknown(env) {
			if obj := unsecret(env); obj.IsObject() {
				for k := range obj.ObjectValue() {
					if !validEnvName(string(k)) {
						fails = append(fails, checkFailure{"environment." + string(k),
							fmt.Sprintf("environment variable name %q is not a valid shell variable name "+
								"([A-Za-z_][A-Za-z0-9_]*)", string(k))})
					}
				}
			}
		}
	}
	sort.Slice(fails, func(i, j int) bool { return fails[i].Property < fails[j].Property })
	return fails
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func validateObject(prefix string, spec map[string]fieldSpec, obj resource.PropertyMap, fails *[]checkFailure) {
	for name, fs := range spec {
		path := prefix + name
		v, ok := obj[resource.PropertyKey(name)]
		if !ok || unsecret(v).IsNull() {
			if fs.required {
				*fails = append(*fails, checkFailure{path, "missing required property"})
			}
			continue
		}
		validateValue(path, fs, v, fails)
	}
}

func typeName(v resource.PropertyValue) string {
	v = unsecret(v)
	switch {
	case v.IsString():
		return "string"
	case v.IsNumber():
		return "number"
	case v.IsBool():
		return "boolean"
	case v.IsArray():
		return "array"
	case v.IsObject():
		return "object"
	case v.IsAsset():
		return "asset"
	case v.IsArchive():
		return "archive"
	case v.IsResourceReference():
		return "resource reference"
	}
	return v.TypeString()
}

func validateValue(path string, fs fieldSpec, v resource.PropertyValue, fails *[]checkFailure) {
	if isUnknown(v) {
		return // cannot validate what we don't know yet (preview)
	}
	v = unsecret(v)
	bad := func(want string) {
		*fails = append(*fails, checkFailure{path,
			fmt.Sprintf("must be %s, got %s", want, typeName(v))})
	}
	switch fs.kind {
	case kString:
		if !v.IsString() {
			bad("a string")
		} else if path == "connection.host" || path == "connection.proxy.host" {
			if strings.TrimSpace(v.StringValue()) == "" {
				*fails = append(*fails, checkFailure{path, "must not be empty"})
			}
		}
	case kBool:
		if !v.IsBool() {
			bad("a boolean")
		}
	case kInt:
		if !v.IsNumber() {
			bad("an integer")
			return
		}
		n := v.NumberValue()
		if n != math.Trunc(n) || math.IsInf(n, 0) || math.IsNaN(n) {
			bad("an integer")
			return
		}
		switch {
		case strings.HasSuffix(path, ".port") && (n < 1 || n > 65535):
			*fails = append(*fails, checkFailure{path, fmt.Sprintf("must be between 1 and 65535, got %v", n)})
		case strings.HasSuffix(path, ".dialErrorLimit") && n < -1:
			*fails = append(*fails, checkFailure{path, fmt.Sprintf("must be -1 (unlimited) or >= 0, got %v", n)})
		case strings.HasSuffix(path, ".perDialTimeout") && n < 0:
			*fails = append(*fails, checkFailure{path, fmt.Sprintf("must be >= 0, got %v", n)})
		}
	case kLogging:
		if !v.IsString() {
			bad("one of \"stdout\", \"stderr\", \"stdoutAndStderr\", \"none\"")
			return
		}
		switch v.StringValue() {
		case "stdout", "stderr", "stdoutAndStderr", "none":
		default:
			*fails = append(*fails, checkFailure{path, fmt.Sprintf(
				"must be one of \"stdout\", \"stderr\", \"stdoutAndStderr\", \"none\", got %q", v.StringValue())})
		}
	case kStringMap:
		if !v.IsObject() {
			bad("a map of strings")
			return
		}
		for k, e := range v.ObjectValue() {
			validateValue(path+"."+string(k), fieldSpec{kind: kString}, e, fails)
		}
	case kStringArray:
		if !v.IsArray() {
			bad("an array of strings")
			return
		}
		for i, e := range v.ArrayValue() {
			validateValue(fmt.Sprintf("%s[%d]", path, i), fieldSpec{kind: kString}, e, fails)
		}
	case kAnyArray:
		if !v.IsArray() {
			bad("an array")
		}
	case kConnection, kProxy:
		if !v.IsObject() {
			bad("an object")
			return
		}
		spec := connectionFields
		if fs.kind == kProxy {
			spec = proxyFields
		}
		validateObject(path+".", spec, v.ObjectValue(), fails)
	case kAssetOrArchive:
		if !v.IsAsset() && !v.IsArchive() {
			bad("an asset or an archive")
		}
	}
}

// ---- defaults (Check) ----

// applyDefaults fills in the documented defaults without disturbing secret wrappers or unknowns.
func applyDefaults(typ string, news resource.PropertyMap) resource.PropertyMap {
	out := news.Copy()
	switch typ {
	case tokRemoteCommand, tokLocalCommand:
		if !present(out, "addPreviousOutputInEnv") {
			out["addPreviousOutputInEnv"] = resource.NewBoolProperty(true)
		}
	}
	if v, ok := out["connection"]; ok {
		out["connection"] = mapInsideSecret(v, func(conn resource.PropertyMap) resource.PropertyMap {
			conn = connectionDefaults(conn)
			if pv, ok := conn["proxy"]; ok {
				conn["proxy"] = mapInsideSecret(pv, connectionDefaults)
			}
			return conn
		})
	}
	return out
}

func connectionDefaults(conn resource.PropertyMap) resource.PropertyMap {
	conn = conn.Copy()
	if !present(conn, "port") {
		conn["port"] = resource.NewNumberProperty(22)
	}
	if !present(conn, "user") {
		conn["user"] = resource.NewStringProperty("root")
	}
	if !present(conn, "dialErrorLimit") {
		conn["dialErrorLimit"] = resource.NewNumberProperty(10)
	}
	if !present(conn, "perDialTimeout") {
		conn["perDialTimeout"] = resource.NewNumberProperty(15)
	}
	return conn
}

// mapInsideSecret applies f to the object below any secret wrappers, re-wrapping the result.
func mapInsideSecret(v resource.PropertyValue, f func(resource.PropertyMap) resource.PropertyMap) resource.PropertyValue {
	if v.IsSecret() {
		return resource.MakeSecret(mapInsideSecret(v.SecretValue().Element, f))
	}
	if v.IsObject() {
		return resource.NewObjectProperty(f(v.ObjectValue()))
	}
	return v
}
