package main

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
)

func str(s string) resource.PropertyValue                    { return resource.NewStringProperty(s) }
func num(n float64) resource.PropertyValue                   { return resource.NewNumberProperty(n) }
func obj(m resource.PropertyMap) resource.PropertyValue      { return resource.NewObjectProperty(m) }
func secret(v resource.PropertyValue) resource.PropertyValue { return resource.MakeSecret(v) }
func unknown() resource.PropertyValue {
	return resource.MakeComputed(resource.NewStringProperty(""))
}

func failureProps(f []checkFailure) string {
	var s []string
	for _, x := range f {
		s = append(s, x.Property)
	}
	return strings.Join(s, ",")
}

func TestValidateRemoteCommand(t *testing.T) {
	cases := []struct {
		name  string
		props resource.PropertyMap
		want  string // comma-separated failing properties
		msg   string // substring of the first reason
	}{
		{"ok", resource.PropertyMap{
			"connection": secret(obj(resource.PropertyMap{"host": str("10.0.0.1"), "port": num(22)})),
			"create":     str("echo hi"),
			"logging":    str("none"),
		}, "", ""},
		{"missing connection", resource.PropertyMap{"create": str("x")}, "connection", "missing required property"},
		{"missing host", resource.PropertyMap{
			"connection": secret(obj(resource.PropertyMap{"user": str("root")})),
		}, "connection.host", "missing required property"},
		{"empty host", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("  ")}),
		}, "connection.host", "must not be empty"},
		{"bad port type", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h"), "port": str("22")}),
		}, "connection.port", "must be an integer, got string"},
		{"port range", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h"), "port": num(70000)}),
		}, "connection.port", "between 1 and 65535"},
		{"fractional timeout", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h"), "perDialTimeout": num(1.5)}),
		}, "connection.perDialTimeout", "must be an integer"},
		{"proxy missing host", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h"), "proxy": obj(resource.PropertyMap{})}),
		}, "connection.proxy.host", "missing required property"},
		{"bad create", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h")}),
			"create":     num(1),
		}, "create", "must be a string, got number"},
		{"bad logging", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h")}),
			"logging":    str("all"),
		}, "logging", `must be one of "stdout", "stderr", "stdoutAndStderr", "none", got "all"`},
		{"bad env value", resource.PropertyMap{
			"connection":  obj(resource.PropertyMap{"host": str("h")}),
			"environment": obj(resource.PropertyMap{"A": num(1)}),
		}, "environment.A", "must be a string"},
		{"bad env name", resource.PropertyMap{
			"connection":  obj(resource.PropertyMap{"host": str("h")}),
			"environment": obj(resource.PropertyMap{"A-B": str("x")}),
		}, "environment.A-B", "not a valid shell variable name"},
		{"triggers not array", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h")}),
			"triggers":   str("x"),
		}, "triggers", "must be an array"},
		{"unknowns are not validated", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": unknown(), "port": unknown()}),
			"create":     unknown(),
		}, "", ""},
		{"unknown connection", resource.PropertyMap{"connection": unknown()}, "", ""},
		{"secret wrong type", resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h")}),
			"stdin":      secret(resource.NewBoolProperty(true)),
		}, "stdin", "must be a string, got boolean"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := validateProps(tokRemoteCommand, c.props)
			if got := failureProps(f); got != c.want {
				t.Fatalf("failures %q, want %q (%v)", got, c.want, f)
			}
			if c.msg != "" && !strings.Contains(f[0].Reason, c.msg) {
				t.Fatalf("reason %q does not contain %q", f[0].Reason, c.msg)
			}
		})
	}
}

func TestValidateOtherResources(t *testing.T) {
	conn := obj(resource.PropertyMap{"host": str("h")})
	a, _ := asset.FromText("hello")
	if f := validateProps(tokCopyToRemote, resource.PropertyMap{
		"connection": conn, "source": resource.NewAssetProperty(a), "remotePath": str("/tmp/x"),
	}); len(f) != 0 {
		t.Fatalf("unexpected failures %v", f)
	}
	if got := failureProps(validateProps(tokCopyToRemote, resource.PropertyMap{"connection": conn, "source": str("x")})); got != "remotePath,source" {
		t.Fatalf("got %q", got)
	}
	if got := failureProps(validateProps(tokLocalCommand, resource.PropertyMap{
		"interpreter": resource.NewArrayProperty([]resource.PropertyValue{str("/bin/bash"), num(1)}),
		"environment": obj(resource.PropertyMap{"A-B": str("ok for local")}),
	})); got != "interpreter[1]" {
		t.Fatalf("got %q", got)
	}
	if f := validateProps(tokLocalCommand, resource.PropertyMap{}); len(f) != 0 {
		t.Fatalf("local command needs no inputs, got %v", f)
	}
	if got := failureProps(validateProps(tokLocalRun, resource.PropertyMap{})); got != "command" {
		t.Fatalf("got %q", got)
	}
}

