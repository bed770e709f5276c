package main

import (
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// outputOnlyKeys are state properties that are not inputs; they never take part in a diff.
var outputOnlyKeys = map[string]map[string]bool{
	tokRemoteCommand: {"stdout": true, "stderr": true},
	tokLocalCommand:  {"stdout": true, "stderr": true, "assets": true, "archive": true},
	tokCopyToRemote:  {},
	tokCopyFile:      {},
}

// replaceKeys are inputs whose change forces a replacement (the SDK also registers replaceOnChanges
// "triggers[*]"; we report the replacement ourselves so the outcome does not depend on that).
var replaceKeys = map[string]bool{"triggers": true}

// stripOutputs returns the input part of a state map.
func stripOutputs(typ string, state resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	for k, v := range state {
		if outputOnlyKeys[typ][string(k)] {
			continue
		}
		out[k] = v
	}
	return out
}

// valuesEqual compares two values ignoring secretness; unknowns never compare equal.
func valuesEqual(a, b resource.PropertyValue) bool {
	if a.ContainsUnknowns() || b.ContainsUnknowns() {
		return false
	}
	return deepUnsecret(a).DeepEquals(deepUnsecret(b))
}

// computeDiff diffs old inputs against new (checked) inputs, top-level key by top-level key.
func computeDiff(typ string, olds, news resource.PropertyMap) *pulumirpc.DiffResponse {
	olds = stripOutputs(typ, olds)
	news = stripOutputs(typ, news)

	keys := map[string]bool{}
	for k := range olds {
		keys[string(k)] = true
	}
	for k := range news {
		keys[string(k)] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)

	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
		HasDetailedDiff: true,
	}
	for _, k := range sorted {
		pk := resource.PropertyKey(k)
		ov, hasOld := olds[pk]
		nv, hasNew := news[pk]
		hasOld = hasOld && !unsecret(ov).IsNull()
		hasNew = hasNew && !unsecret(nv).IsNull()
		var kind pulumirpc.PropertyDiff_Kind
		switch {
		case !hasOld && !hasNew:
			continue
		case !hasOld:
			kind = pulumirpc.PropertyDiff_ADD
		case !hasNew:
			kind = pulumirpc.PropertyDiff_DELETE
		default:
			if valuesEqual(ov, nv) {
				continue
			}
			kind = pulumirpc.PropertyDiff_UPDATE
		}
		if replaceKeys[k] {
			switch kind {
			case pulumirpc.PropertyDiff_ADD:
				kind = pulumirpc.PropertyDiff_ADD_REPLACE
			case pulumirpc.PropertyDiff_DELETE:
				kind = pulumirpc.PropertyDiff_DELETE_REPLACE
			default:
				kind = pulumirpc.PropertyDiff_UPDATE_REPLACE
			}
			resp.Replaces = append(resp.Replaces, k)
		}
		resp.Diffs = append(resp.Diffs, k)
		resp.DetailedDiff[k] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return resp
}
