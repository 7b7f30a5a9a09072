package pickle

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// fromTyped builds a Go value from the typed JSON of the ZEO transcripts
// (testdata/zeo/README.md) and of testdata/vectors.json.gz. shared maps
// {"shared": id} definitions to the value, so {"same": id} reuses the very
// same slice (same identity for the encoder's memo).
func fromTyped(j any, shared map[string]any) (any, error) {
	switch x := j.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		s := x.String()
		if strings.ContainsAny(s, ".eE") {
			return strconv.ParseFloat(s, 64)
		}
		return parseBig(s)
	case []any:
		l := make(List, len(x))
		for i, e := range x {
			v, err := fromTyped(e, shared)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	case map[string]any:
		return fromTypedObject(x, shared)
	}
	return nil, fmt.Errorf("unexpected JSON %T", j)
}

func parseBig(s string) (any, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("bad int %q", s)
	}
	return n, nil
}

func typedList(j any, shared map[string]any) ([]any, error) {
	xs, ok := j.([]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON list, got %T", j)
	}
	out := make([]any, len(xs))
	for i, e := range xs {
		v, err := fromTyped(e, shared)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func typedPairs(j any, shared map[string]any) (Dict, error) {
	xs, ok := j.([]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON list of pairs, got %T", j)
	}
	d := make(Dict, len(xs))
	for i, e := range xs {
		kv, err := typedList(e, shared)
		if err != nil || len(kv) != 2 {
			return nil, fmt.Errorf("bad pair %v", e)
		}
		d[i] = KV{kv[0], kv[1]}
	}
	return d, nil
}

func fromTypedObject(x map[string]any, shared map[string]any) (any, error) {
	switch {
	case x["int"] != nil:
		return parseBig(x["int"].(string))
	case x["float"] != nil:
		switch f := x["float"].(type) {
		case json.Number:
			return strconv.ParseFloat(f.String(), 64)
		case string:
			return strconv.ParseFloat(f, 64)
		}
	case x["bytes"] != nil:
		return hex.DecodeString(x["bytes"].(string))
	case x["tuple"] != nil:
		l, err := typedList(x["tuple"], shared)
		return Tuple(l), err
	case x["dict"] != nil:
		return typedPairs(x["dict"], shared)
	case x["set"] != nil:
		l, err := typedList(x["set"], shared)
		return &Set{Items: l}, err
	case x["frozenset"] != nil:
		l, err := typedList(x["frozenset"], shared)
		return &Set{Items: l, Frozen: true}, err
	case x["global"] != nil:
		s := x["global"].(string)
		i := strings.LastIndexByte(s, '.')
		g := Global{s[:i], s[i+1:]}
		if x["args"] == nil {
			return g, nil
		}
		args, err := typedList(x["args"], shared)
		return &Object{Callable: g, Args: args}, err
	case x["persistent_id"] != nil || x["pid"] != nil:
		id := x["pid"]
		if id == nil {
			id = x["persistent_id"]
		}
		v, err := fromTyped(id, shared)
		return PersistentRef{ID: v}, err
	case x["reduce"] != nil:
		s := x["reduce"].(string)
		i := strings.LastIndexByte(s, '.')
		o := &Object{Callable: Global{s[:i], s[i+1:]}, Args: Tuple{}}
		if x["args"] != nil {
			args, err := typedList(x["args"], shared)
			if err != nil {
				return nil, err
			}
			o.Args = args
		}
		if st, err := fromTyped(x["state"], shared); err != nil {
			return nil, err
		} else {
			o.State = st
		}
		o.New, _ = x["new"].(bool)
		if x["listitems"] != nil {
			l, err := typedList(x["listitems"], shared)
			if err != nil {
				return nil, err
			}
			o.ListItems = l
		}
		if x["dictitems"] != nil {
			d, err := typedPairs(x["dictitems"], shared)
			if err != nil {
				return nil, err
			}
			o.DictItems = d
		}
		return o, nil
	case x["shared"] != nil:
		v, err := fromTyped(x["value"], shared)
		shared[fmt.Sprint(x["shared"])] = v
		return v, err
	case x["same"] != nil:
		return shared[fmt.Sprint(x["same"])], nil
	}
	if _, ok := x["dict"]; ok {
		return Dict{}, nil
	}
	return nil, fmt.Errorf("unknown typed JSON %v", x)
}

func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

func sprint(v any) string { return fmt.Sprintf("%v", v) }