func TestApplyDefaultsKeepsSecrets(t *testing.T) {
	news := resource.PropertyMap{
		"connection": secret(obj(resource.PropertyMap{
			"host":       str("h"),
			"port":       num(2222),
			"privateKey": secret(str("KEY")),
			"proxy":      obj(resource.PropertyMap{"host": str("bastion")}),
		})),
		"create": str("x"),
	}
	out := applyDefaults(tokRemoteCommand, news)
	if _, ok := news["addPreviousOutputInEnv"]; ok {
		t.Fatal("input map was modified")
	}
	if !out["addPreviousOutputInEnv"].BoolValue() {
		t.Fatal("addPreviousOutputInEnv default missing")
	}
	c := out["connection"]
	if !c.IsSecret() {
		t.Fatal("connection lost its secretness")
	}
	cm := c.SecretValue().Element.ObjectValue()
	if cm["port"].NumberValue() != 2222 || cm["user"].StringValue() != "root" ||
		cm["dialErrorLimit"].NumberValue() != 10 || cm["perDialTimeout"].NumberValue() != 15 {
		t.Fatalf("bad connection defaults: %v", cm)
	}
	if !cm["privateKey"].IsSecret() {
		t.Fatal("nested secret lost")
	}
	pm := cm["proxy"].ObjectValue()
	if pm["user"].StringValue() != "root" || pm["port"].NumberValue() != 22 {
		t.Fatalf("bad proxy defaults: %v", pm)
	}
	// Explicit values and unknowns are left alone.
	out = applyDefaults(tokRemoteCommand, resource.PropertyMap{
		"addPreviousOutputInEnv": resource.NewBoolProperty(false),
		"connection":             unknown(),
	})
	if out["addPreviousOutputInEnv"].BoolValue() || !out["connection"].IsComputed() {
		t.Fatalf("unexpected %v", out)
	}
	if _, ok := applyDefaults(tokCopyToRemote, resource.PropertyMap{})["addPreviousOutputInEnv"]; ok {
		t.Fatal("CopyToRemote has no addPreviousOutputInEnv")
	}
}

func TestWireRoundTripKeepsSecrets(t *testing.T) {
	in := resource.PropertyMap{
		"connection": secret(obj(resource.PropertyMap{"host": str("h"), "password": str("pw")})),
		"stdin":      secret(str("s3cr3t")),
		"create":     str("cat"),
		"triggers":   resource.NewArrayProperty([]resource.PropertyValue{unknown()}),
	}
	s, err := marshalProps(in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := unmarshalProps(s)
	if err != nil {
		t.Fatal(err)
	}
	if !back["connection"].IsSecret() || !back["stdin"].IsSecret() || back["create"].IsSecret() {
		t.Fatalf("secretness not preserved: %v", back)
	}
	if !back["triggers"].ArrayValue()[0].IsComputed() {
		t.Fatal("unknown not preserved")
	}
	got := secretStrings(back)
	joined := strings.Join(got, ",")
	if !strings.Contains(joined, "s3cr3t") || !strings.Contains(joined, "pw") || strings.Contains(joined, "cat") {
		t.Fatalf("secretStrings = %v", got)
	}
	if getString(back, "stdin") != "s3cr3t" || getString(back, "create") != "cat" {
		t.Fatal("getString does not see through secrets")
	}
	conn, err := connFromInputs(back)
	if err != nil || conn.Host != "h" || conn.Password != "pw" || conn.Port != 22 || conn.User != "root" {
		t.Fatalf("connFromInputs = %+v, %v", conn, err)
	}
}

func TestSecretStringsConnection(t *testing.T) {
	got := secretStrings(resource.PropertyMap{
		"connection": secret(obj(resource.PropertyMap{
			"host":       str("10.1.2.3"),
			"user":       str("deployer"),
			"privateKey": str("KEYMATERIAL"), // credentials are redacted even when not marked secret
			"proxy":      obj(resource.PropertyMap{"host": str("bastion"), "password": str("proxypw")}),
		})),
		"create": str("echo plain"),
		"environment": obj(resource.PropertyMap{
			"A": secret(str("envsecret")),
			"B": str("envplain"),
		}),
	})
	joined := "," + strings.Join(got, ",") + ","
	for _, want := range []string{",KEYMATERIAL,", ",proxypw,", ",envsecret,"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("%v lacks %s", got, want)
		}
	}
	for _, not := range []string{"10.1.2.3", "deployer", "bastion", "envplain", "echo plain"} {
		if strings.Contains(joined, not) {
			t.Fatalf("%v must not contain %s", got, not)
		}
	}
}

func TestRedactor(t *testing.T) {
	r := newRedactor([]string{"hunter22", "ab", "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----"})
	got := r.apply("pw=hunter22 ab key AAAABBBBCCCC")
	if got != "pw=[secret] ab key [secret]" {
		t.Fatalf("got %q", got)
	}
	var nilR *redactor
	if nilR.apply("x") != "x" {
		t.Fatal("nil redactor must be a no-op")
	}
}
