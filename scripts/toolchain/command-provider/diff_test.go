package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func baseRemote() resource.PropertyMap {
	return resource.PropertyMap{
		"connection": secret(obj(resource.PropertyMap{"host": str("h"), "port": num(22), "user": str("root")})),
		"create":     str("echo hi"),
		"triggers":   resource.NewArrayProperty([]resource.PropertyValue{str("a")}),
		"environment": obj(resource.PropertyMap{
			"A": str("1"),
		}),
		"addPreviousOutputInEnv": resource.NewBoolProperty(true),
	}
}

func diffSummary(d *pulumirpc.DiffResponse) string {
	var parts []string
	for k, v := range d.DetailedDiff {
		parts = append(parts, k+"="+v.Kind.String())
	}
	sort.Strings(parts)
	return d.Changes.String() + " [" + strings.Join(parts, " ") + "] replaces=" + strings.Join(d.Replaces, ",")
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m resource.PropertyMap)
		want   string
	}{
		{"no change", func(resource.PropertyMap) {}, "DIFF_NONE [] replaces="},
		{"create changed", func(m resource.PropertyMap) { m["create"] = str("echo bye") },
			"DIFF_SOME [create=UPDATE] replaces="},
		{"delete added", func(m resource.PropertyMap) { m["delete"] = str("rm x") },
			"DIFF_SOME [delete=ADD] replaces="},
		{"env removed", func(m resource.PropertyMap) { delete(m, "environment") },
			"DIFF_SOME [environment=DELETE] replaces="},
		{"env value changed", func(m resource.PropertyMap) {
			m["environment"] = obj(resource.PropertyMap{"A": str("2")})
		}, "DIFF_SOME [environment=UPDATE] replaces="},
		{"trigger changed", func(m resource.PropertyMap) {
			m["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{str("b")})
		}, "DIFF_SOME [triggers=UPDATE_REPLACE] replaces=triggers"},
		{"trigger removed", func(m resource.PropertyMap) { delete(m, "triggers") },
			"DIFF_SOME [triggers=DELETE_REPLACE] replaces=triggers"},
		{"trigger unknown", func(m resource.PropertyMap) {
			m["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{unknown()})
		}, "DIFF_SOME [triggers=UPDATE_REPLACE] replaces=triggers"},
		{"create unknown", func(m resource.PropertyMap) { m["create"] = unknown() },
			"DIFF_SOME [create=UPDATE] replaces="},
		{"secretness only", func(m resource.PropertyMap) { m["create"] = secret(str("echo hi")) },
			"DIFF_NONE [] replaces="},
		{"connection port", func(m resource.PropertyMap) {
			m["connection"] = secret(obj(resource.PropertyMap{"host": str("h"), "port": num(2222), "user": str("root")}))
		}, "DIFF_SOME [connection=UPDATE] replaces="},
		{"null equals absent", func(m resource.PropertyMap) { m["update"] = resource.NewNullProperty() },
			"DIFF_NONE [] replaces="},
		{"outputs ignored", func(m resource.PropertyMap) { m["stdout"] = str("other") },
			"DIFF_NONE [] replaces="},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			olds := baseRemote()
			olds["stdout"] = str("hi") // state-style olds also work
			news := baseRemote()
			c.mutate(news)
			if got := diffSummary(computeDiff(tokRemoteCommand, olds, news)); got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestDiffCopyToRemoteAssets(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	a1, err := asset.FromPath(p)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(a *asset.Asset) resource.PropertyMap {
		return resource.PropertyMap{
			"connection": obj(resource.PropertyMap{"host": str("h")}),
			"remotePath": str("/tmp/f"),
			"source":     resource.NewAssetProperty(a),
		}
	}
	if got := diffSummary(computeDiff(tokCopyToRemote, mk(a1), mk(a1))); got != "DIFF_NONE [] replaces=" {
		t.Fatal(got)
	}
	if err := os.WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	a2, err := asset.FromPath(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := diffSummary(computeDiff(tokCopyToRemote, mk(a1), mk(a2))); got != "DIFF_SOME [source=UPDATE] replaces=" {
		t.Fatal(got)
	}
}
